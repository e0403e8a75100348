"""The OpenAPI part for notes, stats and the board; document.build_document merges it in.
Pure, and built from the code's own constants like the rest of the document."""
from __future__ import annotations

from typing import Any

from chalicelib.incidents import MAX_NOTE, OPEN_STATUSES, Source
from openapi.document import NOT_BLANK_PATTERN, _incident_response, _json, _r, _ref
from chalicelib.stats import DEFAULT_WINDOW, MAX_WINDOW, SINCE_EXAMPLE

_COUNT = {"type": "integer", "minimum": 0}


def _durations(what: str) -> dict[str, Any]:
    seconds = {"type": ["number", "null"], "minimum": 0}
    return {
        "type": "object", "additionalProperties": False, "required": ["median", "p90"],
        "description": f"Seconds from creation to the {what}, over the incidents created since "
                       "`since` that have had it; to the millisecond. `median` is the middle value "
                       "(the mean of the two middle ones for an even number), `p90` the nearest-rank "
                       "90th percentile. Both null when there is no such incident.",
        "properties": {"median": seconds, "p90": seconds},
    }


def schemas() -> dict[str, Any]:
    return {
        "NewNote": {
            "type": "object",
            "additionalProperties": False,
            "required": ["note"],
            "properties": {
                "note": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE,
                         "pattern": NOT_BLANK_PATTERN,
                         "description": f"1–{MAX_NOTE} characters after trimming surrounding white space."},
            },
            "examples": [{"note": "technician on site, replacing the modem"}],
        },
        "Stats": {
            "type": "object",
            "additionalProperties": False,
            "required": ["open", "open_by_source", "since", "opened", "resolved",
                         "time_to_acknowledge_s", "time_to_resolve_s"],
            "properties": {
                "open": {"type": "object", "additionalProperties": False,
                         "required": [str(s) for s in OPEN_STATUSES],
                         "properties": {str(s): _COUNT for s in OPEN_STATUSES},
                         "description": "Incidents open now, by status (whenever they were created)."},
                "open_by_source": {"type": "object", "additionalProperties": False,
                                   "required": [str(s) for s in Source],
                                   "properties": {str(s): _COUNT for s in Source},
                                   "description": "The same open incidents, by source."},
                "since": _ref("schemas", "Timestamp"),
                "opened": {**_COUNT, "description": "Incidents created at or after `since`."},
                "resolved": {**_COUNT, "description": "Of those, the ones resolved or closed at least "
                                                      "once (a later reopen does not take it back)."},
                "time_to_acknowledge_s": _durations("first move out of `new`"),
                "time_to_resolve_s": _durations("first move to `resolved` or `closed`"),
            },
            "examples": [{
                "open": {"new": 3, "in_progress": 2},
                "open_by_source": {"operator": 1, "monitoring": 4, "partner": 0},
                "since": "2026-11-16T00:00:00.000Z", "opened": 41, "resolved": 37,
                "time_to_acknowledge_s": {"median": 240, "p90": 1800},
                "time_to_resolve_s": {"median": 3600, "p90": 86400},
            }],
        },
    }


def paths() -> dict[str, Any]:
    return {
        "/incidents/{id}/notes": {
            "parameters": [_ref("parameters", "IncidentId")],
            "post": {
                "operationId": "addIncidentNote",
                "summary": "Add a note to an incident",
                "description": "A comment without a status change: a history entry whose `status` "
                               "is the incident's current one. Allowed in every status, `closed` "
                               "included. With `If-Match`, only while the ETag still matches.",
                "tags": ["incidents"],
                "parameters": [_ref("parameters", "IfMatch")],
                "requestBody": {"required": True, "content": _json(_ref("schemas", "NewNote"))},
                "responses": {
                    "201": _incident_response("The incident with the note as its newest entry.", {}),
                    "400": _r("BadRequest"), "401": _r("Unauthorized"),
                    "403": _r("ReadOnlyKeyOrNoSuchRoute"),
                    "404": _r("NotFound"), "412": _r("PreconditionFailed"),
                    "413": _r("PayloadTooLarge"), "415": _r("UnsupportedMediaType"),
                    "503": _r("Unavailable"),
                },
            },
        },
        "/stats": {
            "get": {
                "operationId": "getStats",
                "summary": "Open counts, and how fast incidents were acknowledged and resolved",
                "description": "Exact figures. Reads the open incidents and the incidents created "
                               "since `since`, never the whole table.",
                "tags": ["stats"],
                "parameters": [{
                    "name": "since", "in": "query", "required": False,
                    "description": f"ISO 8601 (`{SINCE_EXAMPLE}`, `2026-11-16T03:00:00+03:00`, "
                                   "`2026-11-16`; without an offset it is UTC). Default "
                                   f"{DEFAULT_WINDOW.days} days ago when absent (an empty `since=` "
                                   f"is 400); at most {MAX_WINDOW.days} days back (400 otherwise).",
                    "schema": {"type": "string", "minLength": 1, "examples": [SINCE_EXAMPLE]},
                }],
                "responses": {
                    "200": {"description": "The figures.", "content": _json(_ref("schemas", "Stats"))},
                    "400": _r("BadRequest"), "401": _r("Unauthorized"), "503": _r("Unavailable"),
                },
            },
        },
        "/board": {
            "get": {
                "operationId": "board",
                "summary": "The board: open incidents, stats and changes, for people",
                "description": "A static HTML page (no data in it). It asks for an API key, keeps "
                               "it in the tab's sessionStorage and calls this API with it.",
                "tags": ["operations"],
                "security": [],
                "responses": {"200": {"description": "The page.",
                                      "content": {"text/html": {"schema": {"type": "string"}}}}},
            },
        },
    }
