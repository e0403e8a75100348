"""The only module that knows DynamoDB: the table definition, reads and conditional writes.
Items, indexes and why: docs/table-design.md.
"""
from __future__ import annotations

import functools
import heapq
import itertools
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws, metrics
from chalicelib.incidents import LimitExceeded, Status, Unavailable

STATUS_INDEX = "by_status"
SOURCE_INDEX = "by_source"
STATUS_SOURCE_INDEX = "by_status_source"
CREATED_INDEX = "by_created"
# Sparse: only incidents with a team carry `team_created` (docs/table-design.md).
STATUS_TEAM_INDEX = "by_status_team"
# Sparse: only incidents whose escalation runs carry its keys (docs/table-design.md).
ESCALATION_INDEX = "by_escalation"
ESCALATION_DUE = "due"
ESCALATION_ATTRIBUTES = ("esc_due", "esc_key", "esc_rule", "esc_loop", "esc_next_at", "esc_generation")
LISTED = "incident"  # every incident's `listed`: by_created's one partition
TTL_ATTRIBUTE = "expires_at"
# The token of the write that last changed an incident or dedup record: a retry whose condition
# fails on its own first attempt (applied, but the answer was lost) finds it there.
WRITE_TOKEN = "write_token"
INCIDENT_SK = "incident"
ENTRY_PREFIX = "history#"
# On a history entry copied from another table (scripts/migrate_v1_to_v2.py): not news.
COPIED_FROM = "copied_from"
BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit per BatchGetItem
BATCH_GET_ATTEMPTS = 6
BATCH_GET_BACKOFF_SECONDS = 0.05


def _index(name: str, hash_key: str, range_key: str) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": range_key, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


TABLE_DEFINITION: dict[str, Any] = {
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"}
        for name in ("pk", "sk", "status", "source", "created_key", "source_created", "listed",
                     "esc_due", "esc_key", "team_created")
    ],
    "GlobalSecondaryIndexes": [
        _index(STATUS_INDEX, "status", "created_key"),
        _index(SOURCE_INDEX, "source", "created_key"),
        _index(STATUS_SOURCE_INDEX, "status", "source_created"),
        _index(CREATED_INDEX, "listed", "created_key"),
        _index(ESCALATION_INDEX, "esc_due", "esc_key"),
        _index(STATUS_TEAM_INDEX, "status", "team_created"),
    ],
    "BillingMode": "PAY_PER_REQUEST",
    # The notifier's trigger: one INSERT per history entry (docs/notifications.md).
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
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
    # The same ClientRequestToken's first attempt still running: answered later, or retried.
    "TransactionInProgressException",
}
# Possible despite validation: an item, transaction or expression over a DynamoDB limit.
_LIMIT_CODES = {"ValidationException", "ItemCollectionSizeLimitExceededException"}
_COUNTER_KEY = {"pk": "counter#incident", "sk": "counter"}
_serialize = aws.dynamodb_types().TypeSerializer().serialize
_deserialize = aws.dynamodb_types().TypeDeserializer().deserialize

T = TypeVar("T")


def create_table(client: Any, name: str) -> None:
    """With its TTL; for the local run and the tests."""
    client.create_table(TableName=name, **TABLE_DEFINITION)
    client.get_waiter("table_exists").wait(TableName=name)
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )


# --- what a refused write means ---


class DedupKeyTaken(Exception):
    """Another incident claimed the dedup_key since we read it."""


class StaleEvent(Exception):
    """The alarm event is not newer than the last one applied."""


class AlreadyDone(Exception):
    """`record` is what was stored with the once-key."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("once-key recorded already")
        self.record = record


class ConditionFailed(Exception):
    """`item`: the incident as it was, without history (None: no such incident)."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


@dataclass(frozen=True)
class Once:
    """At most once per key: stored in the write's own transaction. `body` omits the history
    (rebuilt on replay from the entries up to `body["history_upto"]`) to stay small."""

    key: str
    fingerprint: str
    ttl_seconds: int
    status_code: int = 200
    body: dict[str, Any] | None = None

    def item(self, now: float) -> dict[str, Any]:
        item = {
            "pk": f"once#{self.key}",
            "sk": "once",
            "fingerprint": self.fingerprint,
            "status_code": self.status_code,
            TTL_ATTRIBUTE: int(now) + self.ttl_seconds,
        }
        if self.body is not None:
            item["body"] = json.dumps(self.body, ensure_ascii=False)
        return item


@dataclass(frozen=True)
class DedupRecord:
    incident_id: int | None  # None: an alarm event was applied, but no incident opened yet
    alarm_at: str | None


@dataclass(frozen=True)
class AlarmMark:
    """Applies the write only if this alarm event is newer than the last applied one."""

    dedup_key: str
    at: str


@dataclass
class _Op:
    kind: str  # Put, Update, ConditionCheck
    params: dict[str, Any]
    refused: Callable[[dict[str, Any] | None], Exception]


def _translating_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Throttled past retries or no answer: Unavailable; a DynamoDB limit: LimitExceeded (4xx)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except ClientError as error:
            code = _code(error)
            if code in _UNAVAILABLE_CODES:
                raise Unavailable(str(error)) from error
            if code in _LIMIT_CODES:
                raise LimitExceeded(_limit_message(error)) from error
            raise
        except BotoCoreError as error:
            raise Unavailable(str(error)) from error

    return metrics.counting_unavailable(wrapper)  # observability hook: StoreUnavailable


class Store:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name
        metrics.count_store_retries(self._client)  # observability hook: StoreRetries

    @classmethod
    def from_environment(cls) -> "Store":
        """Endpoint and credentials from botocore's chain (AWS_ENDPOINT_URL_DYNAMODB: local)."""
        return cls(aws.client("dynamodb", BOTO_CONFIG), os.environ["TABLE_NAME"])

    # --- reads ---

    @_translating_errors
    def ping(self) -> None:
        self._client.get_item(TableName=self.table_name, Key=_key(_COUNTER_KEY),
                              ProjectionExpression="pk")

    @_translating_errors
    def get_incident(self, incident_id: int, history: int = 100) -> dict[str, Any] | None:
        """With its `history` newest entries, oldest first: one Query (the incident sorts after)."""
        items = self._query_items({
            "KeyConditionExpression": "pk = :pk AND sk <= :incident",
            "ExpressionAttributeValues": _values({":pk": _incident_pk(incident_id),
                                                  ":incident": INCIDENT_SK}),
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }, history + 1)
        if not items or items[0]["sk"] != INCIDENT_SK:
            return None
        incident = _incident_from_item(items[0])
        incident["history"] = [_entry_from_item(item) for item in reversed(items[1:])]
        return incident

    @_translating_errors
    def get_incident_item(self, incident_id: int) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self.table_name, Key=_key(_incident_key(incident_id)), ConsistentRead=True
        )
        item = response.get("Item")
        return _incident_from_item(_plain(item)) if item else None

    @_translating_errors
    def history_page(self, incident_id: int, after: str | None, count: int) -> list[dict[str, Any]]:
        """Oldest first, after key `after`; each entry carries its `key` (a cursor position)."""
        params: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _values({":pk": _incident_pk(incident_id),
                                                  ":prefix": ENTRY_PREFIX}),
            "ConsistentRead": True,
        }
        if after is not None:
            params["ExclusiveStartKey"] = _key({"pk": _incident_pk(incident_id), "sk": after})
        return [{**_entry_from_item(item), "key": item["sk"]}
                for item in self._query_items(params, count)]

    @_translating_errors
    def history_upto(self, incident_id: int, last_at: str, count: int) -> list[dict[str, Any]]:
        """The `count` entries up to the one at `last_at`, oldest first (as a response showed)."""
        # "~" sorts after the migration's "#n" suffixes (entries sharing a millisecond).
        items = self._query_items({
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": _values({":pk": _incident_pk(incident_id),
                                                  ":first": ENTRY_PREFIX,
                                                  ":last": f"{ENTRY_PREFIX}{last_at}~"}),
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }, count)
        return [_entry_from_item(item) for item in reversed(items)]

    @_translating_errors
    def dedup_record(self, dedup_key: str) -> DedupRecord | None:
        response = self._client.get_item(
            TableName=self.table_name, Key=_key(_dedup_key(dedup_key)), ConsistentRead=True
        )
        item = response.get("Item")
        return _dedup_from_item(_plain(item)) if item else None

    @_translating_errors
    def once_record(self, key: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self.table_name, Key=_key(_once_key(key)), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        record = _plain(item)
        if int(record[TTL_ATTRIBUTE]) < time.time():
            return None  # TTL deletion lags; an expired record counts as absent
        return _once_from_item(record)

    @_translating_errors
    def records(self, dedup_keys: list[str], once_keys: list[str]
                ) -> tuple[dict[str, DedupRecord | None], dict[str, dict[str, Any] | None]]:
        """The dedup and once-records of a whole batch in one BatchGetItem per 100 keys (None:
        absent or expired), where `dedup_record` and `once_record` cost a GetItem each."""
        wanted = [*(_dedup_key(k) for k in dict.fromkeys(dedup_keys)),
                  *(_once_key(k) for k in dict.fromkeys(once_keys))]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX_KEYS):
            for item in self._batch_get([_key(key) for key in wanted[start:start + BATCH_GET_MAX_KEYS]]):
                plain = _plain(item)
                found[plain["pk"]] = plain
        dedup = {}
        for key in dedup_keys:
            item = found.get(_dedup_key(key)["pk"])
            dedup[key] = _dedup_from_item(item) if item else None
        once = {}
        for key in once_keys:
            item = found.get(_once_key(key)["pk"])
            # TTL deletion lags; an expired record counts as absent
            once[key] = _once_from_item(item) if item and int(item[TTL_ATTRIBUTE]) >= time.time() else None
        return dedup, once

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keys DynamoDB leaves unprocessed (throttling) are asked again, with backoff; still
        left after the retries: Unavailable, as a throttled call past its retries is."""
        items: list[dict[str, Any]] = []
        request = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
        for attempt in range(BATCH_GET_ATTEMPTS):
            if attempt:
                time.sleep(min(BATCH_GET_BACKOFF_SECONDS * 2 ** attempt, 1.0))
            response = self._client.batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
        raise Unavailable(f"DynamoDB left {len(request[self.table_name]['Keys'])} keys unread; try again")

    @_translating_errors
    def newest(
        self, *, statuses: list[str] | None, source: str | None, before_key: str | None, count: int,
        team: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, below `before_key`: one Query per partition, merged; no filter.
        `team` combines with `statuses` only (no index holds team and source)."""
        partitions = [
            self._newest_in(partition, before_key, count)
            for partition in (_team_partitions(statuses, team) if team is not None
                              else _partitions(statuses, source))
        ]
        merged = heapq.merge(*partitions, key=lambda item: item["created_key"], reverse=True)
        return [_incident_from_item(item) for item in itertools.islice(merged, count)]

    def _newest_in(self, partition: "_Partition", before_key: str | None,
                   count: int) -> Iterator[dict[str, Any]]:
        values = {":hash": partition.value}
        names = {"#hash": partition.hash_attribute, "#range": partition.range_attribute}
        condition = "#hash = :hash"
        start = None
        if partition.prefix:
            values[":prefix"] = partition.prefix
            condition += " AND begins_with(#range, :prefix)"
            if before_key is not None:
                start = _key({**_incident_key(_id_of(before_key)), partition.hash_attribute: partition.value,
                              partition.range_attribute: partition.prefix + before_key})
        elif before_key is not None:
            values[":below"] = before_key
            condition += " AND #range < :below"
        else:
            del names["#range"]
        params = {
            "IndexName": partition.index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _values(values),
            "ScanIndexForward": False,
        }
        if start is not None:
            params["ExclusiveStartKey"] = start
        yield from self._query_pages(params, count)

    @_translating_errors
    def oldest(self, *, statuses: list[str], count: int,
               before_key: str | None = None) -> list[dict[str, Any]]:
        """Oldest first (below `before_key`): one Query per status, merged; no filter."""
        below = "" if before_key is None else " AND created_key < :below"
        partitions = [
            self._query_pages({
                "IndexName": STATUS_INDEX,
                "KeyConditionExpression": "#status = :status" + below,
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": _values(
                    {":status": status, **({":below": before_key} if before_key else {})}),
            }, count)
            for status in statuses
        ]
        merged = heapq.merge(*partitions, key=lambda item: item["created_key"])
        return [_incident_from_item(item) for item in itertools.islice(merged, count)]

    @_translating_errors
    def every_in(self, statuses: list[str]) -> list[dict[str, Any]]:
        """Every incident in `statuses`, oldest first: for the open ones, a read bounded by
        what is open, never by the table."""
        partitions = [
            self.query_all({
                "IndexName": STATUS_INDEX,
                "KeyConditionExpression": "#status = :status",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": _values({":status": status}),
            })
            for status in statuses
        ]
        merged = heapq.merge(*partitions, key=lambda item: item["created_key"])
        return [_incident_from_item(item) for item in merged]

    @_translating_errors
    def count(self, status: str, source: str | None = None) -> int:
        """Select=COUNT: reads the partition (or the source's run in it), returns no item."""
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _values({":status": status}),
            "Select": "COUNT",
        }
        if source is not None:
            params["IndexName"] = STATUS_SOURCE_INDEX
            params["KeyConditionExpression"] += " AND begins_with(source_created, :source)"
            params["ExpressionAttributeValues"] = _values({":status": status, ":source": f"{source}#"})
        total = 0
        while True:
            response = self._client.query(**params)
            total += response["Count"]
            if "LastEvaluatedKey" not in response:
                return total
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def query_all(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page: for reads bounded by their key (the open incidents, a team's overrides)."""
        params = {"TableName": self.table_name, **params}
        while True:
            response = self._client.query(**params)
            yield from (_plain(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _query_items(self, params: dict[str, Any], count: int) -> list[dict[str, Any]]:
        return list(self._query_pages(params, count))

    def _query_pages(self, params: dict[str, Any], count: int) -> Iterator[dict[str, Any]]:
        """At most `count` items read; a further call only when DynamoDB cut a page at 1 MB."""
        params = {"TableName": self.table_name, **params}
        remaining = count
        while remaining > 0:
            response = self._client.query(**params, Limit=remaining)
            items = response["Items"]
            remaining -= len(items)
            yield from (_plain(item) for item in items)
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # --- writes ---

    @_translating_errors
    def allocate_id(self) -> int:
        response = self._client.update_item(
            TableName=self.table_name,
            Key=_key(_COUNTER_KEY),
            UpdateExpression="ADD last_id :one",
            ExpressionAttributeValues=_values({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        return int(_deserialize(response["Attributes"]["last_id"]))

    @_translating_errors
    def insert_incident(
        self,
        incident: dict[str, Any],
        *,
        replaces_dedup_owner: int | None = None,
        once: Once | None = None,
        alarm: AlarmMark | None = None,
        paged: list[str] | None = None,
    ) -> None:
        """One transaction; taking the key over marks `replaces_dedup_owner`: it cannot reopen.
        `paged`: who the opening notice pages (escalation's rule 1), kept on the entry for it."""
        (entry,) = incident["history"]
        token = _new_token()
        ops = [
            _Op("Put", {"Item": {**_item_from_incident(incident), WRITE_TOKEN: token},
                        "ConditionExpression": "attribute_not_exists(pk)"},
                lambda old: ConditionFailed(None)),
            self._entry_put(incident["id"], {**entry, "paged": paged} if paged else entry),
        ]
        if incident.get("dedup_key") is not None:
            ops.append(self._dedup_claim(incident["dedup_key"], incident["id"],
                                         replaces_dedup_owner, alarm))
            if replaces_dedup_owner is not None:
                ops.append(self._mark_successor(replaces_dedup_owner, incident["id"]))
        if once is not None:
            ops.append(self._once_put(once))
        self._transact(ops, token)

    @_translating_errors
    def add_occurrence(
        self, incident_id: int, dedup_key: str, at: str, *, once: Once | None = None,
        expected_version: int | None = None, alarm: AlarmMark | None = None,
        severity: tuple[str, list[str]] | None = None,
    ) -> bool:
        """False when no longer open or at `expected_version`. `severity` = (raised, the ones
        below it): refused unless the current one is absent or below."""
        token = _new_token()
        # The token's condition: an ADD retried after it was applied must not count twice.
        condition = ("#status IN (:new, :in_progress) AND dedup_key = :key"
                     f" AND (attribute_not_exists({WRITE_TOKEN}) OR {WRITE_TOKEN} <> :token)")
        values: dict[str, Any] = {":one": 1, ":at": at, ":new": "new", ":token": token,
                                  ":in_progress": "in_progress", ":key": dedup_key}
        if expected_version is not None:
            condition += " AND version = :version"
            values[":version"] = expected_version
        sets = ("SET occurrences = occurrences + :one, updated_at = :at, version = version + :one, "
                f"{WRITE_TOKEN} = :token")
        if severity is not None:
            raised, below = severity
            condition += " AND (attribute_not_exists(#severity)"
            condition += f" OR #severity IN ({_placeholders(values, 'below', below)}))" if below else ")"
            sets += ", #severity = :severity"
            values[":severity"] = raised
        update = _Op("Update", {
            "Key": _key(_incident_key(incident_id)),
            "UpdateExpression": sets,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status",
                                         **({"#severity": "severity"} if severity else {})},
            "ExpressionAttributeValues": _values(values),
        }, lambda old: ConditionFailed(old))
        ops = [update]
        if alarm is not None:
            ops.append(self._alarm_mark(alarm, token, owner=incident_id))
        if once is not None:
            ops.append(self._once_put(once))
        try:
            self._transact(ops, token)
        except ConditionFailed:
            return False
        return True

    @_translating_errors
    def set_status(
        self,
        incident_id: int,
        entry: dict[str, Any],
        *,
        from_statuses: list[str],
        expected_versions: list[int] | None = None,
        refuse_if_key_taken: bool = False,
        once: Once | None = None,
        alarm: AlarmMark | None = None,
        assignee: str | None = None,
    ) -> None:
        """ConditionFailed carries the incident as it was: the caller tells why without a read.
        Nothing leads back to `new`, so every status change ends the escalation, in this write."""
        values: dict[str, Any] = {":to": entry["status"], ":at": entry["at"]}
        condition = f"#status IN ({_placeholders(values, 'from', from_statuses)})"
        condition += " AND last_entry_at < :at"
        if expected_versions:
            condition += f" AND version IN ({_placeholders(values, 'v', expected_versions)})"
        elif expected_versions is not None:
            # An If-Match naming no version of this incident can never match.
            condition += " AND version = :never"
            values[":never"] = -1
        if refuse_if_key_taken:
            condition += " AND attribute_not_exists(dedup_successor)"
        sets = ["#status = :to", "acknowledged_at = if_not_exists(acknowledged_at, :at)"]
        if entry["status"] in ("resolved", "closed"):
            sets.append("resolved_at = if_not_exists(resolved_at, :at)")
        if assignee is not None:
            sets.append("assignee = :assignee")
            values[":assignee"] = assignee
        token = _new_token()
        ops = [self._entry_update(incident_id, sets, condition, values, token,
                                 remove=", ".join(ESCALATION_ATTRIBUTES)),
               self._entry_put(incident_id, entry)]
        if alarm is not None:
            ops.append(self._alarm_mark(alarm, token, owner=incident_id))
        if once is not None:
            ops.append(self._once_put(once))
        self._transact(ops, token)

    @_translating_errors
    def add_note(self, incident_id: int, entry: dict[str, Any], *,
                 expected_versions: list[int] | None = None, once: Once | None = None) -> None:
        """Only while the incident has entry["status"]; else ConditionFailed (as it was)."""
        values: dict[str, Any] = {":status": entry["status"], ":at": entry["at"]}
        condition = "attribute_exists(pk) AND #status = :status AND last_entry_at < :at"
        if expected_versions is not None:
            condition += f" AND version IN ({_placeholders(values, 'v', expected_versions or [-1])})"
        token = _new_token()
        ops = [
            self._entry_update(incident_id, [], condition, values, token),
            # Stored only: the notifier tells a note from a change by `kind`.
            self._entry_put(incident_id, {**entry, "kind": "note"}),
        ]
        if once is not None:
            ops.append(self._once_put(once))
        self._transact(ops, token)

    @_translating_errors
    def reopen_taking_key_over(
        self, incident_id: int, entry: dict[str, Any], *, dedup_key: str, successor: int,
        holder: int, expected_versions: list[int] | None, once: Once | None = None,
        assignee: str | None = None,
    ) -> None:
        """The key, passed on to `successor` and held by `holder` (neither open), comes back;
        `holder` is marked in its turn."""
        values: dict[str, Any] = {":to": entry["status"], ":at": entry["at"],
                                  ":resolved": "resolved", ":successor": successor}
        condition = ("#status = :resolved AND last_entry_at < :at "
                     "AND dedup_successor = :successor")
        if expected_versions is not None:
            condition += f" AND version IN ({_placeholders(values, 'v', expected_versions or [-1])})"
        sets = ["#status = :to"]
        if assignee is not None:
            sets.append("assignee = :assignee")
            values[":assignee"] = assignee
        token = _new_token()
        ops = [
            self._entry_update(incident_id, sets, condition, values, token,
                               remove="dedup_successor"),
            self._entry_put(incident_id, entry),
            self._dedup_claim(dedup_key, incident_id, holder, None),
            self._mark_successor(holder, incident_id),
        ]
        if once is not None:
            ops.append(self._once_put(once))
        self._transact(ops, token)

    @_translating_errors
    def mark_alarm(self, alarm: AlarmMark, *, owner: int | None) -> None:
        """An event that changed nothing (OK, nothing open): an older one later is stale.
        Only while the key is as read: unowned (`owner` None) or held by `owner` (read as not
        open); else DedupKeyTaken (an ALARM opened an incident since: resolve that instead)."""
        token = _new_token()
        self._transact([self._alarm_mark(alarm, token, owner=owner)], token)

    @_translating_errors
    def reassign(self, incident_id: int, entry: dict[str, Any], *, team: str | None, assignee: str | None,
                 escalation: dict[str, Any] | None, created_key: str,
                 expected_versions: list[int] | None = None, paged: list[str] | None = None) -> None:
        """Sets team and assignee (None: removes) and starts or ends the escalation, while the
        incident still has entry["status"]; else ConditionFailed (as it was). `created_key`:
        the incident's, for the team index's key, set or removed with `team`."""
        values: dict[str, Any] = {":status": entry["status"], ":at": entry["at"]}
        condition = "attribute_exists(pk) AND #status = :status AND last_entry_at < :at"
        if expected_versions is not None:
            condition += f" AND version IN ({_placeholders(values, 'v', expected_versions or [-1])})"
        sets, removed = [], list(ESCALATION_ATTRIBUTES)
        for name, value in (("team", team), ("assignee", assignee),
                            ("team_created", team and team_created(team, created_key))):
            if value is None:
                removed.append(name)
            else:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        if escalation is not None:
            for name, value in escalation_attributes(incident_id, escalation).items():
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
                removed.remove(name)
        token = _new_token()
        stored = {**entry, "kind": "assign", **({"paged": paged} if paged else {})}
        self._transact([
            self._entry_update(incident_id, sets, condition, values, token, remove=", ".join(removed)),
            self._entry_put(incident_id, stored),
        ], token)

    @_translating_errors
    def due_escalations(self, now: str, count: int) -> list[dict[str, Any]]:
        """The incidents whose escalation is due at `now`, the longest due first: one Query of
        the sparse index, at most `count` items read."""
        items = self._query_items({
            "IndexName": ESCALATION_INDEX,
            "KeyConditionExpression": "esc_due = :due AND esc_key < :upto",
            "ExpressionAttributeValues": _values({":due": ESCALATION_DUE, ":upto": now + "~"}),
        }, count)
        return [_incident_from_item(item) for item in items]

    @_translating_errors
    def advance_escalation(self, incident_id: int, current: dict[str, Any],
                           following: dict[str, Any] | None, entry: dict[str, Any] | None) -> None:
        """From `current` (rule, loop, next_at) to `following` (None: it ends), only while the
        incident is new and its escalation still at `current`; `entry` (the step's history
        entry) in the same transaction. Else ConditionFailed."""
        values: dict[str, Any] = {":new": "new", ":rule": current["rule"], ":loop": current["loop"],
                                  ":next_at": current["next_at"]}
        condition = "#status = :new AND esc_rule = :rule AND esc_loop = :loop AND esc_next_at = :next_at"
        token = _new_token()
        if entry is None:
            self._transact([_Op("Update", {
                "Key": _key(_incident_key(incident_id)),
                "UpdateExpression": f"SET {WRITE_TOKEN} = :token REMOVE " + ", ".join(ESCALATION_ATTRIBUTES),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": _values({**values, ":token": token}),
            }, lambda old: ConditionFailed(old))], token)
            return
        values[":at"] = entry["at"]
        condition += " AND last_entry_at < :at"
        sets: list[str] = []
        removed = ", ".join(ESCALATION_ATTRIBUTES)
        if following is not None:
            for name, value in escalation_attributes(incident_id, following).items():
                sets.append(f"{name} = :n_{name}")
                values[f":n_{name}"] = value
            removed = ""
        self._transact([
            self._entry_update(incident_id, sets, condition, values, token, remove=removed),
            self._entry_put(incident_id, {**entry, "kind": "escalation"}),
        ], token)

    # --- transaction items ---

    def _entry_update(self, incident_id: int, sets: list[str], condition: str,
                      values: dict[str, Any], token: str, *, remove: str = "") -> _Op:
        """The incident's half of a change that records an entry at `:at` (the other: _entry_put)."""
        sets = [*sets, "updated_at = :at", "last_entry_at = :at", "version = version + :one",
                "history_count = history_count + :one", f"{WRITE_TOKEN} = :token"]
        return _Op("Update", {
            "Key": _key(_incident_key(incident_id)),
            "UpdateExpression": "SET " + ", ".join(sets) + (f" REMOVE {remove}" if remove else ""),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _values({**values, ":one": 1, ":token": token}),
        }, lambda old: ConditionFailed(old))

    def _entry_put(self, incident_id: int, entry: dict[str, Any]) -> _Op:
        # Unconditional: the incident's `last_entry_at < :at` already makes the key new.
        return _Op("Put", {
            "Item": {"pk": _incident_pk(incident_id), "sk": ENTRY_PREFIX + entry["at"], "entry": entry},
        }, lambda old: ConditionFailed(None))

    def _dedup_claim(self, dedup_key: str, incident_id: int, previous_owner: int | None,
                     alarm: AlarmMark | None) -> _Op:
        values: dict[str, Any] = {":id": incident_id}
        sets = ["incident_id = :id"]
        if previous_owner is None:
            condition = "attribute_not_exists(incident_id)"
        else:
            condition = "incident_id = :previous"
            values[":previous"] = previous_owner
        if alarm is not None:
            condition = f"({condition}) AND (attribute_not_exists(alarm_at) OR alarm_at < :alarm_at)"
            values[":alarm_at"] = alarm.at
            sets.append("alarm_at = :alarm_at")
        return _Op("Update", {
            "Key": _key(_dedup_key(dedup_key)),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": _values(values),
        }, functools.partial(_refused_dedup, alarm))

    def _alarm_mark(self, alarm: AlarmMark, token: str, owner: int | None) -> _Op:
        """While `owner` holds the key (None: while nobody does)."""
        condition = "(attribute_not_exists(alarm_at) OR alarm_at < :alarm_at)"
        values: dict[str, Any] = {":alarm_at": alarm.at, ":token": token}
        if owner is not None:
            condition += " AND incident_id = :owner"
            values[":owner"] = owner
        else:
            condition += " AND attribute_not_exists(incident_id)"
        return _Op("Update", {
            "Key": _key(_dedup_key(alarm.dedup_key)),
            "UpdateExpression": f"SET alarm_at = :alarm_at, {WRITE_TOKEN} = :token",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": _values(values),
        }, functools.partial(_refused_dedup, alarm))

    def _mark_successor(self, incident_id: int, successor: int) -> _Op:
        return _Op("Update", {
            "Key": _key(_incident_key(incident_id)),
            "UpdateExpression": "SET dedup_successor = :successor",
            "ConditionExpression": "#status IN (:resolved, :closed)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _values(
                {":successor": successor, ":resolved": "resolved", ":closed": "closed"}
            ),
        }, lambda old: DedupKeyTaken("previous owner reopened"))

    def _once_put(self, once: Once) -> _Op:
        now = time.time()
        return _Op("Put", {
            "Item": once.item(now),
            "ConditionExpression": f"attribute_not_exists(pk) OR {TTL_ATTRIBUTE} < :now",
            "ExpressionAttributeValues": _values({":now": int(now)}),
        }, lambda old: AlreadyDone(_once_from_item(old or {})))

    def _transact(self, ops: list[_Op], token: str) -> None:
        """One call for one item, else a transaction; a refusal raises that item's `refused`,
        unless a refused item carries `token`: botocore's retry of a write that was applied."""
        if len(ops) == 1:
            self._write_single(ops[0], token)
            return
        items = [
            {op.kind: {"TableName": self.table_name, **_serialized_params(op),
                       "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
            for op in ops
        ]
        try:
            # DynamoDB answers a retry bearing the same token (botocore resends the same
            # parameters) as the first attempt, without applying it twice.
            self._client.transact_write_items(TransactItems=items, ClientRequestToken=token)
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise
            self._explain_cancellation(ops, error, token)

    def _write_single(self, op: _Op, token: str) -> None:
        call = {"Put": self._client.put_item, "Update": self._client.update_item}[op.kind]
        try:
            call(TableName=self.table_name, **_serialized_params(op),
                 ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            old = _plain(error.response["Item"]) if error.response.get("Item") else None
            if old is not None and old.get(WRITE_TOKEN) == token:
                return
            raise op.refused(old) from None

    def _explain_cancellation(self, ops: list[_Op], error: ClientError, token: str) -> None:
        reasons = error.response.get("CancellationReasons", [])
        if any(reason.get("Item") and _plain(reason["Item"]).get(WRITE_TOKEN) == token
               for reason in reasons):
            return  # our own first attempt, applied
        refusals = [op.refused(_plain(reason["Item"]) if reason.get("Item") else None)
                    for op, reason in zip(ops, reasons) if reason.get("Code") == "ConditionalCheckFailed"]
        if refusals:
            # A request whose once-key is recorded was done already, whatever else refuses it now.
            raise next((r for r in refusals if isinstance(r, AlreadyDone)), refusals[0]) from None
        codes = [reason.get("Code", "?") for reason in reasons]
        if "ValidationError" in codes:
            messages = "; ".join(r.get("Message", "") for r in reasons if r.get("Code") == "ValidationError")
            raise LimitExceeded(f"the change exceeds a DynamoDB limit: {messages}") from error
        raise Unavailable(f"transaction cancelled: {', '.join(codes)}") from error


def change_from_stream(record: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """(incident id, entry) for an INSERT of a history entry made here; None for any other
    record, and for an entry a migration copied."""
    if record.get("eventName") != "INSERT":
        return None
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    item = _plain(image)
    pk, sk = str(item.get("pk", "")), str(item.get("sk", ""))
    if not (pk.startswith("incident#") and sk.startswith(ENTRY_PREFIX) and "entry" in item):
        return None
    if COPIED_FROM in item:
        return None
    entry = _entry_from_item(item)
    if item["entry"].get("kind"):
        entry["kind"] = item["entry"]["kind"]
    if item["entry"].get("paged"):
        entry["paged"] = list(item["entry"]["paged"])
    return int(pk.removeprefix("incident#")), entry


def _new_token() -> str:
    """One per write call: botocore's retries of the call resend it unchanged."""
    return str(uuid.uuid4())


def _refused_dedup(alarm: AlarmMark | None, old: dict[str, Any] | None) -> Exception:
    if alarm is not None and old is not None and old.get("alarm_at", "") >= alarm.at:
        return StaleEvent(f"alarm event at {alarm.at} is not newer than {old['alarm_at']}")
    return DedupKeyTaken("dedup key changed hands")


@dataclass(frozen=True)
class _Partition:
    index: str
    hash_attribute: str
    value: str
    range_attribute: str = "created_key"
    prefix: str = ""


def _partitions(statuses: list[str] | None, source: str | None) -> list[_Partition]:
    if statuses is None and source is None:
        return [_Partition(CREATED_INDEX, "listed", LISTED)]
    if statuses is None:
        return [_Partition(SOURCE_INDEX, "source", source)]
    if source is None:
        return [_Partition(STATUS_INDEX, "status", status) for status in statuses]
    return [_Partition(STATUS_SOURCE_INDEX, "status", status, "source_created", f"{source}#")
            for status in statuses]


def _team_partitions(statuses: list[str] | None, team: str) -> list[_Partition]:
    """A team alone: one partition per status (every incident has one), as `?status=` reads
    one per status it names."""
    return [_Partition(STATUS_TEAM_INDEX, "status", status, "team_created", f"{team}#")
            for status in (statuses if statuses is not None else [str(s) for s in Status])]


def _id_of(created_key_: str) -> int:
    return int(created_key_.rsplit("#", 1)[1])


def _placeholders(values: dict[str, Any], prefix: str, items: list[Any]) -> str:
    """`:prefix0, :prefix1, …` for IN (...), each bound in `values`."""
    names = [f":{prefix}{i}" for i in range(len(items))]
    values.update(zip(names, items))
    return ", ".join(names)


def _serialized_params(op: _Op) -> dict[str, Any]:
    params = dict(op.params)
    if "Item" in params:
        params["Item"] = _key(params["Item"])
    return params


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _limit_message(error: ClientError) -> str:
    message = error.response.get("Error", {}).get("Message", "")
    return f"the request exceeds a DynamoDB limit ({message}); send less data"


def _key(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serialize(value) for name, value in item.items()}


_values = _key


def _plain(low_level: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserialize(value) for name, value in low_level.items()}


def _incident_pk(incident_id: int) -> str:
    return f"incident#{incident_id}"


def _incident_key(incident_id: int) -> dict[str, str]:
    return {"pk": _incident_pk(incident_id), "sk": INCIDENT_SK}


def _dedup_key(dedup_key: str) -> dict[str, str]:
    return {"pk": f"dedup#{dedup_key}", "sk": "dedup"}


def _once_key(key: str) -> dict[str, str]:
    return {"pk": f"once#{key}", "sk": "once"}


def created_key(incident: dict[str, Any]) -> str:
    return f"{incident['created_at']}#{incident['id']:020d}"


_INDEX_ONLY = ("pk", "sk", "created_key", "source_created", "team_created", "listed", "dedup_successor",
               WRITE_TOKEN)
_INTEGERS = ("id", "occurrences", "version", "history_count")
_OPTIONAL = ("team", "assignee")


def _item_from_incident(incident: dict[str, Any]) -> dict[str, Any]:
    key = created_key(incident)
    # Absent rather than NULL: team, assignee and escalation are null until set.
    fields = {k: v for k, v in incident.items()
              if k not in ("history", "escalation") and not (k in _OPTIONAL and v is None)
              and not (k == "labels" and not v)}
    last = incident["history"][-1]["at"] if incident.get("history") else incident["updated_at"]
    escalation = incident.get("escalation")
    team = incident.get("team")
    return {**_incident_key(incident["id"]), "created_key": key,
            "source_created": f"{incident['source']}#{key}", "listed": LISTED, "last_entry_at": last,
            **({"team_created": team_created(team, key)} if team else {}),
            **fields, **(escalation_attributes(incident["id"], escalation) if escalation else {})}


def team_created(team: str, created_key_: str) -> str:
    """by_status_team's sort key: team names are [a-z0-9-], so '#' ends the name."""
    return f"{team}#{created_key_}"


def escalation_attributes(incident_id: int, escalation: dict[str, Any]) -> dict[str, Any]:
    """The flat attributes of a running escalation; `esc_due` and `esc_key` put the incident in
    the due index, sorted by when its next rule is due."""
    attributes = {"esc_due": ESCALATION_DUE, "esc_key": f"{escalation['next_at']}#{incident_id:020d}",
                  "esc_rule": escalation["rule"], "esc_loop": escalation["loop"],
                  "esc_next_at": escalation["next_at"]}
    if escalation.get("generation"):  # the life of the team it runs for (not shown)
        attributes["esc_generation"] = escalation["generation"]
    return attributes


def _incident_from_item(item: dict[str, Any]) -> dict[str, Any]:
    incident = {k: v for k, v in item.items() if k not in _INDEX_ONLY and k not in ESCALATION_ATTRIBUTES}
    for name in _INTEGERS:
        incident[name] = int(incident[name])
    incident.setdefault("dedup_key", None)
    for name in _OPTIONAL:
        incident.setdefault(name, None)
    incident.setdefault("labels", {})  # absent: none given, or stored before labels existed
    incident["escalation"] = None
    if "esc_rule" in item:
        incident["escalation"] = {"rule": int(item["esc_rule"]), "loop": int(item["esc_loop"]),
                                  "next_at": item["esc_next_at"]}
        if "esc_generation" in item:
            incident["escalation"]["generation"] = item["esc_generation"]
    if "dedup_successor" in item:
        incident["dedup_successor"] = int(item["dedup_successor"])
    return incident


def _entry_from_item(item: dict[str, Any]) -> dict[str, Any]:
    entry = item["entry"]
    return {"at": entry["at"], "status": entry["status"], "note": entry.get("note"), "by": entry["by"]}


def _dedup_from_item(item: dict[str, Any]) -> DedupRecord:
    owner = item.get("incident_id")
    return DedupRecord(int(owner) if owner is not None else None, item.get("alarm_at"))


def _once_from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "fingerprint": item.get("fingerprint"),
        "status_code": int(item.get("status_code", 200)),
        "body": json.loads(item["body"]) if item.get("body") else None,
    }


@functools.lru_cache(maxsize=1)
def default_store() -> Store:
    """Built on first use, not at import (cold start), then kept for the container's life."""
    return Store.from_environment()


# SnapStart (docs/cold-start.md): the snapshot holds the client ready. No request, no secret here.
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
    try:
        default_store()
    except Exception:  # then built on first use, as without SnapStart
        default_store.cache_clear()
