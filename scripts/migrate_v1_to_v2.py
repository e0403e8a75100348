"""Copy an incidents table of layout v1 into a new table of layout v2 (chalicelib/store.py).

    python scripts/migrate_v1_to_v2.py --source-table incidents-prod --target-table incidents-prod-v2
                                       [--create-target] [--dry-run]

Endpoint, region and credentials come from the usual AWS environment (AWS_PROFILE,
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_DYNAMODB for a local DynamoDB or moto server, …).
docs/migration.md says when to run it in a deployment, and what to do before and after.

What it reads (never a Scan): the v1 incidents through the v1 `by_status` index, one Query
stream per status, and the id counter with one GetItem. What it writes (BatchWriteItem):

- per incident, the v2 incident item (no `history`; `history_count`, `last_entry_at`,
  `created_key`, `source_created`, `acknowledged_at`/`resolved_at` derived from the history;
  `version` kept, so ETags clients hold stay valid) and one item per history entry. v1 entries
  can share a millisecond: an entry whose `at` is not above the one before it gets the key
  `history#<at>#<nnn>` (nnn = 001, 002, … zero-padded so that ten or more still sort in order;
  <at> is the newest `at` so far, so the keys sort in the history's order even where a clock
  went backwards). The entry itself keeps its own `at`. Each carries `copied_from: v1`, so the
  notifier reading the table's stream does not announce the copied history as news.
- per dedup_key, the dedup record owned by the newest incident carrying the key (by id); every
  older incident with the key that is resolved or closed gets `dedup_successor` = the next
  newer incident with the key (so reopening it answers 409 while that one is open).
- the counter, at the v1 counter's value (at least the highest id read).

Not migrated: once-records (Idempotency-Keys and alarm event ids, kept 24 h). A client retrying
an Idempotency-Key request first sent to the v1 table, or an event redelivered from before the
switch, is applied again. v1 kept no alarm-event times, so the first alarm event per dedup_key
after the switch is applied whatever its time.

Idempotent: every item is computed from the v1 table alone, so running it again writes the same
items (PutItem semantics overwrite them). Run it again only before the application writes to
the target table: a re-run would put the counter and the copied items back to the v1 state.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from chalicelib.store import (  # noqa: E402
    _COUNTER_KEY,
    COPIED_FROM,
    ENTRY_PREFIX,
    _dedup_key,
    _incident_pk,
    _item_from_incident,
    create_table,
)

V1_STATUS_INDEX = "by_status"
# The v1 table, as chalicelib/store.py defined it before the v2 layout (the tests create it).
V1_TABLE_DEFINITION: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "status", "AttributeType": "S"},
        {"AttributeName": "created_key", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": V1_STATUS_INDEX,
            "KeySchema": [
                {"AttributeName": "status", "KeyType": "HASH"},
                {"AttributeName": "created_key", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
V1_COUNTER_KEY = {"pk": {"S": "counter#incident"}}
STATUSES = ("new", "in_progress", "resolved", "closed")
FINISHED = ("resolved", "closed")
BATCH = 25  # BatchWriteItem's maximum
MAX_BATCH_ATTEMPTS = 8

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


class MigrationError(Exception):
    """The tables are not what the migration expects; nothing was written."""


@dataclass
class Summary:
    incidents: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATUSES})
    entries: int = 0
    shared_millisecond_entries: int = 0
    dedup_records: int = 0
    successors: int = 0
    counter: int | None = None
    items_written: int = 0
    warnings: list[str] = field(default_factory=list)

    def lines(self, dry_run: bool = False) -> list[str]:
        total = sum(self.incidents.values())
        by_status = ", ".join(f"{s} {n}" for s, n in self.incidents.items())
        return [
            f"incidents: {total} ({by_status})",
            f"history entries: {self.entries} ({self.shared_millisecond_entries} keyed "
            f"history#<at>#<nnn>: not later than the entry before them)",
            f"dedup records: {self.dedup_records}; dedup_successor set on {self.successors} incidents",
            f"counter: last_id {self.counter}",
            f"items {'to write' if dry_run else 'written'}: {self.items_written}",
            "once-records (24 h Idempotency-Keys and event ids): not migrated",
            *[f"warning: {w}" for w in self.warnings],
        ]


# --- v1 -> v2 items (pure) --------------------------------------------------------------------


def entry_sort_keys(history: list[dict[str, Any]]) -> tuple[list[str], str | None]:
    """The v2 sort key of each entry, and the newest `at` (the incident's last_entry_at).

    An entry whose `at` is above every earlier one is keyed history#<at>; any other gets
    history#<newest at so far>#<nnn>, counting from 001 after that newest entry, so every key is
    unique and the keys sort in the history's order."""
    keys: list[str] = []
    newest: str | None = None
    repeat = 0
    for entry in history:
        at = entry["at"]
        if newest is None or at > newest:
            newest, repeat = at, 0
            keys.append(ENTRY_PREFIX + at)
        else:
            repeat += 1
            keys.append(f"{ENTRY_PREFIX}{newest}#{repeat:03d}")
    return keys, newest


def v2_incident(v1_item: dict[str, Any]) -> dict[str, Any]:
    """The incident (with its `history`) as chalicelib works with it, from a plain v1 item."""
    incident = {k: v for k, v in v1_item.items() if k not in ("pk", "created_key")}
    for name in ("id", "occurrences", "version"):
        incident[name] = int(incident[name])
    incident.setdefault("dedup_key", None)
    history = [_plain_entry(e) for e in incident.get("history") or []]
    if not history:
        raise MigrationError(f"incident #{incident['id']} has no history; v1 always wrote one entry")
    incident["history"] = history
    incident["history_count"] = len(history)
    moved = [e["at"] for e in history[1:] if e["status"] != "new"]
    if moved:
        incident["acknowledged_at"] = moved[0]
    finished = [e["at"] for e in history if e["status"] in FINISHED]
    if finished:
        incident["resolved_at"] = finished[0]
    return incident


def _plain_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {"at": entry["at"], "status": entry["status"], "note": entry.get("note"), "by": entry["by"]}


def v2_items(incident: dict[str, Any], successor: int | None) -> list[dict[str, Any]]:
    """The incident item (laid out by chalicelib.store._item_from_incident) and its entry items."""
    keys, newest = entry_sort_keys(incident["history"])
    fields = dict(incident)
    if successor is not None:
        fields["dedup_successor"] = successor
    item = _item_from_incident(fields)
    item["last_entry_at"] = newest  # the newest `at`: a later change's entry key sorts after every one
    pk = _incident_pk(incident["id"])
    return [item, *({"pk": pk, "sk": sk, "entry": entry, COPIED_FROM: "v1"}
                    for sk, entry in zip(keys, incident["history"]))]


def dedup_plan(holders: dict[str, list[tuple[int, str]]]) -> tuple[dict[str, int], dict[int, int], list[str]]:
    """From (id, status) of every incident carrying each dedup_key: the record's owner per key
    (the newest), the successor of each older resolved or closed one, and warnings."""
    owners: dict[str, int] = {}
    successors: dict[int, int] = {}
    warnings: list[str] = []
    for key, incidents in holders.items():
        ordered = sorted(incidents)
        owners[key] = ordered[-1][0]
        for (older, status), (newer, _) in zip(ordered, ordered[1:]):
            if status in FINISHED:
                successors[older] = newer
            else:
                warnings.append(f"incident #{older} is {status} but newer #{newer} also carries "
                                f"dedup_key {key!r}; #{ordered[-1][0]} owns it now")
    return owners, successors, warnings


# --- DynamoDB -------------------------------------------------------------------------------


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserialize(v) for k, v in item.items()}


def _low_level(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in item.items()}


def read_v1_incidents(client: Any, table: str) -> Iterator[dict[str, Any]]:
    """Every v1 incident, one Query stream per status over the v1 by_status index."""
    paginator = client.get_paginator("query")
    for status in STATUSES:
        pages = paginator.paginate(
            TableName=table, IndexName=V1_STATUS_INDEX,
            KeyConditionExpression="#status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": status}},
        )
        for page in pages:
            for item in page["Items"]:
                yield _plain(item)


def read_v1_counter(client: Any, table: str) -> int | None:
    item = client.get_item(TableName=table, Key=V1_COUNTER_KEY, ConsistentRead=True).get("Item")
    return int(_deserialize(item["last_id"])) if item and "last_id" in item else None


class BatchWriter:
    """BatchWriteItem in 25s, retrying what DynamoDB left unprocessed (with backoff)."""

    def __init__(self, client: Any, table: str, dry_run: bool) -> None:
        self.client, self.table, self.dry_run = client, table, dry_run
        self.pending: list[dict[str, Any]] = []
        self.written = 0

    def put(self, item: dict[str, Any]) -> None:
        self.pending.append(item)
        if len(self.pending) == BATCH:
            self.flush()

    def flush(self) -> None:
        items, self.pending = self.pending, []
        if not items:
            return
        self.written += len(items)
        if self.dry_run:
            return
        requests = [{"PutRequest": {"Item": _low_level(item)}} for item in items]
        for attempt in range(MAX_BATCH_ATTEMPTS):
            response = self.client.batch_write_item(RequestItems={self.table: requests})
            requests = response.get("UnprocessedItems", {}).get(self.table, [])
            if not requests:
                return
            time.sleep(min(5.0, 0.05 * 2 ** attempt))
        raise MigrationError(f"{len(requests)} items stayed unprocessed after {MAX_BATCH_ATTEMPTS} "
                             "attempts; run the migration again (it is idempotent)")


def _key_names(description: dict[str, Any]) -> list[str]:
    return [k["AttributeName"] for k in description["Table"]["KeySchema"]]


def check_tables(client: Any, source: str, target: str, *, create_target: bool, dry_run: bool,
                 log: Callable[[str], None]) -> None:
    if source == target:
        raise MigrationError("the target table must be a new table, not the source")
    try:
        if _key_names(client.describe_table(TableName=source)) != ["pk"]:
            raise MigrationError(f"{source} is not a v1 table (its key is not `pk` alone)")
    except client.exceptions.ResourceNotFoundException:
        raise MigrationError(f"source table {source} does not exist") from None
    try:
        keys = _key_names(client.describe_table(TableName=target))
    except client.exceptions.ResourceNotFoundException:
        if not create_target:
            raise MigrationError(f"target table {target} does not exist; create it with the "
                                 "stack, or pass --create-target") from None
        if dry_run:
            log(f"dry run: would create {target}")
            return
        log(f"creating {target} (chalicelib.store.create_table)")
        create_table(client, target)
        return
    if keys != ["pk", "sk"]:
        raise MigrationError(f"{target} is not a v2 table (its key is not `pk` + `sk`)")
    log(f"{target} exists with the v2 key; writing into it")


def migrate(client: Any, source: str, target: str, *, create_target: bool = False,
            dry_run: bool = False, log: Callable[[str], None] = print) -> Summary:
    """Copy `source` (v1) into `target` (v2); with `dry_run`, read and count, write nothing."""
    check_tables(client, source, target, create_target=create_target, dry_run=dry_run, log=log)
    summary = Summary()
    writer = BatchWriter(client, target, dry_run)
    holders: dict[str, list[tuple[int, str]]] = defaultdict(list)
    held: dict[int, dict[str, Any]] = {}  # incidents with a dedup_key: written once successors are known
    highest = 0
    for v1_item in read_v1_incidents(client, source):
        incident = v2_incident(v1_item)
        summary.incidents[incident["status"]] = summary.incidents.get(incident["status"], 0) + 1
        highest = max(highest, incident["id"])
        item, *entries = v2_items(incident, None)
        summary.entries += len(entries)
        summary.shared_millisecond_entries += sum(1 for e in entries if e["sk"].count("#") > 1)
        for entry in entries:
            writer.put(entry)
        if incident["dedup_key"] is None:
            writer.put(item)
        else:
            holders[incident["dedup_key"]].append((incident["id"], incident["status"]))
            held[incident["id"]] = incident
    owners, successors, summary.warnings = dedup_plan(holders)
    for incident_id, incident in sorted(held.items()):
        writer.put(v2_items(incident, successors.get(incident_id))[0])
    for key, owner in sorted(owners.items()):
        writer.put({**_dedup_key(key), "incident_id": owner})
    counter = read_v1_counter(client, source)
    if counter is None or counter < highest:
        if counter is not None:
            summary.warnings.append(f"v1 counter {counter} is below the highest id {highest}")
        counter = highest
    if counter:
        writer.put({**_COUNTER_KEY, "last_id": counter})
    writer.flush()
    summary.dedup_records, summary.successors = len(owners), len(successors)
    summary.counter, summary.items_written = counter, writer.written
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-table", required=True, help="the v1 table (read only)")
    parser.add_argument("--target-table", required=True, help="the new v2 table")
    parser.add_argument("--create-target", action="store_true",
                        help="create the target table (chalicelib.store.create_table) if it does not exist")
    parser.add_argument("--dry-run", action="store_true", help="read and count; write nothing")
    args = parser.parse_args(argv)
    client = boto3.client("dynamodb")
    try:
        summary = migrate(client, args.source_table, args.target_table,
                          create_target=args.create_target, dry_run=args.dry_run)
    except (MigrationError, ClientError) as error:
        print(f"migration failed: {error}", file=sys.stderr)
        return 1
    prefix = "dry run, nothing written: " if args.dry_run else ""
    print(f"{prefix}{args.source_table} (v1) -> {args.target_table} (v2)")
    for line in summary.lines(args.dry_run):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
