"""The embedded DynamoDB's shim (localaws/shim.py): TransactWriteItems answers, fails and rolls
back exactly as plain moto does, honours ClientRequestToken as DynamoDB documents, and refuses
to patch a moto it was not written for. (Its Query speed-ups: tests/test_bench_smoke.py.)"""
from __future__ import annotations

from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localaws import shim

TABLE = "shim-check"


def make_table(client: Any) -> None:
    client.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "g")],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                               {"AttributeName": "sk", "KeyType": "RANGE"}]}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def key(pk: str, sk: str = "item") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def put(pk: str, sk: str = "item", **attrs: Any) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": {**key(pk, sk), **attrs}}}


def update(pk: str, expression: str, values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"Update": {"TableName": TABLE, "Key": key(pk), "UpdateExpression": expression,
                       "ExpressionAttributeValues": values, **extra}}


def check(pk: str, condition: str, **extra: Any) -> dict[str, Any]:
    return {"ConditionCheck": {"TableName": TABLE, "Key": key(pk), "ConditionExpression": condition, **extra}}


X, Y = {"S": "x"}, {"S": "y"}
# Each a TransactWriteItems after the seed: one that applies, and every way one can fail.
TRANSACTIONS: list[list[dict[str, Any]]] = [
    [put("a", n={"N": "1"}, g=X), put("b", g=X), put("a", "history#1", g=X)],  # the seed
    [update("a", "SET n = n + :one, g = :y", {":one": {"N": "1"}, ":y": Y}), put("c", g=Y),
     {"Delete": {"TableName": TABLE, "Key": key("b")}}],
    # Cancelled by its last check, after the first three applied: all rolled back.
    [put("d", g=X), update("a", "SET n = :nine, g = :x", {":nine": {"N": "9"}, ":x": X}),
     put("a", "history#2", g=Y), check("c", "attribute_not_exists(pk)")],
    # Cancelled, the old item in the reason.
    [put("e"), check("a", "n = :x", ExpressionAttributeValues={":x": {"N": "7"}},
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")],
    # Refused whole, after two operations applied: an update that cannot apply (adds a string).
    [put("f"), update("c", "SET pk2 = :s", {":s": {"S": "x"}}), update("a", "SET n = n + :s", {":s": {"S": "x"}})],
    # Refused whole: two operations on one item.
    [put("g"), update("a", "SET n = :two", {":two": {"N": "2"}}), check("a", "attribute_exists(pk)")],
    # Refused whole: a table that does not exist.
    [put("h"), {"Put": {"TableName": "no-such-table", "Item": key("x")}}],
]
KEYS = [key(pk) for pk in "abcdefgh"] + [key("a", "history#1"), key("a", "history#2")]


def run_all(transact: list[list[dict[str, Any]]]) -> list[Any]:
    """What each transaction answered, then every item and every stream record."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        make_table(client)
        by_g(client, X)  # from here on, the shim keeps the index's partitions
        seen: list[Any] = []
        for items in transact:
            try:
                response = client.transact_write_items(TransactItems=items)
                response.pop("ResponseMetadata")
                seen.append(("ok", response))
            except ClientError as error:
                seen.append((error.response["Error"], error.response.get("CancellationReasons")))
        seen.append([client.get_item(TableName=TABLE, Key=k).get("Item") for k in KEYS])
        seen.append([by_g(client, g, forward) for g in (X, Y) for forward in (True, False)])
        seen.append(stream_records(client))
        return seen


def by_g(client: Any, g: dict[str, str], forward: bool = True) -> list[dict[str, Any]]:
    return client.query(TableName=TABLE, IndexName="by_g", KeyConditionExpression="g = :g",
                        ExpressionAttributeValues={":g": g}, ScanIndexForward=forward)["Items"]


def stream_records(client: Any) -> list[tuple[str, Any, Any]]:
    streams = boto3.client("dynamodbstreams", region_name="eu-west-1")
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    return [(r["eventName"], r["dynamodb"]["Keys"], r["dynamodb"].get("NewImage")) for r in records]


def test_every_transaction_answers_fails_and_rolls_back_exactly_as_plain_moto(aws_credentials):
    with shim.plain_moto():
        plain = run_all(TRANSACTIONS)
    with shim.fast_moto():
        assert run_all(TRANSACTIONS) == plain
    answers, items, by_g, stream = plain[:-3], plain[-3], plain[-2], plain[-1]
    assert [a[0] == "ok" for a in answers] == [True, True, False, False, False, False, False]
    assert [a[0]["Code"] for a in answers[2:]] == ["TransactionCanceledException"] * 2 + \
        ["ValidationException"] * 2 + ["ResourceNotFoundException"]
    assert [item is not None for item in items] == [True, False, True] + [False] * 5 + [True, False]
    assert items[0]["n"] == {"N": "2"}  # the cancelled ones changed nothing
    assert [[item["pk"]["S"] + "/" + item["sk"]["S"] for item in page] for page in by_g[::2]] == \
        [["a/history#1"], ["a/item", "c/item"]]
    assert [event for event, _, _ in stream] == ["INSERT"] * 3 + ["MODIFY", "INSERT", "REMOVE"]


@pytest.fixture(autouse=True)
def regional_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")  # moto's streams: the regional endpoint


@pytest.fixture
def table(aws_credentials: None) -> Any:
    with mock_aws(), shim.fast_moto():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        make_table(client)
        yield client


def add_one(token: str, pk: str = "counter") -> dict[str, Any]:
    return dict(ClientRequestToken=token, TransactItems=[
        update(pk, "ADD n :one", {":one": {"N": "1"}}), put(pk, "history#" + token)])


def counter(client: Any, pk: str = "counter") -> str | None:
    item = client.get_item(TableName=TABLE, Key=key(pk)).get("Item")
    return item["n"]["N"] if item else None


def test_a_transaction_repeated_with_its_client_request_token_succeeds_and_applies_once(table):
    table.transact_write_items(**add_one("token-1"))
    records = stream_records(table)
    table.transact_write_items(**add_one("token-1"))  # as a retry after a lost answer would
    assert counter(table) == "1"
    assert stream_records(table) == records
    table.transact_write_items(**add_one("token-2"))
    assert counter(table) == "2"


def test_a_client_request_token_reused_with_other_items_is_a_mismatch_and_applies_nothing(table):
    table.transact_write_items(**add_one("token-1"))
    with pytest.raises(ClientError) as error:
        table.transact_write_items(**add_one("token-1", pk="another"))
    assert error.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert counter(table, "another") is None and counter(table) == "1"


def test_a_client_request_token_is_new_again_after_10_minutes(table, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(shim, "clock", lambda: now[0])
    table.transact_write_items(**add_one("token-1"))
    now[0] += 599
    table.transact_write_items(**add_one("token-1"))
    assert counter(table) == "1"
    now[0] += 1
    table.transact_write_items(**add_one("token-1"))
    assert counter(table) == "2"


def test_a_transaction_without_a_token_applies_every_time(table):
    items = add_one("unused")
    del items["ClientRequestToken"]
    table.transact_write_items(**items)
    table.transact_write_items(**items)
    assert counter(table) == "2"


@pytest.mark.parametrize("change", [
    lambda monkeypatch: monkeypatch.setattr(shim.moto, "__version__", "9.9.9"),
    lambda monkeypatch: monkeypatch.setitem(shim._CHECKED, "Table.query",
                                            (shim._CHECKED["Table.query"][0], "000000000000")),
], ids=["another version", "a patched function changed"])
def test_the_shim_refuses_to_start_on_a_moto_it_was_not_written_for(
        change: Callable[[pytest.MonkeyPatch], None], monkeypatch: pytest.MonkeyPatch) -> None:
    change(monkeypatch)
    with pytest.raises(shim.MotoChanged) as error:
        shim.install()
    assert f"written for moto {shim.PINNED_MOTO}" in str(error.value)
    assert "pip install -r requirements-dev.txt" in str(error.value)
