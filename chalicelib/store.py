"""The only module that knows DynamoDB: the table definition, reads and conditional writes.

One table holds several kinds of item, told apart by the `pk` prefix:
  incident#<id>   an incident (the only items carrying `status`, so the index is sparse)
  counter#incident  the atomic id counter
  dedup#<key>     which incident owns an open dedup_key
  once#<key>      a processed Idempotency-Key or event id, with the response it produced
"""
from __future__ import annotations

import functools
import heapq
import itertools
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import boto3
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import metrics
from chalicelib.incidents import Unavailable

STATUS_INDEX = "by_status"
TTL_ATTRIBUTE = "expires_at"

TABLE_DEFINITION: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "status", "AttributeType": "S"},
        {"AttributeName": "created_key", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            # Newest first within a status: created_key = "<created_at>#<zero-padded id>".
            "IndexName": STATUS_INDEX,
            "KeySchema": [
                {"AttributeName": "status", "KeyType": "HASH"},
                {"AttributeName": "created_key", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}

BOTO_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
)

_UNAVAILABLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "ResourceNotFoundException",
    "TransactionConflictException",
}
_COUNTER_KEY = "counter#incident"
_deserialize = TypeDeserializer().deserialize

T = TypeVar("T")


def create_table(client: Any, name: str) -> None:
    """Create the table (and its TTL) from TABLE_DEFINITION; the local run and the tests use it."""
    client.create_table(TableName=name, **TABLE_DEFINITION)
    client.get_waiter("table_exists").wait(TableName=name)
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )


class DedupKeyTaken(Exception):
    """Another incident claimed the dedup_key between our read and our write."""


class AlreadyDone(Exception):
    """The once-key was recorded already; `record` is what was stored with it."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(record.get("pk"))
        self.record = record


class ConditionFailed(Exception):
    """A conditional update did not apply; `item` is the item as it was (None: no item)."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


@dataclass(frozen=True)
class Once:
    """Makes a write happen at most once per key: stored in the same transaction as the write."""

    key: str
    fingerprint: str
    ttl_seconds: int
    status_code: int = 200
    body: dict[str, Any] | None = None

    def item(self, now: float) -> dict[str, Any]:
        item = {
            "pk": f"once#{self.key}",
            "fingerprint": self.fingerprint,
            "status_code": self.status_code,
            TTL_ATTRIBUTE: int(now) + self.ttl_seconds,
        }
        if self.body is not None:
            item["body"] = json.dumps(self.body, ensure_ascii=False)
        return item


def _translating_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Throttling past boto3's retries, or no answer at all, becomes the domain's Unavailable."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _UNAVAILABLE_CODES:
                raise Unavailable(str(error)) from error
            raise
        except BotoCoreError as error:
            raise Unavailable(str(error)) from error

    return metrics.counting_unavailable(wrapper)  # observability hook: StoreUnavailable


class Store:
    def __init__(self, table: Any) -> None:
        self._table = table
        self._client = table.meta.client
        metrics.count_store_retries(self._client)  # observability hook: StoreRetries

    @classmethod
    def from_environment(cls) -> "Store":
        """Table from TABLE_NAME; endpoint and credentials from boto3's own chain
        (AWS_ENDPOINT_URL_DYNAMODB points it at a local server)."""
        resource = boto3.resource("dynamodb", config=BOTO_CONFIG)
        return cls(resource.Table(os.environ["TABLE_NAME"]))

    @property
    def table_name(self) -> str:
        return self._table.name

    # reads

    @_translating_errors
    def ping(self) -> None:
        self._table.get_item(Key={"pk": _COUNTER_KEY}, ProjectionExpression="pk")

    @_translating_errors
    def get_incident(self, incident_id: int) -> dict[str, Any] | None:
        response = self._table.get_item(Key={"pk": _incident_pk(incident_id)}, ConsistentRead=True)
        item = response.get("Item")
        return _incident_from_item(item) if item else None

    @_translating_errors
    def dedup_owner(self, dedup_key: str) -> int | None:
        response = self._table.get_item(Key={"pk": _dedup_pk(dedup_key)}, ConsistentRead=True)
        item = response.get("Item")
        return int(item["incident_id"]) if item else None

    @_translating_errors
    def once_record(self, key: str) -> dict[str, Any] | None:
        response = self._table.get_item(Key={"pk": f"once#{key}"}, ConsistentRead=True)
        item = response.get("Item")
        if not item or int(item[TTL_ATTRIBUTE]) < time.time():
            return None  # TTL deletion lags; an expired record counts as absent
        return _once_from_item(item)

    @_translating_errors
    def newest(
        self, statuses: list[str], source: str | None, before_key: str | None, count: int
    ) -> list[dict[str, Any]]:
        """Up to `count` incidents of the given statuses, newest first, older than `before_key`.

        One Query per status, merged by created_key; a further page of a status is read only
        when the merge reaches its end (a source filter can leave a page short).
        """
        per_status = [
            self._newest_of_status(status, source, before_key, count) for status in statuses
        ]
        merged = heapq.merge(*per_status, key=lambda item: item["created_key"], reverse=True)
        return [_incident_from_item(item) for item in itertools.islice(merged, count)]

    @_translating_errors
    def count_by_status(self, status: str) -> int:
        """How many incidents have `status` (Select=COUNT on the status index: no item is returned)."""
        query: dict[str, Any] = {"IndexName": STATUS_INDEX, "Select": "COUNT",
                                 "KeyConditionExpression": Key("status").eq(status)}
        total = 0
        while True:
            response = self._table.query(**query)
            total += response["Count"]
            if "LastEvaluatedKey" not in response:
                return total
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _newest_of_status(
        self, status: str, source: str | None, before_key: str | None, count: int
    ) -> Iterator[dict[str, Any]]:
        condition = Key("status").eq(status)
        if before_key is not None:
            condition = condition & Key("created_key").lt(before_key)
        query: dict[str, Any] = {
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
            "Limit": count,
        }
        if source is not None:
            query["FilterExpression"] = Attr("source").eq(source)
        for page in self._query_pages(query):
            yield from page

    def _query_pages(self, query: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        while True:
            response = self._table.query(**query)
            yield response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            query = {**query, "ExclusiveStartKey": response["LastEvaluatedKey"]}

    # writes

    @_translating_errors
    def allocate_id(self) -> int:
        response = self._table.update_item(
            Key={"pk": _COUNTER_KEY},
            UpdateExpression="ADD last_id :one",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["last_id"])

    @_translating_errors
    def insert_incident(
        self,
        incident: dict[str, Any],
        *,
        replaces_dedup_owner: int | None = None,
        once: Once | None = None,
    ) -> None:
        """Put a new incident; with a dedup_key, claim it (taking it over from
        `replaces_dedup_owner`, a closed or resolved incident, when given), all in one transaction."""
        puts = [
            {
                "TableName": self.table_name,
                "Item": _item_from_incident(incident),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        ]
        if incident.get("dedup_key") is not None:
            puts.append(self._dedup_claim(incident, replaces_dedup_owner))
        if once is not None:
            puts.append(self._once_put(once))
        self._transact([{"Put": put} for put in puts])

    def _dedup_claim(self, incident: dict[str, Any], previous_owner: int | None) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": {"pk": _dedup_pk(incident["dedup_key"]), "incident_id": incident["id"]},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if previous_owner is not None:
            put["ConditionExpression"] += " OR incident_id = :previous"
            put["ExpressionAttributeValues"] = {":previous": previous_owner}
        return put

    def _once_put(self, once: Once) -> dict[str, Any]:
        now = time.time()
        return {
            "TableName": self.table_name,
            "Item": once.item(now),
            "ConditionExpression": f"attribute_not_exists(pk) OR {TTL_ATTRIBUTE} < :now",
            "ExpressionAttributeValues": {":now": int(now)},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    @_translating_errors
    def add_occurrence(
        self, incident_id: int, dedup_key: str, at: str, *, once: Once | None = None,
        expected_version: int | None = None,
    ) -> dict[str, Any] | None:
        """Count one more report on an open incident owning dedup_key; None when it is no longer open."""
        update: dict[str, Any] = {
            "Key": {"pk": _incident_pk(incident_id)},
            "UpdateExpression": "SET occurrences = occurrences + :one, updated_at = :at, "
            "version = version + :one",
            "ConditionExpression": "#status IN (:new, :in_progress) AND dedup_key = :key",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":one": 1, ":at": at, ":new": "new", ":in_progress": "in_progress", ":key": dedup_key,
            },
        }
        if expected_version is not None:
            update["ConditionExpression"] += " AND version = :version"
            update["ExpressionAttributeValues"][":version"] = expected_version
        try:
            return self._update(update, once)
        except ConditionFailed:
            return None

    @_translating_errors
    def set_status(
        self,
        incident_id: int,
        status: str,
        entry: dict[str, Any],
        *,
        from_statuses: list[str],
        expected_versions: list[int] | None = None,
        once: Once | None = None,
    ) -> dict[str, Any]:
        """One conditional UpdateItem: applies only from `from_statuses` (and a matching version).
        Raises ConditionFailed carrying the item as it was, so the caller can tell why."""
        names = {"#status": "status"}
        values: dict[str, Any] = {":to": status, ":at": entry["at"], ":entry": [entry], ":one": 1}
        condition = f"#status IN ({_placeholders(values, 'from', from_statuses)})"
        if expected_versions:
            condition += f" AND version IN ({_placeholders(values, 'v', expected_versions)})"
        elif expected_versions is not None:
            # An If-Match naming no version of this incident can never match.
            condition += " AND version = :never"
            values[":never"] = -1
        update = {
            "Key": {"pk": _incident_pk(incident_id)},
            "UpdateExpression": "SET #status = :to, updated_at = :at, "
            "history = list_append(history, :entry), version = version + :one",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        return self._update(update, once)

    def _update(self, update: dict[str, Any], once: Once | None) -> dict[str, Any]:
        if once is None:
            try:
                response = self._table.update_item(
                    **update, ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD"
                )
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise
                old = error.response.get("Item")
                raise ConditionFailed(_incident_from_low_level(old) if old else None) from None
            return _incident_from_item(response["Attributes"])
        self._transact([
            {"Update": {"TableName": self.table_name, **update,
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            {"Put": self._once_put(once)},
        ])
        incident = self._table.get_item(Key=update["Key"], ConsistentRead=True)["Item"]
        return _incident_from_item(incident)

    def _transact(self, items: list[dict[str, Any]]) -> None:
        if len(items) == 1 and "Put" in items[0]:
            self._put_single(items[0]["Put"])
            return
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise
            self._explain_cancellation(items, error)

    def _put_single(self, put: dict[str, Any]) -> None:
        arguments = {k: v for k, v in put.items() if k != "TableName"}
        try:
            self._table.put_item(**arguments)
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            raise ConditionFailed(None) from None

    def _explain_cancellation(self, items: list[dict[str, Any]], error: ClientError) -> None:
        reasons = error.response.get("CancellationReasons", [])
        for item, reason in zip(items, reasons):
            if reason.get("Code") != "ConditionalCheckFailed":
                continue
            pk = (item.get("Put") or {}).get("Item", {}).get("pk", "")
            old = reason.get("Item")
            if pk.startswith("once#"):
                raise AlreadyDone(_once_from_item(_plain(old))) from None
            if pk.startswith("dedup#"):
                raise DedupKeyTaken(pk) from None
            if "Update" in item:
                raise ConditionFailed(_incident_from_low_level(old) if old else None) from None
            raise ConditionFailed(None) from None
        codes = ", ".join(r.get("Code", "?") for r in reasons)
        raise Unavailable(f"transaction cancelled: {codes}") from error


def _placeholders(values: dict[str, Any], prefix: str, items: list[Any]) -> str:
    """`:prefix0, :prefix1, …` for an IN (...) list, each bound to its item in `values`."""
    names = [f":{prefix}{i}" for i in range(len(items))]
    values.update(zip(names, items))
    return ", ".join(names)


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _incident_pk(incident_id: int) -> str:
    return f"incident#{incident_id}"


def _dedup_pk(dedup_key: str) -> str:
    return f"dedup#{dedup_key}"


def created_key(incident: dict[str, Any]) -> str:
    return f"{incident['created_at']}#{incident['id']:020d}"


def _item_from_incident(incident: dict[str, Any]) -> dict[str, Any]:
    return {"pk": _incident_pk(incident["id"]), "created_key": created_key(incident), **incident}


def _incident_from_item(item: dict[str, Any]) -> dict[str, Any]:
    incident = {k: v for k, v in item.items() if k != "pk"}
    for field in ("id", "occurrences", "version"):
        incident[field] = int(incident[field])
    incident.setdefault("dedup_key", None)
    return incident


def _plain(low_level: dict[str, Any] | None) -> dict[str, Any]:
    return {k: _deserialize(v) for k, v in (low_level or {}).items()}


def _incident_from_low_level(item: dict[str, Any]) -> dict[str, Any]:
    return _incident_from_item(_plain(item))


def _once_from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "fingerprint": item.get("fingerprint"),
        "status_code": int(item.get("status_code", 200)),
        "body": json.loads(item["body"]) if item.get("body") else None,
    }


@functools.lru_cache(maxsize=1)
def default_store() -> Store:
    """Built on first use, not at import, so a cold start pays for boto3 only when a request needs it."""
    return Store.from_environment()
