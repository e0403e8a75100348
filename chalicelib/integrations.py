"""PagerDuty events and Alertmanager/Grafana batches -> the API's own services calls; no store
path of their own. See docs/integrations.md."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from chalicelib import alertmanager, auth, pagerduty, payloads, services
from chalicelib.incidents import (
    OPEN_STATUSES,
    InvalidInput,
    PreconditionFailed,
    StaleAlarmEvent,
    Status,
    TransitionNotAllowed,
    Unavailable,
    etag,
)
from chalicelib.intake import Intake
from chalicelib.store import Store

SOURCE = "monitoring"
PAGERDUTY, ALERTMANAGER = "pagerduty", "alertmanager"  # the kinds of intake message
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]


# --- PagerDuty Events API v2 ---


def enqueue(intake: Intake, raw: bytes | None, content_type: str | None,
            integration_keys: list[str], max_bytes: int = payloads.MAX_BODY_BYTES) -> Answer:
    """PagerDuty's answer: 202 once the event is handed off (applied a moment later by
    apply_message), or 400 listing every problem; a 400 hands off nothing."""
    try:
        body = payloads.json_object(raw, content_type, max_bytes)
    except (InvalidInput, payloads.BodyTooLarge, payloads.NotJson) as error:
        return Answer(400, pagerduty.invalid([str(error)]))
    if not auth.is_valid_key(pagerduty.routing_key(body), integration_keys):
        # Never log the key itself.
        logger.warning("PagerDuty event refused: wrong or missing routing_key")
        return Answer(400, pagerduty.invalid(["'routing_key' is missing or is not a valid integration key"]))
    try:
        event = pagerduty.parse_event(body)
    except pagerduty.InvalidEvent as error:
        return Answer(400, pagerduty.invalid(error.errors))
    dedup_key = event.dedup_key or uuid.uuid4().hex  # as PagerDuty does, so the answer carries it
    unkeyed = {name: value for name, value in body.items() if name != "routing_key"}  # never stored
    intake.hand_off({"kind": PAGERDUTY, "dedup_key": dedup_key, "body": unkeyed}, group=dedup_key)
    logger.info("PagerDuty event accepted", extra={"event_action": event.action})
    return Answer(202, pagerduty.accepted(dedup_key))


def apply_event(store: Store, body: dict[str, Any], dedup_key: str) -> str:
    """An accepted event, applied by the intake consumer (it was valid when accepted)."""
    event = pagerduty.parse_event(body)
    key = pagerduty.incident_key(dedup_key)
    if event.action == "trigger":
        services.open_incident(store, description=event.summary, source=SOURCE, by=event.by,
                               dedup_key=key, severity=event.severity, labels=event.labels)
    else:
        target = Status.IN_PROGRESS if event.action == "acknowledge" else Status.RESOLVED
        move_open_incident(store, key, target, by=event.by)
    logger.info("PagerDuty event processed", extra={"event_action": event.action})
    return "applied"


def move_open_incident(store: Store, dedup_key: str, target: Status, *,
                       by: str) -> dict[str, Any] | None:
    """None if nothing is open; guarded by the version read, so an acknowledge never reopens."""
    for _ in range(services.MAX_ATTEMPTS):
        record = store.dedup_record(dedup_key)
        owner = record.incident_id if record is not None else None
        current = store.get_incident_item(owner) if owner is not None else None
        if current is None or current["status"] not in OPEN_STATUSES:
            return None
        try:
            return services.change_status(store, owner, target, by=by, if_match=etag(current))
        except (PreconditionFailed, TransitionNotAllowed):
            continue  # changed since our read
    raise Unavailable(f"the incident of {dedup_key!r} kept changing; try again")


# --- Alertmanager and Grafana webhooks ---


def accept_batch(intake: Intake, body: dict[str, Any], batch: alertmanager.Batch) -> dict[str, Any]:
    """The validated batch handed off whole: O(1) calls whatever it holds (Unavailable: 503)."""
    intake.hand_off({"kind": ALERTMANAGER, "body": body})
    logger.info("Alertmanager batch accepted", extra={"alerts": len(batch.alerts)})
    return {"status": "success", "accepted": len(batch.alerts)}


def apply_message(store: Store, message: dict[str, Any]) -> list[str]:
    """One handed-off request, applied by the intake consumer; a store failure propagates (the
    message is delivered again and the once-keys skip what was applied)."""
    if message.get("kind") == PAGERDUTY:
        return [apply_event(store, message["body"], message["dedup_key"])]
    if message.get("kind") == ALERTMANAGER:
        outcomes = ingest_batch(store, alertmanager.parse_batch(message["body"]))
        logger.info("Alertmanager batch applied",
                    extra={"alerts": len(outcomes), **{o: outcomes.count(o) for o in set(outcomes)}})
        return outcomes
    raise ValueError(f"not an intake message: kind {message.get('kind')!r}")


def ingest_batch(store: Store, batch: alertmanager.Batch) -> list[str]:
    """Per alert: applied, duplicate, stale or skipped. The batch's dedup and once-records are
    read together (one BatchGetItem per 100 keys); each change is today's one transaction."""
    dedup, once = store.records([a.dedup_key for a in batch.alerts], [a.once_key for a in batch.alerts])
    reads = _Prefetched(store, dedup, once)
    routes = services.routes_reader(store)  # read once for the batch, if any alert opens one
    outcomes = []
    for index, alert in enumerate(batch.alerts):
        reads.now_applying(alert)
        try:
            outcomes.append(ingest_alert(reads, alert, by=batch.by, routes=routes))
        except InvalidInput as error:  # a DynamoDB limit: a retry cannot fix it
            logger.error("alert skipped: %s", error, extra={"alert": index, "dedup_key": alert.dedup_key})
            outcomes.append("skipped")
    return outcomes


class _Prefetched:
    """The store, with the batch's dedup and once-records answered from the batch read until
    the alert that owns them writes: then (and on a retry after a lost race) they are read
    again, so a later alert of the same key in the batch sees what the earlier one wrote."""

    # Calls that change neither record (allocate_id writes only the id counter); any other write
    # may, so the current alert's records are read afresh after it.
    _KEEPING = frozenset({"get_incident", "get_incident_item", "history_upto", "history_page", "allocate_id",
                          "query_all"})

    def __init__(self, store: Store, dedup: dict[str, Any], once: dict[str, Any]) -> None:
        self._store, self._dedup, self._once = store, dedup, once
        self._current: tuple[str, str] | None = None

    def now_applying(self, alert: alertmanager.Alert) -> None:
        self._current = (alert.dedup_key, alert.once_key)

    def dedup_record(self, dedup_key: str) -> Any:
        return self._dedup[dedup_key] if dedup_key in self._dedup else self._store.dedup_record(dedup_key)

    def once_record(self, key: str) -> Any:
        return self._once[key] if key in self._once else self._store.once_record(key)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name in self._KEEPING or not callable(attribute):
            return attribute

        def writing(*args: Any, **kwargs: Any) -> Any:
            if self._current is not None:
                self._dedup.pop(self._current[0], None)
                self._once.pop(self._current[1], None)
            return attribute(*args, **kwargs)

        return writing


def ingest_alert(store: Store, alert: alertmanager.Alert, *, by: str,
                 routes: Callable[[], list[dict[str, Any]]] | None = None) -> str:
    once = services.OnceKey(alert.once_key)
    if store.once_record(once.key) is not None:  # a repeat: read with its batch, no replay
        return "duplicate"
    try:
        if alert.status == "firing":
            created = services.open_incident(
                store, description=alert.description, source=SOURCE, by=by,
                dedup_key=alert.dedup_key, once=once, alarm_at=alert.at, severity=alert.severity,
                labels=alert.labels, routes=routes,
            )
            return "duplicate" if created.replayed else "applied"
        services.resolve_for_alarm_event(store, alert.dedup_key, alert.at, by=by,
                                         note=alert.resolved_note, once=once)
        return "applied"
    except StaleAlarmEvent as stale:
        logger.info("alert ignored as stale: %s", stale, extra={"dedup_key": alert.dedup_key})
        return "stale"
