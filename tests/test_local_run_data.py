"""What `make run` keeps is the table's items: a killed run loses at most the last seconds, a
restart announces nothing old, and the old layout (a request recording) is migrated once."""
import json
import os
import signal
import time

from boto3.dynamodb.types import TypeSerializer

from chalicelib.incidents import history_entry, new_incident
from chalicelib.store import _COUNTER_KEY, _incident_pk, _item_from_incident, ENTRY_PREFIX, TABLE_DEFINITION
from local_run import local_service
from test_local_run import KEY, call

OLD_RECORDING = "dynamodb-requests.jsonl"


def test_a_killed_run_loses_at_most_the_last_seconds_and_a_restart_announces_nothing_old(tmp_path):
    kept = tmp_path / "local"
    with local_service({"API_KEYS": KEY}, local_dir=kept) as run:
        first = call(run.base, "POST", "/incidents", {"description": "Самокат #42", "source": "operator"})[2]
        changed = call(run.base, "PATCH", f"/incidents/{first['id']}", {"status": "in_progress", "note": "on it"})[2]
        time.sleep(3)  # one write of the changes (every 2 s) later
        os.killpg(run.process.pid, signal.SIGKILL)  # nothing gets to write a snapshot
        run.process.wait()
    assert not run.left_processes, run.output
    assert "#1 [operator] new: Самокат #42" in run.output  # the notifier did announce it, once

    with local_service({"API_KEYS": KEY}, local_dir=kept) as run:
        assert call(run.base, "GET", f"/incidents/{first['id']}")[2] == changed
        second = call(run.base, "POST", "/incidents", {"description": "POS 7", "source": "partner"})[2]
        assert second["id"] == first["id"] + 1
        time.sleep(3)  # the notifier polls the stream every second
    assert "items loaded" in run.output
    announced = [line for line in run.output.splitlines() if line.startswith("[telegram")]
    assert announced == ["[telegram → -1001234567890] #2 [partner] new: POS 7  [Take] [Resolve]"], run.output


def recorded(operation, body):
    """One line of moto's recorder, as the old `make run` wrote it."""
    return json.dumps({
        "headers": {"Content-Type": "application/x-amz-json-1.0",
                    "X-Amz-Target": f"DynamoDB_20120810.{operation}",
                    "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261201/eu-west-1/dynamodb/"
                                     "aws4_request, SignedHeaders=host, Signature=0"},
        "method": "POST", "url": "http://127.0.0.1:8001/", "body": json.dumps(body),
    }) + "\n"


def old_recording(tmp_path, definition, description, source):
    """A $LOCAL_DIR as the old `make run` left it: its table made with `definition`, and incident #1."""
    kept = tmp_path / "local"
    kept.mkdir()
    table = "incidents-dev"
    at = "2026-12-01T10:00:00.000Z"
    incident = new_incident(1, description, source, None, "api", at)
    incident["history"] = [history_entry(at, "new", None, "api")]
    serialize = TypeSerializer().serialize
    items = [_item_from_incident(incident),
             {"pk": _incident_pk(1), "sk": ENTRY_PREFIX + at, "entry": incident["history"][0]},
             {**_COUNTER_KEY, "last_id": 1}]
    (kept / OLD_RECORDING).write_text(
        recorded("CreateTable", {"TableName": table, **definition})
        + "".join(recorded("PutItem", {"TableName": table, "Item": serialize(item)["M"]}) for item in items),
        encoding="utf-8")
    return kept


def test_data_kept_by_the_old_request_recording_is_migrated_once(tmp_path):
    kept = old_recording(tmp_path, TABLE_DEFINITION, "Самокат #42 не в сети", "monitoring")

    with local_service({"API_KEYS": KEY}, local_dir=kept) as run:
        status, _, got = call(run.base, "GET", "/incidents/1")
        assert status == 200 and got["description"] == "Самокат #42 не в сети"
        assert call(run.base, "POST", "/incidents", {"description": "two", "source": "operator"})[2]["id"] == 2
        time.sleep(3)
    assert "migrated once" in run.output and "[telegram → -1001234567890] #1" not in run.output
    assert not (kept / OLD_RECORDING).exists() and (kept / (OLD_RECORDING + ".migrated")).exists()

    with local_service({"API_KEYS": KEY}, local_dir=kept) as run:
        assert [call(run.base, "GET", f"/incidents/{i}")[0] for i in (1, 2)] == [200, 200]
    assert "migrated" not in run.output


def test_data_kept_before_an_index_was_added_gets_the_index_as_a_deploy_would(tmp_path):
    before = {**TABLE_DEFINITION, "GlobalSecondaryIndexes": [
        index for index in TABLE_DEFINITION["GlobalSecondaryIndexes"] if index["IndexName"] != "by_status_team"],
        "AttributeDefinitions": [
            attribute for attribute in TABLE_DEFINITION["AttributeDefinitions"] if attribute["AttributeName"] != "team_created"]}
    kept = old_recording(tmp_path, before, "Касса #7 не отвечает", "partner")
    team = {"chat_id": -1001234567890, "time_zone": "UTC",
            "rotation": {"members": ["ivan_ops"], "start": "2026-12-01T10:00", "shift": "daily"},
            "escalation_rules": [{"escalation_delay_in_minutes": 15, "targets": ["on_call"]}]}

    with local_service({"API_KEYS": KEY}, local_dir=kept) as run:
        assert call(run.base, "PUT", "/teams/ops", team)[0] == 201
        assert call(run.base, "PATCH", "/incidents/1", {"team": "ops"})[0] == 200
        listed = call(run.base, "GET", "/incidents?team=ops&status=new")[2]["items"]
    assert "gets the index by_status_team" in run.output
    assert [item["id"] for item in listed] == [1]

    with local_service({"API_KEYS": KEY}, local_dir=kept) as run:  # kept with its index now
        listed = call(run.base, "GET", "/incidents?team=ops")[2]["items"]
    assert "gets the index" not in run.output
    assert [item["id"] for item in listed] == [1]
