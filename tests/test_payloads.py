"""Request payload parsing: strict JSON, field sets, query parameters. No AWS, no HTTP."""
import json

import pytest

from chalicelib.payloads import (
    CREATE_FIELDS,
    MAX_BODY_BYTES,
    BodyTooLarge,
    NotJson,
    fields,
    fingerprint,
    idempotency_key,
    json_object,
    list_query,
)
from chalicelib.incidents import InvalidInput


def test_a_json_object_is_parsed():
    assert json_object(b'{"a": "\xd0\xb6"}', "application/json; charset=utf-8") == {"a": "ж"}


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty"),
    (b"{", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"text"', "must be a JSON object"),
    (b'{"a": NaN}', "NaN"),
    (b'{"a": Infinity}', "Infinity"),
    (b'{"a": 1, "a": 2}', "repeats"),
    (b"\xff\xfe", "UTF-8"),
])
def test_malformed_bodies_are_refused_with_the_reason(raw, reason):
    with pytest.raises(InvalidInput, match=reason):
        json_object(raw, "application/json")


def test_a_body_over_64_kib_is_too_large_and_exactly_64_kib_is_not():
    exact = b'{"d": "' + b"x" * (MAX_BODY_BYTES - 9) + b'"}'
    assert len(exact) == MAX_BODY_BYTES
    assert json_object(exact, None)["d"]
    with pytest.raises(BodyTooLarge, match="65536"):
        json_object(exact + b" ", None)


def test_a_body_that_is_not_json_by_content_type_is_refused():
    with pytest.raises(NotJson, match="text/plain"):
        json_object(b"{}", "text/plain")


def test_unknown_fields_are_named_with_the_allowed_ones():
    with pytest.raises(InvalidInput, match="unknown field.*priority.*allowed fields: description, source, dedup_key"):
        fields({"description": "x", "source": "operator", "priority": 1}, CREATE_FIELDS)


def test_missing_required_fields_are_named():
    with pytest.raises(InvalidInput, match="missing required field.*source"):
        fields({"description": "x"}, CREATE_FIELDS)


def test_fingerprint_ignores_key_order_and_white_space_but_not_values():
    a = json.loads('{"source": "operator", "description": "x"}')
    b = json.loads('{ "description" : "x",\n "source":"operator" }')
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint({**a, "description": "y"})


def test_idempotency_key_is_1_to_128_characters():
    assert idempotency_key(None) is None
    assert idempotency_key("k" * 128) == "k" * 128
    for bad in ("", "k" * 129):
        with pytest.raises(InvalidInput, match="Idempotency-Key"):
            idempotency_key(bad)


def test_list_query_defaults_and_limits():
    assert list_query(None).limit == 50
    assert list_query({"limit": "1"}).limit == 1
    assert list_query({"limit": "100"}).limit == 100
    for bad in ("0", "101", "-1", "ten", "1e2", "", "0100"):
        with pytest.raises(InvalidInput, match="limit must be an integer from 1 to 100"):
            list_query({"limit": bad})


def test_list_query_filters_are_checked_against_the_enums():
    query = list_query({"status": "in_progress", "source": "partner"})
    assert (query.status, query.source) == ("in_progress", "partner")
    with pytest.raises(InvalidInput, match="status must be one of"):
        list_query({"status": "open"})
