"""PagerDuty events and Alertmanager/Grafana batches -> the API's own services calls; no store
path of their own. See docs/integrations.md."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

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
from chalicelib.store import Store

SOURCE = "monitoring"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]


# --- PagerDuty Events API v2 ---


def enqueue(store: Store, raw: bytes | None, content_type: str | None,
            integration_keys: list[str], max_bytes: int = payloads.MAX_BODY_BYTES) -> Answer:
    """PagerDuty's answer: 202, or 400 listing every problem; a 400 stores nothing."""
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
    dedup_key = event.dedup_key or uuid.uuid4().hex  # as PagerDuty does
    key = pagerduty.incident_key(dedup_key)
    if event.action == "trigger":
        services.open_incident(store, description=event.summary, source=SOURCE, by=event.by,
                               dedup_key=key, severity=event.severity)
    else:
        target = Status.IN_PROGRESS if event.action == "acknowledge" else Status.RESOLVED
        move_open_incident(store, key, target, by=event.by)
    logger.info("PagerDuty event processed", extra={"event_action": event.action})
    return Answer(202, pagerduty.accepted(dedup_key))


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


@dataclass(frozen=True)
class BatchResult:
    outcomes: list[str]  # per alert: applied, duplicate, stale, skipped


def ingest_batch(store: Store, batch: alertmanager.Batch) -> BatchResult:
    """A store failure propagates: 503, and the resend skips what was stored (once-keys)."""
    outcomes = []
    for index, alert in enumerate(batch.alerts):
        try:
            outcomes.append(ingest_alert(store, alert, by=batch.by))
        except InvalidInput as error:  # a DynamoDB limit: a retry cannot fix it
            logger.error("alert skipped: %s", error, extra={"alert": index, "dedup_key": alert.dedup_key})
            outcomes.append("skipped")
    return BatchResult(outcomes)


def ingest_alert(store: Store, alert: alertmanager.Alert, *, by: str) -> str:
    once = services.OnceKey(alert.once_key)
    if store.once_record(once.key) is not None:  # a repeat costs one GetItem, no replay
        return "duplicate"
    try:
        if alert.status == "firing":
            created = services.open_incident(
                store, description=alert.description, source=SOURCE, by=by,
                dedup_key=alert.dedup_key, once=once, alarm_at=alert.at, severity=alert.severity,
            )
            return "duplicate" if created.replayed else "applied"
        services.resolve_for_alarm_event(store, alert.dedup_key, alert.at, by=by,
                                         note=alert.resolved_note, once=once)
        return "applied"
    except StaleAlarmEvent as stale:
        logger.info("alert ignored as stale: %s", stale, extra={"dedup_key": alert.dedup_key})
        return "stale"
