"""Teams, overrides and who is on call: validation and use cases. No HTTP; `now` is a parameter.
The rules: docs/oncall.md."""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.incidents import IncidentError, InvalidInput
from chalicelib.oncall import chats, routing
from chalicelib.oncall import rotation as rot
from chalicelib.oncall.store import AlreadyAdded, Refused, RouteStore, TeamStore
from chalicelib.payloads import fields, only_query_params
from chalicelib.store import Store

MAX_TEAMS = 100
MAX_MEMBERS = 50
MAX_SHIFT_HOURS = 168
MAX_RULES = 10
MAX_TARGETS = 10
MAX_DELAY_MINUTES = 1440
MAX_LOOPS = 5
MAX_OVERRIDES = 100  # current and future, per team
MAX_OVERRIDE = timedelta(days=31)
# Years the rotation math is asked about: far from datetime's limits, so no sum overflows.
FIRST_YEAR, LAST_START_YEAR, LAST_YEAR = 2000, 2100, 2199
MAX_CHAT_ID = 2**52  # Telegram: chat ids have at most 52 significant bits
SHIFTS = (rot.DAILY, rot.WEEKLY)
TARGETS = ("on_call", "next_on_call", "team")
TEAM_NAME = re.compile(r"[a-z0-9-]{1,32}")
TEAM_NAME_RULE = "1–32 characters of a–z, 0–9 and -"
# Telegram's rule for usernames.
USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}")
USERNAME_RULE = "a Telegram username without @: 5–32 characters of A–Z, a–z, 0–9 and _, starting with a letter"
LOCAL_START = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
TIME_ZONE = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")
OVERRIDE_ID = re.compile(r"[0-9a-f]{16}")
TEAM_FIELDS = {"chat_id": True, "thread_id": False, "time_zone": True, "rotation": True,
               "escalation_rules": True, "num_loops": False}
ROTATION_FIELDS = {"members": True, "start": True, "shift": True}
RULE_FIELDS = {"escalation_delay_in_minutes": True, "targets": True}
OVERRIDE_FIELDS = {"user": True, "start": True, "end": True}


class TeamNotFound(IncidentError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no team {name!r}")


class OverrideNotFound(IncidentError):
    def __init__(self, name: str, override_id: str) -> None:
        super().__init__(f"team {name!r} has no current or future override {override_id!r}")


class OnCallLimit(IncidentError):
    """A per-team or per-table bound would be passed; the message names it."""


# --- teams ---


def put_team(store: Store, name: str, body: dict[str, Any], now: datetime) -> tuple[dict[str, Any], bool]:
    """The team as stored, and whether it was created."""
    name = team_name(name)
    team = parse_team(body)
    teams = TeamStore(store)
    names = teams.team_names()
    if name not in names and len(names) >= MAX_TEAMS:
        raise OnCallLimit(f"there are {len(names)} teams, the most allowed; delete one before adding {name!r}")
    created = teams.put_team(name, team, secrets.token_hex(8), iso(now))
    chats.forget()
    return {"name": name, **team}, created


def get_team(store: Store, name: str) -> dict[str, Any]:
    return _public(_team_item(store, name))


def list_teams(store: Store) -> list[dict[str, Any]]:
    return [_public(item) for item in TeamStore(store).teams()]


def delete_team(store: Store, name: str) -> None:
    try:
        TeamStore(store).delete_team(team_name(name))
    except Refused:
        raise TeamNotFound(name) from None
    finally:
        chats.forget()


def team_name(value: str) -> str:
    if not TEAM_NAME.fullmatch(value):
        raise InvalidInput(f"team name must be {TEAM_NAME_RULE}; got {value[:40]!r}")
    return value


def parse_team(body: dict[str, Any]) -> dict[str, Any]:
    given = fields(body, TEAM_FIELDS)
    rules = given["escalation_rules"]
    if not isinstance(rules, list) or not 1 <= len(rules) <= MAX_RULES:
        raise InvalidInput(f"escalation_rules must be a list of 1–{MAX_RULES} rules; got {_shown(rules)}")
    return {
        "chat_id": _chat_id(given["chat_id"]),
        "thread_id": None if given["thread_id"] is None else _integer(
            given["thread_id"], "thread_id", 1, MAX_CHAT_ID, "a forum topic id (message_thread_id) or null"),
        "time_zone": _time_zone(given["time_zone"]).key,
        "rotation": _rotation(given["rotation"]),
        "escalation_rules": [_rule(rule, f"escalation_rules[{i}]") for i, rule in enumerate(rules)],
        "num_loops": 0 if "num_loops" not in body else _integer(
            given["num_loops"], "num_loops", 0, MAX_LOOPS, "how many times the rules start again"),
    }


def _chat_id(value: Any) -> int:
    if not _is_int(value) or value == 0 or abs(value) >= MAX_CHAT_ID:
        raise InvalidInput("chat_id must be a Telegram chat id: a non-zero integer (a group's is "
                           f"negative, e.g. -1001234567890); got {_shown(value)}")
    return int(value)


def _time_zone(value: Any) -> ZoneInfo:
    rule = 'time_zone must be an IANA time zone name such as "Europe/Moscow" or "UTC"'
    if not isinstance(value, str) or len(value) > 64 or not TIME_ZONE.fullmatch(value):
        raise InvalidInput(f"{rule}; got {_shown(value)}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"{rule}; {value!r} is not one") from None


def _rotation(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"rotation must be an object with members, start and shift; got {_shown(value)}")
    try:
        given = fields(value, ROTATION_FIELDS)
    except InvalidInput as error:
        raise InvalidInput(f"rotation: {error}") from None
    members = given["members"]
    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        raise InvalidInput(f"rotation.members must be a list of 1–{MAX_MEMBERS} Telegram usernames, "
                           f"in rotation order; got {_shown(members)}")
    return {
        "members": [username(member, f"rotation.members[{i}]") for i, member in enumerate(members)],
        "start": _local_start(given["start"]),
        "shift": _shift(given["shift"]),
    }


def _local_start(value: Any) -> str:
    rule = ("rotation.start must be a local date-time YYYY-MM-DDTHH:MM without an offset (a wall-clock "
            "time in time_zone), e.g. 2026-12-01T10:00")
    if not isinstance(value, str) or not LOCAL_START.fullmatch(value):
        raise InvalidInput(f"{rule}; got {_shown(value)}")
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M")
    except ValueError:
        raise InvalidInput(f"{rule}; {value!r} is not a date and time") from None
    if not FIRST_YEAR <= moment.year <= LAST_START_YEAR:
        raise InvalidInput(f"{rule}, in the years {FIRST_YEAR}–{LAST_START_YEAR}; got {value!r}")
    return value


def _shift(value: Any) -> str | int:
    if value in SHIFTS or (_is_int(value) and 1 <= value <= MAX_SHIFT_HOURS):
        return value if isinstance(value, str) else int(value)
    raise InvalidInput(f'rotation.shift must be "daily", "weekly" or a whole number of hours '
                       f"1–{MAX_SHIFT_HOURS}; got {_shown(value)}")


def _rule(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be an object with escalation_delay_in_minutes and targets; "
                           f"got {_shown(value)}")
    try:
        given = fields(value, RULE_FIELDS)
    except InvalidInput as error:
        raise InvalidInput(f"{where}: {error}") from None
    targets = given["targets"]
    allowed = ", ".join([*TARGETS, "@username"])
    if not isinstance(targets, list) or not 1 <= len(targets) <= MAX_TARGETS:
        raise InvalidInput(f"{where}.targets must be a list of 1–{MAX_TARGETS} targets ({allowed}); "
                           f"got {_shown(targets)}")
    for i, target in enumerate(targets):
        if target in TARGETS:
            continue
        if isinstance(target, str) and target.startswith("@") and USERNAME.fullmatch(target[1:]):
            continue
        raise InvalidInput(f"{where}.targets[{i}] must be one of {allowed} (@ and {USERNAME_RULE}); "
                           f"got {_shown(target)}")
    return {
        "escalation_delay_in_minutes": _integer(given["escalation_delay_in_minutes"],
                                                f"{where}.escalation_delay_in_minutes", 1,
                                                MAX_DELAY_MINUTES, "minutes"),
        "targets": list(targets),
    }


def username(value: Any, where: str) -> str:
    if not isinstance(value, str) or not USERNAME.fullmatch(value):
        raise InvalidInput(f"{where} must be {USERNAME_RULE}; got {_shown(value)}")
    return value


def _integer(value: Any, where: str, low: int, high: int, what: str) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise InvalidInput(f"{where} must be an integer from {low} to {high} ({what}); got {_shown(value)}")
    return int(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _team_item(store: Store, name: str) -> dict[str, Any]:
    item = TeamStore(store).team(team_name(name))
    if item is None:
        raise TeamNotFound(name)
    return item


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's Decimals back to ints, in the field order of the contract."""
    team = _ints(item)
    return {"name": team["sk"], **{field: team.get(field) for field in TEAM_FIELDS}}


def _ints(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


# --- who is on call ---


def who_is_on_call(store: Store, name: str, at: datetime) -> dict[str, Any]:
    item = _team_item(store, name)
    team = _public(item)
    overrides = [_override(o) for o in TeamStore(store).overrides(team["name"], item["generation"], iso(at))]
    answer = rot.on_call(_rotation_of(team), overrides, at)
    return {"team": team["name"], "at": iso(at), "user": answer.user,
            "override": answer.override is not None, "until": iso(answer.until), "next": answer.next}


def _rotation_of(team: dict[str, Any]) -> rot.Rotation:
    rotation = team["rotation"]
    return rot.Rotation(members=tuple(rotation["members"]),
                        start=datetime.strptime(rotation["start"], "%Y-%m-%dT%H:%M"),
                        shift=rotation["shift"], time_zone=ZoneInfo(team["time_zone"]))


# --- overrides ---


def add_override(store: Store, name: str, body: dict[str, Any], now: datetime,
                 override_id: str | None = None) -> dict[str, Any]:
    """`override_id`: given by a caller that may repeat the request (a Telegram update delivered
    again), so that the repeat finds the first one rather than adding another."""
    given = fields(body, OVERRIDE_FIELDS)
    user = username(given["user"], "user")
    start, end = instant(given["start"], "start"), instant(given["end"], "end")
    if end <= start:
        raise InvalidInput(f"end must be after start; got start {iso(start)}, end {iso(end)}")
    if end - start > MAX_OVERRIDE:
        raise InvalidInput(f"an override lasts at most {MAX_OVERRIDE.days} days; this one lasts {end - start}")
    if end <= now:
        raise InvalidInput(f"end must be in the future; {iso(end)} has passed")
    item = _team_item(store, name)
    teams = TeamStore(store)
    current = teams.overrides(item["sk"], item["generation"], iso(now))
    if len(current) >= MAX_OVERRIDES:
        raise OnCallLimit(f"team {item['sk']!r} has {len(current)} current and future overrides, the most "
                          "allowed; delete one or wait until one ends")
    override = {"id": override_id or secrets.token_hex(8), "user": user, "start": iso(start),
                "end": iso(end), "created_at": iso(now)}
    try:
        teams.add_override(item["sk"], item["generation"], override, int(end.timestamp()))
    except AlreadyAdded:
        pass  # the same request again: the same override
    except Refused:
        raise TeamNotFound(name) from None
    return override


def list_overrides(store: Store, name: str, now: datetime) -> list[dict[str, Any]]:
    item = _team_item(store, name)
    found = TeamStore(store).overrides(item["sk"], item["generation"], iso(now))
    return [_override_view(o) for o in sorted(found, key=lambda o: (o["start"], o["created_at"], o["id"]))]


def delete_override(store: Store, name: str, override_id: str, now: datetime) -> None:
    if not OVERRIDE_ID.fullmatch(override_id):
        raise InvalidInput(f"override id must be 16 hexadecimal digits, as created; got {override_id[:40]!r}")
    item = _team_item(store, name)
    teams = TeamStore(store)
    found = [o for o in teams.overrides(item["sk"], item["generation"], iso(now)) if o["id"] == override_id]
    if not found:
        raise OverrideNotFound(name, override_id)
    try:
        teams.delete_override(item["sk"], item["generation"], found[0])
    except Refused:
        raise OverrideNotFound(name, override_id) from None


def _override_view(item: dict[str, Any]) -> dict[str, Any]:
    return {name: item[name] for name in ("id", "user", "start", "end", "created_at")}


def _override(item: dict[str, Any]) -> rot.Override:
    return rot.Override(id=item["id"], user=item["user"], start=parse_iso(item["start"]),
                        end=parse_iso(item["end"]), created_at=parse_iso(item["created_at"]))


# --- time ---


def instant(value: Any, where: str) -> datetime:
    """An ISO 8601 instant with `Z` or an offset, to the millisecond, in UTC."""
    rule = f"{where} must be an ISO 8601 time with Z or an offset, e.g. 2026-12-03T18:00:00Z"
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput(f"{rule}; got {_shown(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{rule}; got {value!r}") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{rule}; {value!r} has no offset")
    return _utc(moment, rule)


def at_from_query(params: dict[str, str] | None, now: datetime) -> datetime:
    """`at`: ISO 8601, UTC when it has no offset; default now."""
    params = only_query_params(params, "at")
    value = params.get("at")
    if value is None:
        return now
    rule = "at must be an ISO 8601 time such as 2026-12-03T18:00:00Z (UTC when it has no offset)"
    # An unencoded `+` of an offset arrives as a space.
    candidates = [value, "+".join(value.rsplit(" ", 1))] if len(value) <= 40 else []
    moment = None
    for candidate in candidates:
        try:
            moment = datetime.fromisoformat(candidate)
            break
        except ValueError:
            continue
    if moment is None:
        raise InvalidInput(f"{rule}; got {value[:40]!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return _utc(moment, rule)


def _utc(moment: datetime, rule: str) -> datetime:
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise InvalidInput(f"{rule}, in the years {FIRST_YEAR}–{LAST_YEAR}; got {moment.isoformat()}")
    moment = moment.astimezone(timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- routes (the rules: chalicelib/oncall/routing.py, docs/routing.md) ---


def put_routes(store: Store, body: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Replaces every route; each must name an existing team (one Query lists them)."""
    routes = routing.parse_routes(body)
    if routes:
        routing.require_teams(routes, set(TeamStore(store).team_names()))
    RouteStore(store).put_routes(routes, iso(now))
    return routes


def get_routes(store: Store) -> list[dict[str, Any]]:
    return RouteStore(store).routes()
