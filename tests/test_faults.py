"""DynamoDB throttling past boto3's retries, or not answering at all: 503 with Retry-After, nothing written."""
import json

import pytest
from moto.core.botocore_stubber import BotocoreStubber

from chalicelib.store import default_store


THROTTLED = json.dumps({
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded.",
})


@pytest.fixture
def throttle(api, monkeypatch):
    """Make moto answer the named DynamoDB operations with a throttling error, every attempt,
    instead of applying them."""
    attempts = []

    def install(*operations):
        answer = BotocoreStubber.process_request

        def process_request(self, request):
            operation = request.headers.get("X-Amz-Target", b"")
            operation = (operation.decode() if isinstance(operation, bytes) else operation).rsplit(".", 1)[-1]
            if operation in operations:
                attempts.append(operation)
                return 400, {"Content-Type": "application/x-amz-json-1.0"}, THROTTLED
            return answer(self, request)

        monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
        return attempts

    return install


def assert_unavailable(response):
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json_body["Code"] == "ServiceUnavailableError"
    assert "Traceback" not in response.body.decode()


def test_a_throttled_create_is_503_after_boto3s_retries_and_writes_nothing(api, throttle):
    attempts = throttle("PutItem", "TransactWriteItems")
    assert_unavailable(api.post("/incidents", {"description": "x", "source": "operator"}))
    assert attempts == ["TransactWriteItems"] * 3  # standard retry mode: three attempts, then give up
    assert api.get("/incidents").json_body["items"] == []


def test_a_throttled_status_change_is_503_and_changes_nothing(api, throttle):
    incident = api.create()
    throttle("UpdateItem", "TransactWriteItems")
    assert_unavailable(api.patch(f"/incidents/{incident['id']}", {"status": "closed"}))
    assert api.get(f"/incidents/{incident['id']}").json_body == incident


def test_a_throttled_list_is_503(api, throttle):
    throttle("Query")
    assert_unavailable(api.get("/incidents?status=new"))


def test_health_is_503_when_the_table_throttles(api, throttle):
    throttle("GetItem")
    response = api.get("/health", key=None)
    assert response.status_code == 503 and response.json_body == {"status": "unavailable"}
    assert response.headers["Retry-After"] == "1"


def test_an_unreachable_table_is_503(api, monkeypatch):
    # Nothing listens on port 9 of the loopback: the connection is refused at once.
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    default_store.cache_clear()
    assert_unavailable(api.get("/incidents/1"))
    assert api.get("/health", key=None).status_code == 503


def test_a_missing_table_is_503(api, dynamodb):
    dynamodb.delete_table(TableName=default_store().table_name)
    assert_unavailable(api.post("/incidents", {"description": "x", "source": "operator"}))


ITEM_TOO_LARGE = json.dumps({
    "__type": "com.amazon.coral.validate#ValidationException",
    "message": "Item size has exceeded the maximum allowed size",
})
CANCELLED_TOO_LARGE = json.dumps({
    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
    "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
               "[ValidationError, None]",
    "CancellationReasons": [
        {"Code": "ValidationError", "Message": "Item size has exceeded the maximum allowed size"},
        {"Code": "None"},
    ],
})


@pytest.fixture
def refuse(monkeypatch):
    """Make moto answer the named operation with the given DynamoDB error body."""
    def install(operation, body):
        answer = BotocoreStubber.process_request

        def process_request(self, request):
            target = request.headers.get("X-Amz-Target", b"")
            target = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]
            if target == operation:
                return 400, {"Content-Type": "application/x-amz-json-1.0"}, body
            return answer(self, request)

        monkeypatch.setattr(BotocoreStubber, "process_request", process_request)

    return install


@pytest.mark.parametrize("body", [ITEM_TOO_LARGE, CANCELLED_TOO_LARGE])
def test_a_dynamodb_limit_hit_by_a_change_is_400_naming_the_limit_and_changes_nothing(api, refuse, body):
    incident = api.create()
    refuse("TransactWriteItems", body)

    response = api.patch(f"/incidents/{incident['id']}", {"status": "closed", "note": "n"})

    assert response.status_code == 400
    assert response.json_body["Code"] == "BadRequestError"
    assert "exceeds a DynamoDB limit" in response.json_body["Message"]
    assert "maximum allowed size" in response.json_body["Message"]
    assert api.get(f"/incidents/{incident['id']}").json_body == incident
