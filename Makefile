# Entry points: `make run` (local service) and `make test` (whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

PORT ?= 8000
MOTO_PORT ?= 8001
export PORT MOTO_PORT

.PHONY: run test clean

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(INSTALLED)
	$(PY) scripts/run_local.py

test: $(INSTALLED)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
