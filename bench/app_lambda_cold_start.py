"""One cold start of the Chalice app as Lambda runs it: imports, then one API Gateway proxy event
handed straight to `app.app(event, context)`, as the Lambda runtime does, with no test client.

    .venv/bin/python bench/app_lambda_cold_start.py   ->  {"seconds": 0.33}   (the last line)

DynamoDB is answered by botocore's Stubber on the store's own client (an empty page).
"""
import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import API_KEY, use_fake_aws  # noqa: E402

use_fake_aws()
from no_observability import install_if_asked  # noqa: E402

install_if_asked()  # BENCH_WITHOUT_OBSERVABILITY=1: logs and metrics taken out

import app as app_module  # noqa: E402
from botocore.stub import Stubber  # noqa: E402
from chalicelib.store import default_store  # noqa: E402

EVENT = {
    "resource": "/incidents", "path": "/incidents", "httpMethod": "GET",
    "headers": {"x-api-key": API_KEY}, "multiValueHeaders": {"x-api-key": [API_KEY]},
    "queryStringParameters": {"status": "new"}, "multiValueQueryStringParameters": {"status": ["new"]},
    "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
    "requestContext": {"resourcePath": "/incidents", "httpMethod": "GET", "path": "/api/incidents",
                       "stage": "api"},
}

stubber = Stubber(default_store()._client)
stubber.add_response("query", {"Items": [], "Count": 0, "ScannedCount": 0})
with stubber:
    response = app_module.app(EVENT, None)
elapsed = time.perf_counter() - START
if response["statusCode"] != 200:
    sys.exit(f"cold start request failed: {response}")
stubber.assert_no_pending_responses()
print(json.dumps({"seconds": elapsed}))
