"""PagerDuty Events API v2 events -> plain values, and its answers; pure. Validation follows
PagerDuty's: every problem listed, none stored. See docs/integrations.md."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.alarms import _fit_key, _text, clip, one_line
from chalicelib.incidents import MAX_DESCRIPTION, UNPAIRED_SURROGATE, Severity, fit_labels, has_unpaired_surrogate

ACTIONS = ("trigger", "acknowledge", "resolve")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_SOURCE_IN_BY = 200
LABEL_FIELDS = ("component", "group", "class")  # payload fields that become the incident's labels
KEY_PREFIX = "pagerduty:"
INVALID_MESSAGE = "Event object is invalid"
SEVERITIES_TEXT = "'critical', 'warning', 'error' or 'info'"
ACTIONS_TEXT = "'trigger', 'acknowledge' or 'resolve'"


@dataclass(frozen=True)
class Event:
    action: str
    dedup_key: str | None  # None only for a trigger without one
    summary: str | None = None
    source: str | None = None
    severity: Severity | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def by(self) -> str:
        # One line, as every `by`: it is shown in the group's notices.
        return f"pagerduty:{clip(one_line(self.source), MAX_SOURCE_IN_BY)}" if self.source else "pagerduty"


class InvalidEvent(ValueError):
    """`errors` lists each problem in PagerDuty's words."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def routing_key(body: Any) -> str | None:
    value = body.get("routing_key") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def parse_event(body: Any) -> Event:
    """InvalidEvent lists every problem; the caller checks the routing_key first."""
    if not isinstance(body, dict):
        raise InvalidEvent(["Event object must be a JSON object"])
    errors: list[str] = []
    action = body.get("event_action")
    if not isinstance(action, str) or not action.strip():
        errors.append("'event_action' is missing or blank")
    elif action not in ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of the following: {ACTIONS_TEXT})")
    dedup_key = _dedup_key(body, required=action in ("acknowledge", "resolve"), errors=errors)
    payload = _payload(body, errors) if action == "trigger" else None
    given = body.get("payload")
    source = given.get("source") if isinstance(given, dict) else None
    if action != "trigger" and isinstance(source, str):  # optional here, its source names who
        _refuse_unpaired_surrogate("payload.source", source, errors)
    if errors:
        raise InvalidEvent(errors)
    if payload is None:
        return Event(action, dedup_key, source=_text(source) or None)
    return Event(action, dedup_key, summary=clip(payload["summary"], MAX_DESCRIPTION),
                 source=_text(payload["source"]), severity=Severity(payload["severity"]),
                 labels=fit_labels({name: payload[name] for name in LABEL_FIELDS if name in payload}))


def _dedup_key(body: dict[str, Any], *, required: bool, errors: list[str]) -> str | None:
    value = body.get("dedup_key")
    if value is None:
        if required:
            errors.append("'dedup_key' is missing or blank")
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append("'dedup_key' is missing or blank" if isinstance(value, str)
                      else "'dedup_key' must be a string")
        return None
    if len(value) > MAX_DEDUP_KEY:
        errors.append(f"'dedup_key' is too long (maximum is {MAX_DEDUP_KEY} characters)")
        return None
    if not _refuse_unpaired_surrogate("dedup_key", value, errors):
        return None
    return value


def _payload(body: dict[str, Any], errors: list[str]) -> dict[str, Any] | None:
    payload = body.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
        return None
    before = len(errors)
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY} characters)")
    else:
        _refuse_unpaired_surrogate("payload.summary", summary, errors)
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    else:
        _refuse_unpaired_surrogate("payload.source", source, errors)
    severity = payload.get("severity")
    if not isinstance(severity, str) or not severity.strip():
        errors.append("'payload.severity' is missing or blank")
    elif severity not in Severity._value2member_map_:
        errors.append(f"'payload.severity' is invalid (must be one of the following: {SEVERITIES_TEXT})")
    return payload if len(errors) == before else None


def _refuse_unpaired_surrogate(field: str, value: str, errors: list[str]) -> bool:
    """False, with the error listed, if `value` cannot be stored or answered."""
    if has_unpaired_surrogate(value):
        errors.append(f"'{field}' {UNPAIRED_SURROGATE}")
        return False
    return True


def incident_key(dedup_key: str) -> str:
    """Prefixed, so it never meets another sender's key; if too long, it ends in a digest."""
    return _fit_key(KEY_PREFIX + dedup_key)


def accepted(dedup_key: str) -> dict[str, Any]:
    return {"status": "success", "message": "Event processed", "dedup_key": dedup_key}


def invalid(errors: list[str]) -> dict[str, Any]:
    return {"status": "invalid event", "message": INVALID_MESSAGE, "errors": errors}
