"""Faults at every DynamoDB call site: throttling, timeouts, connection errors and cancelled
transactions, injected with botocore event hooks on the store's own client (in-process, moto).

The API answers 503 with Retry-After, or succeeds after boto3's retry, never 500; an event
handler raises so that Lambda delivers again, and the redelivery applies once; nothing is left
half-written (no dedup, once or history record pointing at nothing)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from app import on_alarm_notification, on_alarm_state_change
from chalicelib.store import default_store
from reliability.reliability_http import consistency_problems, table_items
from tests.conftest import TABLE_NAME, load_payload

ENDPOINT = "https://dynamodb.eu-west-1.amazonaws.com"


def _client_error(code: str, operation: str, **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}, **extra}, operation)


# kind -> (raised where, what): "call" faults are what boto3 raises once its retries are spent;
# "send" faults hit each HTTP attempt, so boto3's own retries are exercised.
FAULTS: dict[str, tuple[str, Callable[[str], Exception]]] = {
    "throttled": ("call", lambda op: _client_error("ProvisionedThroughputExceededException", op)),
    "timeout": ("send", lambda op: ReadTimeoutError(endpoint_url=ENDPOINT)),
    "connection": ("send", lambda op: EndpointConnectionError(endpoint_url=ENDPOINT)),
    "cancelled": ("call", lambda op: _client_error(
        "TransactionCanceledException", op,
        CancellationReasons=[{"Code": "TransactionConflict", "Message": "injected"}, {"Code": "None"}])),
}


# Each fault on every attempt (boto3 gives up), and a connection error on the first attempt only
# (boto3's retry succeeds). A connection error on every attempt takes the timeout's path.
VARIANTS = [("throttled", None), ("timeout", None), ("cancelled", None), ("connection", 1)]


class Injector:
    """Counts the store's DynamoDB calls and fails the one armed, on every attempt (`attempts`
    None) or on its first `attempts` HTTP attempts only."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        self.target: int | None = None
        self.kind = ""
        self.attempts: int | None = None
        self._sent = 0
        client.meta.events.register_first("before-call.dynamodb", self._before_call)
        client.meta.events.register_first("before-send.dynamodb", self._before_send)

    def arm(self, target: int | None, kind: str = "", attempts: int | None = None) -> None:
        self.calls, self.target, self.kind, self.attempts, self._sent = [], target, kind, attempts, 0

    def _hit(self) -> bool:
        return self.target is not None and len(self.calls) - 1 == self.target

    def _before_call(self, model: Any, **kwargs: Any) -> None:
        self.calls.append(model.name)
        where, fault = FAULTS.get(self.kind, ("", None))
        if self._hit() and where == "call":
            raise fault(model.name)

    def _before_send(self, request: Any, **kwargs: Any) -> None:
        where, fault = FAULTS.get(self.kind, ("", None))
        if self._hit() and where == "send":
            self._sent += 1
            if self.attempts is None or self._sent <= self.attempts:
                raise fault(self.calls[-1])


@dataclass
class Scenario:
    name: str
    setup: Callable[[Any, int], Any]  # (api, n) -> context, run without faults
    action: Callable[[Any, Any, Any, int], Any]  # (api, client, context, n) -> response or None
    event: bool = False  # an event handler: a store failure must raise


def _create(api: Any, n: int, **extra: Any) -> dict[str, Any]:
    return api.create(f"fault scenario {n}", **extra)


def _resolved_pair(api: Any, n: int) -> dict[str, Any]:
    """An incident whose dedup_key passed to a newer one, closed since: reopening takes it back."""
    first = _create(api, n, dedup_key=f"fault-key-{n}")
    api.patch(f"/incidents/{first['id']}", {"status": "resolved"})
    second = _create(api, n, dedup_key=f"fault-key-{n}")
    api.patch(f"/incidents/{second['id']}", {"status": "closed"})
    return first


def _sns(n: int, state: str = "sns_alarm_record.json") -> dict[str, Any]:
    event = load_payload(state)
    event["Records"][0]["Sns"]["MessageId"] = f"fault-{state}-{n}"
    event["Records"][0]["Sns"]["Message"] = event["Records"][0]["Sns"]["Message"].replace(
        "scooter-42-offline", f"fault-alarm-{n}")
    return event


def _eventbridge(n: int, name: str) -> dict[str, Any]:
    return json.loads(json.dumps(load_payload(name)).replace("scooter-42-offline", f"fault-alarm-{n}")
                      .replace("d3a1f6c2", f"{n:08d}"))


def _telegram(n: int) -> str:
    update = load_payload("telegram/new_operator.json")
    update["update_id"] = 900_000 + n
    return json.dumps(update)


SCENARIOS = [
    Scenario("create", lambda api, n: None,
             lambda api, c, ctx, n: api.post("/incidents", {"description": f"f{n}", "source": "partner"})),
    Scenario("create with a free dedup_key", lambda api, n: None,
             lambda api, c, ctx, n: api.post("/incidents", {"description": f"f{n}", "source": "operator",
                                                            "dedup_key": f"fault-new-{n}"})),
    Scenario("create absorbed by dedup_key, with Idempotency-Key",
             lambda api, n: _create(api, n, dedup_key=f"fault-open-{n}"),
             lambda api, c, ctx, n: api.post("/incidents", {"description": f"f{n}", "source": "operator",
                                                            "dedup_key": f"fault-open-{n}"},
                                             headers={"Idempotency-Key": f"fault-{n}"})),
    Scenario("replay of an Idempotency-Key",
             lambda api, n: api.post("/incidents", {"description": f"f{n}", "source": "operator"},
                                     headers={"Idempotency-Key": f"fault-replay-{n}"}),
             lambda api, c, ctx, n: api.post("/incidents", {"description": f"f{n}", "source": "operator"},
                                             headers={"Idempotency-Key": f"fault-replay-{n}"})),
    Scenario("get", _create, lambda api, c, ctx, n: api.get(f"/incidents/{ctx['id']}")),
    Scenario("list page with a cursor", lambda api, n: [_create(api, n), _create(api, n)],
             lambda api, c, ctx, n: api.get("/incidents?status=new&source=operator&limit=1")),
    Scenario("history", _create, lambda api, c, ctx, n: api.get(f"/incidents/{ctx['id']}/history")),
    Scenario("status change", _create,
             lambda api, c, ctx, n: api.patch(f"/incidents/{ctx['id']}", {"status": "resolved", "note": "n"})),
    Scenario("status change with If-Match", _create,
             lambda api, c, ctx, n: api.patch(f"/incidents/{ctx['id']}", {"status": "in_progress"},
                                              headers={"If-Match": f'"{ctx["id"]}-1"'})),
    Scenario("reopen taking the dedup_key back", _resolved_pair,
             lambda api, c, ctx, n: api.patch(f"/incidents/{ctx['id']}", {"status": "in_progress"})),
    Scenario("Telegram create", lambda api, n: None,
             lambda api, c, ctx, n: c.http.post(
                 "/telegram/webhook", body=_telegram(n),
                 headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg"})),
    Scenario("SNS alarm", lambda api, n: None,
             lambda api, c, ctx, n: on_alarm_notification(_sns(n), None), event=True),
    Scenario("SNS recovery", lambda api, n: on_alarm_notification(_sns(n), None),
             lambda api, c, ctx, n: on_alarm_notification(_sns(n, "sns_ok_record.json"), None), event=True),
    Scenario("EventBridge alarm", lambda api, n: None,
             lambda api, c, ctx, n: on_alarm_state_change(_eventbridge(n, "eventbridge_alarm.json"), None),
             event=True),
]


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's retries without their sleeps: the same attempts, in a fraction of the time."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


def test_a_fault_at_every_dynamodb_call_site_is_a_503_or_a_retry_never_a_500_or_half_a_write(
        dynamodb, api, client, monkeypatch, no_backoff, figures):
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "tg")
    injector = Injector(default_store()._client)
    outcomes: Counter[str] = Counter()
    sites = 0
    n = 0
    for scenario in SCENARIOS:
        n += 1
        context = scenario.setup(api, n)
        injector.arm(None)
        scenario.action(api, client, context, n)  # a dry run: which calls does the action make?
        calls = list(injector.calls)
        assert calls, scenario.name
        sites += len(calls)
        for index, operation in enumerate(calls):
            for kind, attempts in VARIANTS:
                if kind == "cancelled" and operation != "TransactWriteItems":
                    continue
                n += 1
                context = scenario.setup(api, n)
                injector.arm(index, kind, attempts)
                label = f"{scenario.name}: {kind} at call {index + 1} ({operation})" + \
                    (f", first {attempts} attempt(s)" if attempts else "")
                outcome = _run(scenario, api, client, context, n, label)
                injector.arm(None)
                outcomes[outcome] += 1
                if outcome == "raised, Lambda retries":
                    scenario.action(api, client, context, n)  # the redelivery applies it once
        # Records left by a failed write stay: checking after each scenario finds them all.
        problems = consistency_problems(table_items(dynamodb, TABLE_NAME))
        assert problems == [], (scenario.name, problems)
    incidents = [i for i in table_items(dynamodb, TABLE_NAME) if i["sk"] == "incident"]
    alarms = Counter(i["dedup_key"] for i in incidents if (i.get("dedup_key") or "").startswith("arn:"))
    assert all(count == 1 for count in alarms.values()), alarms  # a redelivery never opens a second
    figures(f"{len(SCENARIOS)} scenarios, {sites} DynamoDB call sites, {sum(outcomes.values())} faulted runs: "
            f"{dict(sorted(outcomes.items()))}")
    figures("faults: throttling and timeouts past boto3's retries, TransactionCanceledException at each "
            "transaction, a connection error on the first attempt (boto3 retries); afterwards no record "
            "points at nothing and every redelivered event applied once")


def _run(scenario: Scenario, api: Any, client: Any, context: Any, n: int, label: str) -> str:
    if scenario.event:
        try:
            scenario.action(api, client, context, n)
        except Exception:  # the store's failure: Lambda will deliver again
            return "raised, Lambda retries"
        return "event applied"
    response = scenario.action(api, client, context, n)
    assert response.status_code != 500 and b"Traceback" not in response.body, (label, response.body)
    if response.status_code == 503:
        assert response.headers.get("Retry-After") == "1", label
        return "503 + Retry-After"
    assert response.status_code in (200, 201), (label, response.status_code, response.body)
    return f"{response.status_code} (after retry or unaffected)"
