# Entry points: `make run` (local service) and `make test` (whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

PORT ?= 8000
MOTO_PORT ?= 8001
# make run keeps its data in LOCAL_DIR (default .local/); FRESH=1 starts empty.
LOCAL_DIR ?= .local
FRESH ?=
export PORT MOTO_PORT LOCAL_DIR FRESH

.PHONY: run reset say test clean bench

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# No shell between make and the script: SIGTERM to make reaches it, and it watches make for SIGINT.
run: $(INSTALLED)
	@$(PY) scripts/run_local.py

# Forget what make run kept: the next make run starts empty (as make run FRESH=1 does).
reset:
	rm -rf $(LOCAL_DIR)

# One message from the local Telegram group to make run's webhook; prints the bot's answer.
# make say TEXT='[operator] Самокат 42 не в сети' [REPLY_TO=<message id>] [FROM=anna_support]
#          [CHAT=<a team's chat_id> | PRIVATE=1]
# make say PRESS=<message id>:<button> [FROM=…]: presses a button under the bot's message (Take, resolve…)
# TEXT, REPLY_TO, FROM, CHAT, PRIVATE and PRESS reach the script through the environment: no quoting to get wrong.
export TEXT REPLY_TO FROM CHAT PRIVATE PRESS
say: $(INSTALLED)
	@$(PY) scripts/say.py

# In parallel, one pytest-xdist worker per core (the grouping: tests/conftest.py); the time of
# the whole of make test (install and chromium included) printed at the end, pytest's status kept.
TEST_STARTED := $(shell date +%s)
test: $(INSTALLED) ensure-chromium
	@$(PY) -m pytest -n auto --dist loadscope; status=$$?; \
	echo "make test: $$(( $$(date +%s) - $(TEST_STARTED) )) s"; exit $$status

# Debian's chromium for the /docs browser test; installs it only when missing, never fails.
.PHONY: ensure-chromium
ensure-chromium:
	@bash scripts/ensure_chromium.sh

# Build chalicelib/openapi.json (what /openapi.json serves) from openapi/document.py.
.PHONY: openapi
openapi: $(INSTALLED)
	$(PY) -m openapi

clean:
	rm -rf $(VENV) .pytest_cache

# Deliver a sample CloudWatch alarm (STATE=ALARM|OK|INSUFFICIENT_DATA) to the service `make run` started.
STATE ?= ALARM
.PHONY: fire-alarm
fire-alarm: $(INSTALLED)
	$(PY) scripts/fire_alarm.py $(STATE)

# A sample Alertmanager batch (STATUS=firing|resolved) and a PagerDuty trigger/resolve pair, over HTTP
# to the service `make run` started (README: "Monitoring integrations").
STATUS ?= firing
.PHONY: fire-alerts
fire-alerts: $(INSTALLED)
	$(PY) scripts/fire_alerts.py $(STATUS)

# CloudFormation for STAGE (dev|prod) in out/STAGE/package: Chalice's SAM template merged with
# deploy/resources.py's resources, then checked by cfn-lint. Deploying it: docs/deploy.md.
STAGE ?= dev
.PHONY: package
package: $(INSTALLED)
	rm -rf out/$(STAGE)
	$(PY) deploy/resources.py --stage $(STAGE) --output out/$(STAGE)/resources.json
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-$${AWS_REGION:-eu-west-1}} $(VENV)/bin/chalice package \
		--stage $(STAGE) --merge-template out/$(STAGE)/resources.json out/$(STAGE)/package
	$(VENV)/bin/cfn-lint out/$(STAGE)/package/sam.json

# Benchmark (not a test): `make bench`, or `make bench SIZES=1000,10000,100000 RUNS=10`.
BENCH_VENV := bench/.venv
BENCH_INSTALLED := $(BENCH_VENV)/.installed
SIZES ?=
RUNS ?=

$(BENCH_INSTALLED): bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $@

bench: $(INSTALLED) $(BENCH_INSTALLED)
	$(PY) bench/run.py $(if $(SIZES),--sizes $(SIZES)) $(if $(RUNS),--runs $(RUNS))
