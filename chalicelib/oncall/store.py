"""Teams and their overrides in the incident table, through the store's client. Knows DynamoDB
only. Items and why: docs/table-design.md."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store import TTL_ATTRIBUTE, Store, _code, _key, _plain, _translating_errors, _values

TEAMS_PK = "team"  # every team under one partition: listing them is one Query
OVERRIDE_PREFIX = "override#"
ROUTES_KEY = {"pk": "routes", "sk": "routes"}
_TEAM_FIELDS = ("chat_id", "thread_id", "time_zone", "rotation", "escalation_rules", "num_loops")


class Refused(Exception):
    """A condition refused the write: the team (or override) is not there."""


class AlreadyAdded(Exception):
    """An override with this id is there already: the same request, made again."""


class TeamStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._client = store._client
        self._table = store.table_name

    @_translating_errors
    def team_names(self) -> list[str]:
        return [item["sk"] for item in self._store.query_all({
            "KeyConditionExpression": "pk = :pk", "ProjectionExpression": "sk",
            "ExpressionAttributeValues": _values({":pk": TEAMS_PK})})]

    @_translating_errors
    def teams(self) -> list[dict[str, Any]]:
        return list(self._store.query_all({"KeyConditionExpression": "pk = :pk",
                                 "ExpressionAttributeValues": _values({":pk": TEAMS_PK})}))

    @_translating_errors
    def team(self, name: str) -> dict[str, Any] | None:
        response = self._client.get_item(TableName=self._table, Key=_key(_team_key(name)),
                                         ConsistentRead=True)
        item = response.get("Item")
        return _plain(item) if item else None

    @_translating_errors
    def put_team(self, name: str, team: dict[str, Any], generation: str, updated_at: str) -> bool:
        """Creates or replaces every field; True when it created. A replaced team keeps its
        `generation` (and so its overrides); a team created again after a delete gets a new one."""
        names = {f"#{field}": field for field in _TEAM_FIELDS}
        values = {f":{field}": team[field] for field in _TEAM_FIELDS}
        sets = [f"#{field} = :{field}" for field in _TEAM_FIELDS]
        response = self._client.update_item(
            TableName=self._table, Key=_key(_team_key(name)),
            UpdateExpression="SET " + ", ".join(
                [*sets, "generation = if_not_exists(generation, :generation)", "updated_at = :updated_at"]),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_values({**values, ":generation": generation,
                                               ":updated_at": updated_at}),
            ReturnValues="ALL_OLD",
        )
        return "generation" not in response.get("Attributes", {})

    @_translating_errors
    def delete_team(self, name: str) -> None:
        """Its overrides stay behind under the old generation, unread, until their TTL."""
        try:
            self._client.delete_item(TableName=self._table, Key=_key(_team_key(name)),
                                     ConditionExpression="attribute_exists(pk)")
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                raise Refused(name) from None
            raise

    @_translating_errors
    def overrides(self, name: str, generation: str, ending_after: str) -> list[dict[str, Any]]:
        """Those that end after `ending_after` (UTC ISO): one Query, as the sort key starts with `end`."""
        return list(self._store.query_all({
            "KeyConditionExpression": "pk = :pk AND sk > :after",
            "ExpressionAttributeValues": _values({":pk": _overrides_pk(name, generation),
                                                  ":after": OVERRIDE_PREFIX + ending_after}),
            "ConsistentRead": True,
        }))

    @_translating_errors
    def add_override(self, name: str, generation: str, override: dict[str, Any], expires_at: int) -> None:
        """Only while the team is there with the same generation (not deleted meanwhile)."""
        item = {"pk": _overrides_pk(name, generation), "sk": _override_sk(override),
                **override, TTL_ATTRIBUTE: expires_at}
        try:
            self._client.transact_write_items(TransactItems=[
                {"ConditionCheck": {
                    "TableName": self._table, "Key": _key(_team_key(name)),
                    "ConditionExpression": "generation = :generation",
                    "ExpressionAttributeValues": _values({":generation": generation})}},
                {"Put": {"TableName": self._table, "Item": _values(item),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
            ])
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if reasons[:2] == ["None", "ConditionalCheckFailed"]:
                raise AlreadyAdded(override["id"]) from None
            raise Refused(name) from None

    @_translating_errors
    def delete_override(self, name: str, generation: str, override: dict[str, Any]) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=_key({"pk": _overrides_pk(name, generation), "sk": _override_sk(override)}),
                ConditionExpression="attribute_exists(pk)")
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                raise Refused(override["id"]) from None
            raise


class RouteStore:
    """The routes: one item, read whole (at most 100 routes in a 64 KiB body)."""

    def __init__(self, store: Store) -> None:
        self._client = store._client
        self._table = store.table_name

    @_translating_errors
    def routes(self) -> list[dict[str, Any]]:
        """Consistent: a create right after PUT /routes is routed by what it set."""
        response = self._client.get_item(TableName=self._table, Key=_key(ROUTES_KEY), ConsistentRead=True)
        item = response.get("Item")
        return list(_plain(item)["routes"]) if item else []

    @_translating_errors
    def put_routes(self, routes: list[dict[str, Any]], updated_at: str) -> None:
        self._client.put_item(TableName=self._table,
                              Item=_values({**ROUTES_KEY, "routes": routes, "updated_at": updated_at}))


def _team_key(name: str) -> dict[str, str]:
    return {"pk": TEAMS_PK, "sk": name}


def _overrides_pk(name: str, generation: str) -> str:
    return f"oncall#{name}#{generation}"


def _override_sk(override: dict[str, Any]) -> str:
    return f"{OVERRIDE_PREFIX}{override['end']}#{override['id']}"
