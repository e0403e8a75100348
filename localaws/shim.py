"""moto's DynamoDB with DynamoDB's costs and DynamoDB's ClientRequestToken: the same answers,
the same errors, sooner (tests/test_embedded_dynamodb.py holds it to plain moto's answers).

- TransactWriteItems: moto deep-copies every table a transaction names, for its rollback, so
  each write costs O(table); here only the items the transaction names are copied (and put
  back, with the stream, when it fails).
- TransactWriteItems honours ClientRequestToken for 10 minutes, as DynamoDB does (moto ignores it).
- Query: moto reads every item of the table to pick a partition; here a GSI partition (kept
  up to date by every write) or an item collection is read alone, sorted with plain keys, and
  the answer serialised as the plain JSON it is (moto's generic serializer is slow); string
  keys hashed straight rather than through DynamoType's property chain.

Written against one moto version (PINNED_MOTO, pinned in requirements-dev.txt); `install()`
refuses to patch any other, or one whose patched functions changed.
"""
from __future__ import annotations

import collections
import contextlib
import copy as _real_copy
import hashlib
import inspect
import json
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Iterator

import moto
from moto.core.responses import ActionResult
from moto.dynamodb import models as moto_models
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table as MotoTable
from moto.dynamodb.responses import DynamoHandler

PINNED_MOTO = "5.2.5"
TOKEN_WINDOW_SECONDS = 600.0
Backend = moto_models.DynamoDBBackend

# What the shim replaces, and what localaws/persist.py relies on, with a digest of each one's
# source in PINNED_MOTO.
_CHECKED: dict[str, tuple[Callable[..., Any], str]] = {
    "DynamoType.__hash__": (DynamoType.__hash__, "4d37bb816ded"),
    "DynamoType.cast_value": (DynamoType.cast_value.fget, "135da387dfcc"),
    "Table.sorted_items": (MotoTable.sorted_items, "216dac1cd6b6"),
    "Table.query": (MotoTable.query, "002b4d00be6d"),
    "Table.all_items": (MotoTable.all_items, "c80d2ee3c896"),
    "Table.put_item": (MotoTable.put_item, "de23933013ef"),
    "Table.delete_item": (MotoTable.delete_item, "1594f7b07616"),
    "DynamoDBBackend.transact_write_items": (Backend.transact_write_items, "81db2cb7d94e"),
    "DynamoDBBackend.update_item": (Backend.update_item, "218984588dd6"),
    "DynamoDBBackend.create_table": (Backend.create_table, "2bb8105ad9fa"),
    "DynamoDBBackend.update_time_to_live": (Backend.update_time_to_live, "9da0deb00bb2"),
    "DynamoHandler.serialized": (DynamoHandler.serialized, "af486a0ef132"),
    "DynamoHandler.transact_write_items": (DynamoHandler.transact_write_items, "61c163fff213"),
}


class MotoChanged(RuntimeError):
    """The installed moto is not the one the shim was written for."""


def source_digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:12]


def check_moto() -> None:
    """Raises MotoChanged, naming both versions, unless moto is PINNED_MOTO as it was."""
    changed = [name for name, (function, digest) in _CHECKED.items() if source_digest(function) != digest]
    if moto.__version__ != PINNED_MOTO or changed:
        raise MotoChanged(
            f"localaws/shim.py was written for moto {PINNED_MOTO}; installed is moto "
            f"{moto.__version__}" + (f" with changed {', '.join(changed)}" if changed else "")
            + f". Install moto=={PINNED_MOTO} (pip install -r requirements-dev.txt), or re-check "
            "the shim against the new moto (tests/test_embedded_dynamodb.py) and update its digests."
        )


# --- Query ---------------------------------------------------------------------------------

_original_sorted_items = MotoTable.sorted_items


def _sort_value(value: Any) -> tuple[str, Any]:
    return (value.type, Decimal(value.value)) if value.type == "N" else (value.type, value.value)


def _fast_sorted_items(self: MotoTable, hash_key_attrs: list[str], range_key_attrs: list[Any],
                       items: list[Any]) -> list[Any]:
    """moto sorts with Python-level DynamoType comparisons (seconds per Query at 100k items).
    Same order from plain keys: S by code point (= UTF-8 byte order), N by value."""
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda item: tuple(_sort_value(item.attrs[a]) for a in attrs))
    return items


_original_serialized = DynamoHandler.serialized


def _fast_serialized(self: DynamoHandler, action_result: Any) -> Any:
    """A Query answer through moto's generic model-driven serializer is most of the time of a
    51-item page; DynamoDB's JSON protocol is the plain JSON of that dict."""
    result = action_result.result
    if self._get_action() != "Query" or not isinstance(result, dict):
        return _original_serialized(self, action_result)
    headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
    return 200, headers, json.dumps(result)


_original_query = MotoTable.query
_original_all_items = MotoTable.all_items
_one_collection = threading.local()


def _fast_all_items(self: MotoTable) -> list[Any]:
    only = getattr(_one_collection, "value", None)
    if only is not None and only[0] is self:
        return list(only[1].values())
    return _original_all_items(self)


def _fast_query(self: MotoTable, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    """moto picks a Query's partition out of every item of the table, then sorts it. Handing it
    the partition alone gives the same answer at the partition's cost: an item collection
    straight from the table, a GSI partition from _partitions (kept up to date by every write)."""
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if hash_key is None:
        return _original_query(self, hash_key, *args, **kwargs)
    if index_name:
        index = next((i for i in self.global_indexes if i.name == index_name), None)
        if index is None or _index_key(index) is None:
            return _original_query(self, hash_key, *args, **kwargs)
        partitions = _partitions(self)
        if index_name not in partitions:  # added by UpdateTable since the table was indexed
            index_table(self)
            partitions = _partitions(self)
        only = partitions.get(index_name, {}).get(_plain_key(hash_key), {})
    elif self.range_key_attr:
        only = self.items.get(hash_key, {})
    else:
        return _original_query(self, hash_key, *args, **kwargs)
    _one_collection.value = (self, only)
    try:
        return _original_query(self, hash_key, *args, **kwargs)
    finally:
        _one_collection.value = None


def _plain_key(value: Any) -> tuple[str, Any]:
    """A key attribute as a plain, cheaply hashed tuple (DynamoType hashes through Decimal)."""
    return (value.type, Decimal(value.value)) if value.type == "N" else (value.type, value.value)


def _item_key(hash_key: Any, range_key: Any) -> tuple[Any, ...]:
    return _plain_key(hash_key) + (_plain_key(range_key) if range_key is not None else ())


def _index_key(index: Any) -> tuple[str, tuple[str, ...]] | None:
    """(hash attribute, every key attribute) of a GSI with one hash key; else None."""
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    if len(hashes) != 1:
        return None
    return hashes[0], tuple(k["AttributeName"] for k in index.schema)


def _indexed_under(table: MotoTable, item: Any) -> list[tuple[str, Any]]:
    """(index name, hash value) of every GSI partition that holds the item: DynamoDB indexes an
    item only when it has all the index's key attributes (a sparse index holds few)."""
    under = []
    for index in table.global_indexes:
        key = _index_key(index)
        if key is not None and all(item.attrs.get(attr) is not None for attr in key[1]):
            under.append((index.name, _plain_key(item.attrs[key[0]])))
    return under


def _partitions(table: MotoTable) -> dict[str, dict[Any, dict[Any, Any]]]:
    """GSI name -> its hash key's value -> {item key: item}, made on a table's first GSI Query
    (or by index_table), then kept by _reindex after every write."""
    partitions = table.__dict__.get("_partitions")
    if partitions is None:
        index_table(table)
        partitions = table.__dict__["_partitions"]
    return partitions


def index_table(table: MotoTable) -> None:
    """Makes the table's GSI partitions from its items: one pass."""
    partitions: dict[str, dict[Any, dict[Any, Any]]] = {i.name: {} for i in table.global_indexes}
    indexed: dict[Any, list[tuple[str, Any]]] = {}
    collections = table.items.values() if table.range_key_attr else [table.items]
    for item in (item for collection in collections for item in collection.values()):
        under = _indexed_under(table, item)
        if under:
            key = _item_key(item.hash_key, item.range_key)
            for name, value in under:
                partitions[name].setdefault(value, {})[key] = item
            indexed[key] = under
    table.__dict__["_partitions"], table.__dict__["_indexed"] = partitions, indexed


def _reindex(table: MotoTable, hash_key: Any, range_key: Any) -> None:
    partitions = table.__dict__.get("_partitions")
    if partitions is None or (range_key is None) != (table.range_key_attr is None):
        return  # not indexed yet, or a key of another table of the same transaction
    indexed = table.__dict__["_indexed"]  # item key -> [(index name, value)] it is under
    key = _item_key(hash_key, range_key)
    for name, value in indexed.pop(key, ()):
        partition = partitions[name][value]
        partition.pop(key, None)
        if not partition:
            del partitions[name][value]
    item = table.get_item(hash_key, range_key)
    if item is None:
        return
    under = _indexed_under(table, item)
    for name, value in under:
        partitions.setdefault(name, {}).setdefault(value, {})[key] = item
    if under:
        indexed[key] = under


# --- every write, seen ---------------------------------------------------------------------

_put_item, _delete_item, _update_item = MotoTable.put_item, MotoTable.delete_item, Backend.update_item
WRITE_LISTENERS: list[Callable[[MotoTable, Any, Any], None]] = []  # (table, hash key, range key)


def _wrote(table: MotoTable, hash_key: Any, range_key: Any) -> None:
    _reindex(table, hash_key, range_key)
    for listener in WRITE_LISTENERS:
        listener(table, hash_key, range_key)


def _seen_put_item(self: MotoTable, *args: Any, **kwargs: Any) -> Any:
    item = _put_item(self, *args, **kwargs)
    _wrote(self, item.hash_key, item.range_key)
    return item


def _seen_delete_item(self: MotoTable, hash_key: Any, range_key: Any) -> Any:
    item = _delete_item(self, hash_key, range_key)
    _wrote(self, hash_key, range_key)
    return item


def _seen_update_item(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
    item = _update_item(self, table_name, *args, **kwargs)  # changes the item in place
    _wrote(self.get_table(table_name), item.hash_key, item.range_key)
    return item


_original_hash = DynamoType.__hash__


def _fast_hash(self: DynamoType) -> int:
    """Every key lookup in a moto table hashes DynamoTypes through a property chain; for the
    string and binary keys it is the same hash, straight."""
    if self.type == "S" or self.type == "B":
        return hash((self.type, self.value))
    return _original_hash(self)


# --- TransactWriteItems --------------------------------------------------------------------

_original_transact = Backend.transact_write_items


class _SnapshotCopy:
    """Stands in for the `copy` module inside moto's backend during TransactWriteItems. moto
    deep-copies each table the transaction names, to put it back if the transaction fails; the
    "copy" here is the table itself, with the items the transaction names remembered as they
    were (deep copies), and `restore()` puts them back after moto's rollback."""

    def __init__(self, touched: set[tuple[Any, Any]]) -> None:
        self.touched = touched  # (hash key, range key or None)
        self.before: dict[tuple[int, Any, Any], tuple[MotoTable, Any]] = {}

    def deepcopy(self, value: Any, *args: Any) -> Any:
        if not isinstance(value, MotoTable):
            return _real_copy.deepcopy(value, *args)
        for hash_key, range_key in self.touched:
            if (range_key is None) != (value.range_key_attr is None):
                continue  # a key of another table of the same transaction
            remembered = (id(value), hash_key, range_key)
            if remembered not in self.before:
                item = value.get_item(hash_key, range_key)
                self.before[remembered] = (value, _real_copy.deepcopy(item) if item is not None else None)
        return value

    def restore(self) -> None:
        for (_, hash_key, range_key), (table, item) in self.before.items():
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
                continue
            collection = table.items.get(hash_key)
            if item is not None:
                table.items[hash_key][range_key] = item
            elif collection is not None:
                collection.pop(range_key, None)
                if not collection:
                    del table.items[hash_key]


def _fast_transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
    touched = set()
    streams = {}
    names = set()
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName"))
        if table is None:
            continue
        names.add(table.name)
        if table.stream_shard is not None:
            streams[id(table.stream_shard)] = (table.stream_shard, len(table.stream_shard.items))
        key = op.get("Key") or op.get("Item") or {}
        if table.hash_key_attr in key:
            range_key = key.get(table.range_key_attr) if table.range_key_attr else None
            touched.add((DynamoType(key[table.hash_key_attr]),
                         DynamoType(range_key) if range_key is not None else None))
    snapshot = _SnapshotCopy(touched)
    moto_models.copy = snapshot
    try:
        return _original_transact(self, transact_items)
    except Exception:
        # moto put back its "copies" (the tables themselves): now the items they name, and the
        # stream without the records of the writes undone.
        snapshot.restore()
        for shard, length in streams.values():
            del shard.items[length:]
        for name in names:
            for hash_key, range_key in touched:
                _reindex(self.tables[name], hash_key, range_key)
        raise
    finally:
        moto_models.copy = _real_copy


class IdempotentParameterMismatch(DynamodbException):
    """DynamoDB's answer to a ClientRequestToken reused with another request."""

    def __init__(self) -> None:
        super().__init__(ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
                         "ClientRequestToken was used within the last 10 minutes by a "
                         "TransactWriteItems request with other parameters")


clock: Callable[[], float] = time.monotonic  # the tests move it

_original_transact_handler = DynamoHandler.transact_write_items


def _transact_with_token(self: DynamoHandler) -> Any:
    """As DynamoDB: for 10 minutes after a TransactWriteItems with a ClientRequestToken
    succeeded, the same request with that token succeeds again without applying anything, and
    another request with it is IdempotentParameterMismatchException."""
    token = self.body.get("ClientRequestToken")
    if token is None:
        return _original_transact_handler(self)
    tokens = self.dynamodb_backend.__dict__.setdefault("_client_request_tokens", collections.OrderedDict())
    now = clock()
    while tokens and now - next(iter(tokens.values()))[1] >= TOKEN_WINDOW_SECONDS:
        tokens.popitem(last=False)
    request = {name: value for name, value in self.body.items() if name != "ClientRequestToken"}
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    if token in tokens:
        if tokens[token][0] != digest:
            raise IdempotentParameterMismatch()
        return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
    result = _original_transact_handler(self)
    tokens[token] = (digest, now)
    return result


# --- on and off ----------------------------------------------------------------------------

_PATCHES = [
    (MotoTable, "sorted_items", _original_sorted_items, _fast_sorted_items),
    (MotoTable, "query", _original_query, _fast_query),
    (MotoTable, "all_items", _original_all_items, _fast_all_items),
    (DynamoHandler, "serialized", _original_serialized, _fast_serialized),
    (DynamoHandler, "transact_write_items", _original_transact_handler, _transact_with_token),
    (Backend, "transact_write_items", _original_transact, _fast_transact),
    (DynamoType, "__hash__", _original_hash, _fast_hash),
    (MotoTable, "put_item", _put_item, _seen_put_item),
    (MotoTable, "delete_item", _delete_item, _seen_delete_item),
    (Backend, "update_item", _update_item, _seen_update_item),
]


def installed() -> bool:
    return MotoTable.query is _fast_query


def install() -> None:
    """Patches moto for the rest of the process (idempotent); MotoChanged if moto changed."""
    check_moto()
    for owner, name, _, patched in _PATCHES:
        setattr(owner, name, patched)


def uninstall() -> None:
    for owner, name, original, _ in _PATCHES:
        setattr(owner, name, original)


@contextlib.contextmanager
def fast_moto() -> Iterator[None]:
    """The shim on inside the block, as it was after."""
    was = installed()
    install()
    try:
        yield
    finally:
        if not was:
            uninstall()


@contextlib.contextmanager
def plain_moto() -> Iterator[None]:
    """moto as it is, inside the block (to compare the shim's answers with moto's)."""
    was = installed()
    uninstall()
    try:
        yield
    finally:
        if was:
            install()
