"""scripts/migrate_v1_to_v2.py: a v1 table copied into v2 serves the API as if it had always
been v2; the script reads without Scan, and running it again writes the same items."""
from __future__ import annotations

import importlib.util
import sys
from typing import Any

import boto3
import pytest

from conftest import ROOT, TABLE_NAME

_spec = importlib.util.spec_from_file_location("migrate_v1_to_v2", ROOT / "scripts" / "migrate_v1_to_v2.py")
migration = sys.modules["migrate_v1_to_v2"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(migration)

V1_TABLE = "incidents-v1"
V1_COUNTER = 7  # id 7 was allocated, its write never happened: the next incident is #8
T0 = "2026-03-01T10:00:00.000Z"


def entry(at: str, status: str, note: str | None = None, by: str = "api") -> dict[str, Any]:
    return {"at": at, "status": status, "note": note, "by": by}


def v1_incident(incident_id: int, status: str, history: list[dict[str, Any]], *, source: str = "operator",
                dedup_key: str | None = None, occurrences: int = 1) -> dict[str, Any]:
    """An incident item as v1's store wrote it: pk, created_key and the history inside."""
    created = history[0]["at"]
    return {
        "pk": f"incident#{incident_id}", "created_key": f"{created}#{incident_id:020d}",
        "id": incident_id, "description": f"Самокат #{incident_id} не в сети", "status": status,
        "source": source, "created_at": created, "updated_at": history[-1]["at"],
        "dedup_key": dedup_key, "occurrences": occurrences, "history": history,
        "version": len(history) + occurrences - 1,
    }


V1_INCIDENTS = [
    # 1: plain, new, one entry
    v1_incident(1, "new", [entry("2026-03-01T10:00:00.000Z", "new")]),
    # 2: several entries, two of them in one millisecond
    v1_incident(2, "in_progress", [
        entry("2026-03-01T10:01:00.000Z", "new"),
        entry("2026-03-01T10:02:00.000Z", "in_progress", "looking"),
        entry("2026-03-01T10:03:00.000Z", "resolved", "rebooted"),
        entry("2026-03-01T10:03:00.000Z", "in_progress", "back again", by="telegram:@ops"),
    ], source="partner"),
    # 3 and 4 share a dedup_key: 3 resolved, then 4 opened for the same alarm and is open
    v1_incident(3, "resolved", [
        entry("2026-03-01T10:04:00.000Z", "new", by="cloudwatch"),
        entry("2026-03-01T10:05:00.000Z", "resolved", "alarm back to OK", by="cloudwatch"),
    ], source="monitoring", dedup_key="alarm:cpu-api-1", occurrences=3),
    v1_incident(4, "new", [entry("2026-03-01T10:06:00.000Z", "new", by="cloudwatch")],
                source="monitoring", dedup_key="alarm:cpu-api-1"),
    # 5 closed, 6 resolved, same key: the newest (6) owns it although it is not open
    v1_incident(5, "closed", [
        entry("2026-03-01T10:07:00.000Z", "new", by="cloudwatch"),
        entry("2026-03-01T10:08:00.000Z", "closed", by="api"),
    ], source="monitoring", dedup_key="alarm:disk-db-1"),
    v1_incident(6, "resolved", [
        entry("2026-03-01T10:09:00.000Z", "new", by="cloudwatch"),
        entry("2026-03-01T10:10:00.000Z", "resolved", by="cloudwatch"),
    ], source="monitoring", dedup_key="alarm:disk-db-1"),
]
V1_OTHER_ITEMS = [
    {"pk": "counter#incident", "last_id": V1_COUNTER},
    {"pk": "dedup#alarm:cpu-api-1", "incident_id": 4},
    {"pk": "dedup#alarm:disk-db-1", "incident_id": 6},
    {"pk": "once#sns-message-1", "fingerprint": "", "status_code": 201, "expires_at": 4102444800},
]


def make_v1_table(client: Any) -> None:
    client.create_table(TableName=V1_TABLE, **migration.V1_TABLE_DEFINITION)
    table = boto3.resource("dynamodb").Table(V1_TABLE)
    for item in V1_INCIDENTS + V1_OTHER_ITEMS:
        table.put_item(Item=item)


def dynamodb_operations(events: Any) -> list[str]:
    operations: list[str] = []
    events.register("before-call.dynamodb", lambda model, **_: operations.append(model.name))
    return operations


def run_script(*args: str) -> tuple[int, list[str]]:
    """The CLI, with its own boto3 client made from a fresh default session; the DynamoDB
    operations it called."""
    boto3.setup_default_session()
    operations = dynamodb_operations(boto3.DEFAULT_SESSION.events)
    code = migration.main(list(args))
    boto3.setup_default_session()
    return code, operations


def everything(client: Any, table: str) -> list[dict[str, Any]]:
    """The whole table (the test may Scan; the script may not)."""
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


@pytest.fixture
def migrated(dynamodb: Any) -> Any:
    """v1 data copied into TABLE_NAME, which the dynamodb fixture created with
    chalicelib.store.create_table, as the v2 stack creates it; the app reads TABLE_NAME."""
    make_v1_table(dynamodb)
    code, operations = run_script("--source-table", V1_TABLE, "--target-table", TABLE_NAME)
    assert code == 0
    return operations


def test_the_script_reads_with_query_and_get_item_never_scan(migrated):
    assert "Scan" not in migrated
    assert migrated.count("Query") >= 4  # one stream per status
    assert "GetItem" in migrated and "BatchWriteItem" in migrated


def test_a_migrated_incident_reads_as_before_with_its_history(migrated, api):
    plain = api.get("/incidents/1")
    assert plain.status_code == 200
    assert plain.headers["ETag"] == '"1-1"'
    body = plain.json_body
    assert {k: body[k] for k in ("id", "status", "source", "description", "dedup_key",
                                 "occurrences", "history_count")} == {
        "id": 1, "status": "new", "source": "operator", "description": "Самокат #1 не в сети",
        "dedup_key": None, "occurrences": 1, "history_count": 1}
    assert body["history"] == V1_INCIDENTS[0]["history"]

    several = api.get("/incidents/2").json_body
    assert several["history"] == V1_INCIDENTS[1]["history"]  # same order, both 10:03:00.000 entries
    assert several["history_count"] == 4
    assert api.get("/incidents/3").headers["ETag"] == '"3-4"'  # v1 versions kept: ETags stay valid


def test_history_pages_walk_entries_sharing_a_millisecond_in_order(migrated, api):
    seen, cursor = [], None
    while True:
        page = api.get("/incidents/2/history?limit=1" + (f"&cursor={cursor}" if cursor else "")).json_body
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == V1_INCIDENTS[1]["history"]


def test_list_filters_on_migrated_data(migrated, api):
    def ids(query: str) -> list[int]:
        response = api.get(f"/incidents?{query}")
        assert response.status_code == 200, response.body
        return [item["id"] for item in response.json_body["items"]]

    assert ids("limit=100") == [6, 5, 4, 3, 2, 1]
    assert ids("status=resolved") == [6, 3]
    assert ids("source=monitoring") == [6, 5, 4, 3]
    assert ids("status=new&source=monitoring") == [4]
    assert ids("status=in_progress&source=partner") == [2]
    assert ids("source=partner&status=new") == []
    first = api.get("/incidents?limit=4").json_body
    assert [i["id"] for i in first["items"]] == [6, 5, 4, 3]
    rest = api.get(f"/incidents?limit=4&cursor={first['next_cursor']}").json_body
    assert [i["id"] for i in rest["items"]] == [2, 1] and rest["next_cursor"] is None


def test_changes_apply_to_migrated_incidents(migrated, api):
    changed = api.patch("/incidents/2", {"status": "resolved", "note": "fixed for good"})
    assert changed.status_code == 200, changed.body
    body = changed.json_body
    assert (body["status"], body["history_count"]) == ("resolved", 5)
    assert body["history"][:4] == V1_INCIDENTS[1]["history"]
    assert body["history"][-1]["note"] == "fixed for good"
    assert changed.headers["ETag"] == '"2-5"'
    # the If-Match a client holds from v1 still works
    stale = api.patch("/incidents/1", {"status": "in_progress"}, headers={"If-Match": '"1-1"'})
    assert stale.status_code == 200


def test_reopening_the_older_incident_of_a_shared_key_is_409_naming_the_open_one(migrated, api):
    response = api.patch("/incidents/3", {"status": "in_progress"})
    assert response.status_code == 409
    assert "#4" in response.json_body["Message"] and "alarm:cpu-api-1" in response.json_body["Message"]
    assert api.get("/incidents/3").json_body["status"] == "resolved"


def test_the_dedup_records_follow_the_newest_incident(migrated, api):
    repeat = api.post("/incidents", {"description": "CPU high", "source": "monitoring",
                                     "dedup_key": "alarm:cpu-api-1"})
    assert (repeat.status_code, repeat.json_body["id"], repeat.json_body["occurrences"]) == (200, 4, 2)
    # #6 (resolved) owns alarm:disk-db-1: a new report opens #8 and marks #6, so #6 reopens only
    # while #8 is not open; #5 (closed) stays final.
    again = api.post("/incidents", {"description": "Disk full", "source": "monitoring",
                                    "dedup_key": "alarm:disk-db-1"})
    assert (again.status_code, again.json_body["id"]) == (201, 8)
    assert api.patch("/incidents/6", {"status": "in_progress"}).status_code == 409


def test_a_new_incident_continues_after_the_v1_counter(migrated, api):
    created = api.post("/incidents", {"description": "Партнёрский API не отвечает", "source": "partner"})
    assert (created.status_code, created.json_body["id"]) == (201, V1_COUNTER + 1)


def test_items_written_are_the_v2_layout(migrated, dynamodb):
    items = {(i["pk"]["S"], i["sk"]["S"]): i for i in everything(dynamodb, TABLE_NAME)}
    assert ("once#sns-message-1", "once") not in items  # once-records are not migrated
    assert items[("counter#incident", "counter")]["last_id"] == {"N": str(V1_COUNTER)}
    assert items[("dedup#alarm:cpu-api-1", "dedup")]["incident_id"] == {"N": "4"}
    assert items[("dedup#alarm:disk-db-1", "dedup")]["incident_id"] == {"N": "6"}
    assert items[("incident#3", "incident")]["dedup_successor"] == {"N": "4"}
    assert items[("incident#5", "incident")]["dedup_successor"] == {"N": "6"}
    assert "dedup_successor" not in items[("incident#4", "incident")]
    assert "dedup_successor" not in items[("incident#6", "incident")]
    two = items[("incident#2", "incident")]
    assert "history" not in two
    assert two["last_entry_at"] == {"S": "2026-03-01T10:03:00.000Z"}
    assert two["acknowledged_at"] == {"S": "2026-03-01T10:02:00.000Z"}
    assert two["resolved_at"] == {"S": "2026-03-01T10:03:00.000Z"}
    assert two["source_created"]["S"].startswith("partner#2026-03-01T10:01:00.000Z#")
    entries = sorted(sk for pk, sk in items if pk == "incident#2" and sk != "incident")
    assert entries == ["history#2026-03-01T10:01:00.000Z", "history#2026-03-01T10:02:00.000Z",
                       "history#2026-03-01T10:03:00.000Z", "history#2026-03-01T10:03:00.000Z#001"]
    assert "acknowledged_at" not in items[("incident#1", "incident")]


def test_the_copied_history_is_not_announced_but_a_change_after_the_switch_is(dynamodb, api, monkeypatch):
    from datetime import datetime, timezone

    from chalicelib import notifier, telegram_client
    from chalicelib.store import default_store
    from scripts.local_stream import StreamReader
    from tests.fake_bot_api import FakeBotApi

    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")  # see docs/notifications.md
    stream = StreamReader(dynamodb, boto3.client("dynamodbstreams"), TABLE_NAME)
    make_v1_table(dynamodb)
    assert run_script("--source-table", V1_TABLE, "--target-table", TABLE_NAME)[0] == 0
    with FakeBotApi() as bot:
        sender = telegram_client.BotApi("123:token", bot.url)
        settings = notifier.Settings(chat_id="-100")
        copied = stream.poll()
        assert len(copied) >= sum(len(i["history"]) for i in V1_INCIDENTS)

        notifier.deliver_changes(default_store(), sender, settings, copied, datetime.now(timezone.utc))
        assert bot.texts == []

        api.patch("/incidents/1", {"status": "closed"})
        notifier.deliver_changes(default_store(), sender, settings, stream.poll(), datetime.now(timezone.utc))
        assert bot.texts == ["#1 → closed by api"]


def test_create_target_then_a_rerun_writes_the_same_items_and_a_dry_run_nothing(dynamodb):
    make_v1_table(dynamodb)
    dry, _ = run_script("--source-table", V1_TABLE, "--target-table", "incidents-v2", "--create-target",
                        "--dry-run")
    assert dry == 0
    assert "incidents-v2" not in dynamodb.list_tables()["TableNames"]

    first, operations = run_script("--source-table", V1_TABLE, "--target-table", "incidents-v2",
                                   "--create-target")
    assert first == 0 and "CreateTable" in operations and "Scan" not in operations
    keys = dynamodb.describe_table(TableName="incidents-v2")["Table"]["KeySchema"]
    assert [k["AttributeName"] for k in keys] == ["pk", "sk"]
    before = everything(dynamodb, "incidents-v2")
    assert len(before) == 6 + sum(len(i["history"]) for i in V1_INCIDENTS) + 2 + 1  # + dedups + counter

    again, operations = run_script("--source-table", V1_TABLE, "--target-table", "incidents-v2",
                                   "--create-target")
    assert again == 0 and "CreateTable" not in operations
    assert everything(dynamodb, "incidents-v2") == before


def test_it_refuses_tables_of_the_wrong_layout(dynamodb, capsys):
    make_v1_table(dynamodb)
    assert run_script("--source-table", TABLE_NAME, "--target-table", "x", "--create-target")[0] == 1
    assert "not a v1 table" in capsys.readouterr().err
    assert run_script("--source-table", V1_TABLE, "--target-table", V1_TABLE)[0] == 1
    assert run_script("--source-table", V1_TABLE, "--target-table", "missing")[0] == 1
    assert "--create-target" in capsys.readouterr().err


@pytest.mark.parametrize("ats, expected", [
    (["a", "b", "c"], ["a", "b", "c"]),
    (["a", "b", "b", "b", "c"], ["a", "b", "b#001", "b#002", "c"]),
    (["a", "c", "b", "c", "d"], ["a", "c", "c#001", "c#002", "d"]),  # a clock that went back
])
def test_entry_keys_are_unique_and_sort_in_history_order(ats, expected):
    keys, newest = migration.entry_sort_keys([{"at": at} for at in ats])
    assert keys == [f"history#{k}" for k in expected]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert newest == max(ats)


def test_ten_or_more_entries_in_one_millisecond_still_sort_in_order():
    keys, _ = migration.entry_sort_keys([{"at": "t"}] * 12)
    assert keys == sorted(keys) and len(set(keys)) == 12
