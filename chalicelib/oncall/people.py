"""People who started a private chat with the bot: their username -> the chat to message them in.
Knows DynamoDB only. Item: pk `person#<username lowercased>`, sk `person`."""
from __future__ import annotations

from datetime import datetime

from chalicelib.store import Store, _key, _plain, _translating_errors, _values


@_translating_errors
def link(store: Store, username: str, user_id: int, now: datetime) -> None:
    """`/start` in a private chat: the private chat's id is the user's id."""
    store._client.put_item(TableName=store.table_name, Item=_values({
        **_person_key(username), "username": username, "user_id": user_id, "chat_id": user_id,
        "linked_at": now.isoformat()}))


@_translating_errors
def direct_chat(store: Store, username: str) -> int | None:
    """The private chat to message `username` in; None when they never linked it."""
    response = store._client.get_item(TableName=store.table_name, Key=_key(_person_key(username)),
                                      ConsistentRead=True)
    item = response.get("Item")
    return int(_plain(item)["chat_id"]) if item else None


def _person_key(username: str) -> dict[str, str]:
    return {"pk": f"person#{username.lower()}", "sk": "person"}
