"""The DynamoDB reads behind /stats: the open incidents and those created in the window, never
the whole table. Why and how: docs/board-and-stats.md."""
from __future__ import annotations

from typing import Any

from chalicelib.incidents import OPEN_STATUSES, Source
from chalicelib.store import SOURCE_INDEX, STATUS_INDEX, Store, _translating_errors, _values


@_translating_errors
def open_incidents(store: Store) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for status in OPEN_STATUSES:
        items.extend(store.query_all({
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status",
            "ProjectionExpression": "#status, #source",
            "ExpressionAttributeNames": {"#status": "status", "#source": "source"},
            "ExpressionAttributeValues": _values({":status": str(status)}),
        }))
    return items


@_translating_errors
def created_since(store: Store, since: str) -> list[dict[str, Any]]:
    """`since`: UTC ISO 8601 with milliseconds and Z, as created_at is stored."""
    items: list[dict[str, Any]] = []
    for source in Source:
        items.extend(store.query_all({
            "IndexName": SOURCE_INDEX,
            "KeyConditionExpression": "#source = :source AND created_key >= :since",
            "ProjectionExpression": "created_at, acknowledged_at, resolved_at",
            "ExpressionAttributeNames": {"#source": "source"},
            "ExpressionAttributeValues": _values({":source": str(source), ":since": since}),
        }))
    return items
