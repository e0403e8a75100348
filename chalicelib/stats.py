"""GET /stats and Telegram's /stats figures. Pure: the reads are in store_stats.py.

Exact definitions of each figure: docs/board-and-stats.md.
"""
from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from chalicelib.incidents import OPEN_STATUSES, InvalidInput, Source
from chalicelib.payloads import only_query_params

DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=90)
SINCE_EXAMPLE = "2026-11-16T00:00:00Z"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def since_from_query(params: Mapping[str, str] | None, now: datetime) -> datetime:
    """Naive times are UTC; at most 90 days back; anything else raises InvalidInput."""
    params = only_query_params(params, "since")
    text = params.get("since")
    if text is None:
        return now - DEFAULT_WINDOW
    if not text.strip():
        raise InvalidInput(
            f"since is empty; give an ISO 8601 time such as {SINCE_EXAMPLE}, or leave it out for "
            f"the default, {DEFAULT_WINDOW.days} days ago"
        )
    try:
        if not text.isascii():
            raise ValueError(text)
        since = parse_time(text.strip())
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"since must be an ISO 8601 time such as {SINCE_EXAMPLE}; got {text[:40]!r}"
        ) from None
    earliest = now - MAX_WINDOW
    if since < earliest:
        raise InvalidInput(
            f"since may be at most {MAX_WINDOW.days} days back, so not before {iso(earliest)}; "
            f"got {iso(since)}"
        )
    return since


def compute(open_items: Iterable[Mapping[str, Any]], window_items: Iterable[Mapping[str, Any]],
            since: datetime) -> dict[str, Any]:
    open_by_status = {str(s): 0 for s in OPEN_STATUSES}
    open_by_source = {str(s): 0 for s in Source}
    for item in open_items:
        open_by_status[item["status"]] += 1
        open_by_source[item["source"]] += 1
    opened = 0
    to_acknowledge: list[float] = []
    to_resolve: list[float] = []
    for item in window_items:
        opened += 1
        created = parse_time(item["created_at"])
        if item.get("acknowledged_at"):
            to_acknowledge.append((parse_time(item["acknowledged_at"]) - created).total_seconds())
        if item.get("resolved_at"):
            to_resolve.append((parse_time(item["resolved_at"]) - created).total_seconds())
    return {
        "open": open_by_status,
        "open_by_source": open_by_source,
        "since": iso(since),
        "opened": opened,
        "resolved": len(to_resolve),
        "time_to_acknowledge_s": summary(to_acknowledge),
        "time_to_resolve_s": summary(to_resolve),
    }


def summary(durations: list[float]) -> dict[str, float | int | None]:
    if not durations:
        return {"median": None, "p90": None}
    ordered = sorted(durations)
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]
    return {"median": _seconds(statistics.median(ordered)), "p90": _seconds(p90)}


def _seconds(value: float) -> float | int:
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def telegram_text(stats: Mapping[str, Any]) -> str:
    """No line starts with `#<id>`, so a reply to them names no incident."""
    open_ = stats["open"]
    by_source = ", ".join(f"{source} {count}" for source, count in stats["open_by_source"].items())
    ack, res = stats["time_to_acknowledge_s"], stats["time_to_resolve_s"]
    return "\n".join([
        f"Open: {open_['new']} new, {open_['in_progress']} in progress ({by_source})",
        f"Last 7 days: {stats['opened']} opened, {stats['resolved']} resolved",
        f"Acknowledge: median {human(ack['median'])}, p90 {human(ack['p90'])}; "
        f"resolve: median {human(res['median'])}, p90 {human(res['p90'])}",
    ])


def human(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if whole < 3600:
        return f"{minutes}m"
    if whole < 86400:
        rest = minutes % 60
        return f"{hours}h {rest}m" if rest else f"{hours}h"
    rest = hours % 24
    return f"{days}d {rest}h" if rest else f"{days}d"
