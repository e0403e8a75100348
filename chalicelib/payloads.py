"""HTTP request payloads -> plain values (pure). The limits and why: docs/security.md."""
from __future__ import annotations

import hashlib
import json
import re
from itertools import accumulate
from dataclasses import dataclass
from email.message import Message
from typing import Any, Mapping

from chalicelib.incidents import (
    InvalidInput, Source, Status, parse_source, parse_status, refuse_reserved_dedup_key,
)

MAX_BODY_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY = 128
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_JSON_DEPTH = 32
MAX_NUMBER_DIGITS = 100  # int() raises past 4,300 digits: a 500
JSON_MEDIA_TYPE = "application/json"

CREATE_FIELDS = {"description": True, "source": True, "dedup_key": False, "severity": False,
                 "labels": False}  # name -> required
PATCH_FIELDS = {"status": False, "team": False, "assignee": False, "note": False}
PATCH_CHANGES = ("status", "team", "assignee")


class BodyTooLarge(Exception):
    def __init__(self, size: int, limit: int = MAX_BODY_BYTES) -> None:
        super().__init__(f"request body is {size} bytes; at most {limit} bytes ({limit // 1024} KiB) are allowed")


class NotJson(Exception):
    def __init__(self, content_type: str) -> None:
        super().__init__(f"Content-Type must be application/json; got {content_type[:100]!r}")


@dataclass(frozen=True)
class ListQuery:
    status: Status | None
    source: Source | None
    limit: int
    cursor: str | None
    team: str | None = None


def json_object(raw: bytes | None, content_type: str | None,
                max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """Also refuses what json.loads lets through: NaN, Infinity, repeated keys."""
    body = raw or b""
    if len(body) > max_bytes:
        raise BodyTooLarge(len(body), max_bytes)
    if content_type is not None and not is_json_media_type(content_type):
        raise NotJson(content_type)
    if not body.strip():
        raise InvalidInput("request body is empty; send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("request body is not valid UTF-8") from None
    check_json_limits(text, "request body")
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            object_pairs_hook=_refuse_duplicate_keys,
        )
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"request body must be a JSON object; got {type(value).__name__}")
    return value


def is_json_media_type(content_type: str) -> bool:
    header = Message()
    header["Content-Type"] = content_type
    # Message reads an unparseable value as text/plain, so both must agree.
    parsed = header.get_content_type()
    declared = content_type.split(";", 1)[0].strip().lower()
    return parsed == JSON_MEDIA_TYPE and declared == JSON_MEDIA_TYPE


def check_json_limits(text: str, what: str) -> int:
    """Depth and digits, checked before json.loads hits RecursionError or ValueError (a 500).

    Linear in the text whatever it holds: every pass is a str method or a pattern of one
    character class, each reading its input once. Returns the characters the passes read
    (at most 11 per character of `text`), which tests hold to that bound."""
    outside = _outside_strings(text)
    examined = 3 * len(text) + 3 * len(outside)
    if outside.count("[") + outside.count("{") > MAX_JSON_DEPTH:  # else it cannot be deeper
        brackets = _NOT_BRACKET.sub("", outside)
        examined += len(outside) + len(brackets)
        if max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > MAX_JSON_DEPTH:
            raise InvalidInput(
                f"{what} is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects")
    examined += 2 * len(outside)
    for run in _LONG_NUMBER.finditer(outside):
        examined += len(run.group())
        if len(run.group().translate(_NOT_DIGITS)) > MAX_NUMBER_DIGITS:
            raise InvalidInput(
                f"{what} has a number literal of more than {MAX_NUMBER_DIGITS} digits")
    return examined


def _outside_strings(text: str) -> str:
    """The text with every string literal removed, an unterminated one to the end.

    Escape pairs go first, left to right as JSON reads them, so a quote after an escaped
    backslash ends a string and an escaped quote does not; where this reading and JSON's part
    ways, json.loads fails before it."""
    neutral = text.replace("\\\\", "__").replace('\\"', "__")
    return "".join(neutral.split('"')[::2])


_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Only runs longer than the limit, and each from its start: the lookbehind fails at once inside a run.
_LONG_NUMBER = re.compile(r"(?<![-+.eE0-9])[-+.eE0-9]{%d,}" % (MAX_NUMBER_DIGITS + 1))
_NOT_DIGITS = str.maketrans("", "", "-+.eE")


def _refuse_constant(name: str) -> Any:
    raise InvalidInput(f"request body is not valid JSON: {name} is not a JSON number")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput(f"request body repeats the field {key!r}")
        result[key] = value
    return result


def fields(body: dict[str, Any], spec: Mapping[str, bool]) -> dict[str, Any]:
    """Unknown or missing fields raise; absent optional ones are None."""
    allowed = ", ".join(spec)
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}; allowed fields: {allowed}")
    missing = [name for name, required in spec.items() if required and name not in body]
    if missing:
        raise InvalidInput(f"missing required field(s): {', '.join(missing)}; allowed fields: {allowed}")
    return {name: body.get(name) for name in spec}


def patch_fields(body: dict[str, Any]) -> dict[str, Any]:
    """PATCH /incidents/{id}: only the fields given (a null team or assignee clears it)."""
    fields(body, PATCH_FIELDS)
    if not any(name in body for name in PATCH_CHANGES):
        raise InvalidInput(f"missing required field: at least one of {', '.join(PATCH_CHANGES)}; "
                           f"allowed fields: {', '.join(PATCH_FIELDS)}")
    return {name: body[name] for name in PATCH_FIELDS if name in body}


def create_fields(body: dict[str, Any]) -> dict[str, Any]:
    """POST /incidents: a dedup_key in an integration's namespace is refused."""
    values = fields(body, CREATE_FIELDS)
    refuse_reserved_dedup_key(values["dedup_key"])
    return values


def fingerprint(body: dict[str, Any]) -> str:
    """Independent of key order and white space."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY} characters; got {len(value)}"
        )
    return value


def list_query(params: Mapping[str, str] | None) -> ListQuery:
    params = params or {}
    status = params.get("status")
    source = params.get("source")
    team = params.get("team")
    query = ListQuery(
        status=parse_status(status) if status is not None else None,
        source=parse_source(source) if source is not None else None,
        limit=_limit(params.get("limit")),
        cursor=params.get("cursor"),
        team=_team_filter(team) if team is not None else None,
    )
    if query.team is not None and query.source is not None:
        # No index holds team and source together: it could only be filtered, not read.
        raise InvalidInput("team combines with status only, not with source; "
                           "list ?team=<name> or ?team=<name>&status=<status>")
    return query


def _team_filter(value: str) -> str:
    from chalicelib.oncall.teams import TEAM_NAME, TEAM_NAME_RULE  # teams imports this module

    if not TEAM_NAME.fullmatch(value):
        raise InvalidInput(f"team must be a team's name, {TEAM_NAME_RULE}; got {value[:40]!r}")
    return value


@dataclass(frozen=True)
class PageQuery:
    limit: int
    cursor: str | None


def only_query_params(params: Mapping[str, str] | None, *allowed: str) -> Mapping[str, str]:
    """The query parameters, none of them but `allowed` (else InvalidInput listing them)."""
    params = params or {}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return params


def page_query(params: Mapping[str, str] | None) -> PageQuery:
    params = only_query_params(params, "limit", "cursor")
    return PageQuery(limit=_limit(params.get("limit")), cursor=params.get("cursor"))


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit() and len(value) <= 3 and 1 <= int(value) <= MAX_LIMIT):
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}; got {value[:20]!r}")
    return int(value)


NOTE_FIELDS = {"note": True}
