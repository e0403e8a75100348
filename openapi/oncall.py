"""The OpenAPI part for teams, rotations, overrides and who is on call; document.build_document
merges it in. Pure, and built from chalicelib/oncall/teams.py's own limits."""
from __future__ import annotations

from typing import Any

from chalicelib.incidents import MAX_DEDUP_KEY, Source
from chalicelib.oncall import routing
from chalicelib.oncall import teams as t
from openapi.document import NOT_BLANK_PATTERN, TIMESTAMP_PATTERN, _error_response, _json, _r, _ref

USERNAME_PATTERN = "^" + t.USERNAME.pattern + "$"
TEAM_EXAMPLE = {
    "chat_id": -1001234567890,
    "thread_id": None,
    "time_zone": "Europe/Moscow",
    "rotation": {"members": ["ivan_ops", "maria_sre", "oleg_k"], "start": "2026-12-01T10:00",
                 "shift": "weekly"},
    "escalation_rules": [
        {"escalation_delay_in_minutes": 15, "targets": ["on_call"]},
        {"escalation_delay_in_minutes": 15, "targets": ["on_call", "@maria_sre"]},
        {"escalation_delay_in_minutes": 30, "targets": ["team"]},
    ],
    "num_loops": 1,
}
_TIMESTAMP = _ref("schemas", "Timestamp")
_TEAM_NOT_FOUND = _error_response("No team with that name.")


def _username(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": USERNAME_PATTERN, "description": description}


def _team_properties() -> dict[str, Any]:
    return {
        "chat_id": {"type": "integer", "minimum": -t.MAX_CHAT_ID + 1, "maximum": t.MAX_CHAT_ID - 1,
                    "not": {"const": 0},
                    "description": "The team's Telegram group (a group's id is negative)."},
        "thread_id": {"type": ["integer", "null"], "minimum": 1, "maximum": t.MAX_CHAT_ID,
                      "description": "A forum topic in that group (`message_thread_id`), or null (the default)."},
        "time_zone": {"type": "string", "maxLength": 64, "pattern": "^" + t.TIME_ZONE.pattern + "$",
                      "examples": ["Europe/Moscow", "America/New_York", "UTC"],
                      "description": "An IANA time zone name: daily and weekly handoffs are wall-clock "
                                     "times in it (docs/oncall.md)."},
        "rotation": {
            "type": "object", "additionalProperties": False, "required": ["members", "start", "shift"],
            "properties": {
                "members": {"type": "array", "minItems": 1, "maxItems": t.MAX_MEMBERS,
                            "items": _username("A Telegram username without `@`."),
                            "description": "In rotation order."},
                "start": {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$",
                          "description": "Local date-time (in `time_zone`, no offset) of a handoff to the "
                                         f"first member; years {t.FIRST_YEAR}–{t.LAST_START_YEAR}."},
                "shift": {"oneOf": [{"enum": list(t.SHIFTS)},
                                    {"type": "integer", "minimum": 1, "maximum": t.MAX_SHIFT_HOURS}],
                          "description": "`daily` and `weekly` hand over at the same local time; a "
                                         "number of hours counts real elapsed hours."},
            },
        },
        "escalation_rules": {
            "type": "array", "minItems": 1, "maxItems": t.MAX_RULES,
            "description": "Stored; escalation itself is not built yet.",
            "items": {
                "type": "object", "additionalProperties": False,
                "required": ["escalation_delay_in_minutes", "targets"],
                "properties": {
                    "escalation_delay_in_minutes": {"type": "integer", "minimum": 1,
                                                    "maximum": t.MAX_DELAY_MINUTES},
                    "targets": {"type": "array", "minItems": 1, "maxItems": t.MAX_TARGETS, "items": {
                        "anyOf": [{"enum": list(t.TARGETS)},
                                  {"type": "string", "pattern": "^@" + t.USERNAME.pattern + "$"}]}},
                },
            },
        },
        "num_loops": {"type": "integer", "minimum": 0, "maximum": t.MAX_LOOPS, "default": 0},
    }


def schemas() -> dict[str, Any]:
    properties = _team_properties()
    return {
        "TeamSettings": {
            "type": "object", "additionalProperties": False,
            "required": ["chat_id", "time_zone", "rotation", "escalation_rules"],
            "properties": properties, "examples": [TEAM_EXAMPLE],
        },
        "Team": {
            "type": "object", "additionalProperties": False,
            "required": ["name", *properties],
            "properties": {"name": {"type": "string", "pattern": "^" + t.TEAM_NAME.pattern + "$"},
                           **properties},
            "examples": [{"name": "ops", **TEAM_EXAMPLE}],
        },
        "TeamList": {"type": "object", "additionalProperties": False, "required": ["items"],
                     "properties": {"items": {"type": "array", "maxItems": t.MAX_TEAMS,
                                              "items": _ref("schemas", "Team")}}},
        "OnCall": {
            "type": "object", "additionalProperties": False,
            "required": ["team", "at", "user", "override", "until", "next"],
            "properties": {
                "team": {"type": "string"}, "at": _TIMESTAMP,
                "user": _username("Who is on call at `at`."),
                "override": {"type": "boolean", "description": "Whether an override put them there."},
                "until": {**_TIMESTAMP, "description": "The first handoff, override start or override "
                                                       "end after `at` at which someone else is on call."},
                "next": _username("Who is on call from `until`."),
            },
            "examples": [{"team": "ops", "at": "2026-12-09T12:00:00.000Z", "user": "maria_sre",
                          "override": False, "until": "2026-12-15T07:00:00.000Z", "next": "oleg_k"}],
        },
        "NewOverride": {
            "type": "object", "additionalProperties": False, "required": ["user", "start", "end"],
            "properties": {"user": _username("Who is on call for the while."),
                           "start": {"type": "string", "format": "date-time"},
                           "end": {"type": "string", "format": "date-time",
                                   "description": "After `start` and in the future; at most "
                                                  f"{t.MAX_OVERRIDE.days} days after `start`."}},
            "examples": [{"user": "oleg_k", "start": "2026-12-05T18:00:00Z", "end": "2026-12-06T09:00:00Z"}],
        },
        "Override": {
            "type": "object", "additionalProperties": False,
            "required": ["id", "user", "start", "end", "created_at"],
            "properties": {"id": {"type": "string", "pattern": "^" + t.OVERRIDE_ID.pattern + "$"},
                           "user": _username("Who is on call for the while."),
                           "start": _TIMESTAMP, "end": _TIMESTAMP, "created_at": _TIMESTAMP},
        },
        "OverrideList": {"type": "object", "additionalProperties": False, "required": ["items"],
                         "properties": {"items": {"type": "array", "items": _ref("schemas", "Override")}}},
        **_route_schemas(),
    }


ROUTES_EXAMPLE = [
    {"match": {"source": ["monitoring"], "severity": ["critical", "error"], "labels": {"service": "payments"}},
     "team": "payments"},
    {"match": {"text": "самокат"}, "team": "scooters"},
    {"match": {}, "team": "ops"},
]


def _route_schemas() -> dict[str, Any]:
    def text(limit: int, meaning: str) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": limit, "pattern": NOT_BLANK_PATTERN,
                "description": meaning}

    def one_of(values: list[str], meaning: str) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "items": {"enum": values}, "description": meaning}

    return {
        "RouteMatch": {
            "type": "object", "additionalProperties": False,
            "description": "Every matcher given must hold; `{}` matches every incident.",
            "properties": {
                "source": one_of([s.value for s in Source], "The incident's source is one of these."),
                "severity": one_of([s.value for s in routing.SEVERITIES],
                                   "The incident's severity is one of these (an incident without one never "
                                   "matches)."),
                "labels": {"allOf": [_ref("schemas", "Labels")], "minProperties": 1,
                           "description": "Every pair is among the incident's labels."},
                "text": text(routing.MAX_TEXT, "The description contains it, ignoring case."),
                "dedup_key_prefix": text(MAX_DEDUP_KEY, "The dedup_key starts with it (`pagerduty:`, "
                                                        "`alertmanager:`, `arn:aws:cloudwatch:` for the "
                                                        "integrations' own)."),
            },
        },
        "Route": {
            "type": "object", "additionalProperties": False, "required": ["match", "team"],
            "properties": {"match": _ref("schemas", "RouteMatch"),
                           "team": {"type": "string", "pattern": "^" + t.TEAM_NAME.pattern + "$",
                                    "description": "A team that exists when the routes are set."}},
        },
        "Routes": {
            "type": "object", "additionalProperties": False, "required": ["routes"],
            "properties": {"routes": {"type": "array", "maxItems": routing.MAX_ROUTES,
                                      "items": _ref("schemas", "Route"),
                                      "description": "In order: the first route that matches a new "
                                                     "incident gives it its team."}},
            "examples": [{"routes": ROUTES_EXAMPLE}],
        },
    }


def parameters() -> dict[str, Any]:
    return {
        "TeamName": {"name": "name", "in": "path", "required": True,
                     "description": f"The team's name: {t.TEAM_NAME_RULE}.",
                     "schema": {"type": "string", "pattern": "^" + t.TEAM_NAME.pattern + "$",
                                "examples": ["ops"]}},
        "OverrideId": {"name": "override_id", "in": "path", "required": True,
                       "schema": {"type": "string", "pattern": "^" + t.OVERRIDE_ID.pattern + "$"}},
    }


def _ok(description: str, schema: str, links: dict[str, Any] | None = None) -> dict[str, Any]:
    response = {"description": description, "content": _json(_ref("schemas", schema))}
    return {**response, "links": links} if links else response


_TEAM_LINKS = {
    "WhoIsOnCall": {"operationId": "whoIsOnCall", "parameters": {"name": "$request.path.name"},
                    "description": "Who is on call in the team just written."},
    "AddOverride": {"operationId": "addOverride", "parameters": {"name": "$request.path.name"},
                    "description": "Put someone on call in the team just written."},
}
_OVERRIDE_LINKS = {
    "DeleteOverride": {"operationId": "deleteOverride",
                       "parameters": {"name": "$request.path.name", "override_id": "$response.body#/id"},
                       "description": "Remove the override just created."},
}


_READ = {"400": _r("BadRequest"), "401": _r("Unauthorized"), "404": _TEAM_NOT_FOUND, "503": _r("Unavailable")}
_BODY = {"413": _r("PayloadTooLarge"), "415": _r("UnsupportedMediaType")}
_CHANGE = {"403": _r("ReadOnlyKey")}


def paths() -> dict[str, Any]:
    team = [_ref("parameters", "TeamName")]
    return {
        "/teams": {"get": {
            "operationId": "listTeams", "summary": "Every team, by name", "tags": ["on call"],
            "description": f"At most {t.MAX_TEAMS} teams exist; one read.",
            "responses": {"200": _ok("The teams.", "TeamList"), "401": _r("Unauthorized"),
                          "503": _r("Unavailable")},
        }},
        "/teams/{name}": {
            "parameters": team,
            "put": {
                "operationId": "putTeam", "summary": "Create or replace a team", "tags": ["on call"],
                "description": "Every field is replaced; the team's overrides are kept. Replacing the "
                               "rotation changes who is on call from then on.",
                "requestBody": {"required": True, "content": _json(_ref("schemas", "TeamSettings"))},
                "responses": {"200": _ok("Replaced.", "Team", _TEAM_LINKS),
                              "201": _ok("Created.", "Team", _TEAM_LINKS),
                              "400": _r("BadRequest"), "401": _r("Unauthorized"),
                              "409": _error_response(f"Already {t.MAX_TEAMS} teams: delete one first."),
                              **_BODY, **_CHANGE, "503": _r("Unavailable")},
            },
            "get": {"operationId": "getTeam", "summary": "Read a team", "tags": ["on call"],
                    "responses": {"200": _ok("The team.", "Team"), **_READ}},
            "delete": {"operationId": "deleteTeam", "summary": "Delete a team and its overrides",
                       "tags": ["on call"],
                       "responses": {"204": {"description": "Deleted."}, **_READ, **_CHANGE}},
        },
        "/teams/{name}/oncall": {
            "parameters": team,
            "get": {
                "operationId": "whoIsOnCall", "summary": "Who is on call, until when, and who is next",
                "tags": ["on call"],
                "description": "Overrides first (the latest-created one covering `at`), else the "
                               "rotation's member for `at`.",
                "parameters": [{"name": "at", "in": "query", "required": False,
                                "description": "ISO 8601 (UTC when it has no offset); default now.",
                                "schema": {"type": "string", "examples": ["2026-12-09T12:00:00Z"]}}],
                "responses": {"200": _ok("Who is on call.", "OnCall"), **_READ},
            },
        },
        "/teams/{name}/overrides": {
            "parameters": team,
            "post": {
                "operationId": "addOverride", "summary": "Put someone on call for a while",
                "tags": ["on call"],
                "requestBody": {"required": True, "content": _json(_ref("schemas", "NewOverride"))},
                "responses": {"201": _ok("The override.", "Override", _OVERRIDE_LINKS), **_READ,
                              "409": _error_response(f"The team has {t.MAX_OVERRIDES} current and "
                                                     "future overrides already."), **_BODY, **_CHANGE},
            },
            "get": {"operationId": "listOverrides", "summary": "The current and future overrides, by start",
                    "tags": ["on call"], "responses": {"200": _ok("The overrides.", "OverrideList"), **_READ}},
        },
        "/routes": {
            "get": {"operationId": "getRoutes", "summary": "The routes, in order", "tags": ["on call"],
                    "description": "`{\"routes\": []}` when none are set.",
                    "responses": {"200": _ok("The routes.", "Routes"), "401": _r("Unauthorized"),
                                  "503": _r("Unavailable")}},
            "put": {
                "operationId": "putRoutes", "summary": "Replace the routes that give a new incident its team",
                "tags": ["on call"],
                "description": "The first route whose every matcher holds gives a new incident its team "
                               "(its person on call, escalation rule 1); none: no team. An occurrence "
                               "absorbed by an open incident is not routed again, and an incident opened "
                               "in a team's Telegram group belongs to that team. A route whose team is "
                               "deleted later is passed over. Applies from the very next incident.",
                "requestBody": {"required": True, "content": _json(_ref("schemas", "Routes"))},
                "responses": {"200": _ok("The routes as set.", "Routes"),
                              "400": _error_response(f"Not a routes body: an unknown field or matcher, a "
                                                     f"value outside its enum or limits, more than "
                                                     f"{routing.MAX_ROUTES} routes, or a team that does "
                                                     "not exist; the message says which and what is "
                                                     "allowed. Nothing changes."),
                              "401": _r("Unauthorized"), **_BODY, **_CHANGE, "503": _r("Unavailable")},
            },
        },
        "/teams/{name}/overrides/{override_id}": {
            "parameters": [*team, _ref("parameters", "OverrideId")],
            "delete": {"operationId": "deleteOverride", "summary": "Remove an override",
                       "tags": ["on call"],
                       "responses": {"204": {"description": "Removed."}, **_READ, **_CHANGE,
                                     "404": _error_response("No such team, or no current or future "
                                                            "override with that id in it.")}},
        },
    }
