"""The DynamoDB reads behind /stats, bounded by the open incidents plus the incidents created
in the window, never by the whole table:

- open: one Query per open status on `by_status` (the partitions `new` and `in_progress` hold
  exactly the open incidents);
- the window: one Query per source on `by_source` with `created_key >= since` (the sort key
  starts with created_at, so the range holds exactly the incidents created since then).

Each reads only the attributes the figures need. No filter expression: what is read is what is
counted. A further call is made only when DynamoDB cuts a page at 1 MB.
"""
from __future__ import annotations

from typing import Any, Iterator

from chalicelib.incidents import OPEN_STATUSES, Source
from chalicelib.store import SOURCE_INDEX, STATUS_INDEX, Store, _plain, _translating_errors, _values


@_translating_errors
def open_incidents(store: Store) -> list[dict[str, Any]]:
    """Status and source of every open incident."""
    items: list[dict[str, Any]] = []
    for status in OPEN_STATUSES:
        items.extend(_query(store, {
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status",
            "ProjectionExpression": "#status, #source",
            "ExpressionAttributeNames": {"#status": "status", "#source": "source"},
            "ExpressionAttributeValues": _values({":status": str(status)}),
        }))
    return items


@_translating_errors
def created_since(store: Store, since: str) -> list[dict[str, Any]]:
    """created_at, acknowledged_at and resolved_at of every incident created at or after `since`
    (UTC, ISO 8601 with milliseconds and Z, as created_at is stored)."""
    items: list[dict[str, Any]] = []
    for source in Source:
        items.extend(_query(store, {
            "IndexName": SOURCE_INDEX,
            "KeyConditionExpression": "#source = :source AND created_key >= :since",
            "ProjectionExpression": "created_at, acknowledged_at, resolved_at",
            "ExpressionAttributeNames": {"#source": "source"},
            "ExpressionAttributeValues": _values({":source": str(source), ":since": since}),
        }))
    return items


def _query(store: Store, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    params = {"TableName": store.table_name, **params}
    while True:
        response = store._client.query(**params)
        yield from (_plain(item) for item in response["Items"])
        if "LastEvaluatedKey" not in response:
            return
        params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
