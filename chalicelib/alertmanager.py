"""Alertmanager (v4) and Grafana webhook bodies -> one Alert per `alerts` entry; pure.
Grafana's extra fields are not checked. See docs/integrations.md."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.alarms import _fit_key, _text, clip, one_line
from chalicelib.incidents import (
    MAX_DESCRIPTION, MAX_NOTE, UNPAIRED_SURROGATE, Severity, fit_labels, has_unpaired_surrogate,
)

STATUSES = ("firing", "resolved")
KEY_PREFIX = "alertmanager:"
MAX_RECEIVER_IN_BY = 200
SEVERITY_LABELS = {
    **dict.fromkeys(("critical", "crit", "fatal", "emergency", "page", "p1"), Severity.CRITICAL),
    **dict.fromkeys(("error", "err", "high", "major", "p2"), Severity.ERROR),
    **dict.fromkeys(("warning", "warn", "medium", "minor", "p3"), Severity.WARNING),
    **dict.fromkeys(("info", "informational", "notice", "low", "none", "p4", "p5"), Severity.INFO),
}
# As Go writes it: nanoseconds, `Z` or an offset.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
)
_ZERO_YEAR = 1
_ABSENT = object()


@dataclass(frozen=True)
class Alert:
    dedup_key: str
    status: str
    at: str  # startsAt or endsAt: orders one alert's events
    description: str
    severity: Severity | None
    labels: dict[str, str]  # the alert's, fitted to the incident's limits

    @property
    def once_key(self) -> str:
        """Same alert, status and time: a redelivery."""
        return f"alertmanager#{self.dedup_key}#{self.status}#{self.at}"

    @property
    def resolved_note(self) -> str:
        return clip(f"Alert resolved at {self.at}", MAX_NOTE)


@dataclass(frozen=True)
class Batch:
    receiver: str
    alerts: list[Alert]

    @property
    def by(self) -> str:
        return f"alertmanager:{self.receiver}" if self.receiver else "alertmanager"


class MalformedBatch(ValueError):
    """Not a webhook body; the message names the first problem."""


def parse_batch(body: Any) -> Batch:
    """One bad alert refuses the whole batch (Alertmanager does not retry a 4xx)."""
    if not isinstance(body, dict):
        raise MalformedBatch("body must be a JSON object with an `alerts` list")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise MalformedBatch("`alerts` is missing or not a list of alert objects")
    receiver = body.get("receiver", "")
    if not isinstance(receiver, str):
        raise MalformedBatch("`receiver` must be a string")
    _refuse_unpaired_surrogate("`receiver`", receiver)
    return Batch(
        receiver=clip(one_line(receiver), MAX_RECEIVER_IN_BY),  # shown in the group's notices
        alerts=[_alert(alert, f"alerts[{index}]") for index, alert in enumerate(alerts)],
    )


def _alert(alert: Any, where: str) -> Alert:
    if not isinstance(alert, dict):
        raise MalformedBatch(f"{where} is not an alert object")
    status = alert.get("status")
    if status not in STATUSES:
        raise MalformedBatch(f"{where}.status must be one of: {', '.join(STATUSES)}")
    # Optional fields may be absent, never null, as the OpenAPI document says.
    labels = _string_map(alert.get("labels"), f"{where}.labels")
    annotations = _string_map(alert.get("annotations", {}), f"{where}.annotations")
    starts_at = _time(alert.get("startsAt"), f"{where}.startsAt", required=True)
    ends_at = _time(alert.get("endsAt", _ABSENT), f"{where}.endsAt", required=False)
    fingerprint = alert.get("fingerprint", _ABSENT)
    if fingerprint is _ABSENT:
        fingerprint = None
    elif not isinstance(fingerprint, str) or not fingerprint.strip():
        raise MalformedBatch(f"{where}.fingerprint must be a non-empty string")
    else:
        _refuse_unpaired_surrogate(f"{where}.fingerprint", fingerprint)
    if status == "firing":
        at = starts_at
    else:  # no endsAt after startsAt: it ended just after it started
        at = ends_at if ends_at is not None and ends_at > starts_at else _just_after(starts_at)
    return Alert(
        dedup_key=_fit_key(KEY_PREFIX + _text(fingerprint or _labels_fingerprint(labels))),
        status=status,
        at=at,
        description=_description(labels, annotations),
        severity=SEVERITY_LABELS.get(labels.get("severity", "").strip().lower()),
        labels=fit_labels(labels),
    )


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MalformedBatch(f"{where} must be an object of strings")
    for name, text in value.items():  # never quoted: the message must be encodable itself
        _refuse_unpaired_surrogate(f"{where}", name)
        _refuse_unpaired_surrogate(f"{where}", text)
    return value


def _refuse_unpaired_surrogate(where: str, text: str) -> None:
    if has_unpaired_surrogate(text):
        raise MalformedBatch(f"{where} {UNPAIRED_SURROGATE}")


def _time(value: Any, where: str, *, required: bool) -> str | None:
    """UTC with milliseconds and Z; an optional one absent or Go's zero time (year 1): None."""
    if value is _ABSENT:
        return None
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise MalformedBatch(f"{where} must be an RFC 3339 time, e.g. 2026-11-23T10:15:30.123Z")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        zone = timezone.utc if offset in "Zz" else timezone(
            (1 if offset[0] == "+" else -1) * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute),
                          min(int(second), 59),  # a leap second counts as :59
                          int((fraction or "0")[:6].ljust(6, "0")), zone)
    except ValueError:
        raise MalformedBatch(f"{where} is not a valid time: {value[:40]!r}") from None
    if moment.year == _ZERO_YEAR and not required:
        return None
    try:
        return _iso(moment.astimezone(timezone.utc))
    except OverflowError:  # within an offset of year 1 or 9999: the edge itself
        return _iso((datetime.min if moment.year == _ZERO_YEAR else datetime.max).replace(tzinfo=timezone.utc))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _just_after(at: str) -> str:
    return _iso(datetime.fromisoformat(at.replace("Z", "+00:00")) + timedelta(milliseconds=1))


def _labels_fingerprint(labels: dict[str, str]) -> str:
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return "labels-" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _description(labels: dict[str, str], annotations: dict[str, str]) -> str:
    title = _text(annotations.get("summary")) or _text(labels.get("alertname"))
    if not title:
        title = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "Alertmanager alert"
    details = _text(annotations.get("description"))
    text = f"{title}\n{details}" if details and details != title else title
    return clip(text, MAX_DESCRIPTION) or "Alertmanager alert"
