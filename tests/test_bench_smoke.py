"""The benchmark's DynamoDB counting at a tiny size, so `make bench` cannot rot unnoticed.

Not a benchmark itself: it checks the invariants the benchmark reports on (issues 6 and 10),
and that the embedded DynamoDB's speed-ups (localaws/shim.py) change how fast moto answers,
never what it answers.
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
from localaws.shim import plain_moto

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


def test_a_status_change_is_one_transaction_then_one_query(result: Any) -> None:
    """The incident update and the history entry put in one TransactWriteItems, then the
    incident and its 100 newest entries read back in one Query."""
    assert [c.operation for c in result.ops["status change"].calls] == ["TransactWriteItems", "Query"]


def test_get_is_one_query_and_replay_a_get_item_and_a_query(result: Any) -> None:
    assert [c.operation for c in result.ops["get"].calls] == ["Query"]
    assert [c.operation for c in result.ops["create, Idempotency-Key replay"].calls] == ["GetItem", "Query"]


def test_walking_a_status_reads_each_incident_about_once(bench: Any, result: Any) -> None:
    walk = result.ops[f"walk every page: status={bench.WALK_STATUS}"]
    assert walk.returned == result.seeded_by_status[bench.WALK_STATUS] + 2
    assert walk.items_read <= walk.returned + walk.pages


def test_no_scan_anywhere(result: Any) -> None:
    assert "Scan" not in result.operations_seen
    assert "Query" in result.operations_seen  # the hook did see calls


def test_a_long_history_changes_neither_the_calls_nor_the_item_size(bench: Any, result: Any) -> None:
    n = bench.LONG_HISTORY
    long = result.ops[f"status change, {n:,} entries"]
    assert [c.operation for c in long.calls] == ["TransactWriteItems", "Query"]
    assert long.items_read <= 101  # the incident and its 100 newest entries
    sizes = result.sizes
    assert sizes[f"incident item, {n + 1:,} entries"] <= 1.1 * sizes["incident item, 3 entries"]
    assert (sizes[f"status change request, {n:,} entries before"]
            <= 1.1 * sizes["status change request, 1 entry before"])


def test_a_100_item_page_is_measured(bench: Any, result: Any) -> None:
    page = result.ops[f"list page: no filter, limit={bench.BIG_PAGE_LIMIT}"]
    assert page.returned == bench.BIG_PAGE_LIMIT
    assert 0 < result.sizes[f"list page response, {bench.BIG_PAGE_LIMIT} items"] == page.response_bytes


def test_skewed_pages_query_each_index_once_reading_at_most_limit_plus_one(bench: Any, result: Any) -> None:
    expected = {f"{name}{suffix}" for name, _, _ in bench.SKEW_CASES + bench.SKEW_TEAM_CASES
                for suffix in ("", ", cursor")}
    assert set(result.skew) == expected
    for name, op in result.skew.items():
        assert all(c.operation == "Query" for c in op.calls), name
        # a team alone: one Query per status partition of by_status_team
        assert op.call_count == op.partitions == (4 if name.startswith("team ") else 1), name
        assert op.max_read_per_call <= bench.PAGE_LIMIT + 1, name
        assert op.items_read <= (bench.PAGE_LIMIT + 1) * op.partitions, name
    assert result.skew["source none"].returned == 0
    assert result.skew["source 0.1%"].returned == len(range(1, SIZE + 1, bench.SKEW_RARE_EVERY))
    assert result.skew["team none"].returned == result.skew["status+team none"].returned == 0
    assert result.skew["team none"].items_read == 0
    rare = [i for i in range(1, SIZE + 1) if bench.skewed_team(i) == bench.SKEW_RARE_TEAM]
    assert result.skew["team 0.1%"].returned == len(rare)
    checks = bench.skewed_checks([result, result])
    assert not checks["calls"] and not checks["items"] and not checks["per_call"]


def test_seeding_writes_the_v2_layout(bench: Any) -> None:
    """Through the store itself: an incident with its whole history, the counter at `size`."""
    from chalicelib.store import Store, create_table

    with bench.mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, "smoke")
        plan = bench.seed_plan(SIZE)
        bench.seed(boto3.resource("dynamodb").Table("smoke"), SIZE, datetime.now(timezone.utc),
                   plan=plan, long_history=True)
        store = Store(client, "smoke")
        closed = next(i for i, (status, _) in enumerate(plan, start=1) if status == "closed")
        incident = store.get_incident(closed)
        assert [e["status"] for e in incident["history"]] == bench.PATH_TO["closed"]
        assert incident["history_count"] == 4 and incident["version"] == 4
        assert incident["resolved_at"] == incident["history"][2]["at"]
        long = store.get_incident(bench.long_history_id(plan), history=bench.LONG_HISTORY)
        assert long["history_count"] == len(long["history"]) == bench.LONG_HISTORY
        assert store.allocate_id() == SIZE + 1


def test_moto_speed_ups_answer_exactly_as_moto_does(bench: Any) -> None:
    from chalicelib.store import SOURCE_INDEX, STATUS_INDEX, STATUS_SOURCE_INDEX, STATUS_TEAM_INDEX, create_table

    with bench.mock_aws():
        create_table(boto3.client("dynamodb"), "smoke")
        table = boto3.resource("dynamodb").Table("smoke")
        bench.seed(table, SIZE, datetime.now(timezone.utc), long_history=True, team_of=bench.skewed_team)
        queries = [dict(IndexName=STATUS_INDEX, KeyConditionExpression=Key("status").eq(s),
                        ScanIndexForward=forward, Limit=51)
                   for s in ("new", "closed") for forward in (True, False)]
        queries.append(dict(IndexName=STATUS_INDEX,
                            KeyConditionExpression=Key("status").eq("new") & Key("created_key").lt("9"),
                            FilterExpression=Attr("source").eq("partner"), ScanIndexForward=False, Limit=51))
        queries += [dict(IndexName=SOURCE_INDEX, KeyConditionExpression=Key("source").eq(s),
                         ScanIndexForward=False, Limit=51) for s in ("monitoring", "partner")]
        queries += [dict(IndexName=STATUS_SOURCE_INDEX,
                         KeyConditionExpression=Key("status").eq(s) & Key("source_created").lt("operator$"),
                         ScanIndexForward=False, Limit=51) for s in ("new", "closed")]
        # The sparse index: only the teamed incidents are in it.
        queries += [dict(IndexName=STATUS_TEAM_INDEX, KeyConditionExpression=Key("status").eq(s),
                         ScanIndexForward=forward, Limit=51) for s in ("new", "closed") for forward in (True, False)]
        queries += [dict(IndexName=STATUS_TEAM_INDEX,
                         KeyConditionExpression=Key("status").eq("closed") & Key("team_created").begins_with(t),
                         ScanIndexForward=False, Limit=51) for t in ("ops#", "ghost#")]
        # An item collection: the incident and its newest entries, as the store reads it.
        long_id = bench.long_history_id(bench.seed_plan(SIZE))
        queries += [dict(KeyConditionExpression=Key("pk").eq(f"incident#{i}") & Key("sk").lte("incident"),
                         ScanIndexForward=False, ConsistentRead=True, Limit=101) for i in (1, long_id)]
        queries += [dict(KeyConditionExpression=Key("pk").eq(f"incident#{long_id}")
                         & Key("sk").begins_with("history#"), Limit=10),
                    dict(KeyConditionExpression=Key("pk").eq("incident#no-such-one"))]

        def answers() -> list[dict[str, Any]]:
            found = []
            for query in queries:
                response = table.query(**query)
                response.pop("ResponseMetadata")
                found.append(response)
            return found

        with plain_moto():
            plain = answers()
        assert all(answer["Count"] for answer in plain[:4])  # the queries do find incidents
        assert answers() == plain
        # A team taken away from one incident and given to another: the sparse index follows.
        table.update_item(Key={"pk": "incident#3", "sk": "incident"}, UpdateExpression="REMOVE team, team_created")
        created = table.get_item(Key={"pk": "incident#2", "sk": "incident"})["Item"]["created_key"]
        table.update_item(Key={"pk": "incident#2", "sk": "incident"},
                          UpdateExpression="SET team = :team, team_created = :key",
                          ExpressionAttributeValues={":team": "ops", ":key": f"ops#{created}"})
        with plain_moto():
            plain = answers()
        assert answers() == plain
        _cancelled_transaction_changes_nothing(table)


def _cancelled_transaction_changes_nothing(table: Any) -> None:
    """On the composite-key table: a put, an update and an entry put in one item collection,
    cancelled by a failing check, leave every item as it was."""
    client = table.meta.client
    incident = {"pk": "incident#1", "sk": "incident"}
    before = table.get_item(Key=incident)["Item"]
    collection_before = table.query(KeyConditionExpression=Key("pk").eq("incident#1"))["Items"]
    with pytest.raises(ClientError) as error:
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": table.name, "Item": {"pk": "incident#new-one", "sk": "incident"}}},
            {"Update": {"TableName": table.name, "Key": incident,
                        "UpdateExpression": "SET occurrences = :n", "ExpressionAttributeValues": {":n": 9}}},
            {"Put": {"TableName": table.name,
                     "Item": {"pk": "incident#1", "sk": "history#9999", "entry": {"at": "9999"}}}},
            {"ConditionCheck": {"TableName": table.name, "Key": {"pk": "incident#2", "sk": "incident"},
                                "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "Item" not in table.get_item(Key={"pk": "incident#new-one", "sk": "incident"})
    assert table.get_item(Key=incident)["Item"] == before
    assert table.query(KeyConditionExpression=Key("pk").eq("incident#1"))["Items"] == collection_before
