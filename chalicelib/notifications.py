"""What the group is told. Pure. Each starts with `#<id>`, so replies to it work as commands."""
from __future__ import annotations

from datetime import datetime
from typing import Any

DESCRIPTION_PREVIEW = 300
MAX_MESSAGE = 4096  # Telegram's limit for one message
ELLIPSIS = "…"


def change_text(incident: dict[str, Any], entry: dict[str, Any]) -> str | None:
    """None when there is nothing to say. One line: text a sender chose (`by`, note,
    description) must not add a line that reads as another notice or breaks replies."""
    ident, by, note = incident["id"], _one_line(entry["by"]), entry.get("note")
    paging = f"; paging {mentions(entry['paged'])}" if entry.get("paged") else ""
    if entry.get("kind") == "note":
        return f"#{ident} note by {by}: {_one_line(note or '')}"
    if entry.get("kind") == "assign":
        return f"#{ident} {_one_line(note or '')} by {by}{paging}"
    if entry["status"] == "new":
        return (f"#{ident} [{_labels(incident)}] new: {_preview(incident['description'], DESCRIPTION_PREVIEW)}"
                f"{_assignee(incident, '; ')}{paging}")
    if by == "cloudwatch" and entry["status"] == "resolved":
        return f"#{ident} resolved: alarm recovered"
    text = f"#{ident} → {entry['status']} by {by}{_assignee(incident, ', ')}"
    return f"{text}: {_one_line(note)}" if note else text


def paging_text(incident: dict[str, Any], paged: list[str]) -> str:
    """For an incident opened in its team's chat: the bot's answer said the rest."""
    return f"#{incident['id']} paging {mentions(paged)}{_assignee(incident, '; ')}"


def mentions(usernames: list[str]) -> str:
    return " ".join(f"@{name}" for name in usernames)


def _assignee(incident: dict[str, Any], separator: str) -> str:
    return f"{separator}assignee @{incident['assignee']}" if incident.get("assignee") else ""


def reminder_text(incident: dict[str, Any], now: datetime) -> str:
    return f"#{incident['id']} has waited {_age(incident['created_at'], now)} in new"


def digest_text(counts: dict[tuple[str, str], int], oldest: list[dict[str, Any]], now: datetime,
                whose: str = "") -> str:
    """`whose`: whose incidents these are (" in ops", " without a team"; "" for all)."""
    lines = [
        f"#{i['id']} [{_labels(i)}] {i['status']} for {_age(i['created_at'], now)}: "
        f"{_preview(i['description'], 80)}"
        for i in oldest
    ]
    by_status: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for (status, source), count in counts.items():
        by_status[status] = by_status.get(status, 0) + count
        by_source[source] = by_source.get(source, 0) + count
    statuses = ", ".join(f"{count} {status}" for status, count in by_status.items())
    sources = ", ".join(f"{source} {count}" for source, count in by_source.items())
    lines.append(f"Open{whose}: {statuses} ({sources})" if oldest else f"No open incidents{whose}.")
    return "\n".join(lines)


def fold(texts: list[str]) -> str:
    lines = [_one_line(text) for text in texts]
    kept: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        rest = len(lines) - index
        tail = f"… and {rest} more"
        if size + len(line) + 1 + len(tail) > MAX_MESSAGE and rest > 0:
            kept.append(tail)
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


def _labels(incident: dict[str, Any]) -> str:
    severity = incident.get("severity")
    return f"{incident['source']}, {severity}" if severity else incident["source"]


def _age(created_at: str, now: datetime) -> str:
    minutes = max(0, int((now - _parse(created_at)).total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} d"


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def preview(text: str, limit: int) -> str:
    return _preview(text, limit)


def _preview(text: str, limit: int) -> str:
    flat = _one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + ELLIPSIS
