"""Metrics as CloudWatch EMF lines on stdout, and the log line of each incident event.

Dimensions stay low-cardinality: ids and people go into log lines, never into a dimension.
Why and how: docs/operations.md (Metrics).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import sys
import time
from datetime import datetime
from typing import Any, Callable, Iterator, TypeVar

from chalicelib import logs

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "Incidents/local"
COUNT, SECONDS, MILLISECONDS = "Count", "Seconds", "Milliseconds"
MAX_VALUES_PER_METRIC = 100  # EMF: an array of values holds at most 100

# name, value, unit, sorted (key, value) dimensions, dimension sets
_Point = tuple[str, float, str, tuple[tuple[str, str], ...], tuple[tuple[str, ...], ...]]
_buffer: contextvars.ContextVar[list[_Point] | None] = contextvars.ContextVar("metrics", default=None)

T = TypeVar("T")


def namespace() -> str:
    return os.environ.get("METRICS_NAMESPACE") or DEFAULT_NAMESPACE


def put(name: str, value: float = 1, unit: str = COUNT, *,
        dimension_sets: tuple[tuple[str, ...], ...] | None = None, **dimensions: str) -> None:
    """`dimension_sets` (default: all dimensions as one) counts a value under several views."""
    dims = tuple(sorted((k, str(v)) for k, v in dimensions.items()))
    sets = dimension_sets if dimension_sets is not None else (tuple(k for k, _ in dims),)
    point: _Point = (name, float(value), unit, dims, sets)
    buffered = _buffer.get()
    if buffered is None:
        _write([point])
    else:
        buffered.append(point)


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """Buffers what is put inside; writes it at the end, even when the block raises."""
    points: list[_Point] = []
    token = _buffer.set(points)
    try:
        yield
    finally:
        _buffer.reset(token)
        _write(points)


def documents(points: list[_Point]) -> list[dict[str, Any]]:
    """One EMF document per distinct set of dimension values; a metric put twice gets an array."""
    groups: dict[tuple, dict[str, Any]] = {}
    for name, value, unit, dims, sets in points:
        group = groups.setdefault((dims, sets), {"units": {}, "values": {}})
        group["units"].setdefault(name, unit)
        group["values"].setdefault(name, []).append(value)
    out = []
    timestamp = int(time.time() * 1000)
    invocation = logs.current_invocation()
    for (dims, sets), group in groups.items():
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": namespace(),
                    "Dimensions": [list(s) for s in sets],
                    "Metrics": [{"Name": n, "Unit": u} for n, u in group["units"].items()],
                }],
            },
            **{k: v for k, v in invocation.items() if v is not None},
            **dict(dims),
        }
        for metric, values in group["values"].items():
            values = values[:MAX_VALUES_PER_METRIC]
            document[metric] = values[0] if len(values) == 1 else values
        out.append(document)
    return out


def _write(points: list[_Point]) -> None:
    if not points:
        return
    lines = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in documents(points))
    sys.stdout.write(lines)
    sys.stdout.flush()


def incident_opened(incident: dict[str, Any]) -> None:
    put("IncidentsOpened", Source=str(incident["source"]))
    logs.annotate(incident_id=incident["id"], outcome="created")
    logger.info("incident opened", extra={
        "incident_id": incident["id"], "source": str(incident["source"]), "by": _by(incident),
        "dedup_key": incident.get("dedup_key")})


def occurrence_absorbed(incident: dict[str, Any]) -> None:
    put("OccurrencesAbsorbed")
    logs.annotate(incident_id=incident["id"], outcome="absorbed")
    logger.info("occurrence absorbed", extra={
        "incident_id": incident["id"], "occurrences": incident.get("occurrences")})


def status_changed(incident: dict[str, Any], by: str, at: str | None = None) -> None:
    """TimeToAcknowledge/TimeToResolve only when `at` is the store's stamp of the first move
    out of `new` / to `resolved` or `closed`."""
    status = str(incident["status"])
    put("StatusChanges", dimension_sets=(("Status",), ("Via",)), Status=status, Via=via(by))
    age = _seconds_since(incident.get("created_at"), at or incident.get("updated_at"))
    if age is not None and at is not None and incident.get("acknowledged_at") == at:
        put("TimeToAcknowledge", age, SECONDS)
    if age is not None and at is not None and incident.get("resolved_at") == at:
        put("TimeToResolve", age, SECONDS)
    logs.annotate(incident_id=incident["id"], outcome="changed")
    logger.info("status changed", extra={
        "incident_id": incident["id"], "from_status": _status_before(incident, at), "status": status,
        "by": by, "seconds_since_created": age})


def replayed() -> None:
    """A repeat (Idempotency-Key, SNS MessageId, EventBridge id, update_id): nothing written."""
    logs.annotate_outcome("duplicate")


def via(by: str) -> str:
    """The channel, never the person: it is a dimension."""
    channel = str(by).split(":", 1)[0]
    return channel if channel in ("api", "cloudwatch", "telegram") else "other"


def _by(incident: dict[str, Any]) -> str | None:
    history = incident.get("history") or []
    return history[-1].get("by") if history else None


def _status_before(incident: dict[str, Any], at: str | None) -> str | None:
    history = incident.get("history") or []
    for before, entry in zip(history, history[1:]):
        if entry["at"] == at:
            return before["status"]
    return None


def _seconds_since(start: Any, end: Any) -> float | None:
    try:
        began = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        ended = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return round(max(0.0, (ended - began).total_seconds()), 3)


ALARM_OUTCOMES = ("applied", "duplicate", "stale", "ignored", "malformed", "failed")


def alarm_event(state: str, outcome: str) -> None:
    put("AlarmEvents", State=state or "UNKNOWN", Outcome=outcome)


def alarm_record_skipped(error: Exception) -> None:
    """Counts a dropped record unless alarm_record did (an unparseable one never reached it)."""
    if not getattr(error, "_alarm_counted", False):
        alarm_event("UNKNOWN", "malformed")


def alarm_record(ingest: Callable[..., T]) -> Callable[..., T]:
    """Wraps services.ingest_cloudwatch: one summary line and AlarmEvents per record, always."""

    @functools.wraps(ingest)
    def wrapper(store: Any, parsed: Any, event_key: str, *args: Any, **kwargs: Any) -> T:
        state = getattr(parsed, "state", None) or "MESSAGE"  # MESSAGE: not an alarm, plain text
        fields = {"event_key": event_key, "alarm_name": getattr(parsed, "alarm_name", None),
                  "alarm_state": state}
        started = time.perf_counter()
        with logs.summary() as summary:
            outcome, level = "failed", logging.WARNING
            try:
                result = ingest(store, parsed, event_key, *args, **kwargs)
                incident = getattr(result, "incident", None)
                outcome = getattr(result, "outcome", None) or ("applied" if incident else "ignored")
                if outcome == "applied" and incident is None:
                    outcome = "ignored"  # INSUFFICIENT_DATA, or an OK with nothing open
                level = logging.INFO
                if incident is not None:
                    summary.setdefault("incident_id", incident.get("id"))
                return result
            except Exception as error:
                outcome = "malformed" if type(error).__name__ == "InvalidInput" else "failed"
                summary["error"] = type(error).__name__
                error._alarm_counted = True  # type: ignore[attr-defined]
                raise
            finally:
                alarm_event(state, outcome)
                summary["outcome"] = outcome
                logger.log(level, "alarm event", extra={
                    **fields, **summary, "latency_ms": _ms(started)})

    return wrapper


def telegram_update(outcome: str) -> None:
    put("TelegramUpdates", Outcome=outcome)


def request_error(status_code: int) -> None:
    if status_code >= 400:
        put("RequestErrors", StatusClass=f"{status_code // 100}xx")


def store_retry() -> None:
    put("StoreRetries")


def store_unavailable() -> None:
    put("StoreUnavailable")


def count_store_retries(client: Any) -> None:
    """On request-created: botocore builds the request anew per attempt; its context knows which."""
    client.meta.events.register("request-created.dynamodb", _on_request_created,
                                unique_id="incidents-store-retries")


def _on_request_created(request: Any = None, **_: Any) -> None:
    context = getattr(request, "context", None) or {}
    if (context.get("retries") or {}).get("attempt", 1) > 1:
        store_retry()


def counting_unavailable(method: Callable[..., T]) -> Callable[..., T]:
    """Counts each store call that gives up (Unavailable) once, however deep it was raised."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except Exception as error:
            if type(error).__name__ == "Unavailable" and not getattr(error, "_counted", False):
                error._counted = True  # type: ignore[attr-defined]
                store_unavailable()
                logger.warning("store unavailable", extra={"operation": method.__name__,
                                                           "error": str(error)})
            raise

    return wrapper


OPEN_STATUSES = ("new", "in_progress")


def report_open_incidents(store: Any) -> dict[str, int]:
    counts = {status: store.count(status) for status in OPEN_STATUSES}
    open_incidents(counts)
    return counts


def open_incidents(counts: dict[str, int]) -> None:
    for status, count in counts.items():
        put("OpenIncidents", count, Status=status)
    logger.info("open incidents", extra={f"open_{status}": count for status, count in counts.items()})


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
