"""Use cases: what the API, the alarm handlers and the Telegram webhook ask of the service.

Each takes primitives plus the store, applies the rules of incidents.py and returns plain dicts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib import cursors, metrics
from chalicelib.incidents import (
    OPEN_STATUSES,
    IdempotencyKeyReused,
    IncidentNotFound,
    PreconditionFailed,
    Status,
    TransitionNotAllowed,
    Unavailable,
    clean_dedup_key,
    clean_description,
    clean_note,
    history_entry,
    new_incident,
    now_iso,
    parse_source,
    parse_status,
    statuses_leading_to,
    versions_matching,
)
from chalicelib.store import AlreadyDone, ConditionFailed, DedupKeyTaken, Once, Store

ONCE_TTL_SECONDS = 24 * 3600
# Each retry means another writer claimed the same dedup_key in between; a few settle any race.
MAX_CREATE_ATTEMPTS = 5


@dataclass(frozen=True)
class OnceKey:
    """Makes a create or change happen once: an Idempotency-Key or an event's id, and what was asked."""

    key: str
    fingerprint: str = ""


@dataclass(frozen=True)
class Created:
    incident: dict[str, Any]
    status_code: int  # 201 a new incident, 200 an open one absorbed the report
    replayed: bool = False


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class _Retry(Exception):
    pass


def open_incident(
    store: Store,
    *,
    description: Any,
    source: Any,
    by: str,
    dedup_key: Any = None,
    once: OnceKey | None = None,
) -> Created:
    description = clean_description(description)
    source = parse_source(source)
    dedup_key = clean_dedup_key(dedup_key)
    if once is not None and (record := store.once_record(once.key)) is not None:
        return _replayed(record, once)
    for _ in range(MAX_CREATE_ATTEMPTS):
        try:
            return _open_or_absorb(store, description, source, by, dedup_key, once)
        except (DedupKeyTaken, _Retry):
            continue
        except AlreadyDone as done:
            return _replayed(done.record, once)
    raise Unavailable(f"dedup_key {dedup_key!r} kept changing hands; try again")


def _open_or_absorb(store, description, source, by, dedup_key, once) -> Created:
    previous_owner = None
    if dedup_key is not None and (owner := store.dedup_owner(dedup_key)) is not None:
        absorbed = _add_occurrence(store, owner, dedup_key, once)
        if absorbed is not None:
            metrics.occurrence_absorbed(absorbed)  # observability hook
            return Created(absorbed, 200)
        previous_owner = owner  # resolved or closed: the key is free again
    incident = new_incident(store.allocate_id(), description, source, dedup_key, by, now_iso())
    store.insert_incident(
        incident, replaces_dedup_owner=previous_owner, once=_once(once, 201, incident)
    )
    metrics.incident_opened(incident)  # observability hook
    return Created(incident, 201)


def _add_occurrence(store, owner: int, dedup_key: str, once: OnceKey | None) -> dict | None:
    at = now_iso()
    if once is None:
        return store.add_occurrence(owner, dedup_key, at)
    # The replay must answer with the body of this very response, so compute it before writing.
    current = store.get_incident(owner)
    if current is None or current["status"] not in OPEN_STATUSES:
        return None
    absorbed = {**current, "occurrences": current["occurrences"] + 1, "updated_at": at,
                "version": current["version"] + 1}
    result = store.add_occurrence(
        owner, dedup_key, at, once=_once(once, 200, absorbed), expected_version=current["version"]
    )
    if result is None:
        raise _Retry()
    return absorbed


def _once(once: OnceKey | None, status_code: int, incident: dict[str, Any] | None) -> Once | None:
    if once is None:
        return None
    return Once(once.key, once.fingerprint, ONCE_TTL_SECONDS, status_code, incident)


def _replayed(record: dict[str, Any], once: OnceKey) -> Created:
    if record["fingerprint"] != once.fingerprint:
        raise IdempotencyKeyReused()
    metrics.replayed()  # observability hook
    return Created(record["body"], record["status_code"], replayed=True)


def get_incident(store: Store, incident_id: int) -> dict[str, Any]:
    incident = store.get_incident(incident_id)
    if incident is None:
        raise IncidentNotFound(incident_id)
    return incident


def change_status(
    store: Store,
    incident_id: int,
    status: Any,
    *,
    by: str,
    note: Any = None,
    if_match: str | None = None,
    once: OnceKey | None = None,
) -> dict[str, Any]:
    """One conditional write; when it does not apply, the item as it was tells why."""
    target = parse_status(status)
    note = clean_note(note)
    expected = versions_matching(if_match, incident_id) if if_match is not None else None
    from_statuses = statuses_leading_to(target)
    if not from_statuses:  # nothing may move back to `new`
        return _explain_refusal(incident_id, store.get_incident(incident_id), target, expected)
    entry = history_entry(now_iso(), target, note, by)
    try:
        changed = store.set_status(
            incident_id, target, entry,
            from_statuses=[str(s) for s in from_statuses],
            expected_versions=expected,
            once=_once(once, 200, None),
        )
    except ConditionFailed as failed:
        return _explain_refusal(incident_id, failed.item, target, expected)
    except AlreadyDone:
        metrics.replayed()  # observability hook
        return get_incident(store, incident_id)
    metrics.status_changed(changed, by)  # observability hook
    return changed


def _explain_refusal(
    incident_id: int, current: dict | None, target: Status, expected: list[int] | None
) -> dict[str, Any]:
    if current is None:
        raise IncidentNotFound(incident_id)
    if expected is not None and current["version"] not in expected:
        raise PreconditionFailed(current)
    if current["status"] == target:
        return current  # same status: a no-op, nothing written
    raise TransitionNotAllowed(incident_id, current["status"], target, current)


def list_incidents(
    store: Store,
    *,
    status: Status | None = None,
    source: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page:
    """Newest first. Reads one item past the page to know whether another page follows."""
    filters = {"status": status and str(status), "source": source and str(source)}
    before = cursors.decode(cursor, filters) if cursor is not None else None
    statuses = [str(status)] if status else [str(s) for s in Status]
    found = store.newest(statuses, filters["source"], before, limit + 1)
    page = found[:limit]
    next_cursor = cursors.encode(page[-1]["created_key"], filters) if len(found) > limit else None
    return Page(page, next_cursor)


def is_healthy(store: Store) -> bool:
    try:
        store.ping()
    except Unavailable:
        return False
    return True


# --- telegram ---


def list_open(store: Store, limit: int) -> list[dict[str, Any]]:
    """The newest open (new, in_progress) incidents, newest first."""
    return store.newest([str(s) for s in OPEN_STATUSES], None, None, limit)


# --- alarm ingestion ---

from chalicelib.alarms import AlarmChange, PlainMessage, recovery_note  # noqa: E402

ALARM_SOURCE = "monitoring"
ALARM_BY = "cloudwatch"


def ingest_alarm(store: Store, change: AlarmChange, event_key: str) -> dict[str, Any] | None:
    """ALARM opens the alarm's incident (or counts one more occurrence on the open one), OK resolves
    it, INSUFFICIENT_DATA changes nothing. Returns the alarm's incident; None when there is none
    to change.

    `event_key` (the SNS MessageId or EventBridge event id) is stored in the same transaction as the
    change, so a redelivery of that event, even a concurrent one, changes nothing."""
    once = OnceKey(event_key)  # constant fingerprint: a redelivery replays instead of being refused
    if change.state == "ALARM":
        return open_incident(
            store, description=change.description, source=ALARM_SOURCE, by=ALARM_BY,
            dedup_key=change.dedup_key, once=once,
        ).incident
    if change.state == "OK":
        return _resolve_for_alarm(store, change, once)
    return None


def _resolve_for_alarm(store: Store, change: AlarmChange, once: OnceKey) -> dict[str, Any] | None:
    owner = store.dedup_owner(change.dedup_key)
    current = store.get_incident(owner) if owner is not None else None
    if current is None or current["status"] not in OPEN_STATUSES:
        return None  # never opened, already resolved, or closed by an operator
    try:
        resolved = change_status(
            store, owner, Status.RESOLVED, by=ALARM_BY, note=recovery_note(change), once=once
        )
    except TransitionNotAllowed:
        return None  # an operator closed it between our read and our write
    return resolved


@metrics.alarm_record  # observability hook: one summary line and AlarmEvents per record
def ingest_cloudwatch(
    store: Store, parsed: AlarmChange | PlainMessage, event_key: str
) -> dict[str, Any] | None:
    if isinstance(parsed, AlarmChange):
        return ingest_alarm(store, parsed, event_key)
    return ingest_plain_message(store, parsed, event_key)


def ingest_plain_message(store: Store, message: PlainMessage, event_key: str) -> dict[str, Any]:
    """Anything else sent to the alarm topic becomes an incident, so nothing sent there is lost."""
    return open_incident(
        store, description=message.description, source=ALARM_SOURCE, by=ALARM_BY,
        once=OnceKey(event_key),
    ).incident
