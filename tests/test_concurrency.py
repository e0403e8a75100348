"""Racing writers: one dedup key, one Idempotency-Key, one transition, one id counter.

Each thread gets its own boto3 resource, as separate Lambda containers would; the
`atomic_moto` fixture (conftest) makes moto apply each call atomically, as DynamoDB does.
"""
from concurrent.futures import ThreadPoolExecutor
import threading

import boto3

from chalicelib import services
from chalicelib.incidents import TRANSITIONS, Status, TransitionNotAllowed
from chalicelib.store import Store
from tests.conftest import TABLE_NAME

THREADS = 8


def race(work):
    """Run work(store, n) in THREADS threads released together; return their results."""
    barrier = threading.Barrier(THREADS)

    def run(n):
        own_store = Store(boto3.session.Session().client("dynamodb"), TABLE_NAME)
        barrier.wait()
        return work(own_store, n)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


def every_incident(store):
    return store.newest(statuses=None, source=None, before_key=None, count=1000)


def test_racing_creates_with_one_dedup_key_make_exactly_one_incident(store):
    results = race(lambda s, n: services.open_incident(
        s, description=f"scooter 42 offline ({n})", source="monitoring", by="api", dedup_key="scooter-42"))
    incidents = every_incident(store)
    assert len(incidents) == 1
    assert {r.incident["id"] for r in results} == {incidents[0]["id"]}
    assert sorted(r.status_code for r in results) == [200] * (THREADS - 1) + [201]
    assert incidents[0]["occurrences"] == THREADS


def test_racing_repeats_of_one_idempotency_key_make_exactly_one_incident(store):
    once = services.OnceKey("api#same-request", "fingerprint-of-the-body")
    results = race(lambda s, n: services.open_incident(
        s, description="POS 7 not answering", source="partner", by="api", once=once))
    assert len(every_incident(store)) == 1
    assert len({r.incident["id"] for r in results}) == 1
    assert [r.replayed for r in results].count(False) == 1
    assert all(r.status_code == 201 for r in results)


def test_racing_plain_creates_get_distinct_consecutive_ids(store):
    results = race(lambda s, n: services.open_incident(s, description=f"r{n}", source="operator", by="api"))
    assert sorted(r.incident["id"] for r in results) == list(range(1, THREADS + 1))


def test_racing_identical_transitions_record_one_change(store):
    incident = services.open_incident(store, description="x", source="operator", by="api").incident
    results = race(lambda s, n: services.change_status(s, incident["id"], "resolved", by="api", note=f"fix {n}"))
    final = store.get_incident(incident["id"])
    assert [h["status"] for h in final["history"]] == ["new", "resolved"]
    assert all(r["status"] == "resolved" for r in results)


def test_racing_conflicting_transitions_leave_a_consistent_history(store):
    incident = services.open_incident(store, description="x", source="operator", by="api").incident
    targets = ["closed", "in_progress", "resolved", "in_progress"] * (THREADS // 4)

    def attempt(s, n):
        try:
            return services.change_status(s, incident["id"], targets[n], by="api")["status"]
        except TransitionNotAllowed:
            return "refused"

    race(attempt)
    history = store.get_incident(incident["id"])["history"]
    for before, after in zip(history, history[1:]):
        assert Status(after["status"]) in TRANSITIONS[Status(before["status"])], history
    assert store.get_incident(incident["id"])["status"] == history[-1]["status"]
    assert store.get_incident(incident["id"])["version"] == len(history)
