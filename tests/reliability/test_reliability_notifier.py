"""Faults between the notifier's steps: each DynamoDB call of a notifier run (the stream batch,
a folded burst, the reminders, the digest) throttled once past boto3's retries, throttled with
the run's claims not given back either, or the run killed at that call (nothing after it runs:
no give-back, no mark). Lambda's retries are played after each: at once, then after the lease.

Afterwards every notice reached the group; a run that returned success had every notice of it
delivered already; nothing came twice except the notices in flight when a run was killed
between a send and its mark (the documented case, docs/notifications.md)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto.core.botocore_stubber import BotocoreStubber

from chalicelib import notifier, services, telegram_client
from chalicelib.outbox import CLAIM_LEASE_SECONDS
from reliability.test_reliability_faults import no_backoff  # noqa: F401
from scripts.local_stream import StreamReader
from tests.conftest import TABLE_NAME
from tests.fake_bot_api import FakeBotApi


class Killed(BaseException):
    """The process ends here: nothing after it runs, no handler of the code sees it."""


class Faults:
    """On the store's client: the `target`-th DynamoDB call of a run throttled (`throttled`),
    with every DeleteItem of the run refused as well (`throttled, nothing given back`), that
    call and every later one killed (`killed`), or that call applied and its answer lost, so
    that botocore sends it again (`applied, answer lost`)."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self.target: int | None = None
        self.kind = ""
        self._lose_answer = False
        client.meta.events.register_first("before-call.dynamodb", self._before_call)
        process = BotocoreStubber.process_request

        def process_request(stubber: BotocoreStubber, request: Any) -> Any:
            response = process(stubber, request)
            if self._lose_answer:
                self._lose_answer = False
                raise ReadTimeoutError(endpoint_url="http://dynamodb.eu-west-1.amazonaws.com")
            return response

        monkeypatch.setattr(BotocoreStubber, "process_request", process_request)

    def arm(self, target: int | None, kind: str = "") -> None:
        self.calls, self.target, self.kind = [], target, kind

    def _before_call(self, model: Any, **kwargs: Any) -> None:
        self.calls.append(model.name)
        index = len(self.calls) - 1
        if self.target is None:
            return
        if self.kind == "killed" and index >= self.target:
            raise Killed(model.name)
        if self.kind == "applied, answer lost":
            self._lose_answer = index == self.target
            return
        if index == self.target or (self.kind == "throttled, nothing given back" and index > self.target
                                    and model.name == "DeleteItem"):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "injected"}}, model.name)


@dataclass
class Run:
    action: Callable[[datetime], Any]
    expected: Counter[str]  # "#<id>" per notice, or "digest"
    start: datetime
    incidents: list[int]


@dataclass
class Scenario:
    name: str
    make: Callable[[Any, StreamReader, str, int], Run]  # (store, stream, chat, n)


def _open(store: Any, n: int, count: int) -> list[int]:
    return [services.open_incident(store, description=f"notice {n}-{k}", source="partner", by="api").incident["id"]
            for k in range(count)]


def _changes(count: int) -> Callable[[Any, StreamReader, str, int], Run]:
    def make(store: Any, stream: StreamReader, chat: str, n: int) -> Run:
        stream.poll()  # what earlier runs left in the stream
        ids = _open(store, n, count)
        records = stream.poll()
        sender = _SENDER[0]
        return Run(lambda at: notifier.deliver_changes(store, sender, notifier.Settings(chat_id=chat),
                                                       records, at),
                   Counter(f"#{i}" for i in ids), datetime.now(timezone.utc), ids)
    return make


def _reminders(store: Any, stream: StreamReader, chat: str, n: int) -> Run:
    ids = _open(store, n, 2)
    sender = _SENDER[0]
    return Run(lambda at: notifier.send_reminders(store, sender, notifier.Settings(chat_id=chat), at),
               Counter(f"#{i}" for i in ids), datetime.now(timezone.utc) + timedelta(hours=1), ids)


def _digest(store: Any, stream: StreamReader, chat: str, n: int) -> Run:
    sender = _SENDER[0]
    return Run(lambda at: notifier.send_digest(store, sender, notifier.Settings(chat_id=chat), at),
               Counter({"digest": 1}), datetime.now(timezone.utc) + timedelta(days=n), [])


_SENDER: list[Any] = []
SCENARIOS = [
    Scenario("stream batch of two changes", _changes(2)),
    Scenario("stream burst of four (folded)", _changes(4)),
    Scenario("reminders", _reminders),
    Scenario("digest", _digest),
]
KINDS = ["throttled", "throttled, nothing given back", "killed", "applied, answer lost"]
# Lambda's retries of a failed run: at once, then after the lease (the stream's retries go on
# longer; a schedule's two come a minute apart).
RETRIES = [timedelta(seconds=1), timedelta(seconds=CLAIM_LEASE_SECONDS + 1),
           timedelta(seconds=2 * CLAIM_LEASE_SECONDS + 2)]


def _delivered(bot: FakeBotApi, chat: str, digest: bool) -> Counter[str]:
    messages = [m["text"] for m in bot.messages if m["chat_id"] == chat]
    if digest:
        return Counter({"digest": len(messages)})
    return Counter(line.split()[0] for text in messages for line in text.split("\n") if line.startswith("#"))


def test_faults_between_the_notifiers_steps_lose_no_notice_and_repeat_only_one_killed_in_flight(
        dynamodb, monkeypatch, no_backoff, figures):
    from chalicelib.store import default_store

    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")  # see docs/notifications.md
    store = default_store()
    stream = StreamReader(dynamodb, boto3.client("dynamodbstreams"), TABLE_NAME)
    faults = Faults(store._client, monkeypatch)
    outcomes: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    repeated: Counter[str] = Counter()
    sites = runs = 0
    n = 0
    with FakeBotApi() as bot:
        _SENDER[:] = [telegram_client.BotApi("123:token", bot.url)]
        for scenario in SCENARIOS:
            n += 1
            chat = f"-100{n}"
            run = scenario.make(store, stream, chat, n)
            faults.arm(None)
            run.action(run.start)  # a dry run: which calls does a run make?
            calls = list(faults.calls)
            assert _delivered(bot, chat, scenario.name == "digest") == run.expected, scenario.name
            _close(store, run.incidents)
            sites += len(calls)
            budget = calls.index("UpdateItem")  # the first UpdateItem takes the budget; later ones mark
            for index, operation in enumerate(calls):
                for kind in KINDS:
                    n += 1
                    chat = f"-100{n}"
                    run = scenario.make(store, stream, chat, n)
                    label = f"{scenario.name}: {kind} at call {index + 1} ({operation})"
                    outcome = _play(run, faults, index, kind, bot, chat, scenario.name == "digest", label)
                    runs += 1
                    outcomes[kind][outcome] += 1
                    got = _delivered(bot, chat, scenario.name == "digest")
                    assert set(got) == set(run.expected), (label, got)  # every notice, none foreign
                    twice = {notice for notice, count in got.items() if count > 1}
                    killed_at_mark = kind == "killed" and operation == "UpdateItem" and index > budget
                    assert not twice or killed_at_mark, (label, got)
                    assert all(count <= 2 for count in got.values()), (label, got)
                    if twice:
                        repeated[scenario.name] += 1
                    _close(store, run.incidents)
    # botocore's retry of an applied call is the call's own business: the run goes on as if
    # nothing happened (a claim recognises its own token) and needs no retry from Lambda.
    assert set(outcomes["applied, answer lost"]) == {"returned at once"}, outcomes["applied, answer lost"]
    for kind in KINDS:
        figures(f"{kind}: {sum(outcomes[kind].values())} runs: {dict(sorted(outcomes[kind].items()))}")
    figures(f"{len(SCENARIOS)} notifier runs, {sites} DynamoDB call sites, {runs} faulted runs; "
            f"every notice delivered; a run that returned success had delivered all of its own")
    figures(f"repeated (killed between a send and its mark, the documented case): "
            f"{sum(repeated.values())} runs {dict(repeated)}; nothing else twice")


def _play(run: Run, faults: Faults, index: int, kind: str, bot: FakeBotApi, chat: str, digest: bool,
          label: str) -> str:
    """The faulted run, then Lambda's retries until one returns; which attempt delivered."""
    faults.arm(index, kind)
    try:
        run.action(run.start)
        outcome = "returned at once"
    except (Exception, Killed):
        outcome = ""
    finally:
        faults.arm(None)
    if outcome:
        assert set(_delivered(bot, chat, digest)) == set(run.expected), (label, "returned before sending")
        return outcome
    for attempt, delay in enumerate(RETRIES):
        try:
            run.action(run.start + delay)
        except notifier.NotYetSent:
            continue  # a claim of the failed run still within its lease
        assert set(_delivered(bot, chat, digest)) == set(run.expected), (label, "returned before sending")
        return ["raised; sent by the retry at once", "raised; sent after the lease",
                "raised; sent after two leases"][attempt]
    raise AssertionError(f"{label}: still not sent after every retry")


def _close(store: Any, ids: list[int]) -> None:
    for incident_id in ids:
        services.change_status(store, incident_id, "closed", by="api")
