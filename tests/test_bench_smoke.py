"""The benchmark's DynamoDB counting at a tiny size, so `make bench` cannot rot unnoticed.

Not a benchmark itself: it checks the invariants the benchmark reports on, and that the
benchmark's moto speed-ups change how fast moto answers, never what it answers.
"""
from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import Any, Iterator

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from conftest import ROOT

SIZE = 200


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    """bench/dynamo_counts.py, imported with its fake AWS settings; the environment restored after."""
    saved_env, saved_path = dict(os.environ), list(sys.path)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import dynamo_counts

        yield dynamo_counts
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


@pytest.fixture(scope="module")
def result(bench: Any) -> Any:
    return bench.measure_size(SIZE)


def test_a_status_page_is_one_query_reading_at_most_limit_plus_one(bench: Any, result: Any) -> None:
    page = result.ops["list page: status"]
    assert [c.operation for c in page.calls] == ["Query"]
    assert page.items_read <= bench.PAGE_LIMIT + 1


def test_a_status_change_is_one_update_item(result: Any) -> None:
    assert [c.operation for c in result.ops["status change"].calls] == ["UpdateItem"]


def test_get_and_replay_are_one_get_item_each(result: Any) -> None:
    assert [c.operation for c in result.ops["get"].calls] == ["GetItem"]
    assert [c.operation for c in result.ops["create, Idempotency-Key replay"].calls] == ["GetItem"]


def test_walking_a_status_reads_each_incident_about_once(bench: Any, result: Any) -> None:
    walk = result.ops[f"walk every page: status={bench.WALK_STATUS}"]
    assert walk.returned == result.seeded_by_status[bench.WALK_STATUS] + 2
    assert walk.items_read <= walk.returned + walk.pages


def test_no_scan_anywhere(result: Any) -> None:
    assert "Scan" not in result.operations_seen
    assert "Query" in result.operations_seen  # the hook did see calls


def test_moto_speed_ups_answer_exactly_as_moto_does(bench: Any) -> None:
    from chalicelib.store import STATUS_INDEX, create_table

    with bench.mock_aws():
        create_table(boto3.client("dynamodb"), "smoke")
        table = boto3.resource("dynamodb").Table("smoke")
        bench.seed(table, SIZE, datetime.now(timezone.utc))
        queries = [dict(KeyConditionExpression=Key("status").eq(s), ScanIndexForward=forward, Limit=51)
                   for s in ("new", "closed") for forward in (True, False)]
        queries.append(dict(KeyConditionExpression=Key("status").eq("new") & Key("created_key").lt("9"),
                            FilterExpression=Attr("source").eq("partner"), ScanIndexForward=False, Limit=51))

        def answers() -> list[dict[str, Any]]:
            found = []
            for query in queries:
                response = table.query(IndexName=STATUS_INDEX, **query)
                response.pop("ResponseMetadata")
                found.append(response)
            return found

        plain = answers()
        with bench.fast_moto():
            assert answers() == plain
            _cancelled_transaction_changes_nothing(table)


def _cancelled_transaction_changes_nothing(table: Any) -> None:
    client = table.meta.client
    before = table.get_item(Key={"pk": "incident#1"})["Item"]
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": table.name, "Item": {"pk": "incident#new-one"}}},
            {"Update": {"TableName": table.name, "Key": {"pk": "incident#1"},
                        "UpdateExpression": "SET occurrences = :n", "ExpressionAttributeValues": {":n": 9}}},
            {"ConditionCheck": {"TableName": table.name, "Key": {"pk": "incident#2"},
                                "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    assert "Item" not in table.get_item(Key={"pk": "incident#new-one"})
    assert table.get_item(Key={"pk": "incident#1"})["Item"] == before
