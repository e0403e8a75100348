"""An alert storm (issue 25): what `POST /alertmanager` and `POST /v2/enqueue` cost per request,
and what the intake consumer costs per alert, in-process on moto (DynamoDB, SQS, S3).

- a 512 KiB Alertmanager batch (over 3,000 alerts): the request's own AWS calls (DynamoDB, SQS,
  S3) and its CPU time, scaled to 128 MB as docs/cold-start.md does (a function gets CPU in
  proportion to its memory, one vCPU at 1,769 MB) plus each call's wait; then the consumer
  applies it;
- 10,000 alerts over 100 requests in one simulated minute (half firing new, a quarter repeats,
  a quarter resolving): all applied, each incident in the state its last alert says, none lost
  or applied twice, the consumer's DynamoDB calls per alert; then the table's stream through the
  notifier, Lambda's way (100 records a batch, a batch refused over the minute's budget retried
  the next minute), counting the messages the group gets per minute;
- a PagerDuty trigger: the same per-request count.

    from storm_counts import measure
    measure(log=print) -> {...}
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from benchenv import TABLE_NAME, use_fake_aws

use_fake_aws()
ROUTING_KEY = "bench-integration-key"
os.environ["INTEGRATION_KEYS"] = ROUTING_KEY
os.environ.pop("INTEGRATION_KEYS_PARAMETER", None)
QUEUE = "incidents-bench-intake.fifo"
BUCKET = "incidents-bench-intake-123456789012"
os.environ["INTAKE_QUEUE_URL"] = f"https://sqs.eu-west-1.amazonaws.com/123456789012/{QUEUE}"
os.environ["INTAKE_BUCKET"] = BUCKET
for name in ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(name, None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core.botocore_stubber import BotocoreStubber  # noqa: E402

from localaws.shim import fast_moto  # noqa: E402

BODY_LIMIT = 512 * 1024
LAMBDA_MB, FULL_VCPU_MB = 128, 1769
# What each call waits for in-Region, which more memory does not shorten (docs/cold-start.md
# assumes 4 ms for DynamoDB); a 512 KiB PutObject is given 60 ms.
CALL_WAIT_MS = {"dynamodb": 4, "sqs": 10, "s3": 60}
STORM_REQUESTS, STORM_BATCH = 100, 100
CHAT = "-1001234567890"


def _alert(n: int, status: str = "firing") -> dict[str, Any]:
    """As compact as Alertmanager sends one: what the 3,000-alert batch is made of."""
    alert = {"status": status, "fingerprint": f"{n:016x}", "labels": {"alertname": "DbDown", "severity": "critical"},
             "startsAt": "2026-11-23T10:00:00Z"}
    if status == "resolved":
        alert["endsAt"] = "2026-11-23T10:20:00Z"
    return alert


def big_batch() -> bytes:
    """As many alerts as fit the 512 KiB body limit."""
    alerts: list[dict[str, Any]] = []
    head = {"version": "4", "status": "firing", "receiver": "storm", "alerts": alerts}
    size = len(json.dumps(head))
    while True:
        alert = _alert(10_000_000 + len(alerts))
        added = len(json.dumps(alert)) + 2
        if size + added > BODY_LIMIT:
            return json.dumps(head).encode()
        alerts.append(alert)
        size += added


class Calls:
    """Every AWS call the app's clients make while recording: (service, operation)."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []
        self.active = False

    def __call__(self, *, model: Any, **_: Any) -> None:
        if self.active:
            self.made.append((model.service_model.service_name, model.name))

    def watch(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-call", self)

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[str, str]]]:
        self.made, self.active = [], True
        try:
            yield self.made
        finally:
            self.active = False


@contextlib.contextmanager
def cpu_outside_moto() -> Iterator[dict[str, float]]:
    """This thread's CPU time, less what moto (standing in for AWS) spent answering."""
    original = BotocoreStubber.process_request
    spent = {"moto": 0.0, "app": 0.0}

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        started = time.thread_time()
        try:
            return original(self, request)
        finally:
            spent["moto"] += time.thread_time() - started

    BotocoreStubber.process_request = process_request
    started = time.thread_time()
    try:
        yield spent
    finally:
        spent["app"] = time.thread_time() - started - spent["moto"]
        BotocoreStubber.process_request = original


def scaled_ms(cpu_seconds: float, calls: list[tuple[str, str]]) -> float:
    return cpu_seconds * 1000 * FULL_VCPU_MB / LAMBDA_MB + sum(CALL_WAIT_MS[service] for service, _ in calls)


@contextlib.contextmanager
def storm_environment() -> Iterator[dict[str, Any]]:
    """A fresh moto with the table, the FIFO queue and the bucket; the app's store and intake."""
    from chalice.test import Client

    from app import app
    from chalicelib import aws
    from chalicelib.intake import default_intake
    from chalicelib.store import create_table, default_store

    with mock_aws(), fast_moto():
        create_table(boto3.client("dynamodb"), TABLE_NAME)
        boto3.client("sqs").create_queue(QueueName=QUEUE, Attributes={"FifoQueue": "true"})
        boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        aws.session.cache_clear()
        default_store.cache_clear()
        default_intake.cache_clear()
        store, intake = default_store(), default_intake()
        calls = Calls()
        calls.watch(store._client, intake._sqs, intake._s3)
        try:
            with Client(app) as client:
                yield {"client": client, "store": store, "intake": intake, "calls": calls}
        finally:
            default_intake.cache_clear()
            default_store.cache_clear()
            aws.session.cache_clear()


def post(client: Any, path: str, body: bytes, headers: dict[str, str], expect: int) -> Any:
    response = client.http.post(path, body=body, headers={"Content-Type": "application/json", **headers})
    if response.status_code != expect:
        raise RuntimeError(f"POST {path}: expected {expect}, got {response.status_code} {response.body[:300]!r}")
    return response


def drain(env: dict[str, Any]) -> tuple[Counter[str], list[tuple[str, str]]]:
    """The consumer, message by message in the queue's order: the outcomes and its AWS calls."""
    from chalicelib import integrations

    sqs, outcomes = boto3.client("sqs"), Counter()
    url = env["intake"].queue_url
    with env["calls"].recording() as calls:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                outcomes.update(integrations.apply_message(env["store"], env["intake"].read(message["Body"])))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return outcomes, list(calls)


def measure_big_batch(log: Callable[[str], None]) -> dict[str, Any]:
    from benchenv import API_KEY

    body = big_batch()
    alerts = len(json.loads(body)["alerts"])
    with storm_environment() as env:
        post(env["client"], "/alertmanager", json.dumps({"alerts": []}).encode(),
             {"Authorization": f"Bearer {API_KEY}"}, 200)  # warm: clients made, as in a warm container
        drain(env)
        with env["calls"].recording() as calls, cpu_outside_moto() as cpu:
            answer = post(env["client"], "/alertmanager", body, {"Authorization": f"Bearer {API_KEY}"}, 200)
        request_calls = list(calls)
        log(f"  {alerts:,} alerts, {len(body):,} bytes: answered {answer.json_body} with "
            f"{', '.join(f'{s}:{o}' for s, o in request_calls)}; {cpu['app'] * 1000:.0f} ms of CPU here "
            f"(moto's {cpu['moto'] * 1000:.0f} ms not counted)")
        started = time.perf_counter()
        outcomes, consumer_calls = drain(env)
        log(f"  the consumer applied them in {time.perf_counter() - started:.1f} s here: {dict(outcomes)}, "
            f"{sum(1 for s, _ in consumer_calls if s == 'dynamodb') / alerts:.2f} DynamoDB calls per alert")
        trigger = {"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "db-1",
                   "payload": {"summary": "db-1 down", "source": "db-1", "severity": "critical"}}
        with env["calls"].recording() as pd_calls, cpu_outside_moto() as pd_cpu:
            post(env["client"], "/v2/enqueue", json.dumps(trigger).encode(), {}, 202)
        pd_request_calls = list(pd_calls)
        pd_outcomes, _ = drain(env)
    return {
        "alerts": alerts, "bytes": len(body), "request_calls": request_calls,
        "request_ms_128": scaled_ms(cpu["app"], request_calls), "cpu_ms": cpu["app"] * 1000,
        "all_applied": outcomes == Counter({"applied": alerts}),
        "pagerduty_calls": pd_request_calls, "pagerduty_ms_128": scaled_ms(pd_cpu["app"], pd_request_calls),
        "pagerduty_applied": pd_outcomes == Counter({"applied": 1}),
    }


def storm_requests(batches: int = STORM_REQUESTS, size: int = STORM_BATCH) -> list[dict[str, Any]]:
    """`batches` batches of `size`: half of new firing alerts, a quarter repeats of some of them
    (Alertmanager's resend of a still-firing group), a quarter resolving as many; interleaved."""
    half, quarter = batches // 2, batches // 4
    new = [{"receiver": "storm", "alerts": [_alert(b * size + i) for i in range(size)]} for b in range(half)]
    resolves = [{"receiver": "storm", "alerts": [_alert(b * size + i, "resolved") for i in range(size)]}
                for b in range(quarter)]
    ordered = []
    for b in range(half):  # each firing batch, then (in the second half) a repeat and a resolve
        ordered.append(new[b])
        if b >= half - quarter:
            ordered += [new[b], resolves[b - (half - quarter)]]
    return ordered


def final_states(store: Any, alerts: int) -> dict[str, Any]:
    """Each fingerprint's incident (status, occurrences, history length), read in batches."""
    dynamodb = boto3.client("dynamodb")
    keys = [f"alertmanager:{n:016x}" for n in range(alerts)]
    dedup, _ = store.records(keys, [])
    owners = {key: record.incident_id for key, record in dedup.items() if record and record.incident_id}
    states: dict[str, Any] = {}
    by_id = {owner: key for key, owner in owners.items()}
    ids = list(by_id)
    for start in range(0, len(ids), 100):
        request = {store.table_name: {"Keys": [{"pk": {"S": f"incident#{i}"}, "sk": {"S": "incident"}}
                                               for i in ids[start:start + 100]]}}
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            for item in response["Responses"][store.table_name]:
                incident_id = int(item["id"]["N"])
                states[by_id[incident_id]] = (item["status"]["S"], int(item["occurrences"]["N"]),
                                              int(item["history_count"]["N"]))
            request = response.get("UnprocessedKeys") or {}
    return {"owners": len(owners), "states": states}


def measure_storm(log: Callable[[str], None], batches: int = STORM_REQUESTS,
                  size: int = STORM_BATCH) -> dict[str, Any]:
    from benchenv import API_KEY

    requests = storm_requests(batches, size)
    sent = sum(len(r["alerts"]) for r in requests)
    fired, resolved = batches // 2 * size, batches // 4 * size
    with storm_environment() as env:
        request_calls: list[int] = []
        for batch in requests:
            with env["calls"].recording() as calls:
                post(env["client"], "/alertmanager", json.dumps(batch).encode(),
                     {"Authorization": f"Bearer {API_KEY}"}, 200)
            request_calls.append(len(calls))
        started = time.perf_counter()
        outcomes, consumer_calls = drain(env)
        applied_in = time.perf_counter() - started
        dynamodb_calls = Counter(o for s, o in consumer_calls if s == "dynamodb")
        found = final_states(env["store"], fired)
        states = found["states"]
        expected = {f"alertmanager:{n:016x}": ("resolved", 1, 2) if n < resolved else ("new", 1, 1)
                    for n in range(fired)}
        wrong = sum(1 for key, state in expected.items() if states.get(key) != state)
        log(f"  {len(requests)} requests, {sent:,} alerts: each request {max(request_calls)} AWS calls at most; "
            f"the consumer: {dict(outcomes)} in {applied_in:.1f} s here, DynamoDB "
            f"{', '.join(f'{n}×{op}' for op, n in dynamodb_calls.most_common())}")
        per_minute = notify(env, log)
    return {
        "alerts": sent, "outcomes": outcomes, "max_request_calls": max(request_calls),
        "dynamodb_per_alert": sum(dynamodb_calls.values()) / sent,
        "all_applied": outcomes == Counter({"applied": fired + resolved, "duplicate": sent - fired - resolved}),
        "states_right": wrong == 0 and found["owners"] == fired, "wrong": wrong,
        "messages_per_minute": per_minute,
    }


class CountingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.minute = 0

    def send_message(self, chat_id: str, text: str, thread_id: int | None = None,
                     buttons: dict[str, Any] | None = None) -> None:
        self.sent.append((self.minute, text))


def notify(env: dict[str, Any], log: Callable[[str], None]) -> dict[int, int]:
    """The storm's stream records through the notifier as Lambda hands them over: 100 a batch; a
    batch refused over the minute's budget is retried, the next simulated minute."""
    from chalicelib import notifier
    from scripts.local_stream import StreamReader

    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    records = StreamReader(boto3.client("dynamodb"), boto3.client("dynamodbstreams"), TABLE_NAME).poll()
    sender, settings = CountingSender(), notifier.Settings(chat_id=CHAT)
    start = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    for first in range(0, len(records), 100):
        while True:
            try:
                notifier.deliver_changes(env["store"], sender, settings, records[first:first + 100],
                                         start + timedelta(minutes=sender.minute))
                break
            except notifier.OverBudget:
                sender.minute += 1
    per_minute = Counter(minute for minute, _ in sender.sent)
    log(f"  notifier: {len(records):,} stream records -> {len(sender.sent)} messages to the group over "
        f"{len(per_minute)} simulated minutes, at most {max(per_minute.values(), default=0)} a minute")
    return dict(per_minute)


def measure(log: Callable[[str], None] = lambda _: None, *, batches: int = STORM_REQUESTS,
            size: int = STORM_BATCH) -> dict[str, Any]:
    """The storm is `batches` requests of `size` alerts (the smoke test makes it small)."""
    return {"big": measure_big_batch(log), "storm": measure_storm(log, batches, size)}
