"""POST /alertmanager: Alertmanager webhook (version 4) and Grafana's webhook contact point,
driven with the documentation's bodies: order by startsAt/endsAt, repeats, races, retries."""
from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from chalicelib.incidents import Unavailable
from chalicelib.store import Store
from conftest import API_KEY, drain_intake

PAYLOADS = Path(__file__).parent / "payloads" / "integrations"
BEARER = {"Authorization": f"Bearer {API_KEY}"}
PROBE_1 = "alertmanager:1a30ba71cca2921f"
PROBE_2 = "alertmanager:8d3e1f7b2c9a4e60"


def body(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


def one_alert(name: str, index: int = 0, **changes: Any) -> dict[str, Any]:
    """The batch reduced to its alert `index`, with some fields of that alert changed."""
    batch = body(name)
    batch["alerts"] = [{**batch["alerts"][index], **changes}]
    return batch


class Delivered:
    """The request's answer, and the outcome of each alert once the consumer applied them."""

    def __init__(self, response: Any, outcomes: list[str]) -> None:
        self.response, self.outcomes = response, outcomes
        self.status_code, self.json_body, self.headers = response.status_code, response.json_body, response.headers
        self.body = response.body


def deliver(api: Any, batch: Any, headers: dict[str, str] | None = None) -> Delivered:
    """POST /alertmanager, then what the intake consumer does a moment later."""
    response = api.post("/alertmanager", batch, key=None, headers=headers or BEARER)
    return Delivered(response, drain_intake() if response.status_code == 200 else [])


def incidents(api: Any) -> dict[str, dict[str, Any]]:
    """Every incident by dedup_key (the test fails if two share one), as GET /incidents/{id} shows it."""
    found: dict[str, dict[str, Any]] = {}
    for item in api.get("/incidents").json_body["items"]:
        assert item["dedup_key"] not in found, f"two incidents for {item['dedup_key']}"
        found[item["dedup_key"]] = api.get(f"/incidents/{item['id']}").json_body
    return found


def test_a_firing_batch_opens_one_incident_per_alert_with_summary_description_and_severity(api):
    response = deliver(api, body("alertmanager_firing"))

    assert response.status_code == 200
    assert response.json_body == {"status": "success", "accepted": 2}
    assert response.outcomes == ["applied", "applied"]
    stored = incidents(api)
    assert set(stored) == {PROBE_1, PROBE_2}
    first = stored[PROBE_1]
    annotations = body("alertmanager_firing")["alerts"][0]["annotations"]
    assert first["description"] == f"{annotations['summary']}\n{annotations['description']}"
    assert (first["status"], first["source"], first["severity"]) == ("new", "monitoring", "critical")
    assert stored[PROBE_2]["severity"] == "warning"
    assert first["history"][0]["by"] == "alertmanager:incidents"


def test_repeats_of_the_same_firing_alerts_change_nothing(api):
    deliver(api, body("alertmanager_firing"))
    before = incidents(api)

    # repeat_interval: Alertmanager sends the still-firing group again, the same startsAt.
    again = deliver(api, body("alertmanager_firing"))
    assert again.status_code == 200
    assert again.outcomes == ["duplicate", "duplicate"]
    assert incidents(api) == before
    assert before[PROBE_1]["occurrences"] == 1


def test_a_new_starts_at_while_open_is_one_more_occurrence(api):
    deliver(api, body("alertmanager_firing"))
    deliver(api, one_alert("alertmanager_firing", startsAt="2026-11-23T13:20:00Z"))

    stored = incidents(api)
    assert stored[PROBE_1]["occurrences"] == 2
    assert stored[PROBE_2]["occurrences"] == 1


def test_a_resolved_batch_resolves_each_alerts_incident_with_a_note(api):
    deliver(api, body("alertmanager_firing"))
    response = deliver(api, body("alertmanager_resolved"))

    assert response.outcomes == ["applied", "applied"]
    for incident in incidents(api).values():
        last = incident["history"][-1]
        assert (incident["status"], last["status"], last["by"]) == ("resolved", "resolved", "alertmanager:incidents")
    assert incidents(api)[PROBE_1]["history"][-1]["note"] == "Alert resolved at 2026-11-23T13:31:45.828Z"


def test_a_resolved_alert_delivered_before_its_firing_leaves_nothing_open(api):
    deliver(api, body("alertmanager_resolved"))
    late = deliver(api, body("alertmanager_firing"))

    assert late.outcomes == ["stale", "stale"]
    assert incidents(api) == {}


def test_a_late_resolve_from_before_the_alert_fired_again_leaves_the_new_incident_open(api):
    deliver(api, body("alertmanager_firing"))
    deliver(api, body("alertmanager_resolved"))
    deliver(api, one_alert("alertmanager_firing", startsAt="2026-11-23T14:00:00Z"))
    deliver(api, one_alert("alertmanager_resolved"))  # the 13:31 resolve again, late

    ids = api.get("/incidents?status=new").json_body["items"]
    assert [(i["dedup_key"], i["status"]) for i in ids] == [(PROBE_1, "new")]


def test_after_the_resolve_a_new_firing_opens_a_new_incident(api):
    deliver(api, one_alert("alertmanager_firing"))
    deliver(api, one_alert("alertmanager_resolved"))
    deliver(api, one_alert("alertmanager_firing", startsAt="2026-11-23T14:00:00Z"))

    items = api.get("/incidents").json_body["items"]
    assert [i["status"] for i in items] == ["new", "resolved"]


def test_a_resolved_alert_without_ends_at_resolves_the_firing_it_follows(api):
    deliver(api, one_alert("alertmanager_firing"))
    resolved = one_alert("alertmanager_resolved")
    del resolved["alerts"][0]["endsAt"]
    deliver(api, resolved)
    assert incidents(api)[PROBE_1]["status"] == "resolved"


def test_an_operator_resolving_first_is_not_undone_by_a_repeat_of_the_firing(api):
    deliver(api, body("alertmanager_firing"))
    incident_id = incidents(api)[PROBE_1]["id"]
    api.patch(f"/incidents/{incident_id}", {"status": "resolved"})
    deliver(api, body("alertmanager_firing"))
    assert incidents(api)[PROBE_1]["status"] == "resolved"


def test_grafanas_webhook_body_opens_its_alerts_too(api):
    response = deliver(api, body("grafana_webhook"))

    assert response.status_code == 200
    stored = incidents(api)
    assert set(stored) == {"alertmanager:c6eadffa33fcdf37", "alertmanager:bc97ff14869b13e3"}
    memory = stored["alertmanager:c6eadffa33fcdf37"]
    assert memory["description"] == "This alert was triggered for zone us-1\nThe system has high memory usage"
    assert memory["severity"] is None  # no severity label
    assert memory["history"][0]["by"] == "alertmanager:My Super Webhook"


def test_an_alert_without_fingerprint_is_keyed_by_its_sorted_labels(api):
    batch = one_alert("alertmanager_firing")
    del batch["alerts"][0]["fingerprint"]
    deliver(api, batch)
    reordered = copy.deepcopy(batch)
    reordered["alerts"][0]["labels"] = dict(reversed(list(batch["alerts"][0]["labels"].items())))
    reordered["alerts"][0]["status"] = "resolved"
    reordered["alerts"][0]["endsAt"] = "2026-11-23T13:30:00Z"
    deliver(api, reordered)

    [only] = incidents(api).values()
    assert only["status"] == "resolved" and only["dedup_key"].startswith("alertmanager:labels-")


@pytest.mark.parametrize("label, severity", [
    ("critical", "critical"), ("page", "critical"), ("error", "error"), ("WARNING", "warning"),
    ("info", "info"), ("none", "info"), ("sev-x", None),
])
def test_the_severity_label_is_mapped_onto_the_four_unknown_is_null(api, label, severity):
    batch = one_alert("alertmanager_firing")
    batch["alerts"][0]["labels"]["severity"] = label
    deliver(api, batch)
    assert incidents(api)[PROBE_1]["severity"] == severity


def test_a_new_occurrence_with_a_higher_severity_raises_it(api):
    deliver(api, one_alert("alertmanager_firing", 1))  # warning
    raised = one_alert("alertmanager_firing", 1, startsAt="2026-11-23T14:00:00Z")
    raised["alerts"][0]["labels"] = {**raised["alerts"][0]["labels"], "severity": "critical"}
    deliver(api, raised)
    assert incidents(api)[PROBE_2]["severity"] == "critical"


# authentication


def test_x_api_key_is_accepted_as_well(api):
    response = deliver(api, body("alertmanager_firing"), headers={"x-api-key": API_KEY})
    assert response.status_code == 200


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY},
    {"Authorization": f"Basic {API_KEY}"}, {"x-api-key": "wrong"},
])
def test_a_missing_or_wrong_key_is_401_and_stores_nothing(api, headers):
    response = api.post("/alertmanager", body("alertmanager_firing"), key=None, headers=headers)
    assert response.status_code == 401
    assert incidents(api) == {}


# malformed bodies


@pytest.mark.parametrize("breaks", [
    lambda b: b.pop("alerts"),
    lambda b: b.update(alerts={"status": "firing"}),
    lambda b: b["alerts"].append("not an alert"),
    lambda b: b["alerts"][1].update(status="pending"),
    lambda b: b["alerts"][1].update(startsAt="yesterday"),
    lambda b: b["alerts"][1].update(startsAt="2026-13-40T10:00:00Z"),
    lambda b: b["alerts"][1].pop("labels"),
    lambda b: b["alerts"][1]["labels"].update(value=3),
    lambda b: b.update(receiver=7),
], ids=["no alerts", "alerts not a list", "alert not an object", "unknown status",
        "startsAt not a time", "startsAt impossible", "no labels", "label not text", "receiver not text"])
def test_a_body_that_is_not_a_batch_is_400_and_stores_nothing_of_it(api, breaks):
    batch = body("alertmanager_firing")
    breaks(batch)
    response = deliver(api, batch)
    assert response.status_code == 400, response.body
    assert incidents(api) == {}


@pytest.mark.parametrize("breaks, where", [
    (lambda b: b.update(receiver="team-\ud800"), "`receiver`"),
    (lambda b: b["alerts"][1].update(fingerprint="\udc00abc"), "alerts[1].fingerprint"),
    (lambda b: b["alerts"][1]["labels"].update(alertname="Probe\ud83d"), "alerts[1].labels"),
    (lambda b: b["alerts"][1]["labels"].update({"\udfff": "x"}), "alerts[1].labels"),
    (lambda b: b["alerts"][1]["annotations"].update(summary="\ud800 down"), "alerts[1].annotations"),
], ids=["receiver", "fingerprint", "label value", "label name", "annotation"])
def test_an_unpaired_surrogate_in_any_text_of_a_batch_is_a_400_naming_the_field(api, breaks, where):
    batch = body("alertmanager_firing")
    breaks(batch)
    response = deliver(api, batch)
    assert response.status_code == 400
    assert response.json_body["Message"] == f"{where} contains an unpaired surrogate; send valid Unicode text"
    assert incidents(api) == {}


def test_a_surrogate_pair_written_as_two_escapes_is_one_character_and_welcome(api):
    batch = one_alert("alertmanager_firing", annotations={"summary": "\ud83d\udd25 on fire"})
    assert deliver(api, batch).status_code == 200
    [incident] = incidents(api).values()
    assert incident["description"] == "\U0001f525 on fire"


def test_the_receiver_is_stored_on_one_line_in_who_did_it(api):
    batch = one_alert("alertmanager_firing")
    batch["receiver"] = "team\n#7 resolved: alarm recovered"
    assert deliver(api, batch).status_code == 200
    [incident] = incidents(api).values()
    assert incident["history"][0]["by"] == "alertmanager:team #7 resolved: alarm recovered"


def many_alerts(count, description_length):
    """The sample batch's alert `count` times, each its own fingerprint, with a long description."""
    batch = body("alertmanager_firing")
    template = batch["alerts"][0]
    batch["alerts"] = [{**template, "fingerprint": f"{n:016x}",
                        "annotations": {**template["annotations"], "description": "x" * description_length}}
                       for n in range(count)]
    return batch


def test_an_empty_batch_is_fine(api):
    assert deliver(api, {"alerts": []}).json_body == {"status": "success", "accepted": 0}


def test_a_batch_of_100_alerts_over_64_kib_is_accepted(api):
    batch = many_alerts(100, description_length=700)
    assert len(json.dumps(batch)) > 64 * 1024
    response = deliver(api, batch)
    assert response.status_code == 200
    assert response.outcomes == ["applied"] * 100


# races, failures and retries


def test_two_identical_batches_applied_by_two_consumers_at_once_make_one_incident_per_alert(api):
    for _ in range(2):
        assert api.post("/alertmanager", body("alertmanager_firing"), key=None, headers=BEARER).status_code == 200
    barrier = threading.Barrier(2)
    applied: list[list[str]] = []

    def consume() -> None:
        barrier.wait()
        applied.append(drain_intake())

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(sum(applied, [])) == ["applied", "applied", "duplicate", "duplicate"]
    stored = incidents(api)
    assert set(stored) == {PROBE_1, PROBE_2}
    assert all(i["occurrences"] == 1 and len(i["history"]) == 1 for i in stored.values())


def failing_on_the_second_call(method: str) -> Any:
    """Store.<method> that raises Unavailable on its second call (the second alert of a batch)."""
    original = getattr(Store, method)
    calls = []

    def fails_on_the_second(self: Store, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise Unavailable("throttled past the retries")
        return original(self, *args, **kwargs)

    return fails_on_the_second


def test_a_store_failure_mid_batch_is_retried_by_the_queue_and_stores_each_alert_exactly_once(api, monkeypatch):
    batch = body("alertmanager_firing")
    accepted = api.post("/alertmanager", batch, key=None, headers=BEARER)
    assert accepted.status_code == 200  # accepted: the failure is the consumer's
    with monkeypatch.context() as patch:
        patch.setattr(Store, "insert_incident", failing_on_the_second_call("insert_incident"))
        with pytest.raises(Unavailable):
            drain_intake()
    assert set(incidents(api)) == {PROBE_1}

    retried = drain_intake()  # SQS delivers the message again

    assert retried == ["duplicate", "applied"]
    stored = incidents(api)
    assert set(stored) == {PROBE_1, PROBE_2}
    assert all(i["occurrences"] == 1 for i in stored.values())


def test_a_resolve_batch_retried_after_a_failure_resolves_each_once(api, monkeypatch):
    deliver(api, body("alertmanager_firing"))
    assert api.post("/alertmanager", body("alertmanager_resolved"), key=None, headers=BEARER).status_code == 200
    with monkeypatch.context() as patch:
        patch.setattr(Store, "set_status", failing_on_the_second_call("set_status"))
        with pytest.raises(Unavailable):
            drain_intake()
    assert drain_intake() == ["duplicate", "applied"]

    for incident in incidents(api).values():
        assert [h["status"] for h in incident["history"]] == ["new", "resolved"]


def test_a_hand_off_that_fails_is_503_with_retry_after_and_nothing_is_queued(api, monkeypatch):
    from chalicelib.intake import Intake

    def unreachable(self: Any, message: Any) -> None:
        raise Unavailable("the hand-off failed: SQS did not answer")

    with monkeypatch.context() as patch:
        patch.setattr(Intake, "hand_off", unreachable)
        failed = api.post("/alertmanager", body("alertmanager_firing"), key=None, headers=BEARER)
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "1"
    assert drain_intake() == [] and incidents(api) == {}


def test_a_batch_too_big_for_one_message_goes_through_s3_and_is_applied_whole(api):
    batch = many_alerts(300, description_length=900)
    assert len(json.dumps(batch)) > 256 * 1024
    response = deliver(api, batch)
    assert response.status_code == 200 and response.json_body["accepted"] == 300
    assert response.outcomes == ["applied"] * 300
    assert len(api.get("/incidents?limit=100").json_body["items"]) == 100


def test_the_consumer_reads_the_dedup_records_of_a_batch_together_not_one_by_one(api, monkeypatch):
    batch = body("alertmanager_firing")
    template = batch["alerts"][0]
    batch["alerts"] = [{**template, "fingerprint": f"{n:016x}"} for n in range(60)]
    deliver(api, batch)
    calls: list[str] = []
    for method in ("dedup_record", "once_record", "records"):
        original = getattr(Store, method)

        def counted(self: Store, *args: Any, _original: Any = original, _name: str = method, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Store, method, counted)

    assert deliver(api, batch).outcomes == ["duplicate"] * 60
    assert calls == ["records"]


def test_a_repeat_after_its_once_record_expired_is_still_stale_by_its_time(api, store, monkeypatch):
    deliver(api, body("alertmanager_firing"))
    # 24 h later: TTL deleted the once-records
    monkeypatch.setattr(Store, "once_record", lambda self, key: None)
    records = Store.records
    monkeypatch.setattr(Store, "records", lambda self, dedup, once: (
        records(self, dedup, [])[0], dict.fromkeys(once)))
    again = deliver(api, body("alertmanager_firing"))
    assert again.outcomes == ["stale", "stale"]
    assert all(i["occurrences"] == 1 for i in incidents(api).values())


def test_one_batch_firing_then_resolving_the_same_alert_ends_resolved_read_afresh_after_the_open(api):
    firing, resolved = body("alertmanager_firing"), body("alertmanager_resolved")
    batch = {**firing, "alerts": [firing["alerts"][0], resolved["alerts"][0]]}
    assert deliver(api, batch).outcomes == ["applied", "applied"]
    incident = incidents(api)[PROBE_1]
    assert [h["status"] for h in incident["history"]] == ["new", "resolved"]
