"""Routes: the ordered rules that give a new incident its team. Validation and matching only;
no store, no HTTP (the rules are read and written by chalicelib/oncall/store.py's RouteStore).
The rules: docs/routing.md."""
from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from chalicelib.incidents import (
    MAX_DEDUP_KEY,
    UNPAIRED_SURROGATE,
    InvalidInput,
    Severity,
    Source,
    clean_labels,
    has_unpaired_surrogate,
)
from chalicelib.payloads import fields

MAX_ROUTES = 100
MAX_TEXT = 256
MAX_TEAM_NAME = 64  # longer than any team's name (32): such a value is not echoed in the message
MATCHERS = ("source", "severity", "labels", "text", "dedup_key_prefix")
BODY_FIELDS = {"routes": True}
ROUTE_FIELDS = {"match": True, "team": True}
ROUTE_SHAPE = '{"match": {...}, "team": "<name>"}'
SEVERITIES = tuple(reversed(Severity))  # as the contract lists them: critical first
TEAMS_NAMED_IN_ERROR = 10


def parse_routes(body: dict[str, Any]) -> list[dict[str, Any]]:
    """PUT /routes's body -> the routes as stored (matchers in a fixed order); InvalidInput says
    where and what is allowed. Whether each team exists is `require_teams`'s question."""
    given = fields(body, BODY_FIELDS)
    routes = given["routes"]
    if not isinstance(routes, list):
        raise InvalidInput(f"routes must be a list of at most {MAX_ROUTES} routes, each "
                           f"{ROUTE_SHAPE}; got {_shown(routes)}")
    if len(routes) > MAX_ROUTES:
        raise InvalidInput(f"routes has {len(routes)} routes; at most {MAX_ROUTES} are allowed")
    return [_route(route, f"routes[{index}]") for index, route in enumerate(routes)]


def require_teams(routes: list[dict[str, Any]], existing: Collection[str]) -> None:
    """Every route's team must exist when the routes are set; names the first that does not."""
    for index, route in enumerate(routes):
        if route["team"] not in existing:
            names = sorted(existing)
            shown = ", ".join(names[:TEAMS_NAMED_IN_ERROR]) + (
                f" and {len(names) - TEAMS_NAMED_IN_ERROR} more" if len(names) > TEAMS_NAMED_IN_ERROR else "")
            raise InvalidInput(
                f"routes[{index}].team {route['team']!r} does not exist; name an existing team "
                f"({shown or 'there are none yet'}) or create it first with PUT /teams/{{name}}")


def _route(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be an object {ROUTE_SHAPE}; got {_shown(value)}")
    try:
        given = fields(value, ROUTE_FIELDS)
    except InvalidInput as error:
        raise InvalidInput(f"{where}: {error}") from None
    return {"match": _match(given["match"], f"{where}.match"), "team": _team(given["team"], f"{where}.team")}


def _match(value: Any, where: str) -> dict[str, Any]:
    allowed = ", ".join(MATCHERS)
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be an object of matchers ({allowed}); {{}} matches every "
                           f"incident; got {_shown(value)}")
    unknown = sorted(set(value) - set(MATCHERS))
    if unknown:
        raise InvalidInput(f"{where} has unknown matcher(s): {', '.join(map(repr, unknown))}; "
                           f"allowed matchers: {allowed}")
    checks = {"source": lambda v, w: _one_of(v, w, [s.value for s in Source]),
              "severity": lambda v, w: _one_of(v, w, [s.value for s in SEVERITIES]),
              "labels": _labels,
              "text": lambda v, w: _text(v, w, MAX_TEXT, "the description contains it, ignoring case"),
              "dedup_key_prefix": lambda v, w: _text(v, w, MAX_DEDUP_KEY, "the dedup_key starts with it")}
    return {name: checks[name](value[name], f"{where}.{name}") for name in MATCHERS if name in value}


def _one_of(value: Any, where: str, allowed: list[str]) -> list[str]:
    rule = f"a non-empty list of: {', '.join(allowed)}"
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{where} must be {rule}; got {_shown(value)}")
    for index, item in enumerate(value):
        if item not in allowed:
            raise InvalidInput(f"{where}[{index}] must be one of: {', '.join(allowed)}; got {_shown(item)}")
    return list(dict.fromkeys(value))


def _labels(value: Any, where: str) -> dict[str, str]:
    if isinstance(value, dict) and not value:
        raise InvalidInput(f"{where} must name at least one label (every pair must be equal); "
                           "leave labels out to match any")
    return clean_labels(value, where)


def _text(value: Any, where: str, limit: int, meaning: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInput(f"{where} must be a non-blank string of at most {limit} characters "
                           f"({meaning}); got {_shown(value)}")
    if has_unpaired_surrogate(value):
        raise InvalidInput(f"{where} {UNPAIRED_SURROGATE}")
    return value


def _team(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where} must be the name of an existing team; got {_shown(value)}")
    if len(value) > MAX_TEAM_NAME or has_unpaired_surrogate(value):
        raise InvalidInput(f"{where} is not the name of any team (a team's name is 1–32 characters "
                           "of a–z, 0–9 and -)")
    return value


# --- matching ---


def matches(match: dict[str, Any], incident: dict[str, Any]) -> bool:
    """Every matcher holds; `{}` holds for any incident."""
    if "source" in match and incident["source"] not in match["source"]:
        return False
    if "severity" in match and incident.get("severity") not in match["severity"]:
        return False
    labels = incident.get("labels") or {}
    if any(labels.get(key) != value for key, value in match.get("labels", {}).items()):
        return False
    if "text" in match and match["text"].casefold() not in incident["description"].casefold():
        return False
    if "dedup_key_prefix" in match and not (incident.get("dedup_key") or "").startswith(match["dedup_key_prefix"]):
        return False
    return True


def teams_for(routes: list[dict[str, Any]], incident: dict[str, Any]) -> Iterator[str]:
    """The teams of the routes that match, in route order: the first that still exists wins."""
    return (route["team"] for route in routes if matches(route["match"], incident))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])  # repr escapes a lone surrogate: the message stays encodable
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return type(value).__name__ if isinstance(value, (dict, list)) else repr(value)[:40]
