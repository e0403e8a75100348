"""The DynamoDB reads behind /stats: the open incidents and those created in the window, never
the whole table. Why and how: docs/board-and-stats.md."""
from __future__ import annotations

from typing import Any, Iterator

from chalicelib.incidents import OPEN_STATUSES, Source
from chalicelib.store import SOURCE_INDEX, STATUS_INDEX, Store, _plain, _translating_errors, _values


@_translating_errors
def open_incidents(store: Store) -> list[dict[str, Any]]:
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
    """`since`: UTC ISO 8601 with milliseconds and Z, as created_at is stored."""
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
