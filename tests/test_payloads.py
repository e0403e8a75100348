"""Request payload parsing: strict JSON, field sets, query parameters. No AWS, no HTTP."""
import json

import pytest

from chalicelib.payloads import (
    CREATE_FIELDS,
    MAX_BODY_BYTES,
    check_json_limits,
    is_json_media_type,
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


@pytest.mark.parametrize("raw, reason", [
    (b"[" * 10_000 + b"]" * 10_000, "nested deeper than 32"),
    (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "nested deeper than 32"),
    (b'{"description": ' + b"1" * 5_000 + b"}", "more than 100 digits"),
    (b'{"a": 1' + b"0" * 100 + b"}", "more than 100 digits"),
    (b'{"a": 1e' + b"9" * 101 + b"}", "more than 100 digits"),
    (b'{"a": -Infinity}', "Infinity"),
])
def test_bodies_that_would_recurse_or_convert_without_end_are_refused_before_parsing(raw, reason):
    with pytest.raises(InvalidInput, match=reason):
        json_object(raw, "application/json")


def test_the_limits_are_inclusive_and_ignore_what_is_inside_strings():
    check_json_limits("[" * 32 + "]" * 32, "body")
    check_json_limits('{"a": ' + "9" * 100 + "}", "body")
    check_json_limits('{"a": "' + "[" * 1000 + '1' * 1000 + '\\"[[["}', "body")
    assert json_object(b'{"a": "' + b"[{" * 100 + b'"}', None) == {"a": "[{" * 100}


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON",
    "APPLICATION/JSON;CHARSET=UTF-8", 'application/json; charset="utf-8"',
])
def test_application_json_is_json_in_any_case_with_parameters(content_type):
    assert is_json_media_type(content_type)
    assert json_object(b"{}", content_type) == {}


@pytest.mark.parametrize("content_type", [
    "application/jsonx", "application/json-patch+json", "text/json", "application/x-json",
    "application/json5", "text/plain", "", "application", "application/json, text/plain",
    "multipart/form-data; boundary=x",
])
def test_other_media_types_are_not_json(content_type):
    assert not is_json_media_type(content_type)
    with pytest.raises(NotJson):
        json_object(b"{}", content_type)
