"""Who can be reached by a direct message: a Telegram username linked to the user id and the
private chat of the person who sent the bot /start. Knows DynamoDB only.

Two items per person, so that either side finds the other with one GetItem:
`person#<username lowercased>` (username as written, user_id, chat_id) answers "where do I write
to @maria_sre", and `user#<user id>` (username, chat_id) answers "which username did this user
have", which is how a username change moves the link (docs/oncall.md, "Telegram")."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store import Store, _code, _key, _plain, _translating_errors, _values

PERSON_SK = "person"
USER_SK = "user"


@_translating_errors
def link(store: Store, username: str, user_id: int, chat_id: int, now: datetime) -> None:
    """@username is reached in `chat_id` from now on. The link of the username this user had
    before (if another) is removed, unless someone else has taken that name since."""
    client, table = store._client, store.table_name
    linked_at = now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    # Telegram usernames are unique at any moment: whoever /starts with one holds it now.
    client.put_item(TableName=table, Item=_values({
        **_person_key(username), "username": username, "user_id": user_id, "chat_id": chat_id,
        "linked_at": linked_at}))
    old = client.put_item(
        TableName=table, ReturnValues="ALL_OLD",
        Item=_values({**_user_key(user_id), "username": username, "chat_id": chat_id, "linked_at": linked_at}),
    ).get("Attributes")
    previous = _plain(old).get("username") if old else None
    if previous is not None and previous.lower() != username.lower():
        _drop_person(store, previous, user_id)


@_translating_errors
def direct_chat(store: Store, username: str) -> int | None:
    """The private chat in which @username (any case, with or without @) started the bot."""
    item = store._client.get_item(TableName=store.table_name,
                                  Key=_key(_person_key(username.lstrip("@")))).get("Item")
    return int(_plain(item)["chat_id"]) if item else None


@_translating_errors
def linked_user(store: Store, user_id: int) -> dict[str, Any] | None:
    """{"username", "chat_id"} of a user who started the bot, else None."""
    item = store._client.get_item(TableName=store.table_name, Key=_key(_user_key(user_id))).get("Item")
    if not item:
        return None
    plain = _plain(item)
    return {"username": plain["username"], "chat_id": int(plain["chat_id"])}


@_translating_errors
def unlink(store: Store, user_id: int) -> None:
    """The user no longer has a username: nobody can page them by the old one."""
    old = store._client.delete_item(TableName=store.table_name, Key=_key(_user_key(user_id)),
                                    ReturnValues="ALL_OLD").get("Attributes")
    if old:
        _drop_person(store, _plain(old)["username"], user_id)


def _drop_person(store: Store, username: str, user_id: int) -> None:
    try:
        store._client.delete_item(
            TableName=store.table_name, Key=_key(_person_key(username)),
            ConditionExpression="user_id = :user_id", ExpressionAttributeValues=_values({":user_id": user_id}))
    except ClientError as error:
        if _code(error) != "ConditionalCheckFailedException":  # gone, or someone else's now
            raise


def _person_key(username: str) -> dict[str, str]:
    return {"pk": f"person#{username.lower()}", "sk": PERSON_SK}


def _user_key(user_id: int) -> dict[str, str]:
    return {"pk": f"user#{user_id}", "sk": USER_SK}
