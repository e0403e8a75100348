"""Escalation at scale (issue 23): the DynamoDB cost of one `escalate` run with 50 incidents due,
whatever the table holds, and what an alarm storm of 500 incidents in one minute for one team
sends to the team's chat and to its person on call, minute by minute.

The table is seeded straight through a batch writer, as bench/notify_counts.py does; calls are
counted with botocore's `after-call` event (bench/dynamo_counts.py's CallRecorder).

    from oncall_counts import measure_run, storm
    measure_run(10_000) -> Cost(calls=…, items_read=…)
    storm() -> Storm(...)
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from benchenv import TABLE_NAME, use_fake_aws

use_fake_aws()

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from dynamo_counts import CallRecorder, new_client_session, new_store  # noqa: E402
from localaws.shim import fast_moto  # noqa: E402
from moto import mock_aws  # noqa: E402
from notify_counts import Cost, counting  # noqa: E402

DUE = 50
STORM = 500
TEAM_CHAT = -1009876543210
ON_CALL = "ivan_ops"
TEAM = {
    "chat_id": TEAM_CHAT, "thread_id": None, "time_zone": "UTC",
    "rotation": {"members": [ON_CALL], "start": "2026-01-01T00:00", "shift": "weekly"},
    "escalation_rules": [{"escalation_delay_in_minutes": 5, "targets": ["on_call"]},
                         {"escalation_delay_in_minutes": 5, "targets": ["on_call", "@maria_sre"]}],
    "num_loops": 1,
}


@dataclass
class Recorded:
    """A sender that keeps (chat, minute) of every message instead of sending it."""

    minute: int = 0
    sent: Counter = field(default_factory=Counter)

    def send_message(self, chat_id: str, text: str, thread_id: int | None = None,
                     buttons: dict[str, Any] | None = None) -> None:
        self.sent[(str(chat_id), self.minute)] += 1


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed(table: Any, size: int, now: datetime) -> None:
    """`size` incidents: all closed but the DUE newest, which are `new` incidents of team `ops`
    whose escalation (rule 1, loop 0) is due a minute ago."""
    from chalicelib.incidents import history_entry, new_incident
    from chalicelib.store import ENTRY_PREFIX, _item_from_incident

    first = now - timedelta(hours=1) - timedelta(minutes=size)
    with table.batch_writer() as batch:
        for incident_id in range(1, size + 1):
            created = first + timedelta(minutes=incident_id)
            incident = new_incident(incident_id, f"report {incident_id}", "monitoring", None, "api",
                                    _iso(created))
            if incident_id > size - DUE:
                incident.update(team="ops", assignee=ON_CALL, escalation={
                    "rule": 1, "loop": 0, "next_at": _iso(now - timedelta(minutes=1))})
            else:
                closed = history_entry(_iso(created + timedelta(seconds=30)), "closed", None, "api")
                incident["history"].append(closed)
                incident.update(status="closed", updated_at=closed["at"], history_count=2, version=2)
            batch.put_item(Item=_item_from_incident(incident))
            for entry in incident["history"]:
                batch.put_item(Item={"pk": f"incident#{incident_id}", "sk": ENTRY_PREFIX + entry["at"],
                                     "entry": entry})
        batch.put_item(Item={"pk": "counter#incident", "sk": "counter", "last_id": size})


def measure_run(size: int) -> Cost:
    """One escalation run with DUE incidents due among `size` stored."""
    from chalicelib.oncall import escalation, people, teams
    from chalicelib.store import create_table, default_store

    with mock_aws(), fast_moto():
        recorder = CallRecorder()
        new_client_session(recorder)
        create_table(boto3.client("dynamodb"), TABLE_NAME)
        store = new_store(recorder)
        now = datetime.now(timezone.utc)
        teams.put_team(store, "ops", TEAM, now)
        people.link(store, ON_CALL, 111, 111, now)
        writer = boto3.resource("dynamodb", config=Config(parameter_validation=False))
        seed(writer.Table(TABLE_NAME), size, now)
        with counting(recorder) as cost:
            run = escalation.escalate(store, Recorded(), now, people.direct_chat)
        assert len(run.stepped) == DUE, run
        default_store.cache_clear()
        return cost


@dataclass
class Storm:
    team_chat_per_minute: int  # the most messages in the team's chat in any one minute
    direct_per_minute: int  # the most direct messages to one person in any one minute
    minutes: int  # until every opening notice was out
    team_chat_total: int
    direct_total: int
    escalated: int  # incidents whose rule 2 was paged within the storm's window


def storm(minutes: int = 15) -> Storm:
    """STORM incidents opened in one minute for team `ops`; then, minute by minute: the stream
    handler gets the pending batches of 100 (a batch refused for a spent budget is retried the next
    minute, as Lambda retries it), and `escalate` runs."""
    from chalicelib import notifier, services
    from chalicelib.oncall import escalation, people, teams
    from chalicelib.store import create_table, default_store
    from scripts.local_stream import StreamReader

    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with mock_aws(), fast_moto():
        client = boto3.client("dynamodb")
        create_table(client, TABLE_NAME)
        default_store.cache_clear()
        store = default_store()
        start = datetime.now(timezone.utc)
        teams.put_team(store, "ops", TEAM, start)
        people.link(store, ON_CALL, 111, 111, start)
        people.link(store, "maria_sre", 222, 222, start)
        reader = StreamReader(client, boto3.client("dynamodbstreams"), TABLE_NAME)
        reader.poll()  # the team and people items are no notice
        for n in range(STORM):
            services.open_incident(store, description=f"scooter {n} offline", source="monitoring",
                                   by="alertmanager:ops", team="ops")
        records = reader.poll()
        pending = [records[i:i + 100] for i in range(0, len(records), 100)]
        sender = Recorded()
        settings = notifier.Settings(chat_id="-100")
        done_at = None
        escalated: set[int] = set()
        for minute in range(minutes):
            sender.minute = minute
            now = start + timedelta(minutes=minute, seconds=1)
            still = []
            for batch in pending:
                try:
                    notifier.deliver_changes(store, sender, settings, batch, now)
                except (notifier.OverBudget, notifier.NotYetSent):
                    still.append(batch)
            pending = still
            if not pending and done_at is None:
                done_at = minute + 1
            escalated |= set(escalation.escalate(store, sender, now, people.direct_chat).stepped)
        default_store.cache_clear()
    team = str(TEAM_CHAT)
    direct = [count for (chat, _), count in sender.sent.items() if chat != team]
    return Storm(
        team_chat_per_minute=max((c for (chat, _), c in sender.sent.items() if chat == team), default=0),
        direct_per_minute=max(direct, default=0),
        minutes=done_at or -1,
        team_chat_total=sum(c for (chat, _), c in sender.sent.items() if chat == team),
        direct_total=sum(direct),
        escalated=len(escalated),
    )
