"""The OpenAPI 3.1 document of the HTTP contract, built from the same constants the code enforces.

Pure: no Chalice, no boto3. Every limit and enum comes from chalicelib's incidents.py or
payloads.py, so a limit changed there changes here too (and tests/test_openapi.py asks for
`make openapi` until chalicelib/openapi.json is built again).
"""
from __future__ import annotations

from typing import Any

from chalicelib.incidents import (
    HISTORY_IN_RESPONSE,
    Severity,
    MAX_DEDUP_KEY,
    MAX_DESCRIPTION,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_NOTE,
    RESERVED_DEDUP_KEY_PATTERN,
    TRANSITIONS,
    Source,
    Status,
)
from chalicelib.oncall.teams import TEAM_NAME, USERNAME
from chalicelib.payloads import (
    DEFAULT_LIMIT,
    MAX_BODY_BYTES,
    MAX_IDEMPOTENCY_KEY,
    MAX_LIMIT,
)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
API_KEY_HEADER = "x-api-key"
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What parse_incident_id accepts: 1–18 ASCII digits, not all zeros (leading zeros are allowed).
INCIDENT_ID_PATTERN = "^[1-9][0-9]{0,17}$"
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
# At least one character that str.strip() keeps: the text is trimmed before it is counted.
NOT_BLANK_PATTERN = r"\S"

STATUSES = [s.value for s in Status]
SOURCES = [s.value for s in Source]

TEAM_PATTERN = "^" + TEAM_NAME.pattern + "$"
USERNAME_PATTERN = "^" + USERNAME.pattern + "$"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _transitions_table() -> str:
    rows = [
        f"| {current} | {', '.join(targets) if targets else '— (final)'} |"
        for current, targets in ((s.value, [t.value for t in TRANSITIONS[s]]) for s in Status)
    ]
    return "\n".join(["| from | allowed to |", "|---|---|", *rows])


def _incident_schema() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "description", "status", "source", "created_at", "updated_at",
                     "dedup_key", "severity", "team", "assignee", "escalation", "labels",
                     "occurrences", "history_count", "history"],
        "properties": {
            "id": {"type": "integer", "minimum": 1,
                   "description": "1, 2, 3 … in creation order, never reused; quoted as `#42`."},
            "description": {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION},
            "status": _ref("schemas", "Status"),
            "source": _ref("schemas", "Source"),
            "created_at": _ref("schemas", "Timestamp"),
            "updated_at": _ref("schemas", "Timestamp"),
            "dedup_key": {**nullable_text, "minLength": 1, "maxLength": MAX_DEDUP_KEY},
            "severity": _ref("schemas", "SeverityOrNull"),
            "team": {"type": ["string", "null"], "pattern": TEAM_PATTERN,
                     "description": "The team that answers for it, or null; kept as text when the "
                                    "team is deleted."},
            "assignee": {"type": ["string", "null"], "pattern": USERNAME_PATTERN,
                         "description": "The Telegram username of who answers for it: the team's "
                                        "person on call when it opens, whoever takes it, or as "
                                        "`PATCH` sets it; or null."},
            "escalation": {
                "type": ["object", "null"], "additionalProperties": False,
                "required": ["rule", "loop", "next_at"],
                "properties": {"rule": {"type": "integer", "minimum": 1,
                                        "description": "The rule last notified, from 1."},
                               "loop": {"type": "integer", "minimum": 0},
                               "next_at": _ref("schemas", "Timestamp")},
                "description": "While the team's escalation runs for it (it is `new`): the rule "
                               "last notified, in which loop, and when the next is due; null once "
                               "it stopped or when there is none.",
            },
            "labels": _ref("schemas", "Labels"),
            "occurrences": {"type": "integer", "minimum": 1,
                            "description": "Reports absorbed through `dedup_key`, starting at 1."},
            "history_count": {"type": "integer", "minimum": 1,
                              "description": "How many history entries the incident has in all."},
            "history": {"type": "array", "minItems": 1, "maxItems": HISTORY_IN_RESPONSE,
                        "items": _ref("schemas", "HistoryEntry"),
                        "description": f"The {HISTORY_IN_RESPONSE} newest changes at most, oldest "
                                       "first; `GET /incidents/{id}/history` pages through all."},
        },
        "examples": [{
            "id": 42, "description": "Самокат #42 не в сети", "status": "new",
            "source": "monitoring", "created_at": "2026-11-23T10:15:30.123Z",
            "updated_at": "2026-11-23T10:15:30.123Z", "dedup_key": None, "severity": None,
            "team": "ops", "assignee": "ivan_ops",
            "escalation": {"rule": 1, "loop": 0, "next_at": "2026-11-23T10:30:30.123Z"},
            "labels": {},
            "occurrences": 1,
            "history_count": 1,
            "history": [{"at": "2026-11-23T10:15:30.123Z", "status": "new",
                         "note": None, "by": "api"}],
        }],
    }


def _without_history(incident: dict[str, Any]) -> dict[str, Any]:
    """An incident as a list shows it: without `history`."""
    properties = {k: v for k, v in incident["properties"].items() if k != "history"}
    required = [name for name in incident["required"] if name != "history"]
    examples = [{k: v for k, v in e.items() if k != "history"} for e in incident["examples"]]
    return {**incident, "properties": properties, "required": required, "examples": examples}


def _schemas() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "Status": {"type": "string", "enum": STATUSES, "description": _transitions_table()},
        "Source": {"type": "string", "enum": SOURCES},
        "Timestamp": {
            "type": "string",
            "pattern": TIMESTAMP_PATTERN,
            "description": "UTC, ISO 8601 with milliseconds and `Z`.",
            "examples": ["2026-11-23T10:15:30.123Z"],
        },
        "HistoryEntry": {
            "type": "object",
            "additionalProperties": False,
            "required": ["at", "status", "note", "by"],
            "properties": {
                "at": _ref("schemas", "Timestamp"),
                "status": _ref("schemas", "Status"),
                "note": {**nullable_text, "maxLength": MAX_NOTE},
                "by": {
                    "type": "string",
                    "description": "`api` (a key configured without a name), `api:<key name>`, "
                                   "`cloudwatch`, `telegram:<username or id>`, "
                                   "`pagerduty:<payload.source>`, `alertmanager:<receiver>` or "
                                   "`escalation` (a step of the team's escalation).",
                    "examples": ["api", "api:partner", "cloudwatch", "telegram:alice"],
                },
            },
        },
        "Labels": {
            "type": "object", "maxProperties": MAX_LABELS,
            "propertyNames": {"minLength": 1, "maxLength": MAX_LABEL_KEY},
            "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE},
            "description": f"At most {MAX_LABELS} string pairs (keys 1–{MAX_LABEL_KEY}, values up to "
                           f"{MAX_LABEL_VALUE} characters) that the source gave: `labels` on create, "
                           "an Alertmanager alert's labels, PagerDuty's `payload.component`, `group` "
                           "and `class`; `{}` when none. Routes match on them (docs/routing.md).",
            "examples": [{"service": "payments", "env": "prod"}],
        },
        "Incident": _incident_schema(),
        "IncidentSummary": _without_history(_incident_schema()),
        "HistoryPage": _page_of("HistoryEntry"),
        "IncidentPage": _page_of("IncidentSummary"),
        "NewIncident": {
            "type": "object",
            "additionalProperties": False,
            "required": ["description", "source"],
            "properties": {
                "description": {
                    "type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION,
                    "pattern": NOT_BLANK_PATTERN,
                    "description": f"Any Unicode text, 1–{MAX_DESCRIPTION} characters after "
                                   "trimming surrounding white space.",
                },
                "source": _ref("schemas", "Source"),
                "severity": _ref("schemas", "SeverityOrNull"),
                "labels": {"oneOf": [_ref("schemas", "Labels"), {"type": "null"}],
                           "description": "Optional; past its limits is 400. The routes match on "
                                          "them when the incident opens."},
                "dedup_key": {
                    **nullable_text, "minLength": 1, "maxLength": MAX_DEDUP_KEY,
                    "not": {"type": "string", "pattern": RESERVED_DEDUP_KEY_PATTERN},
                    "description": "While an incident with this key is `new` or `in_progress`, a "
                                   "create with the same key answers 200 with that incident, whose "
                                   "`occurrences` grew by one, instead of creating another. Keys "
                                   "starting `pagerduty:`, `alertmanager:` or "
                                   "`arn:<partition>:cloudwatch:` belong to the integrations: 400.",
                },
            },
            "examples": [{"description": "Самокат #42 не в сети", "source": "monitoring"}],
        },
        "StatusChange": {
            "type": "object",
            "additionalProperties": False,
            "anyOf": [{"required": ["status"]}, {"required": ["team"]}, {"required": ["assignee"]}],
            "description": "At least one of `status`, `team`, `assignee`. The status changes first; "
                           "a change of team or assignee is a history entry of its own. A new team "
                           "for a `new` incident starts that team's escalation from rule 1 and, "
                           "unless `assignee` is given, assigns its person on call.",
            "properties": {
                "status": _ref("schemas", "Status"),
                "team": {"type": ["string", "null"], "pattern": TEAM_PATTERN,
                         "description": "An existing team's name (else 400), or null."},
                "assignee": {"type": ["string", "null"], "pattern": USERNAME_PATTERN,
                             "description": "A Telegram username without `@`, or null."},
                "note": {**nullable_text, "maxLength": MAX_NOTE,
                         "description": f"Up to {MAX_NOTE} characters after trimming; "
                                        "empty or null means no note."},
            },
            "examples": [{"status": "in_progress", "note": "looking into it"}],
        },
        "Error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["Code", "Message"],
            "properties": {
                "Code": {"type": "string", "examples": ["BadRequestError"]},
                "Message": {"type": "string",
                            "description": "What is wrong and what is allowed."},
            },
        },
        "GatewayMessage": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}},
            "description": "Answered by API Gateway (and `chalice local`), not by the service.",
        },
        "Health": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}},
        },
        "TelegramUpdate": {
            "type": "object",
            "description": "A Telegram Bot API `Update` object, as Telegram sends it.",
        },
        "TelegramAnswer": {
            "description": "A Bot API method call Telegram performs for the bot (a `sendMessage` "
                           "replying to the command), or `{}` when there is nothing to say.",
            "oneOf": [
                {"type": "object", "maxProperties": 0},
                {
                    "type": "object",
                    "required": ["method", "chat_id", "text"],
                    "properties": {
                        "method": {"const": "sendMessage"},
                        "chat_id": {"type": "integer"},
                        "reply_to_message_id": {"type": ["integer", "null"]},
                        "text": {"type": "string"},
                    },
                },
            ],
        },
    }


def _headers() -> dict[str, Any]:
    return {
        "ETag": {"description": "Opaque; changes whenever the incident changes. "
                                "Send it back in `If-Match`.",
                 "required": True, "schema": {"type": "string"}},
        "Location": {"description": "The incident's path, relative to the API root.",
                     "required": True, "schema": {"type": "string", "pattern": "^/incidents/[1-9][0-9]*$"}},
        "Idempotent-Replayed": {"description": "`true` when this is the stored answer to an "
                                               "earlier request with the same `Idempotency-Key`.",
                                "schema": {"type": "string", "enum": ["true"]}},
        "X-Request-Id": {"description": "The id of this request in the service's logs (on every answer "
                                        "of the service).", "schema": {"type": "string"}},
        "Retry-After": {"description": "Seconds to wait before retrying.",
                        "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    }


def _parameters() -> dict[str, Any]:
    return {
        "IncidentId": {
            "name": "id", "in": "path", "required": True,
            "description": "The incident's id, a positive integer without leading zeros or sign "
                           "(`#42` is `42`; `042` is a 400).",
            "schema": {"type": "string", "pattern": INCIDENT_ID_PATTERN, "examples": ["42"]},
        },
        "StatusFilter": {"name": "status", "in": "query", "required": False,
                         "schema": _ref("schemas", "Status")},
        "SourceFilter": {"name": "source", "in": "query", "required": False,
                         "schema": _ref("schemas", "Source")},
        "TeamFilter": {"name": "team", "in": "query", "required": False,
                       "description": "The incidents of this team (a deleted team's too). Combines "
                                      "with `status` only: with `source` it is a 400.",
                       "schema": {"type": "string", "pattern": TEAM_PATTERN, "examples": ["ops"]}},
        "Limit": {"name": "limit", "in": "query", "required": False,
                  "description": "Page size.",
                  "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                             "default": DEFAULT_LIMIT}},
        "Cursor": {"name": "cursor", "in": "query", "required": False,
                   "description": "`next_cursor` of the previous page, issued for the same "
                                  "`status`, `source` and `team`; any other value is a 400.",
                   "schema": {"type": "string", "minLength": 1}},
        "HistoryCursor": {"name": "cursor", "in": "query", "required": False,
                          "description": "`next_cursor` of the previous page of the same incident's "
                                         "history; any other value is a 400.",
                          "schema": {"type": "string", "minLength": 1}},
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": False,
            "description": "Repeating a create with the same key and the same body within 24 hours "
                           "answers the first response again with `Idempotent-Replayed: true`; the "
                           "same key with another body answers 422.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
        },
        "IfMatch": {
            "name": "If-Match", "in": "header", "required": False,
            "description": "The incident's `ETag`, a list of at most 10 entity tags, or `*`; the "
                           "change applies only if one still matches, else 412. More tags: 400.",
            "schema": {"type": "string"},
        },
    }


READ_ONLY_KEY = ("`ForbiddenError`: the API key is read-only (configured as `name:read=key`) and may "
                 "only GET; the message names the key's name, never its value. Nothing is changed.")
NO_SUCH_ROUTE = ("The path matches no route (the id segment is empty or holds a `/`). Answered by API "
                 "Gateway / `chalice local` with `{\"message\": \"Missing Authentication Token\"}`.")


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json(_ref("schemas", "Error"))}
    if headers:
        response["headers"] = headers
    return response


def _responses() -> dict[str, Any]:
    retry_after = {"Retry-After": _ref("headers", "Retry-After")}
    return {
        "BadRequest": _error_response(
            "Malformed JSON (nesting deeper than 32 levels and number literals over 100 digits "
            "included), a body that is not an object, a missing, empty, unknown or mistyped "
            "field, a value outside its enum (the message lists the allowed values), text over "
            "its limit, a bad `limit`, a `cursor` not issued by the service, an id that is not a "
            "positive integer, a bad `Idempotency-Key`, an `If-Match` of more than 10 tags."),
        "Unauthorized": _error_response("Missing or wrong API key."),
        "NotFound": _error_response("No incident with that id."),
        "Conflict": _error_response("Transition not allowed; the message names the current status "
                                    "and the allowed targets. Also a reopen of an incident whose "
                                    "`dedup_key` another open incident now holds; the message names "
                                    "that incident.", {"ETag": _ref("headers", "ETag")}),
        "PreconditionFailed": _error_response("`If-Match` does not match the current ETag.",
                                              {"ETag": _ref("headers", "ETag")}),
        "PayloadTooLarge": _error_response(f"Request body over {MAX_BODY_BYTES} bytes (64 KiB)."),
        "UnsupportedMediaType": _error_response("A body that is not `application/json`."),
        "IdempotencyKeyReused": _error_response("`Idempotency-Key` reused with a different body."),
        "Unavailable": _error_response("The table does not answer or throttles past the retries, "
                                       "or a secret could not be read yet.",
                                       retry_after),
        "ReadOnlyKey": _error_response(READ_ONLY_KEY),
        "ReadOnlyKeyOrNoSuchRoute": {
            "description": f"{READ_ONLY_KEY} Or: {NO_SUCH_ROUTE}",
            "content": _json({"oneOf": [_ref("schemas", "Error"), _ref("schemas", "GatewayMessage")]}),
        },
        "NoSuchRoute": {
            "description": NO_SUCH_ROUTE,
            "content": _json(_ref("schemas", "GatewayMessage")),
        },
    }


def _incident_response(description: str, links: dict[str, Any],
                       extra_headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**(extra_headers or {}), "ETag": _ref("headers", "ETag")},
        "content": _json(_ref("schemas", "Incident")),
        "links": links,
    }


def _links() -> dict[str, Any]:
    """OpenAPI links: the stateful phase of a fuzzer follows them from a create to reads and changes."""
    incident_id = "$response.body#/id"
    return {
        "GetIncident": {"operationId": "getIncident", "parameters": {"id": incident_id},
                        "description": "The incident just answered."},
        "ChangeIncidentStatus": {
            "operationId": "changeIncidentStatus",
            "parameters": {"id": incident_id, "header.If-Match": "$response.header.ETag"},
            "description": "Change the incident just answered, guarded by its ETag.",
        },
    }


def _r(name: str) -> dict[str, str]:
    return _ref("responses", name)


def _paths() -> dict[str, Any]:
    links = _links()
    created_headers = {"Location": _ref("headers", "Location"),
                       "Idempotent-Replayed": _ref("headers", "Idempotent-Replayed")}
    json_body = {"required": True}
    return {
        "/incidents": {
            "post": {
                "operationId": "createIncident",
                "summary": "Report an incident",
                "tags": ["incidents"],
                "parameters": [_ref("parameters", "IdempotencyKey")],
                "requestBody": {**json_body, "content": _json(_ref("schemas", "NewIncident"))},
                "responses": {
                    "201": _incident_response("Created.", links, created_headers),
                    "200": _incident_response(
                        "An open incident has this `dedup_key`: it is answered with `occurrences` "
                        "grown by one, and nothing new is created.", links, created_headers),
                    "400": _r("BadRequest"), "401": _r("Unauthorized"), "403": _r("ReadOnlyKey"),
                    "413": _r("PayloadTooLarge"),
                    "415": _r("UnsupportedMediaType"), "422": _r("IdempotencyKeyReused"),
                    "503": _r("Unavailable"),
                },
            },
            "get": {
                "operationId": "listIncidents",
                "summary": "List incidents, newest first",
                "description": "Newest first (created_at, then id, descending). A page holds "
                               "`limit` items unless it is the last. Following `next_cursor` until "
                               "null yields every matching incident exactly once.",
                "tags": ["incidents"],
                "parameters": [_ref("parameters", name)
                               for name in ("StatusFilter", "SourceFilter", "TeamFilter", "Limit",
                                            "Cursor")],
                "responses": {
                    "200": {"description": "One page.",
                            "content": _json(_ref("schemas", "IncidentPage"))},
                    "400": _r("BadRequest"), "401": _r("Unauthorized"), "503": _r("Unavailable"),
                },
            },
        },
        "/incidents/{id}": {
            "parameters": [_ref("parameters", "IncidentId")],
            "get": {
                "operationId": "getIncident",
                "summary": "Read one incident",
                "tags": ["incidents"],
                "responses": {
                    "200": _incident_response("The incident.", {"ChangeIncidentStatus": links["ChangeIncidentStatus"]}),
                    "400": _r("BadRequest"), "401": _r("Unauthorized"), "403": _r("NoSuchRoute"),
                    "404": _r("NotFound"), "503": _r("Unavailable"),
                },
            },
            "patch": {
                "operationId": "changeIncidentStatus",
                "summary": "Change an incident's status, team or assignee",
                "description": "Allowed transitions:\n\n" + _transitions_table() + "\n\nSetting the "
                               "status an incident already has is a no-op: 200, nothing changes, "
                               "no history entry.",
                "tags": ["incidents"],
                "parameters": [_ref("parameters", "IfMatch")],
                "requestBody": {**json_body, "content": _json(_ref("schemas", "StatusChange"))},
                "responses": {
                    "200": _incident_response("The incident after the change.", {"GetIncident": links["GetIncident"]}),
                    "400": _r("BadRequest"), "401": _r("Unauthorized"), "403": _r("ReadOnlyKeyOrNoSuchRoute"),
                    "404": _r("NotFound"), "409": _r("Conflict"), "412": _r("PreconditionFailed"),
                    "413": _r("PayloadTooLarge"), "415": _r("UnsupportedMediaType"),
                    "503": _r("Unavailable"),
                },
            },
        },
        "/incidents/{id}/history": {
            "parameters": [_ref("parameters", "IncidentId")],
            "get": {
                "operationId": "getIncidentHistory",
                "summary": "Every history entry of one incident, oldest first",
                "tags": ["incidents"],
                "parameters": [_ref("parameters", "Limit"), _ref("parameters", "HistoryCursor")],
                "responses": {
                    "200": {"description": "One page of entries.",
                            "content": _json(_ref("schemas", "HistoryPage"))},
                    "400": _r("BadRequest"), "401": _r("Unauthorized"), "403": _r("NoSuchRoute"),
                    "404": _r("NotFound"), "503": _r("Unavailable"),
                },
            },
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Is the service and its table answering?",
                "tags": ["operations"],
                "security": [],
                "responses": {
                    "200": {"description": "Healthy: `{\"status\": \"ok\"}`.",
                            "content": _json(_ref("schemas", "Health"))},
                    "503": {"description": "The table does not answer: `{\"status\": \"unavailable\"}`.",
                            "headers": {"Retry-After": _ref("headers", "Retry-After")},
                            "content": _json(_ref("schemas", "Health"))},
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["operations"],
                "security": [],
                "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                      "content": _json({"type": "object"})}},
            },
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "summary": "This document, rendered for people",
                "tags": ["operations"],
                "security": [],
                "responses": {"200": {"description": "An HTML page rendering `/openapi.json`.",
                                      "content": {"text/html": {"schema": {"type": "string"}}}}},
            },
        },
        "/telegram/webhook": {
            "post": {
                "operationId": "telegramWebhook",
                "summary": "Telegram bot updates",
                "description": "Telegram calls this with each update. It authenticates with the "
                               "`secret_token` given to `setWebhook` (header "
                               f"`{TELEGRAM_SECRET_HEADER}`) instead of the API key. Every "
                               "authenticated update is answered 200, one that cannot be read with "
                               "`{}` too, so that Telegram does not deliver it again.",
                "tags": ["telegram"],
                "security": [{"TelegramSecretToken": []}],
                "requestBody": {**json_body, "content": _json(_ref("schemas", "TelegramUpdate"))},
                "responses": {
                    "200": {"description": "The reply, as a method call in the webhook answer.",
                            "content": _json(_ref("schemas", "TelegramAnswer"))},
                    "401": {"description": "Missing or wrong secret token, or none configured.",
                            "content": _json(_ref("schemas", "Error"))},
                    "503": _r("Unavailable"),
                },
            },
        },
    }


def _page_of(schema: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "maxItems": MAX_LIMIT, "items": _ref("schemas", schema)},
            "next_cursor": {"type": ["string", "null"],
                            "description": "Pass as `cursor` for the next page; null on the last page."},
        },
    }


def build_document(server_url: str = "/") -> dict[str, Any]:
    """The whole contract as an OpenAPI 3.1 document; `server_url` is the API root as clients see it."""
    from openapi import notes_stats, oncall  # they build on this module's parts

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Incident API",
            "version": API_VERSION,
            "description": (
                "Incidents reported by operators, monitoring and partners. All bodies are JSON "
                "(`Content-Type: application/json`). Error bodies are `{\"Code\": ..., \"Message\": "
                "...}`; no input gets a 500, and a rejected request changes nothing. A path that "
                "matches no route answers 403 `{\"message\": \"Missing Authentication Token\"}` and "
                "a known path with another method 405; both come from API Gateway, before the "
                "service. Every answer of the service carries `X-Request-Id`: quote it when you "
                "report a problem, it finds the request in the service's logs."
            ),
        },
        "servers": [{"url": server_url, "description": "The API root"}],
        "security": [{"ApiKey": []}],
        "tags": [
            {"name": "incidents", "description": "Create, list, read and change incidents."},
            {"name": "operations", "description": "Health and this description; no key needed."},
            {"name": "telegram", "description": "The Telegram bot's webhook."},
            {"name": "stats", "description": "Open counts, time to acknowledge, time to resolve."},
            {"name": "integrations", "description": "PagerDuty Events API v2, Alertmanager and "
                                                    "Grafana webhooks: monitoring systems open and "
                                                    "resolve incidents with no code."},
            {"name": "on call", "description": "Teams, their rotations and overrides, and who is "
                                               "on call."},
        ],
        "paths": {**_paths(), **notes_stats.paths(), **_integration_paths(), **oncall.paths()},
        "components": {
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                           "description": "One of the configured keys (`API_KEYS`: `key`, `name=key` "
                                          "or `name:read=key`). A change made with a named key is "
                                          "recorded as `by: api:<name>`; a read-only key may only GET "
                                          "(anything else is 403)."},
                "TelegramSecretToken": {"type": "apiKey", "in": "header",
                                        "name": TELEGRAM_SECRET_HEADER,
                                        "description": "`TELEGRAM_SECRET_TOKEN`, as given to "
                                                       "Telegram's `setWebhook`."},
                "BearerApiKey": {"type": "http", "scheme": "bearer",
                                 "description": "One of the API keys as `Authorization: Bearer "
                                                "<key>` (Alertmanager's `http_config.authorization`)."},
            },
            "schemas": {**_schemas(), **notes_stats.schemas(), **_integration_schemas(),
                        **oncall.schemas()},
            "parameters": {**_parameters(), **oncall.parameters()},
            "headers": _headers(),
            "responses": _responses(),
        },
    }


# --- Monitoring integrations (issue 17) ---

RFC3339 = {"type": "string", "format": "date-time"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _integration_schemas() -> dict[str, Any]:
    from chalicelib import alertmanager, pagerduty

    not_blank = {"type": "string", "pattern": NOT_BLANK_PATTERN}
    return {
        "SeverityOrNull": {
            "enum": [*(s.value for s in Severity), None],
            "description": "PagerDuty's four, or null when nobody said. A later report for the same "
                           "open incident raises it, never lowers it. Not a list filter (yet).",
        },
        "PagerDutyEvent": {
            "type": "object",
            "required": ["routing_key", "event_action"],
            "description": "A PagerDuty Events API v2 alert event. `trigger` needs `payload` "
                           "(summary, source, severity); `acknowledge` and `resolve` need `dedup_key`. "
                           "Other fields PagerDuty defines (`client`, `links`, `images`, …) are accepted "
                           "and not used.",
            "properties": {
                "routing_key": {"type": "string", "description": "One of the integration keys "
                                                                 "(`INTEGRATION_KEYS`)."},
                "event_action": {"enum": list(pagerduty.ACTIONS)},
                "dedup_key": {"type": ["string", "null"], "minLength": 1,
                              "maxLength": pagerduty.MAX_DEDUP_KEY, "pattern": NOT_BLANK_PATTERN},
                "payload": {
                    "type": "object",
                    "required": ["summary", "source", "severity"],
                    "properties": {
                        "summary": {**not_blank, "maxLength": pagerduty.MAX_SUMMARY},
                        "source": not_blank,
                        "severity": {"enum": [s.value for s in Severity]},
                        **{name: {"type": "string", "description": f"Becomes the incident's label "
                                                                   f"`{name}` (cut to {MAX_LABEL_VALUE} "
                                                                   "characters)."}
                           for name in pagerduty.LABEL_FIELDS},
                    },
                },
            },
            "examples": [{"routing_key": "<integration key>", "event_action": "trigger",
                          "dedup_key": "pos-7-offline",
                          "payload": {"summary": "POS 7 not answering", "source": "pos-7.example.org",
                                      "severity": "critical"}}],
        },
        "PagerDutyAccepted": {
            "type": "object",
            "required": ["status", "message", "dedup_key"],
            "properties": {"status": {"const": "success"}, "message": {"const": "Event processed"},
                           "dedup_key": {"type": "string"}},
        },
        "PagerDutyInvalid": {
            "type": "object",
            "required": ["status", "message", "errors"],
            "properties": {"status": {"const": "invalid event"},
                           "message": {"const": pagerduty.INVALID_MESSAGE},
                           "errors": {"type": "array", "minItems": 1, "items": {"type": "string"}}},
        },
        "AlertmanagerAlert": {
            "type": "object",
            "required": ["status", "labels", "startsAt"],
            "properties": {
                "status": {"enum": list(alertmanager.STATUSES)},
                "labels": {**STRING_MAP, "description": f"Become the incident's labels: the first "
                                                        f"{MAX_LABELS} in key order, a value cut to "
                                                        f"{MAX_LABEL_VALUE} characters, a key over "
                                                        f"{MAX_LABEL_KEY} left out."},
                "annotations": STRING_MAP,
                "startsAt": RFC3339,
                "endsAt": {**RFC3339, "description": "Orders a resolved alert; Go's zero time "
                                                     "(`0001-01-01T00:00:00Z`) or none: just after "
                                                     "`startsAt`."},
                "fingerprint": {**not_blank, "description": "Keys the alert's incident; when "
                                                            "absent, a digest of the sorted labels."},
            },
        },
        "AlertmanagerBatch": {
            "type": "object",
            "required": ["alerts"],
            "description": "Alertmanager's webhook body (version 4) or Grafana's webhook contact point "
                           "body (version 1: the same alerts plus `orgId`, `title`, `state`, `message`, "
                           "`values`). Fields not listed here are accepted and not used.",
            "properties": {
                "receiver": {"type": "string"},
                "alerts": {"type": "array", "items": _ref("schemas", "AlertmanagerAlert")},
            },
        },
        "AlertmanagerAnswer": {
            "type": "object",
            "required": ["status", "accepted"],
            "properties": {
                "status": {"const": "success"},
                "accepted": {"type": "integer", "minimum": 0,
                             "description": "How many alerts the batch held: all of them are handed off "
                                            "durably and applied a moment later, each in the order of its "
                                            "`startsAt`/`endsAt`; what each did is in the incidents."},
            },
        },
    }


def _integration_paths() -> dict[str, Any]:
    body_too_large = _error_response("Request body over 512 KiB.")
    return {
        "/v2/enqueue": {
            "post": {
                "operationId": "pagerdutyEnqueue",
                "summary": "PagerDuty Events API v2: trigger, acknowledge, resolve",
                "description": "Drop-in for `https://events.pagerduty.com/v2/enqueue`. Authenticated by "
                               "the body's `routing_key` (one of `INTEGRATION_KEYS`), not by a header. "
                               "`trigger` opens a `monitoring` incident (dedup_key `pagerduty:<dedup_key>`) "
                               "or counts an occurrence on the open one and raises its severity; "
                               "`acknowledge` moves the open one to `in_progress`; `resolve` to "
                               "`resolved`; with none open, both change nothing. The event is "
                               "handed off durably and applied a moment later (a key's events in the "
                               "order they were accepted); 503 when the hand-off failed.",
                "tags": ["integrations"],
                "security": [],
                "requestBody": {"required": True, "content": _json(_ref("schemas", "PagerDutyEvent"))},
                "responses": {
                    "202": {"description": "Accepted: applied a moment later.",
                            "content": _json(_ref("schemas", "PagerDutyAccepted"))},
                    "400": {"description": "Invalid event, a wrong or missing `routing_key` included "
                                           "(nothing is stored); `errors` lists every problem.",
                            "content": _json(_ref("schemas", "PagerDutyInvalid"))},
                    "503": _r("Unavailable"),
                },
            },
        },
        "/alertmanager": {
            "post": {
                "operationId": "alertmanagerWebhook",
                "summary": "Alertmanager and Grafana webhook: firing opens, resolved resolves",
                "description": "One incident per alert fingerprint (dedup_key `alertmanager:<fingerprint>`). "
                               "Events apply in the order of `startsAt` (firing) and `endsAt` (resolved): "
                               "a repeat of the same firing alert or a late event changes nothing. "
                               "The request validates the whole batch and hands it off durably "
                               "(O(1) work whatever it holds); the alerts are applied a moment later, "
                               "retried on failure. 503 when the hand-off failed: Alertmanager sends "
                               "the batch again, and no alert is applied twice.",
                "tags": ["integrations"],
                "security": [{"BearerApiKey": []}, {"ApiKey": []}],
                "requestBody": {"required": True, "content": _json(_ref("schemas", "AlertmanagerBatch"))},
                "responses": {
                    "200": {"description": "The batch is accepted: every alert will be applied.",
                            "content": _json(_ref("schemas", "AlertmanagerAnswer"))},
                    "400": _error_response("Not an Alertmanager or Grafana body: no `alerts` list of alert "
                                           "objects, an unknown `status`, a time that is not RFC 3339, "
                                           "labels or annotations that are not strings. Nothing is stored."),
                    "401": _error_response("Missing or wrong `Authorization: Bearer <API key>` (or x-api-key)."),
                    "403": _r("ReadOnlyKey"),
                    "413": body_too_large,
                    "415": _r("UnsupportedMediaType"),
                    "503": _r("Unavailable"),
                },
            },
        },
    }
