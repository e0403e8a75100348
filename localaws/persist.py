"""The embedded DynamoDB's data kept on disk as its items, not as the requests that made them:
a restart costs the size of the data, not the length of its history.

- `dynamodb-items.jsonl`: a snapshot of every table (its definition and TTL, then one line per
  item, DynamoDB JSON), replaced atomically (written aside, then renamed) on stop.
- `dynamodb-changes.jsonl`: every CHANGES_EVERY seconds, the items written or deleted since (their
  state now, so applying a line twice is applying it once); a killed run loses at most those
  seconds. Folded into a new snapshot when the run stops, or at the next start after a kill.

Loading puts the items straight into moto's tables: no stream records (nothing old is announced
again), no request handling. Everything here runs in the process that serves moto.
"""
from __future__ import annotations

import base64
import gc
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table

from localaws import shim

SNAPSHOT = "dynamodb-items.jsonl"
CHANGES = "dynamodb-changes.jsonl"
FORMAT = 1
CHANGES_EVERY = 2.0

TableId = tuple[str, str, str]  # account, region, table name


def _tables() -> Iterator[tuple[TableId, Table, DynamoDBBackend]]:
    for account, regions in list(dynamodb_backends.items()):
        for region, backend in list(regions.items()):
            for name, table in list(backend.tables.items()):
                yield (account, region, name), table, backend


def _definition(table: Table) -> dict[str, Any]:
    """What CreateTable needs to make this table again (and its TTL)."""
    provisioned = table.billing_mode != "PAY_PER_REQUEST"
    throughput = {name: table.throughput[name] for name in ("ReadCapacityUnits", "WriteCapacityUnits")}
    definition: dict[str, Any] = {
        "TableName": table.name, "KeySchema": table.schema, "AttributeDefinitions": table.attr,
        "BillingMode": "PROVISIONED" if provisioned else "PAY_PER_REQUEST",
    }
    if provisioned:
        definition["ProvisionedThroughput"] = throughput
    if table.global_indexes:
        definition["GlobalSecondaryIndexes"] = [
            {"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection,
             **({"ProvisionedThroughput": {k: i.throughput[k] for k in throughput}} if provisioned else {})}
            for i in table.global_indexes]
    if table.indexes:
        definition["LocalSecondaryIndexes"] = [i.describe() for i in table.indexes]
    if table.stream_specification and table.stream_specification.get("StreamEnabled"):
        definition["StreamSpecification"] = {"StreamEnabled": True,
                                             "StreamViewType": table.stream_specification["StreamViewType"]}
    return {"definition": definition, "ttl": dict(table.ttl)}


def _dynamo(plain: dict[str, Any]) -> DynamoType:
    """DynamoType(plain), as moto's __init__ makes it, at a third of its cost."""
    ((kind, value),) = plain.items()
    if kind == "L":
        value = [_dynamo(element) for element in value]
    elif kind == "M":
        value = {name: _dynamo(element) for name, element in value.items()}
    made = object.__new__(DynamoType)
    made.type, made.value = kind, value
    return made


def _plain(value: DynamoType) -> dict[str, Any]:
    """The DynamoDB JSON of a DynamoType, as Item.to_json gives it, at a third of its cost."""
    kind, inner = value.type, value.value
    if type(inner) is list:
        inner = [_plain(element) if type(element) is DynamoType else element for element in inner]
    elif type(inner) is dict:
        inner = {name: _plain(element) for name, element in inner.items()}
    elif type(inner) is bytes:
        inner = base64.b64encode(inner).decode()
    return {kind: inner}


def _item_json(item: Item) -> str:
    return json.dumps({name: _plain(value) for name, value in item.attrs.items()}, ensure_ascii=False)


def _create_table(backend: DynamoDBBackend, definition: dict[str, Any], ttl: dict[str, Any]) -> None:
    """As CreateTable (moto's responses.create_table) and UpdateTimeToLive would."""
    backend.create_table(
        definition["TableName"], schema=definition["KeySchema"],
        throughput=definition.get("ProvisionedThroughput"), attr=definition["AttributeDefinitions"],
        global_indexes=definition.get("GlobalSecondaryIndexes", []),
        indexes=definition.get("LocalSecondaryIndexes", []), streams=definition.get("StreamSpecification"),
        billing_mode=definition["BillingMode"], sse_specification=None, tags=[],
        deletion_protection_enabled=False, warm_throughput=None)
    if ttl.get("TimeToLiveStatus") == "ENABLED":
        backend.update_time_to_live(definition["TableName"], {"Enabled": True, "AttributeName": ttl["AttributeName"]})


def _new_item(table: Table, attrs: dict[str, Any]) -> Item:
    """moto's Item without its per-attribute size check (O(attributes²)): the item passed it
    when it was first written."""
    item = Item.__new__(Item)
    item.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(item.attrs, {name: _dynamo(value) for name, value in attrs.items()})
    item.hash_key = _dynamo(attrs[table.hash_key_attr])
    item.range_key = _dynamo(attrs[table.range_key_attr]) if table.range_key_attr else None
    return item


def _place(table: Table, item: Item) -> None:
    if table.range_key_attr:
        table.items[item.hash_key][item.range_key] = item
    else:
        table.items[item.hash_key] = item


def _remove(table: Table, key: dict[str, Any]) -> None:
    hash_key = DynamoType(key[table.hash_key_attr])
    if table.range_key_attr:
        collection = table.items.get(hash_key)
        if collection is not None:
            collection.pop(DynamoType(key[table.range_key_attr]), None)
            if not collection:
                del table.items[hash_key]
    else:
        table.items.pop(hash_key, None)


def _all_items(table: Table) -> Iterable[Item]:
    for value in table.items.values():
        if table.range_key_attr:
            yield from value.values()
        else:
            yield value


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    """Each complete line (one cut short by a kill mid-write is left out)."""
    with path.open("rb") as file:
        for line in file:
            if line.endswith(b"\n"):
                yield json.loads(line)


class KeptData:
    """The items of every table of this process's moto, kept in `directory`."""

    def __init__(self, directory: Path, lock: threading.Lock) -> None:
        self.snapshot_path = directory / SNAPSHOT
        self.changes_path = directory / CHANGES
        self.lock = lock  # held by the server around each request: the flusher takes it too
        self._dirty: dict[TableId, set[tuple[Any, Any]]] = {}
        self._written_tables: dict[TableId, Any] = {}

    # --- start -----------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.snapshot_path.exists() or self.changes_path.exists()

    def load(self) -> int:
        """Makes the kept tables, puts their items in, applies the changes after the snapshot.
        Returns how many items there are. Call with moto idle."""
        gc.disable()  # millions of objects made, none freed: the collector would only look at them
        try:
            count = self._load()
        finally:
            gc.enable()
        gc.freeze()  # and never look at them later either (latency at 100k items as at 0)
        return count

    def _load(self) -> int:
        tables: dict[Any, Table] = {}

        def table_of(table_id: list[str], spec: dict[str, Any] | None = None) -> Table | None:
            account, region, name = table_id
            backend = dynamodb_backends[account][region]
            if name not in backend.tables and spec is not None:
                _create_table(backend, spec["definition"], spec["ttl"])
            return backend.tables.get(name)

        if self.snapshot_path.exists():
            lines = _lines(self.snapshot_path)
            header = next(lines)
            if header.get("format") != FORMAT:
                raise ValueError(f"{self.snapshot_path} is of format {header.get('format')}, not {FORMAT}")
            for index, spec in enumerate(header["tables"]):
                tables[index] = table_of(spec["id"], spec)
            collection: Any = None  # the snapshot writes each item collection in one run of lines
            for line in lines:
                table = tables[line["t"]]
                item = _new_item(table, line["i"])
                if not table.range_key_attr:
                    table.items[item.hash_key] = item
                    continue
                if collection is None or collection[0] is not table or collection[1] != item.hash_key.value:
                    collection = (table, item.hash_key.value, table.items[item.hash_key])
                collection[2][item.range_key] = item
        if self.changes_path.exists():
            for line in _lines(self.changes_path):
                if "table" in line:  # a table made, changed or deleted after the snapshot
                    account, region, name = line["id"]
                    if line["table"] is None:
                        dynamodb_backends[account][region].tables.pop(name, None)
                    else:
                        table_of(line["id"], line["table"]).ttl = line["table"]["ttl"]
                    continue
                table = table_of(line["id"])
                if table is None:
                    continue
                if line["i"] is None:
                    _remove(table, line["k"])
                else:
                    _place(table, _new_item(table, line["i"]))
            self.write_snapshot()  # a killed run's changes folded in; the file starts over
        for _, table, _ in _tables():
            shim.index_table(table)  # now, rather than in the first GSI Query
        self._written_tables = self._table_specs()
        return sum(sum(1 for _ in _all_items(table)) for _, table, _ in _tables())

    # --- what changed ----------------------------------------------------------------------

    def mark(self, table: Table, hash_key: Any, range_key: Any) -> None:
        self._dirty.setdefault((table.account_id, table.region_name, table.name), set()).add(
            (hash_key, range_key))

    def _table_specs(self) -> dict[TableId, Any]:
        return {table_id: _definition(table) for table_id, table, _ in _tables()}

    def write_changes(self) -> int:
        """Appends the state now of every item changed since the last call. Returns how many."""
        with self.lock:
            dirty, self._dirty = self._dirty, {}
            specs = self._table_specs()
            lines = [json.dumps({"id": list(table_id), "table": specs.get(table_id)}) + "\n"
                     for table_id in {**self._written_tables, **specs}
                     if self._written_tables.get(table_id) != specs.get(table_id)]
            self._written_tables = specs
            for (account, region, name), keys in dirty.items():
                table = dynamodb_backends[account][region].tables.get(name)
                if table is None:
                    continue
                for hash_key, range_key in keys:
                    item = table.get_item(hash_key, range_key)
                    key = {table.hash_key_attr: hash_key.to_json()}
                    if range_key is not None:
                        key[table.range_key_attr] = range_key.to_json()
                    lines.append('{"id": %s, "k": %s, "i": %s}\n' % (
                        json.dumps([account, region, name]), json.dumps(key, ensure_ascii=False),
                        _item_json(item) if item else "null"))
        if lines:
            with self.changes_path.open("a", encoding="utf-8") as file:
                file.writelines(lines)
        return len(lines)

    # --- the snapshot ----------------------------------------------------------------------

    def write_snapshot(self) -> int:
        """Every table and item, to a file beside the snapshot, renamed over it; then the
        changes file goes (applying it again would change nothing). Call with moto idle."""
        tables = list(_tables())
        header = {"format": FORMAT,
                  "tables": [{"id": list(table_id), **_definition(table)} for table_id, table, _ in tables]}
        aside = self.snapshot_path.with_name(self.snapshot_path.name + ".writing")
        count = 0
        with aside.open("w", encoding="utf-8") as file:
            file.write(json.dumps(header) + "\n")
            for index, (_, table, _) in enumerate(tables):
                for item in _all_items(table):
                    file.write('{"t": %d, "i": %s}\n' % (index, _item_json(item)))
                    count += 1
        os.replace(aside, self.snapshot_path)  # whole or not at all, whenever the process dies
        self.changes_path.unlink(missing_ok=True)
        self._dirty = {}
        return count


def keep(kept: KeptData) -> None:
    """Every item moto writes from now on is marked for `kept`'s next write_changes."""
    shim.WRITE_LISTENERS.append(kept.mark)


def changes_every(kept: KeptData, stop: threading.Event, interval: float = CHANGES_EVERY) -> threading.Thread:
    def run() -> None:
        while not stop.wait(interval):
            kept.write_changes()

    thread = threading.Thread(target=run, name="kept-changes", daemon=True)
    thread.start()
    return thread
