"""One cold start of the Chalice app as Lambda runs it: imports, then one event handed straight to
the handler the Lambda runtime would call, with no test client.

    .venv/bin/python bench/app_lambda_cold_start.py api|sns|telegram
        ->  {"seconds": 0.21, "import_app": 0.12, "status": 200}   (the last line)

- api:      an API Gateway proxy event, GET /incidents?status=new, to `app.app(event, context)`;
- sns:      one CloudWatch alarm record (ALARM) to `app.on_alarm_notification(event, context)`;
- telegram: a group message that opens an incident, POST /telegram/webhook, to `app.app`.

DynamoDB is the embedded one that `make bench` starts (moto in server mode, named by
AWS_ENDPOINT_URL_DYNAMODB): real HTTP requests, signed and parsed by botocore as in Lambda.
Each run sends a new SNS MessageId and Telegram update_id, so no run is a redelivery.
"""
import time

START = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import API_KEY, ROOT, use_fake_aws  # noqa: E402

KIND = sys.argv[1] if len(sys.argv) > 1 else "api"
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "")
use_fake_aws()  # fake credentials; it unsets the endpoint, put back below (only a local one)
if not ENDPOINT.startswith("http://127.0.0.1:"):
    sys.exit("set AWS_ENDPOINT_URL_DYNAMODB to the embedded DynamoDB (http://127.0.0.1:<port>)")
os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = ENDPOINT
TELEGRAM_SECRET = "bench-telegram-secret"
TELEGRAM_CHAT = -1001234567890
os.environ.update(TELEGRAM_SECRET_TOKEN=TELEGRAM_SECRET, TELEGRAM_ALLOWED_CHATS=str(TELEGRAM_CHAT),
                  TELEGRAM_BOT_USERNAME="IncidentBot")
from no_observability import install_if_asked  # noqa: E402

install_if_asked()  # BENCH_WITHOUT_OBSERVABILITY=1: logs and metrics taken out


class LambdaContext:
    """What the runtime passes: the fields the app reads."""

    aws_request_id = str(uuid.uuid4())
    function_name = "incidents-bench-APIHandler"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:000000000000:function:incidents-bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def api_event(method: str, path: str, headers: dict, query: dict | None = None,
              body: str | None = None) -> dict:
    return {
        "resource": path, "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None, "stageVariables": None, "body": body, "isBase64Encoded": False,
        "requestContext": {"resourcePath": path, "httpMethod": method, "path": f"/api{path}",
                           "stage": "api", "requestId": str(uuid.uuid4())},
    }


def sns_event() -> dict:
    event = json.loads((ROOT / "tests" / "payloads" / "sns_alarm_record.json").read_text())
    sns = event["Records"][0]["Sns"]
    sns["MessageId"] = str(uuid.uuid4())
    message = json.loads(sns["Message"])
    message["StateChangeTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
    message["AlarmName"] = message["AlarmArn"] = f"bench-{uuid.uuid4()}"  # opens a new incident
    sns["Message"] = json.dumps(message)
    return event


def telegram_event() -> dict:
    update = json.loads((ROOT / "tests" / "payloads" / "telegram" / "new_operator.json").read_text())
    update["update_id"] = uuid.uuid4().int % 10**9
    return api_event("POST", "/telegram/webhook",
                     {"x-telegram-bot-api-secret-token": TELEGRAM_SECRET,
                      "content-type": "application/json"},
                     body=json.dumps(update, ensure_ascii=False))


if KIND == "api":
    event = api_event("GET", "/incidents", {"x-api-key": API_KEY}, {"status": "new"})
elif KIND == "sns":
    event = sns_event()
elif KIND == "telegram":
    event = telegram_event()
else:
    sys.exit(f"unknown kind {KIND!r}: api, sns or telegram")
BUILT = time.perf_counter()

import app as app_module  # noqa: E402

IMPORTED = time.perf_counter()
if KIND == "sns":
    response = app_module.on_alarm_notification(event, LambdaContext())  # raises if not stored
else:
    response = app_module.app(event, LambdaContext())
RESPONDED = time.monotonic()  # CLOCK_MONOTONIC: comparable with the launcher's
elapsed = time.perf_counter() - START
status = 200 if KIND == "sns" else response["statusCode"]
if status != 200:
    sys.exit(f"cold start {KIND} failed: {response}")
print(json.dumps({"responded_at": RESPONDED, "seconds": elapsed, "import_app": IMPORTED - BUILT,
                  "status": status}))
