"""The floor under the app's cold start: a Python process that imports botocore, builds one
DynamoDB client and sends the app's Query (GET /incidents?status=new) to the embedded DynamoDB.
No Chalice, no app code, no logs.

    AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:<port> .venv/bin/python bench/floor_cold_start.py
        ->  {"seconds": 0.17, "status": 200}
"""
import time

START = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402

import botocore.session  # noqa: E402

os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_DEFAULT_REGION="eu-west-1")
if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "").startswith("http://127.0.0.1:"):
    raise SystemExit("set AWS_ENDPOINT_URL_DYNAMODB to the embedded DynamoDB (http://127.0.0.1:<port>)")
client = botocore.session.get_session().create_client("dynamodb")
response = client.query(
    TableName=os.environ.get("TABLE_NAME", "incidents-bench"), IndexName="by_status",
    KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
    ExpressionAttributeValues={":s": {"S": "new"}}, ScanIndexForward=False, Limit=51)
RESPONDED = time.monotonic()  # CLOCK_MONOTONIC: comparable with the launcher's
print(json.dumps({"responded_at": RESPONDED, "seconds": time.perf_counter() - START,
                  "status": response["ResponseMetadata"]["HTTPStatusCode"]}))
