"""The incident's rules: statuses, transitions, validation, domain errors; no HTTP, no DynamoDB."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

MAX_DESCRIPTION = 4000
MAX_NOTE = 1000
MAX_DEDUP_KEY = 256
HISTORY_IN_RESPONSE = 100
MAX_LABELS = 16
MAX_LABEL_KEY = 64
MAX_LABEL_VALUE = 256
LABELS_RULE = (f"an object of at most {MAX_LABELS} pairs of strings: keys 1–{MAX_LABEL_KEY} characters, "
               f"values up to {MAX_LABEL_VALUE}")


class Status(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Source(StrEnum):
    OPERATOR = "operator"
    MONITORING = "monitoring"
    PARTNER = "partner"


TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.NEW: (Status.IN_PROGRESS, Status.RESOLVED, Status.CLOSED),
    Status.IN_PROGRESS: (Status.RESOLVED, Status.CLOSED),
    Status.RESOLVED: (Status.IN_PROGRESS, Status.CLOSED),
    Status.CLOSED: (),
}
OPEN_STATUSES = (Status.NEW, Status.IN_PROGRESS)


class Severity(StrEnum):
    """PagerDuty's four, lowest first."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


SEVERITY_ORDER = tuple(Severity)


class IncidentError(Exception):
    """Base of every rule the domain enforces."""


class InvalidInput(IncidentError):
    """The message says what is allowed."""


class IncidentNotFound(IncidentError):
    def __init__(self, incident_id: int) -> None:
        super().__init__(f"no incident #{incident_id}")
        self.incident_id = incident_id


class TransitionNotAllowed(IncidentError):
    def __init__(
        self, incident_id: int, current: str, target: str, incident: dict[str, Any] | None = None
    ) -> None:
        allowed = allowed_targets(Status(current))
        allowed_text = ", ".join(allowed) if allowed else "none, it is final"
        super().__init__(
            f"incident #{incident_id} is {current}; it cannot move to {target}. "
            f"Allowed from {current}: {allowed_text}"
        )
        self.incident_id = incident_id
        self.current = current
        self.target = target
        self.allowed = allowed
        self.incident = incident


class PreconditionFailed(IncidentError):
    def __init__(self, incident: dict[str, Any]) -> None:
        super().__init__(
            f"If-Match does not match incident #{incident['id']}: its current ETag is {etag(incident)}"
        )
        self.incident = incident


class IdempotencyKeyReused(IncidentError):
    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different body; "
            "repeat the original body or use a new key"
        )


class DedupKeyHeld(IncidentError):
    def __init__(self, incident_id: int, dedup_key: str, holder: int,
                 incident: dict[str, Any] | None = None) -> None:
        super().__init__(
            f"incident #{incident_id} cannot be reopened: its dedup_key {dedup_key!r} is held by "
            f"open incident #{holder}; work on #{holder} instead, or resolve it first"
        )
        self.incident_id = incident_id
        self.holder = holder
        self.incident = incident


class LimitExceeded(InvalidInput):
    """Past one of DynamoDB's limits; the message names it."""


class StaleAlarmEvent(IncidentError):
    """Not newer than the alarm's last applied event: changes nothing."""


class Unavailable(IncidentError):
    """The store is throttled past retries or unreachable."""


def allowed_targets(current: Status) -> list[str]:
    return [str(s) for s in TRANSITIONS[current]]


def statuses_leading_to(target: Status) -> list[Status]:
    return [s for s, targets in TRANSITIONS.items() if target in targets]


def parse_status(value: Any, field: str = "status") -> Status:
    return Status(_enum_value(value, field, Status))


def parse_source(value: Any, field: str = "source") -> Source:
    return Source(_enum_value(value, field, Source))


def _enum_value(value: Any, field: str, enum: type[StrEnum]) -> str:
    allowed = ", ".join(e.value for e in enum)
    if not isinstance(value, str) or value not in enum._value2member_map_:
        raise InvalidInput(f"{field} must be one of: {allowed}; got {_shown(value)}")
    return value


def parse_severity(value: Any, field: str = "severity") -> Severity | None:
    return None if value is None else Severity(_enum_value(value, field, Severity))


def severities_below(severity: Severity) -> list[str]:
    return [str(s) for s in SEVERITY_ORDER[: SEVERITY_ORDER.index(severity)]]


def raises_severity(new: Severity | None, current: str | None) -> bool:
    if new is None:
        return False
    return current is None or SEVERITY_ORDER.index(new) > SEVERITY_ORDER.index(Severity(current))


def clean_description(value: Any) -> str:
    return _clean_text(value, "description", MAX_DESCRIPTION, required=True)


def clean_note(value: Any) -> str | None:
    if value is None:
        return None
    return _clean_text(value, "note", MAX_NOTE, required=False) or None


def clean_dedup_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"dedup_key must be a string of 1–{MAX_DEDUP_KEY} characters or null")
    if not value or len(value) > MAX_DEDUP_KEY:
        raise InvalidInput(
            f"dedup_key must be 1–{MAX_DEDUP_KEY} characters or null; got {len(value)}"
        )
    _require_encodable(value, "dedup_key")
    return value


# dedup_key namespaces the integrations own: a PagerDuty `resolve` or an alarm's OK must never
# reach an incident an API client opened. Keys compare exactly, so only these spellings collide.
RESERVED_DEDUP_PREFIXES = ("pagerduty:", "alertmanager:", "arn:<partition>:cloudwatch:")
RESERVED_DEDUP_KEY_PATTERN = r"^(?:pagerduty:|alertmanager:|arn:[^:]*:cloudwatch:)"
_RESERVED_DEDUP_KEY = re.compile(RESERVED_DEDUP_KEY_PATTERN)


def clean_labels(value: Any, field: str = "labels") -> dict[str, str]:
    """Labels a client gave: anything past the limits is refused (`fit_labels` cuts instead)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be {LABELS_RULE}; got {_shown(value)}")
    if len(value) > MAX_LABELS:
        raise InvalidInput(f"{field} has {len(value)} pairs; at most {MAX_LABELS} are allowed")
    for key, text in value.items():
        if not 1 <= len(key) <= MAX_LABEL_KEY:
            raise InvalidInput(f"{field} key {key[:40]!r} is {len(key)} characters; keys must be "
                               f"1–{MAX_LABEL_KEY}")
        if not isinstance(text, str):
            raise InvalidInput(f"{field}[{key[:40]!r}] must be a string of up to {MAX_LABEL_VALUE} "
                               f"characters; got {_shown(text)}")
        if len(text) > MAX_LABEL_VALUE:
            raise InvalidInput(f"{field}[{key[:40]!r}] is {len(text)} characters; at most "
                               f"{MAX_LABEL_VALUE} are allowed")
        if has_unpaired_surrogate(key) or has_unpaired_surrogate(text):
            raise InvalidInput(f"{field} {UNPAIRED_SURROGATE}")
    return dict(value)


def fit_labels(value: dict[str, Any]) -> dict[str, str]:
    """Labels a monitoring system sent: never a reason to lose its alert. The first MAX_LABELS
    usable pairs in key order; a key too long (or empty) is dropped, a value too long is cut."""
    fitted: dict[str, str] = {}
    for key in sorted(value):
        text = value[key]
        if len(fitted) == MAX_LABELS:
            break
        if not 1 <= len(key) <= MAX_LABEL_KEY or not isinstance(text, str) \
                or has_unpaired_surrogate(key) or has_unpaired_surrogate(text):
            continue
        fitted[key] = text[:MAX_LABEL_VALUE]
    return fitted


def refuse_reserved_dedup_key(value: Any) -> None:
    """For keys a client chose; the integrations' own keys go straight to open_incident."""
    if isinstance(value, str) and _RESERVED_DEDUP_KEY.match(value):
        *others, last = RESERVED_DEDUP_PREFIXES
        raise InvalidInput(
            f"dedup_key must not start with {', '.join(others)} or {last} (those keys belong to the "
            f"PagerDuty, Alertmanager and CloudWatch alarm integrations); got {_shown(value)}"
        )


def _clean_text(value: Any, field: str, limit: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string of 1–{limit} characters; got {_shown(value)}")
    _require_encodable(value, field)
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field} must not be empty (1–{limit} characters after trimming)")
    if len(text) > limit:
        raise InvalidInput(
            f"{field} is {len(text)} characters after trimming; at most {limit} are allowed"
        )
    return text


UNPAIRED_SURROGATE = "contains an unpaired surrogate; send valid Unicode text"


def has_unpaired_surrogate(text: str) -> bool:
    """JSON's `"\\ud800"` parses to one; DynamoDB and the answer's encoder refuse it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _require_encodable(text: str, field: str) -> None:
    if has_unpaired_surrogate(text):
        raise InvalidInput(f"{field} {UNPAIRED_SURROGATE}")


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    return "null" if value is None else type(value).__name__


def parse_incident_id(text: str) -> int:
    """Canonical form only (`1`, never `01`): one incident, one URL."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or text.startswith("0"):
        raise InvalidInput(
            f"incident id must be a positive integer written without leading zeros or signs; "
            f"got {text[:40]!r}"
        )
    return int(text)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def history_entry(at: str, status: Status, note: str | None, by: str) -> dict[str, Any]:
    return {"at": at, "status": str(status), "note": note, "by": by}


def new_incident(
    incident_id: int, description: str, source: Source, dedup_key: str | None, by: str, at: str,
    severity: Severity | None = None, labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    incident = {
        "id": incident_id,
        "description": description,
        "status": str(Status.NEW),
        "source": str(source),
        "created_at": at,
        "updated_at": at,
        "dedup_key": dedup_key,
        "occurrences": 1,
        "history": [history_entry(at, Status.NEW, None, by)],
        "history_count": 1,
        "version": 1,
        "team": None,
        "assignee": None,
        "escalation": None,
        "labels": labels or {},
    }
    if severity is not None:  # absent, not NULL: the raise checks attribute_not_exists
        incident["severity"] = str(severity)
    return incident


def public_view(incident: dict[str, Any]) -> dict[str, Any]:
    """No bookkeeping fields; `history` only if it was read (never in list items)."""
    view = {
        "id": incident["id"],
        "description": incident["description"],
        "status": incident["status"],
        "source": incident["source"],
        "created_at": incident["created_at"],
        "updated_at": incident["updated_at"],
        "dedup_key": incident.get("dedup_key"),
        "severity": incident.get("severity"),
        "team": incident.get("team"),
        "assignee": incident.get("assignee"),
        "escalation": _escalation_view(incident.get("escalation")),
        "labels": incident.get("labels") or {},  # none on items stored before labels existed
        "occurrences": incident["occurrences"],
        "history_count": incident["history_count"],
    }
    if "history" in incident:
        view["history"] = incident["history"]
    return view


def _escalation_view(escalation: dict[str, Any] | None) -> dict[str, Any] | None:
    if escalation is None:
        return None
    return {"rule": escalation["rule"], "loop": escalation["loop"], "next_at": escalation["next_at"]}


def etag(incident: dict[str, Any]) -> str:
    return f'"{incident["id"]}-{incident["version"]}"'


MAX_IF_MATCH_TAGS = 10


def versions_matching(if_match: str, incident_id: int) -> list[int] | None:
    """None means any (`*`). Tags are capped: each is an operand of DynamoDB's condition."""
    tags = [t.strip() for t in if_match.split(",")]
    if len(tags) > MAX_IF_MATCH_TAGS:
        raise InvalidInput(
            f"If-Match lists {len(tags)} entity tags; at most {MAX_IF_MATCH_TAGS} are allowed"
        )
    versions: list[int] = []
    for tag in tags:
        if tag == "*":
            return None
        tag = tag.removeprefix("W/").strip('"')
        ident, _, version = tag.partition("-")
        if ident == str(incident_id) and version.isascii() and version.isdigit() \
                and len(version) <= 18 and int(version) not in versions:
            versions.append(int(version))
    return versions
