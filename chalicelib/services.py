"""Use cases: primitives and the store in, plain dicts out. Design: docs/table-design.md."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from chalicelib import cursors, metrics
from chalicelib.incidents import (
    HISTORY_IN_RESPONSE,
    OPEN_STATUSES,
    DedupKeyHeld,
    IdempotencyKeyReused,
    IncidentNotFound,
    InvalidInput,
    PreconditionFailed,
    Severity,
    StaleAlarmEvent,
    Status,
    TransitionNotAllowed,
    Unavailable,
    clean_dedup_key,
    clean_description,
    clean_labels,
    clean_note,
    history_entry,
    new_incident,
    now_iso,
    parse_severity,
    parse_source,
    parse_status,
    raises_severity,
    severities_below,
    statuses_leading_to,
    versions_matching,
)
from chalicelib.store import (
    AlarmMark,
    AlreadyDone,
    ConditionFailed,
    DedupKeyTaken,
    Once,
    StaleEvent,
    Store,
    created_key,
)

if TYPE_CHECKING:
    from chalicelib.alarms import AlarmChange, PlainMessage

ONCE_TTL_SECONDS = 24 * 3600
# A retry means another writer won a race on the incident or dedup_key; a few settle any.
MAX_ATTEMPTS = 5

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnceKey:
    """An Idempotency-Key or event id, and a fingerprint of what was asked."""

    key: str
    fingerprint: str = ""


@dataclass(frozen=True)
class Created:
    incident: dict[str, Any]
    status_code: int  # 201 new, 200 absorbed by an open one
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
    alarm_at: str | None = None,
    severity: Any = None,
    team: str | None = None,
    labels: Any = None,
    routes: Callable[[], list[dict[str, Any]]] | None = None,
) -> Created:
    """New incident, or one more occurrence of the open one (severity only ever raised);
    StaleAlarmEvent if `alarm_at` is not newer than the key's last applied event. A new incident
    of `team` opens assigned to its person on call, its escalation at rule 1 (docs/oncall.md);
    with no `team`, the routes give it one (docs/routing.md), read by `routes` (default: from the
    store, only if a new incident opens)."""
    description = clean_description(description)
    source = parse_source(source)
    dedup_key = clean_dedup_key(dedup_key)
    severity = parse_severity(severity)
    labels = clean_labels(labels)
    routes = routes or routes_reader(store)
    if once is not None and (record := store.once_record(once.key)) is not None:
        return _replayed(store, record, once)
    alarm = AlarmMark(dedup_key, alarm_at) if alarm_at and dedup_key else None
    for _ in range(MAX_ATTEMPTS):
        try:
            return _open_or_absorb(store, description, source, by, dedup_key, once, alarm, severity,
                                   team, labels, routes)
        except (DedupKeyTaken, _Retry):
            continue
        except AlreadyDone as done:
            return _replayed(store, done.record, once)
        except StaleEvent as stale:
            raise StaleAlarmEvent(str(stale)) from None
    raise Unavailable(f"dedup_key {dedup_key!r} kept changing hands; try again")


def _open_or_absorb(store, description, source, by, dedup_key, once, alarm, severity,
                    team, labels, routes) -> Created:
    previous_owner = None
    if dedup_key is not None and (record := store.dedup_record(dedup_key)) is not None:
        if alarm is not None and record.alarm_at is not None and record.alarm_at >= alarm.at:
            raise StaleEvent(f"alarm event at {alarm.at} is not newer than {record.alarm_at}")
        if record.incident_id is not None:
            absorbed = _add_occurrence(store, record.incident_id, dedup_key, once, alarm, severity)
            if absorbed is not None:
                metrics.occurrence_absorbed(absorbed)
                return Created(absorbed, 200)
            previous_owner = record.incident_id  # not open: the key is free
    incident = new_incident(store.allocate_id(), description, source, dedup_key, by, now_iso(),
                            severity, labels)
    paged = _join_team(store, incident, team) if team is not None else _route(store, incident, routes)
    store.insert_incident(
        incident, replaces_dedup_owner=previous_owner, once=_once(once, 201, incident), alarm=alarm,
        paged=paged,
    )
    metrics.incident_opened(incident)
    return Created(incident, 201)


def _join_team(store: Store, incident: dict[str, Any], team: str, loaded: Any = None) -> list[str] | None:
    """The team's person on call takes it and rule 1 is paged; a team that is gone leaves only
    its name (as a deleted team's incidents keep theirs)."""
    from chalicelib.oncall import escalation

    incident["team"] = team
    loaded = loaded or escalation.load_team(store, team, _parse_at(incident["created_at"]))
    if loaded is None:
        return None
    opening = escalation.opening(loaded, _parse_at(incident["created_at"]))
    incident["assignee"], incident["escalation"] = opening.assignee, opening.escalation
    return opening.paged


def routes_reader(store: Store) -> Callable[[], list[dict[str, Any]]]:
    """The routes, read from the store on the first call and then kept: for one create, or one
    integration batch. Never longer: a PUT /routes applies to the very next incident."""
    from chalicelib.oncall.store import RouteStore

    return functools.cache(RouteStore(store).routes)


def _route(store: Store, incident: dict[str, Any], routes: Callable[[], list[dict[str, Any]]]
           ) -> list[str] | None:
    """The first matching route whose team still exists gives the new incident its team; a route
    whose team was deleted since it was set is passed over. None matches: no team."""
    from chalicelib.oncall import routing

    for team in routing.teams_for(routes(), incident):
        from chalicelib.oncall import escalation  # only once a route matches (docs/cold-start.md)

        loaded = escalation.load_team(store, team, _parse_at(incident["created_at"]))
        if loaded is not None:
            return _join_team(store, incident, team, loaded)
        logger.warning("route passed over: its team %r no longer exists", team,
                       extra={"team": team, "incident_id": incident["id"]})
    return None


def _parse_at(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def _add_occurrence(store, owner: int, dedup_key: str, once: OnceKey | None,
                    alarm: AlarmMark | None, severity: Severity | None = None) -> dict | None:
    at = now_iso()
    if once is None:
        # The raise is refused if not open or already as high; then a plain add.
        raised = severity is not None and store.add_occurrence(
            owner, dedup_key, at, alarm=alarm, severity=(str(severity), severities_below(severity)))
        if not raised and not store.add_occurrence(owner, dedup_key, at, alarm=alarm):
            return None
        return get_incident(store, owner)
    # The once-record holds this very response, so it is built before the write.
    current = store.get_incident(owner, HISTORY_IN_RESPONSE)
    if current is None or current["status"] not in OPEN_STATUSES:
        return None
    absorbed = {**current, "occurrences": current["occurrences"] + 1, "updated_at": at,
                "version": current["version"] + 1}
    raise_to = None
    if raises_severity(severity, current.get("severity")):
        absorbed["severity"] = str(severity)
        raise_to = (str(severity), severities_below(severity))
    written = store.add_occurrence(
        owner, dedup_key, at, once=_once(once, 200, absorbed),
        expected_version=current["version"], alarm=alarm, severity=raise_to,
    )
    if not written:
        raise _Retry()
    return absorbed


def _once(once: OnceKey | None, status_code: int, incident: dict[str, Any] | None) -> Once | None:
    """Stored without history: entries up to `history_upto` never change; a replay rereads them."""
    if once is None:
        return None
    body = None
    if incident is not None:
        body = {k: v for k, v in incident.items() if k != "history"}
        body["history_upto"] = incident["history"][-1]["at"]
    return Once(once.key, once.fingerprint, ONCE_TTL_SECONDS, status_code, body)


def _replayed(store: Store, record: dict[str, Any], once: OnceKey) -> Created:
    if record["fingerprint"] != once.fingerprint:
        raise IdempotencyKeyReused()
    metrics.replayed()
    incident = record["body"]
    if incident is not None and "history_upto" in incident:
        upto = incident.pop("history_upto")
        incident["history"] = store.history_upto(incident["id"], upto, HISTORY_IN_RESPONSE)
    return Created(incident, record["status_code"], replayed=True)


def get_incident(store: Store, incident_id: int) -> dict[str, Any]:
    incident = store.get_incident(incident_id, HISTORY_IN_RESPONSE)
    if incident is None:
        raise IncidentNotFound(incident_id)
    return incident


def incident_history(store: Store, incident_id: int, *, limit: int, cursor: str | None) -> Page:
    filters = {"incident": incident_id}
    after = cursors.decode(cursor, filters, cursors.HISTORY_POSITION) if cursor is not None else None
    entries = store.history_page(incident_id, after, limit + 1)
    if not entries and after is None:  # every incident has its creation entry
        raise IncidentNotFound(incident_id)
    page = entries[:limit]
    next_cursor = cursors.encode(page[-1]["key"], filters) if len(entries) > limit else None
    return Page([{k: v for k, v in entry.items() if k != "key"} for entry in page], next_cursor)


def change_status(
    store: Store,
    incident_id: int,
    status: Any,
    *,
    by: str,
    note: Any = None,
    if_match: str | None = None,
    once: OnceKey | None = None,
    alarm: AlarmMark | None = None,
    assignee: str | None = None,
) -> dict[str, Any]:
    """One conditional write; when it does not apply, the incident as it was tells why.
    `assignee`: who takes it (`take`), set in the same write."""
    return _change_status(store, incident_id, status, by=by, note=note, if_match=if_match, once=once,
                          alarm=alarm, assignee=assignee).incident


@dataclass(frozen=True)
class StatusChange:
    incident: dict[str, Any]
    applied: bool  # False: it already had that status, nothing was written
    replayed: bool = False  # the once-key's first delivery applied it


def change_status_from(store: Store, incident_id: int, status: Any, *, shown: Status, by: str,
                       once: OnceKey | None = None, assignee: str | None = None) -> StatusChange:
    """change_status only while the incident still has the status `shown` (a pressed button's
    message): from any other, TransitionNotAllowed, even where change_status would move it."""
    return _change_status(store, incident_id, status, by=by, once=once, assignee=assignee,
                          only_from=Status(shown))


def _change_status(
    store: Store, incident_id: int, status: Any, *, by: str, note: Any = None,
    if_match: str | None = None, once: OnceKey | None = None, alarm: AlarmMark | None = None,
    assignee: str | None = None, only_from: Status | None = None,
) -> StatusChange:
    target = parse_status(status)
    note = clean_note(note)
    expected = versions_matching(if_match, incident_id) if if_match is not None else None
    from_statuses = [str(s) for s in statuses_leading_to(target) if only_from in (None, s)]
    at = now_iso()
    for _ in range(MAX_ATTEMPTS):
        entry = history_entry(at, target, note, by)
        try:
            if not from_statuses:  # nothing leads to `new`
                raise ConditionFailed(store.get_incident_item(incident_id))
            store.set_status(
                incident_id, entry, from_statuses=from_statuses, expected_versions=expected,
                refuse_if_key_taken=target == Status.IN_PROGRESS, once=_once(once, 200, None),
                alarm=alarm, assignee=assignee,
            )
            return StatusChange(_changed(store, incident_id, by, entry), applied=True)
        except ConditionFailed as failed:
            current = _explain_refusal(incident_id, failed.item, target, expected, from_statuses)
            if current["status"] == target:  # a no-op
                return StatusChange(get_incident(store, incident_id), applied=False)
            if current.get("dedup_successor") is not None and target == Status.IN_PROGRESS:
                if _reopen_taking_key_back(store, current, entry, expected, once, assignee):
                    return StatusChange(_changed(store, incident_id, by, entry), applied=True)
                continue
            at = max(now_iso(), _just_after(current["last_entry_at"]))  # our clock is behind
        except AlreadyDone as done:  # the once-key's first delivery applied it
            if once is not None and done.record["fingerprint"] != once.fingerprint:
                raise IdempotencyKeyReused() from None
            metrics.replayed()
            return StatusChange(get_incident(store, incident_id), applied=True, replayed=True)
        except StaleEvent as stale:
            raise StaleAlarmEvent(str(stale)) from None
    raise Unavailable(f"incident #{incident_id} kept changing; try again")


UNSET: Any = object()


def patch_incident(store: Store, incident_id: int, fields: dict[str, Any], *, by: str,
                   if_match: str | None = None) -> dict[str, Any]:
    """PATCH: the status change first, then the team and assignee (each its own history entry;
    the note and If-Match go with the first)."""
    if "team" in fields or "assignee" in fields:
        # Checked before anything is written, so a bad team or assignee changes nothing.
        _clean_team(fields.get("team"))
        _clean_assignee(fields.get("assignee"))
    first = True
    incident = None
    if "status" in fields:
        incident = change_status(store, incident_id, fields["status"], by=by, note=fields.get("note"),
                                 if_match=if_match)
        first = False
    if "team" in fields or "assignee" in fields:
        incident = reassign(store, incident_id, team=fields.get("team", UNSET),
                            assignee=fields.get("assignee", UNSET), by=by,
                            note=fields.get("note") if first else None,
                            if_match=if_match if first else None)
    assert incident is not None
    return incident


def reassign(store: Store, incident_id: int, *, team: Any = UNSET, assignee: Any = UNSET, by: str,
             note: Any = None, if_match: str | None = None) -> dict[str, Any]:
    """A new team for a `new` incident starts that team's escalation from rule 1 (and, unless an
    assignee is given, assigns its person on call); any other team change ends the escalation."""
    from chalicelib.oncall import escalation

    team, assignee = (_clean_team(team) if team is not UNSET else UNSET,
                      _clean_assignee(assignee) if assignee is not UNSET else UNSET)
    note = clean_note(note)
    expected = versions_matching(if_match, incident_id) if if_match is not None else None
    now = datetime.now(timezone.utc)
    loaded = escalation.load_team(store, team, now) if isinstance(team, str) else None
    if isinstance(team, str) and loaded is None:
        raise InvalidInput(f"team {team!r} does not exist; create it with PUT /teams/{team}, "
                           "or give an existing team's name (GET /teams lists them)")
    at = now_iso()
    for _ in range(MAX_ATTEMPTS):
        current = store.get_incident_item(incident_id)
        if current is None:
            raise IncidentNotFound(incident_id)
        if expected is not None and current["version"] not in expected:
            raise PreconditionFailed(current)
        new_team = current["team"] if team is UNSET else team
        new_assignee = current["assignee"] if assignee is UNSET else assignee
        running, paged = current["escalation"], None
        if new_team != current["team"]:
            running = None
            if loaded is not None and current["status"] == Status.NEW:
                opening = escalation.opening(loaded, now)
                running, paged = opening.escalation, opening.paged
                if assignee is UNSET:
                    new_assignee = opening.assignee
        if (new_team, new_assignee) == (current["team"], current["assignee"]):
            return get_incident(store, incident_id)  # nothing changes: a no-op, as for a status
        changes = []
        if new_team != current["team"]:
            changes.append(f"team → {new_team or 'none'}")
        if new_assignee != current["assignee"]:
            changes.append(f"assignee → {'@' + new_assignee if new_assignee else 'none'}")
        text = "; ".join(changes) + (f": {note}" if note else "")
        at = max(at, _just_after(current["last_entry_at"]))
        entry = history_entry(at, Status(current["status"]), text, by)
        try:
            store.reassign(incident_id, entry, team=new_team, assignee=new_assignee, escalation=running,
                           created_key=created_key(current), expected_versions=expected, paged=paged)
        except ConditionFailed:
            at = now_iso()
            continue
        return get_incident(store, incident_id)
    raise Unavailable(f"incident #{incident_id} kept changing; try again")


def _clean_team(value: Any) -> str | None:
    from chalicelib.oncall.teams import team_name

    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"team must be a team's name or null; got {type(value).__name__}")
    try:
        return team_name(value)
    except InvalidInput as error:
        raise InvalidInput(str(error).replace("team name", "team", 1)) from None


def _clean_assignee(value: Any) -> str | None:
    from chalicelib.oncall.teams import username

    return None if value is None else username(value, "assignee")


def _changed(store: Store, incident_id: int, by: str, entry: dict[str, Any]) -> dict[str, Any]:
    changed = get_incident(store, incident_id)
    metrics.status_changed(changed, by, at=entry["at"])
    return changed


def _explain_refusal(
    incident_id: int, current: dict | None, target: Status, expected: list[int] | None,
    from_statuses: list[str],
) -> dict[str, Any]:
    """Raises what the refusal means; returns the incident if a retry (or no-op) applies."""
    if current is None:
        raise IncidentNotFound(incident_id)
    if expected is not None and current["version"] not in expected:
        raise PreconditionFailed(current)
    if current["status"] != target and current["status"] not in from_statuses:
        raise TransitionNotAllowed(incident_id, current["status"], target, current)
    return current


def _reopen_taking_key_back(store, current, entry, expected, once, assignee=None) -> bool:
    """DedupKeyHeld while the key's holder is open, else takes the key back; False: retry."""
    record = store.dedup_record(current["dedup_key"])
    holder = record.incident_id if record is not None else None
    if holder is not None and holder != current["id"]:
        holding = store.get_incident_item(holder)
        if holding is not None and holding["status"] in OPEN_STATUSES:
            raise DedupKeyHeld(current["id"], current["dedup_key"], holder, current)
    try:
        store.reopen_taking_key_over(
            current["id"], entry, dedup_key=current["dedup_key"],
            successor=current["dedup_successor"], holder=holder, expected_versions=expected,
            once=_once(once, 200, None), assignee=assignee,
        )
    except (DedupKeyTaken, ConditionFailed):
        return False
    return True


def _just_after(at: str) -> str:
    moment = datetime.fromisoformat(at.replace("Z", "+00:00")) + timedelta(milliseconds=1)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def list_incidents(
    store: Store,
    *,
    status: Status | None = None,
    source: str | None = None,
    team: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page:
    filters = {"status": status and str(status), "source": source and str(source)}
    if team is not None:  # only then: cursors issued before the team filter stay valid
        filters["team"] = team
    before = cursors.decode(cursor, filters, cursors.LIST_POSITION) if cursor is not None else None
    statuses = [str(status)] if status else None
    found = store.newest(statuses=statuses, source=filters["source"], team=team, before_key=before,
                         count=limit + 1)
    page = found[:limit]
    next_cursor = cursors.encode(created_key(page[-1]), filters) if len(found) > limit else None
    return Page(page, next_cursor)


def is_healthy(store: Store) -> bool:
    try:
        store.ping()
    except Unavailable:
        return False
    return True


# --- telegram ---


def list_open(store: Store, limit: int) -> list[dict[str, Any]]:
    return store.newest(statuses=[str(s) for s in OPEN_STATUSES], source=None, before_key=None,
                        count=limit)


# --- alarm ingestion ---

# chalicelib.alarms is imported on use, so an API cold start skips it (docs/cold-start.md).

ALARM_SOURCE = "monitoring"
ALARM_BY = "cloudwatch"


@dataclass(frozen=True)
class Ingested:
    """`outcome`: applied (even if nothing changed), duplicate (a redelivery) or stale."""

    outcome: str
    incident: dict[str, Any] | None = None


def ingest_alarm(store: Store, change: AlarmChange, event_key: str) -> Ingested:
    """Applies an alarm state change once per `event_key`, if newer (docs/alarms.md)."""
    once = OnceKey(event_key)  # no fingerprint: a redelivery replays, never a 422
    if (record := store.once_record(once.key)) is not None:
        return Ingested("duplicate", record["body"])
    try:
        if change.state == "ALARM":
            created = open_incident(
                store, description=change.description, source=ALARM_SOURCE, by=ALARM_BY,
                dedup_key=change.dedup_key, once=once, alarm_at=change.changed_at or now_iso(),
            )
            return Ingested("duplicate" if created.replayed else "applied", created.incident)
        if change.state == "OK":
            from chalicelib.alarms import recovery_note

            resolved = resolve_for_alarm_event(
                store, change.dedup_key, change.changed_at or now_iso(), by=ALARM_BY,
                note=recovery_note(change), once=once,
            )
            return Ingested("applied", resolved)
    except StaleAlarmEvent as stale:
        logger.info("alarm event ignored as stale: %s", stale,
                    extra={"alarm": change.alarm_name, "state": change.state})
        return Ingested("stale")
    return Ingested("applied")


def resolve_for_alarm_event(store: Store, dedup_key: str, at: str, *, by: str, note: str,
                            once: OnceKey) -> dict[str, Any] | None:
    """Resolves the key's open incident with the event at `at`; none open: only records `at`.
    StaleAlarmEvent if `at` is not newer than the key's last applied event."""
    mark = AlarmMark(dedup_key, at)
    for _ in range(MAX_ATTEMPTS):
        record = store.dedup_record(dedup_key)
        if record is not None and record.alarm_at is not None and record.alarm_at >= at:
            raise StaleAlarmEvent(f"alarm event at {at} is not newer than {record.alarm_at}")
        owner = record.incident_id if record is not None else None
        current = store.get_incident_item(owner) if owner is not None else None
        try:
            if current is None or current["status"] not in OPEN_STATUSES:
                store.mark_alarm(mark, owner=owner)
                return None
            return change_status(store, owner, Status.RESOLVED, by=by, note=note, once=once, alarm=mark)
        except (TransitionNotAllowed, DedupKeyTaken):
            continue  # closed, or the key moved, since our read
        except StaleEvent as stale:
            raise StaleAlarmEvent(str(stale)) from None
    raise Unavailable(f"the incident of {dedup_key!r} kept changing; will be retried")


@metrics.alarm_record
def ingest_cloudwatch(store: Store, parsed: AlarmChange | PlainMessage, event_key: str) -> Ingested:
    from chalicelib.alarms import AlarmChange

    if isinstance(parsed, AlarmChange):
        return ingest_alarm(store, parsed, event_key)
    return ingest_plain_message(store, parsed, event_key)


def ingest_plain_message(store: Store, message: PlainMessage, event_key: str) -> Ingested:
    created = open_incident(
        store, description=message.description, source=ALARM_SOURCE, by=ALARM_BY,
        once=OnceKey(event_key),
    )
    return Ingested("duplicate" if created.replayed else "applied", created.incident)


# --- notes ---


def add_note(
    store: Store,
    incident_id: int,
    note: Any,
    *,
    by: str,
    if_match: str | None = None,
    once: OnceKey | None = None,
) -> dict[str, Any]:
    """An entry with the status read, conditional on it (docs/board-and-stats.md)."""
    text = clean_note(note)
    if text is None:
        raise InvalidInput("note must not be empty (1–1000 characters after trimming)")
    expected = versions_matching(if_match, incident_id) if if_match is not None else None
    current = store.get_incident_item(incident_id)
    at = now_iso()
    for _ in range(MAX_ATTEMPTS):
        if current is None:
            raise IncidentNotFound(incident_id)
        if expected is not None and current["version"] not in expected:
            raise PreconditionFailed(current)
        at = max(at, _just_after(current["last_entry_at"]))
        entry = history_entry(at, Status(current["status"]), text, by)
        try:
            store.add_note(incident_id, entry, expected_versions=expected, once=_once(once, 201, None))
            return get_incident(store, incident_id)
        except ConditionFailed as failed:
            current = failed.item
            at = now_iso()
        except AlreadyDone:
            return get_incident(store, incident_id)
    raise Unavailable(f"incident #{incident_id} kept changing; try again")


# --- stats ---


def incident_stats(store: Store, since: datetime) -> dict[str, Any]:
    from chalicelib import stats, store_stats

    boundary = stats.parse_time(stats.iso(since))  # milliseconds, like created_at
    return stats.compute(store_stats.open_incidents(store),
                         store_stats.created_since(store, stats.iso(boundary)), boundary)
