"""Races: many writers at one instant on one dedup key, one Idempotency-Key, one transition (with
and without If-Match), one SNS message, and a reopen against a new report on the same key.
Exactly one winner each time, and a history that stays consistent. The HTTP races go to the
local run; the SNS delivery is the Lambda handler, called in-process on moto."""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from app import on_alarm_notification
from reliability.reliability_http import LOCAL_KEYS, Http, Reply, consistency_problems, history_in, table_items
from tests.conftest import TABLE_NAME, load_payload

WRITERS = 16
REOPEN_ROUNDS = 6


def at_once(work: Callable[[int], Any], count: int = WRITERS) -> list[Any]:
    """work(n) from `count` threads released together; their results in order."""
    barrier = threading.Barrier(count)

    def run(n: int) -> Any:
        barrier.wait(timeout=60)
        return work(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def statuses(replies: list[Reply]) -> dict[int, int]:
    return dict(sorted(Counter(r.status for r in replies).items()))


def test_one_dedup_key_from_sixteen_writers_makes_one_incident(local_run: Http, figures):
    body = {"description": "race: scooter 9 offline", "source": "monitoring", "dedup_key": "race-dedup"}
    replies = at_once(lambda n: local_run.post("/incidents", body, key=LOCAL_KEYS[n % 2]))
    assert statuses(replies) == {200: WRITERS - 1, 201: 1}
    assert len({r.json["id"] for r in replies}) == 1
    final = local_run.get(f"/incidents/{replies[0].json['id']}").json
    assert final["occurrences"] == WRITERS
    figures(f"dedup key: {WRITERS} writers -> {statuses(replies)}, one incident, occurrences {final['occurrences']}")


def test_one_idempotency_key_from_sixteen_writers_makes_one_incident(local_run: Http, figures):
    body = {"description": "race: idempotent create", "source": "partner"}
    replies = at_once(lambda n: local_run.post("/incidents", body, headers={"Idempotency-Key": "race-once"}))
    assert statuses(replies) == {201: WRITERS}
    assert len({r.json["id"] for r in replies}) == 1
    assert [r.headers.get("idempotent-replayed") for r in replies].count(None) == 1
    stored = [i for i in local_run.items() if i.get("description") == body["description"]]
    assert len(stored) == 1
    figures(f"Idempotency-Key: {WRITERS} writers -> {statuses(replies)}, one applied, "
            f"{WRITERS - 1} replayed, one incident")


def test_one_transition_without_if_match_is_recorded_once(local_run: Http, figures):
    incident = local_run.post("/incidents", {"description": "race: resolve", "source": "operator"}).json
    replies = at_once(lambda n: local_run.patch(
        f"/incidents/{incident['id']}", {"status": "resolved", "note": f"writer {n}"}))
    assert statuses(replies) == {200: WRITERS}  # the others are no-ops: the status it already has
    history = local_run.get(f"/incidents/{incident['id']}").json["history"]
    assert [h["status"] for h in history] == ["new", "resolved"]
    figures(f"transition, no If-Match: {WRITERS} writers -> {statuses(replies)}, one history entry")


def test_one_transition_with_if_match_has_one_winner_and_the_rest_412(local_run: Http, figures):
    created = local_run.post("/incidents", {"description": "race: take", "source": "operator"})
    path = f"/incidents/{created.json['id']}"
    replies = at_once(lambda n: local_run.patch(
        path, {"status": "in_progress", "note": f"writer {n}"}, headers={"If-Match": created.headers["etag"]}))
    assert statuses(replies) == {200: 1, 412: WRITERS - 1}
    current = local_run.get(path)
    assert all(r.headers["etag"] == current.headers["etag"] for r in replies if r.status == 412)
    [winner] = [r for r in replies if r.status == 200]
    assert [(h["status"], h["note"]) for h in current.json["history"]] == \
        [("new", None), ("in_progress", winner.json["history"][-1]["note"])]
    figures(f"transition with If-Match: {WRITERS} writers -> {statuses(replies)}")


def test_a_reopen_racing_a_new_report_on_the_same_key_has_one_winner(local_run: Http, figures):
    outcomes: Counter[str] = Counter()
    for round_ in range(REOPEN_ROUNDS):
        key = f"race-reopen-{round_}"
        first = local_run.post("/incidents", {"description": "race: reopen", "source": "monitoring",
                                              "dedup_key": key}).json
        assert local_run.patch(f"/incidents/{first['id']}", {"status": "resolved"}).status == 200

        def contend(n: int) -> Reply:
            if n == 0:
                time.sleep(round_ * 0.02)  # later rounds give the report a head start
                return local_run.patch(f"/incidents/{first['id']}", {"status": "in_progress", "note": "reopen"})
            return local_run.post("/incidents", {"description": "race: new report", "source": "monitoring",
                                                 "dedup_key": key})

        reopen, report = at_once(contend, 2)
        if reopen.status == 200:  # the reopen won: the report is absorbed by the reopened incident
            assert (report.status, report.json["id"]) == (200, first["id"]), report.body
            outcomes["reopen first (report absorbed)"] += 1
        else:
            assert reopen.status == 409 and report.status == 201, (reopen.body, report.body)
            assert f"#{report.json['id']}" in reopen.json["Message"]
            outcomes["report first (reopen 409)"] += 1
        open_with_key = [i for i in local_run.items()
                         if i.get("dedup_key") == key and i.get("status") in ("new", "in_progress")]
        assert len(open_with_key) == 1, open_with_key
    assert consistency_problems(local_run.items()) == []
    figures(f"reopen vs new report, {REOPEN_ROUNDS} rounds: {dict(outcomes)}; one open owner of the key every time")


def test_one_sns_message_delivered_eight_times_at_once_counts_once(dynamodb, figures):
    event = load_payload("sns_alarm_record.json")
    errors = []

    def deliver(n: int) -> None:
        try:
            on_alarm_notification(event, None)
        except Exception as error:  # collected: a delivery may fail only as a retryable store error
            errors.append(error)

    at_once(deliver, 8)
    items = table_items(dynamodb, TABLE_NAME)
    incidents = [i for i in items if i["sk"] == "incident"]
    assert errors == [] and len(incidents) == 1
    assert incidents[0]["occurrences"] == 1
    assert [e["status"] for e in history_in(items)[int(incidents[0]["id"])]] == ["new"]
    assert len([i for i in items if i["pk"].startswith("once#sns#")]) == 1
    assert consistency_problems(items) == []
    figures("one SNS message delivered 8 times at once: 1 incident, occurrences 1, 1 history entry")
