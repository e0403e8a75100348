"""Speed-ups of moto's DynamoDB for large tables and long item collections: the same answers,
sooner (tests/test_bench_smoke.py checks that). Used by the benchmark and by the tests that
drive thousands of writes; importing this module changes nothing until `fast_moto()` is entered.
"""
from __future__ import annotations

import contextlib
import copy as _real_copy
import json
import threading
from decimal import Decimal
from typing import Any, Iterator

from moto.dynamodb import models as moto_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table as MotoTable
from moto.dynamodb.responses import DynamoHandler


_original_sorted_items = MotoTable.sorted_items


def _sort_value(value: Any) -> tuple[str, Any]:
    return (value.type, Decimal(value.value)) if value.type == "N" else (value.type, value.value)


def _fast_sorted_items(self: MotoTable, hash_key_attrs: list[str], range_key_attrs: list[Any],
                       items: list[Any]) -> list[Any]:
    """moto sorts a GSI partition with Python-level DynamoType comparisons (seconds per Query
    at 100k items). Same order from plain keys: S by code point (= UTF-8 byte order), N by value.
    Changes only how fast moto answers, not what it answers (tests/test_bench_smoke.py checks)."""
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda item: tuple(_sort_value(item.attrs[a]) for a in attrs))
    return items


_original_serialized = DynamoHandler.serialized


def _fast_serialized(self: DynamoHandler, action_result: Any) -> Any:
    """moto serializes a Query answer through its generic model-driven serializer (most of the
    time of a 51-item page); DynamoDB's JSON protocol is the plain JSON of that dict."""
    result = action_result.result
    if self._get_action() != "Query" or not isinstance(result, dict):
        return _original_serialized(self, action_result)
    headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
    return 200, headers, json.dumps(result)


_original_transact = moto_models.DynamoDBBackend.transact_write_items


class _SnapshotCopy:
    """Stands in for the `copy` module inside moto's backend during TransactWriteItems: moto
    deep-copies the whole table to roll back a cancelled transaction (seconds at 10k items).
    A snapshot holding deep copies of just the items the transaction names rolls back the same."""

    def __init__(self, touched: set[tuple[Any, Any]]) -> None:
        self.touched = touched  # (hash key, range key or None)

    def deepcopy(self, value: Any, *args: Any) -> Any:
        if not isinstance(value, MotoTable):
            return _real_copy.deepcopy(value, *args)
        snapshot = _real_copy.copy(value)
        snapshot.items = dict(value.items)
        for hash_key, range_key in self.touched:
            if hash_key not in value.items:
                continue
            if range_key is None:
                snapshot.items[hash_key] = _real_copy.deepcopy(value.items[hash_key])
                continue
            # A collection: copy its mapping, and deep-copy only the item the transaction names.
            collection = dict(snapshot.items[hash_key])
            if range_key in collection:
                collection[range_key] = _real_copy.deepcopy(collection[range_key])
            snapshot.items[hash_key] = collection
        return snapshot


def _fast_transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
    touched = set()
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName"))
        key = op.get("Key") or op.get("Item") or {}
        if table is not None and table.hash_key_attr in key:
            range_key = key.get(table.range_key_attr) if table.range_key_attr else None
            touched.add((DynamoType(key[table.hash_key_attr]),
                         DynamoType(range_key) if range_key is not None else None))
    moto_models.copy = _SnapshotCopy(touched)
    try:
        return _original_transact(self, transact_items)
    finally:
        moto_models.copy = _real_copy


_original_query = MotoTable.query
_original_all_items = MotoTable.all_items
_one_collection = threading.local()


def _fast_all_items(self: MotoTable) -> list[Any]:
    only = getattr(_one_collection, "value", None)
    if only is not None and only[0] is self:
        return list(only[1].values())
    return _original_all_items(self)


def _fast_query(self: MotoTable, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    """A Query on the table itself (an item collection): moto sorts every item of the table to
    pick the collection's, then sorts those by range key. Handing it the collection alone gives
    the same answer (seconds per Query at 100k incidents, each with its entries)."""
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or hash_key is None or not self.range_key_attr:
        return _original_query(self, hash_key, *args, **kwargs)
    _one_collection.value = (self, self.items.get(hash_key, {}))
    try:
        return _original_query(self, hash_key, *args, **kwargs)
    finally:
        _one_collection.value = None


@contextlib.contextmanager
def fast_moto() -> Iterator[None]:
    """Speed-ups of moto for large tables; same answers (tests/test_bench_smoke.py checks)."""
    MotoTable.sorted_items = _fast_sorted_items
    DynamoHandler.serialized = _fast_serialized
    moto_models.DynamoDBBackend.transact_write_items = _fast_transact
    MotoTable.query, MotoTable.all_items = _fast_query, _fast_all_items
    try:
        yield
    finally:
        MotoTable.query, MotoTable.all_items = _original_query, _original_all_items
        MotoTable.sorted_items = _original_sorted_items
        DynamoHandler.serialized = _original_serialized
        moto_models.DynamoDBBackend.transact_write_items = _original_transact


