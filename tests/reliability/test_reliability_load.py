"""Load: 16 concurrent clients send a fixed mix of requests to the local run; afterwards every
acknowledged create is stored exactly once, every acknowledged change is in its history in order,
ids are unique, and every list walk sees each matching incident once."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import product

from app import app as chalice_app
from chalicelib.incidents import TRANSITIONS, Source, Status
from reliability.reliability_http import LOCAL_KEYS, Http, Tally, consistency_problems, history_in, incidents_in

CLIENTS = 16
OPERATIONS_PER_CLIENT = 20
DEADLINE_SECONDS = 240.0  # the whole load phase; a client stops where it is when it passes
SHARED_DEDUP_KEYS = ("load-scooter-1", "load-scooter-2", "load-pos-7")
WALK_LIMIT = 7
NOTES_ROUTE = "/incidents/{incident_id}/notes" in chalice_app.routes  # when the contract's notes exist


@dataclass
class Change:
    incident_id: int
    note: str
    sent: float
    received: float


@dataclass
class Client:
    number: int
    http: Http
    deadline: float
    rng: random.Random = field(init=False)
    tally: Tally = field(default_factory=Tally)
    created: dict[str, int] = field(default_factory=dict)  # description -> id, for 201s
    known: list[int] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    shared: set[int] = field(default_factory=set)  # incidents other clients may change too
    surprises: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(1000 + self.number)

    @property
    def key(self) -> str:
        return LOCAL_KEYS[self.number % 2]

    def run(self) -> None:
        for step in range(OPERATIONS_PER_CLIENT):
            if time.monotonic() > self.deadline:
                self.surprises.append(f"client {self.number} stopped at the deadline, step {step}")
                return
            roll = self.rng.random()
            if roll < 0.25 or not self.known:
                self.create(step)
            elif roll < 0.40:
                self.create_shared(step)
            elif roll < 0.70:
                self.change(step)
            elif roll < 0.75 and NOTES_ROUTE:
                self.add_note(step)
            elif roll < 0.88:
                self.expect(self.http.get(f"/incidents/{self.rng.choice(self.known)}", key=self.key), 200)
            else:
                status = self.rng.choice([None, *Status])
                source = self.rng.choice([None, *Source])
                query = "&".join(f"{k}={v}" for k, v in (("status", status), ("source", source)) if v)
                self.expect(self.http.get(f"/incidents?limit=10&{query}", key=self.key), 200)

    def expect(self, reply, *statuses: int):
        self.tally.add(reply)
        if reply.status not in statuses:
            self.surprises.append(f"{reply.status} (expected {statuses}): {reply.body[:200]!r}")
        return reply

    def create(self, step: int) -> None:
        description = f"load client {self.number} step {step}"
        body = {"description": description, "source": self.rng.choice(list(Source)).value}
        if self.rng.random() < 0.5:
            # Clients 2k and 2k+1 use the same Idempotency-Keys under different API keys: scoped.
            headers = {"Idempotency-Key": f"load-{self.number // 2}-{step}"}
            first = self.expect(self.http.post("/incidents", body, headers=headers, key=self.key), 201)
            again = self.expect(self.http.post("/incidents", body, headers=headers, key=self.key), 201)
            if again.headers.get("idempotent-replayed") != "true" or again.json != first.json:
                self.surprises.append(f"idempotent repeat not replayed: {again.body[:200]!r}")
        else:
            first = self.expect(self.http.post("/incidents", body, key=self.key), 201)
        if first.status == 201:
            self.created[description] = first.json["id"]
            self.known.append(first.json["id"])

    def create_shared(self, step: int) -> None:
        body = {"description": f"shared report {self.number}/{step}", "source": "monitoring",
                "dedup_key": self.rng.choice(SHARED_DEDUP_KEYS)}
        reply = self.expect(self.http.post("/incidents", body, key=self.key), 200, 201)
        if reply.status in (200, 201):
            if reply.status == 201:
                self.created[body["description"]] = reply.json["id"]
            self.known.append(reply.json["id"])
            self.shared.add(reply.json["id"])

    def change(self, step: int) -> None:
        incident_id = self.rng.choice(self.known)
        current = self.expect(self.http.get(f"/incidents/{incident_id}", key=self.key), 200)
        if current.status != 200:
            return
        targets = TRANSITIONS[Status(current.json["status"])]
        if not targets:
            return
        target = self.rng.choice(targets)
        note = f"change by {self.number} at step {step}"
        # Without If-Match only on the client's own incidents: then a 200 is always a change it
        # made (a racing client could otherwise have made the same one, and ours be a no-op).
        use_if_match = incident_id in self.shared or self.rng.random() < 0.5
        headers = {"If-Match": current.headers["etag"]} if use_if_match else {}
        sent = time.monotonic()
        reply = self.expect(self.http.patch(f"/incidents/{incident_id}", {"status": target, "note": note},
                                            headers=headers, key=self.key), 200, 409, 412)
        if reply.status == 200:
            self.changes.append(Change(incident_id, note, sent, time.monotonic()))

    def add_note(self, step: int) -> None:
        incident_id = self.rng.choice(self.known)
        note = f"note by {self.number} at step {step}"
        sent = time.monotonic()
        reply = self.expect(self.http.post(f"/incidents/{incident_id}/notes", {"note": note}, key=self.key), 201)
        if reply.status == 201:
            self.changes.append(Change(incident_id, note, sent, time.monotonic()))


def walk(http: Http, tally: Tally, status: str | None, source: str | None) -> list[int]:
    """Every page of one filter, following next_cursor (bounded: at most 1,000 pages)."""
    query = "&".join(f"{k}={v}" for k, v in (("status", status), ("source", source)) if v)
    seen, cursor = [], None
    for _ in range(1000):
        path = f"/incidents?limit={WALK_LIMIT}&{query}" + (f"&cursor={cursor}" if cursor else "")
        page = tally.add(http.get(path))
        assert page.status == 200, page.body
        seen += [item["id"] for item in page.json["items"]]
        cursor = page.json["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError(f"walk {query} did not end")


def test_sixteen_clients_of_mixed_requests_lose_nothing_and_duplicate_nothing(local_run, figures):
    deadline = time.monotonic() + DEADLINE_SECONDS
    clients = [Client(n, local_run, deadline) for n in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)

    def run(client: Client) -> None:
        start.wait()
        client.run()

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(run, clients))
    elapsed = time.monotonic() - started
    load = Tally()
    for client in clients:
        load.merge(client.tally)
    surprises = [s for client in clients for s in client.surprises]

    items = local_run.items()
    incidents, history = incidents_in(items), history_in(items)
    assert consistency_problems(items) == []
    # Every acknowledged create is stored exactly once.
    by_description: dict[str, list[int]] = {}
    for incident_id, incident in incidents.items():
        by_description.setdefault(incident["description"], []).append(incident_id)
    created = {d: i for client in clients for d, i in client.created.items()}
    for description, incident_id in created.items():
        assert by_description.get(description) == [incident_id], description
    assert len(set(created.values())) == len(created), "one id acknowledged for two creates"
    # Every acknowledged change is in the history, once, in the order it was acknowledged.
    changes = [change for client in clients for change in client.changes]
    position = {}
    for change in changes:
        notes = [entry.get("note") for entry in history[change.incident_id]]
        assert notes.count(change.note) == 1, (change, notes)
        position[change.note] = notes.index(change.note)
    for a, b in product(changes, changes):
        if a.incident_id == b.incident_id and a.received < b.sent:
            assert position[a.note] < position[b.note], (a, b)
    # Ids are unique, and every list walk sees each matching incident once, newest first.
    walks = Tally()
    for status, source in product([None, *Status], [None, *Source]):
        seen = walk(local_run, walks, status, source)
        expected = sorted(
            (i for i, incident in incidents.items()
             if status in (None, incident["status"]) and source in (None, incident["source"])),
            key=lambda i: (incidents[i]["created_at"], i), reverse=True)
        assert seen == expected, (status, source)

    figures(f"{CLIENTS} clients x {OPERATIONS_PER_CLIENT} operations in {elapsed:.1f} s: "
            f"{sum(load.statuses.values())} requests, {sum(load.statuses.values()) / elapsed:.0f} requests/s")
    figures(f"answers by status: {dict(sorted(load.statuses.items()))}; latency {load.latency()}")
    figures(f"afterwards: {len(incidents)} incidents, {len(created)} acknowledged creates each stored once, "
            f"{len(changes)} acknowledged changes each in history once and in order"
            + ("" if NOTES_ROUTE else " (no notes route on this build: notes not sent)"))
    figures(f"{len(list(product([None, *Status], [None, *Source])))} list walks (limit {WALK_LIMIT}): "
            f"{sum(walks.statuses.values())} pages, each matching incident seen once; latency {walks.latency()}")
    assert not [s for s in surprises if not s.startswith(("409", "412"))], surprises
    assert not any(status >= 500 for status in load.statuses), load.statuses
