"""The notifier's items (sent#, rate#, mute#) in the incident table, through the store's client.
Items: docs/table-design.md; why: docs/notifications.md."""
from __future__ import annotations

import time
import uuid
from enum import Enum
from typing import Any, Callable

from botocore.exceptions import ClientError

from chalicelib.store import TTL_ATTRIBUTE, Store, _code, _deserialize, _translating_errors, _values

SENT_TTL_SECONDS = 7 * 24 * 3600
RATE_TTL_SECONDS = 3600
# A claim whose sender died mid-send is taken over after this long.
CLAIM_LEASE_SECONDS = 60


class Claim(Enum):
    TAKEN = "taken"  # this sender sends it now
    SENT = "sent"  # someone sent it
    BUSY = "busy"  # someone is sending it, or died doing so less than a lease ago


class Outbox:
    def __init__(self, store: Store) -> None:
        self._client = store._client
        self._table = store.table_name

    @_translating_errors
    def claim(self, key: str, now: float | None = None) -> Claim:
        """TAKEN when nobody sent `key` and nobody holds it within the lease."""
        now = time.time() if now is None else now
        # botocore resends this PutItem unchanged when an applied attempt's answer was lost; the
        # refused retry then finds its own token and knows the claim is its own.
        token = uuid.uuid4().hex
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_values({"pk": f"sent#{key}", "sk": "sent", "state": "sending", "claim_token": token,
                              "claimed_at": int(now), TTL_ATTRIBUTE: int(now) + SENT_TTL_SECONDS}),
                ConditionExpression="attribute_not_exists(pk) OR (#state = :sending AND claimed_at < :stale)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=_values({":sending": "sending",
                                                   ":stale": int(now) - CLAIM_LEASE_SECONDS}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            held = error.response.get("Item") or {}
            if held.get("claim_token", {}).get("S") == token:
                return Claim.TAKEN
            return Claim.SENT if held.get("state", {}).get("S") == "sent" else Claim.BUSY
        return Claim.TAKEN

    @_translating_errors
    def mark_sent(self, key: str) -> None:
        self._client.update_item(
            TableName=self._table, Key=_values({"pk": f"sent#{key}", "sk": "sent"}),
            UpdateExpression="SET #state = :sent", ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=_values({":sent": "sent"}),
        )

    @_translating_errors
    def release(self, key: str) -> None:
        """Give a claim back after a failed run, so the retry sends it."""
        self._client.delete_item(TableName=self._table, Key=_values({"pk": f"sent#{key}", "sk": "sent"}))

    @_translating_errors
    def take_budget(self, chat_id: str, minute: int, wanted: int, limit: int) -> bool:
        """Reserves `wanted` messages in the chat's `minute` if they fit."""
        now = int(time.time())
        return _applied(lambda: self._client.update_item(
            TableName=self._table, Key=_values({"pk": f"rate#{chat_id}#{minute}", "sk": "rate"}),
            UpdateExpression="ADD used :wanted SET " + TTL_ATTRIBUTE + " = :expires",
            ConditionExpression="attribute_not_exists(used) OR used <= :room",
            ExpressionAttributeValues=_values({":wanted": wanted, ":room": limit - wanted,
                                               ":expires": now + RATE_TTL_SECONDS}),
        ))

    @_translating_errors
    def muted_until(self, chat_id: str) -> str | None:
        response = self._client.get_item(TableName=self._table,
                                         Key=_values({"pk": f"mute#{chat_id}", "sk": "mute"}),
                                         ConsistentRead=True)
        item = response.get("Item")
        return str(_deserialize(item["until"])) if item else None

    @_translating_errors
    def mute(self, chat_id: str, until: str) -> None:
        self._client.put_item(TableName=self._table, Item=_values(
            {"pk": f"mute#{chat_id}", "sk": "mute", "until": until}))

    @_translating_errors
    def unmute(self, chat_id: str) -> None:
        self._client.delete_item(TableName=self._table,
                                 Key=_values({"pk": f"mute#{chat_id}", "sk": "mute"}))


class DirectQueue:
    """Direct messages over a person's budget wait here for the next minute's one (folded).
    A marker per person under one partition (`dmq`) lists who has some waiting: one Query."""

    MARKERS = "dmq"

    def __init__(self, store: Store) -> None:
        self._client = store._client
        self._table = store.table_name

    @_translating_errors
    def add(self, username: str, notices: list[tuple[str, str]], now: float) -> None:
        """The marker first: a run that dies before its items leaves a marker with nothing behind
        it (harmless), never items nobody looks for."""
        expires = int(now) + SENT_TTL_SECONDS
        self._client.update_item(
            TableName=self._table, Key=_values({"pk": self.MARKERS, "sk": username.lower()}),
            UpdateExpression="ADD n :one SET username = :username, " + TTL_ATTRIBUTE + " = :expires",
            ExpressionAttributeValues=_values({":one": 1, ":username": username, ":expires": expires}))
        for key, text in notices:
            self._client.put_item(TableName=self._table, Item=_values({
                "pk": f"dmq#{username.lower()}", "sk": key, "text": text, TTL_ATTRIBUTE: expires}))

    @_translating_errors
    def people(self, count: int) -> list[dict[str, Any]]:
        response = self._client.query(
            TableName=self._table, KeyConditionExpression="pk = :pk", Limit=count,
            ExpressionAttributeValues=_values({":pk": self.MARKERS}), ConsistentRead=True)
        return [{k: _deserialize(v) for k, v in item.items()} for item in response["Items"]]

    @_translating_errors
    def waiting(self, username: str, count: int) -> list[tuple[str, str]]:
        response = self._client.query(
            TableName=self._table, KeyConditionExpression="pk = :pk", Limit=count,
            ExpressionAttributeValues=_values({":pk": f"dmq#{username.lower()}"}), ConsistentRead=True)
        return [(item["sk"]["S"], item["text"]["S"]) for item in response["Items"]]

    @_translating_errors
    def remove(self, username: str, keys: list[str], marker_n: int | None) -> None:
        """The sent items; then the marker, unless more were queued since it was read."""
        for key in keys:
            self._client.delete_item(TableName=self._table,
                                     Key=_values({"pk": f"dmq#{username.lower()}", "sk": key}))
        if marker_n is not None:
            _applied(lambda: self._client.delete_item(
                TableName=self._table, Key=_values({"pk": self.MARKERS, "sk": username.lower()}),
                ConditionExpression="n = :n", ExpressionAttributeValues=_values({":n": marker_n})))


def _applied(write: Callable[[], Any]) -> bool:
    """False when its condition refused the write."""
    try:
        write()
    except ClientError as error:
        if _code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True
