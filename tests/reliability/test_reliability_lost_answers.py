"""Applied, but the answer was lost: at every write the store makes, DynamoDB applies the write,
then the client sees a read timeout and botocore retries the same call (in-process, moto).

Each run must answer what it answers without the fault and change the table exactly as it does
without the fault: no 500, no second incident, entry, note or occurrence. It runs twice: with
the embedded DynamoDB honouring ClientRequestToken as DynamoDB does, and with the token ignored,
so that the store's own recognition of its write (docs/table-design.md, "A retry of an applied
write") is what answers."""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from botocore.exceptions import ReadTimeoutError
from moto.core.botocore_stubber import BotocoreStubber

from app import on_alarm_notification, on_alarm_state_change
from chalicelib import services
from chalicelib.store import default_store
from localaws import shim
from reliability.reliability_http import consistency_problems, table_items
from reliability.test_reliability_faults import ENDPOINT, _eventbridge, _sns, _telegram, no_backoff  # noqa: F401
from tests.conftest import API_KEY, TABLE_NAME, drain_intake, load_payload

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
PAGERDUTY_KEY = "lost-answer-routing-key"
BEARER = {"Authorization": f"Bearer {API_KEY}"}


class AppliedThenTimeout:
    """Counts the store's writes; the one armed is applied by moto, then its first attempt
    raises ReadTimeoutError to botocore, which retries it (standard mode)."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[str] = []
        self.target: int | None = None
        self._pending = False
        self.fired = 0
        self.tokens: list[str | None] = []  # each TransactWriteItems' ClientRequestToken
        client.meta.events.register_first("before-call.dynamodb", self._before_call)
        process = BotocoreStubber.process_request

        def process_request(stubber: BotocoreStubber, request: Any) -> Any:
            response = process(stubber, request)
            if self._pending:
                self._pending = False
                self.fired += 1
                raise ReadTimeoutError(endpoint_url=ENDPOINT)
            return response

        monkeypatch.setattr(BotocoreStubber, "process_request", process_request)

    def arm(self, target: int | None) -> None:
        self.writes, self.target, self._pending = [], target, False

    def _before_call(self, model: Any, params: Any, **kwargs: Any) -> None:
        if model.name == "TransactWriteItems":
            self.tokens.append(json.loads(params["body"]).get("ClientRequestToken"))
        if model.name in WRITES:
            self.writes.append(model.name)
            self._pending = self.target is not None and len(self.writes) - 1 == self.target


@dataclass
class Scenario:
    name: str
    setup: Callable[[Any, int], Any]  # (api, n) -> context, run without faults
    action: Callable[[Any, Any, Any, int], Any]  # (api, client, context, n) -> response or None


def _create(api: Any, n: int, **extra: Any) -> dict[str, Any]:
    return api.create(f"lost answer {n}", **extra)


def _post(api: Any, n: int, **extra: Any) -> Any:
    return api.post("/incidents", {"description": f"lost answer {n}", "source": "operator", **extra})


def _resolved_pair(api: Any, n: int) -> dict[str, Any]:
    """An incident whose dedup_key passed to a newer one, closed since: reopening takes it back."""
    first = _create(api, n, dedup_key=f"lost-pair-{n}")
    api.patch(f"/incidents/{first['id']}", {"status": "resolved"})
    second = _create(api, n, dedup_key=f"lost-pair-{n}")
    api.patch(f"/incidents/{second['id']}", {"status": "closed"})
    return first


def _resolved_pair_etag(api: Any, n: int) -> dict[str, Any]:
    first = _resolved_pair(api, n)
    return {"id": first["id"], "etag": api.get(f"/incidents/{first['id']}").headers["ETag"]}


def _resolved(api: Any, n: int) -> dict[str, Any]:
    incident = _create(api, n, dedup_key=f"lost-resolved-{n}")
    api.patch(f"/incidents/{incident['id']}", {"status": "resolved"})
    return incident


def _sns_at(n: int, state: str, at: str, message_id: str) -> dict[str, Any]:
    event = _sns(n, state)
    record = event["Records"][0]["Sns"]
    message = json.loads(record["Message"])
    message["StateChangeTime"] = at
    record["Message"], record["MessageId"] = json.dumps(message), message_id
    return event


def _telegram_text(n: int, text: str) -> str:
    update = load_payload("telegram/status_english.json")
    update["update_id"] = 700_000 + n
    update["message"]["text"] = text
    return json.dumps(update)


def _webhook(client: Any, body: str) -> Any:
    return client.http.post("/telegram/webhook", body=body, headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg"})


def _pagerduty(api: Any, n: int, action: str, severity: str = "warning") -> Any:
    body = load_payload("integrations/pagerduty_trigger.json")
    body.update(routing_key=PAGERDUTY_KEY, dedup_key=f"lost-pd-{n}", event_action=action)
    body["payload"]["severity"] = severity
    return _applied(api.post("/v2/enqueue", body, key=None))


def _alertmanager(api: Any, n: int, name: str) -> Any:
    batch = load_payload(f"integrations/{name}.json")
    batch["alerts"] = [{**batch["alerts"][0], "fingerprint": f"{n:016x}"}]
    return _applied(api.post("/alertmanager", batch, key=None, headers=BEARER))


def _applied(response: Any) -> Any:
    """The request only hands off: the intake consumer writes, and a failure there is delivered
    again by SQS. The caller's answer is the request's."""
    try:
        drain_intake()
    except Exception:
        drain_intake()
    return response


LATER = "2026-11-23T10:50:00.000+0000"

SCENARIOS = [
    Scenario("create", lambda api, n: None,
             lambda api, c, ctx, n: api.post("/incidents", {"description": f"l{n}", "source": "partner"})),
    Scenario("create with a free dedup_key", lambda api, n: None,
             lambda api, c, ctx, n: _post(api, n, dedup_key=f"lost-new-{n}")),
    Scenario("create with Idempotency-Key", lambda api, n: None,
             lambda api, c, ctx, n: api.post("/incidents", {"description": f"l{n}", "source": "operator"},
                                             headers={"Idempotency-Key": f"lost-{n}"})),
    Scenario("create taking over a resolved incident's dedup_key", _resolved,
             lambda api, c, ctx, n: _post(api, n, dedup_key=f"lost-resolved-{n}")),
    Scenario("occurrence by dedup_key", lambda api, n: _create(api, n, dedup_key=f"lost-open-{n}"),
             lambda api, c, ctx, n: _post(api, n, dedup_key=f"lost-open-{n}")),
    Scenario("occurrence raising the severity",
             lambda api, n: _create(api, n, dedup_key=f"lost-sev-{n}", severity="warning"),
             lambda api, c, ctx, n: _post(api, n, dedup_key=f"lost-sev-{n}", severity="critical")),
    Scenario("occurrence with Idempotency-Key", lambda api, n: _create(api, n, dedup_key=f"lost-idem-{n}"),
             lambda api, c, ctx, n: api.post("/incidents", {"description": f"lost answer {n}", "source": "operator",
                                                            "dedup_key": f"lost-idem-{n}"},
                                             headers={"Idempotency-Key": f"lost-idem-{n}"})),
    Scenario("status change with a note", _create,
             lambda api, c, ctx, n: api.patch(f"/incidents/{ctx['id']}", {"status": "resolved", "note": "n"})),
    Scenario("status change with If-Match", _create,
             lambda api, c, ctx, n: api.patch(f"/incidents/{ctx['id']}", {"status": "in_progress"},
                                              headers={"If-Match": f'"{ctx["id"]}-1"'})),
    Scenario("reopen taking the dedup_key back", _resolved_pair,
             lambda api, c, ctx, n: api.patch(f"/incidents/{ctx['id']}", {"status": "in_progress"})),
    Scenario("reopen taking the dedup_key back, with If-Match", _resolved_pair_etag,
             lambda api, c, ctx, n: api.patch(f"/incidents/{ctx['id']}", {"status": "in_progress"},
                                              headers={"If-Match": ctx["etag"]})),
    Scenario("note", _create,
             lambda api, c, ctx, n: api.post(f"/incidents/{ctx['id']}/notes", {"note": "called the depot"})),
    Scenario("note with If-Match", _create,
             lambda api, c, ctx, n: api.post(f"/incidents/{ctx['id']}/notes", {"note": "called the depot"},
                                             headers={"If-Match": f'"{ctx["id"]}-1"'})),
    Scenario("Telegram create", lambda api, n: None, lambda api, c, ctx, n: _webhook(c, _telegram(n))),
    Scenario("Telegram status change", _create,
             lambda api, c, ctx, n: _webhook(c, _telegram_text(n, f"#{ctx['id']} fixed rebooted"))),
    Scenario("Telegram note", _create,
             lambda api, c, ctx, n: _webhook(c, _telegram_text(n, f"#{ctx['id']} note on my way"))),
    Scenario("SNS alarm", lambda api, n: None, lambda api, c, ctx, n: on_alarm_notification(_sns(n), None)),
    Scenario("SNS repeat alarm", lambda api, n: on_alarm_notification(_sns(n), None),
             lambda api, c, ctx, n: on_alarm_notification(
                 _sns_at(n, "sns_alarm_record.json", LATER, f"lost-repeat-{n}"), None)),
    Scenario("SNS recovery", lambda api, n: on_alarm_notification(_sns(n), None),
             lambda api, c, ctx, n: on_alarm_notification(_sns(n, "sns_ok_record.json"), None)),
    Scenario("SNS recovery with nothing open", lambda api, n: None,
             lambda api, c, ctx, n: on_alarm_notification(_sns(n, "sns_ok_record.json"), None)),
    Scenario("EventBridge alarm", lambda api, n: None,
             lambda api, c, ctx, n: on_alarm_state_change(_eventbridge(n, "eventbridge_alarm.json"), None)),
    Scenario("PagerDuty trigger", lambda api, n: None, lambda api, c, ctx, n: _pagerduty(api, n, "trigger")),
    Scenario("PagerDuty repeat trigger raising the severity", lambda api, n: _pagerduty(api, n, "trigger"),
             lambda api, c, ctx, n: _pagerduty(api, n, "trigger", "critical")),
    Scenario("PagerDuty acknowledge", lambda api, n: _pagerduty(api, n, "trigger"),
             lambda api, c, ctx, n: _pagerduty(api, n, "acknowledge")),
    Scenario("Alertmanager firing", lambda api, n: None,
             lambda api, c, ctx, n: _alertmanager(api, n, "alertmanager_firing")),
    Scenario("Alertmanager resolved", lambda api, n: _alertmanager(api, n, "alertmanager_firing"),
             lambda api, c, ctx, n: _alertmanager(api, n, "alertmanager_resolved")),
]


def _incident_shape(item: dict[str, Any] | None) -> tuple | None:
    if item is None:
        return None
    return (item["status"], int(item["occurrences"]), int(item["version"]), int(item["history_count"]),
            item.get("severity"), "dedup_successor" in item)


def _described(old: dict[str, Any] | None, new: dict[str, Any]) -> tuple:
    """What changed in one item, without what differs from run to run (ids, times, tokens)."""
    kind = new["pk"].split("#", 1)[0]
    if kind == "incident" and new["sk"] == "incident":
        return ("incident", _incident_shape(old), _incident_shape(new))
    if kind == "incident":
        entry = new["entry"]
        return ("entry", entry["status"], entry.get("kind"), entry.get("note"), entry["by"])
    if kind == "once":
        return ("once", int(new["status_code"]))
    if kind == "dedup":
        old = old or {}
        return ("dedup", old.get("incident_id") != new.get("incident_id"),
                old.get("alarm_at") != new.get("alarm_at"))
    return (kind,)  # the id counter: a retried ADD skips an id (documented), nothing else


def _table(dynamodb: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(item["pk"], item["sk"]): item for item in table_items(dynamodb, TABLE_NAME)}


def _delta(before: dict, after: dict) -> Counter:
    changes: Counter = Counter(_described(before.get(key), item) for key, item in after.items()
                               if before.get(key) != item)
    changes.update(("deleted", key[0].split("#", 1)[0]) for key in before.keys() - after.keys())
    return changes


def _answer(result: Any, outcomes: list[str]) -> Any:
    """The caller's view: status code and body (an incident by its shape), or an event's outcomes."""
    if result is None or isinstance(result, Exception):
        return ("event", type(result).__name__ if result else None, tuple(outcomes))
    body = result.json_body if result.body else None
    if isinstance(body, dict) and "id" in body and "status" in body:
        version = (result.headers.get("ETag") or "").strip('"').rsplit("-", 1)[-1]
        body = (body["status"], body.get("occurrences"), version, len(body.get("history", [])),
                body.get("severity"))
    else:
        body = re.sub(r"\d+", "N", json.dumps(body, sort_keys=True, ensure_ascii=False))
    return (result.status_code, body)


@pytest.mark.parametrize("token", ["token honoured", "token ignored"])
def test_a_write_applied_whose_answer_was_lost_answers_as_without_the_fault_and_applies_once(
        token, dynamodb, api, client, monkeypatch, no_backoff, figures):
    if token == "token ignored":
        monkeypatch.setattr(shim.DynamoHandler, "transact_write_items", shim._original_transact_handler)
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "tg")
    monkeypatch.setenv("INTEGRATION_KEYS", PAGERDUTY_KEY)
    outcomes: list[str] = []
    ingest = services.ingest_cloudwatch

    def recorded(*args: Any, **kwargs: Any) -> Any:
        ingested = ingest(*args, **kwargs)
        outcomes.append(ingested.outcome)
        return ingested

    monkeypatch.setattr(services, "ingest_cloudwatch", recorded)
    injector = AppliedThenTimeout(default_store()._client, monkeypatch)

    def run(scenario: Scenario, target: int | None, n: int) -> tuple[Any, Counter]:
        context = scenario.setup(api, n)
        before = _table(dynamodb)
        outcomes.clear()
        injector.arm(target)
        try:
            result = scenario.action(api, client, context, n)
        except Exception as error:  # an event handler's: Lambda would deliver again
            result = error
        finally:
            injector.target = None
        return _answer(result, outcomes), _delta(before, _table(dynamodb))

    sites, runs, answered_500, wrong_answers, duplicates = 0, 0, 0, [], []
    n = 0
    for scenario in SCENARIOS:
        n += 1
        expected_answer, expected_delta = run(scenario, None, n)
        writes = list(injector.writes)
        assert writes, f"{scenario.name}: no write in the dry run"
        assert expected_answer[0] in (200, 201, 202, "event"), (scenario.name, expected_answer)
        sites += len(writes)
        for index, operation in enumerate(writes):
            n += 1
            runs += 1
            label = f"{scenario.name}: applied-then-timeout at write {index + 1} ({operation})"
            answer, delta = run(scenario, index, n)
            if answer[0] == 500:
                answered_500 += 1
            if answer != expected_answer:
                wrong_answers.append((label, answer, expected_answer))
            elif delta != expected_delta:
                duplicates.append((label, dict(delta - expected_delta), dict(expected_delta - delta)))
        problems = consistency_problems(table_items(dynamodb, TABLE_NAME))
        assert problems == [], (scenario.name, problems)
    assert injector.fired == runs  # every armed write was applied, then its answer lost
    # Where DynamoDB honours it, the token alone makes botocore's retry answer as the first attempt.
    assert injector.tokens and None not in injector.tokens and len(set(injector.tokens)) == len(injector.tokens)
    figures(f"{token}: applied-then-timeout at {sites} write sites of {len(SCENARIOS)} scenarios ({runs} runs): "
            f"{answered_500} answers 500, {len(wrong_answers)} other wrong answers, "
            f"{len(duplicates)} duplicated or missing writes")
    assert answered_500 == 0 and wrong_answers == [] and duplicates == [], \
        "\n".join(map(str, wrong_answers + duplicates))
