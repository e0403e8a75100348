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


# What costs a scanner most: quotes that never close (each one a string to the end), quotes
# escaped so nothing closes, empty strings, brackets, numbers. Each is cut to `size` characters.
WORST_CASE_BODIES = {
    "unterminated quotes": lambda size: '{"a": ' + '"\\' * size,
    "quotes after escaped backslashes": lambda size: '{"a": ' + '"\\\\' * size,
    "many quotes": lambda size: '{"a": ' + '"",' * size,
    "deep nesting": lambda size: '{"a": ' + "[" * size,
    "empty arrays": lambda size: '{"a": [' + "[]," * size,
    "long numbers": lambda size: '{"a": [' + ("9" * 100 + ",") * size,
    "short numbers": lambda size: '{"a": [' + "1e1," * size,
}


def worst_case(kind: str, size: int) -> str:
    return WORST_CASE_BODIES[kind](size)[:size]


@pytest.mark.parametrize("kind", WORST_CASE_BODIES)
def test_the_limits_check_reads_each_character_a_bounded_number_of_times_from_16_to_512_kib(kind):
    per_character = []
    for size in (16 * 1024, 64 * 1024, 512 * 1024):
        text = worst_case(kind, size)
        try:
            examined = check_json_limits(text, "body")
        except InvalidInput as refused:  # deep nesting: refused, and so at once
            assert "nested deeper" in str(refused)
            continue
        per_character.append(examined / len(text))
    assert all(ratio <= 11 for ratio in per_character)
    # Linear: the work per character does not grow with the size.
    assert max(per_character, default=0) - min(per_character, default=0) < 0.5


@pytest.mark.parametrize("kind, message", [
    ("unterminated quotes", "not valid JSON: Unterminated string"),
    ("quotes after escaped backslashes", "not valid JSON: Expecting"),
    ("many quotes", "not valid JSON: Expecting"),
    ("deep nesting", "nested deeper than 32 levels"),
    ("empty arrays", "not valid JSON: Expecting"),
    ("long numbers", "not valid JSON: Expecting"),
    ("short numbers", "not valid JSON: Expecting"),
])
def test_the_worst_case_bodies_of_512_kib_get_the_400_that_says_what_is_wrong(kind, message):
    raw = worst_case(kind, 512 * 1024).encode()
    with pytest.raises(InvalidInput, match=message):
        json_object(raw, "application/json", max_bytes=512 * 1024)


def test_a_number_past_the_digit_limit_is_refused_however_it_is_spread_over_mantissa_and_exponent():
    with pytest.raises(InvalidInput, match="more than 100 digits"):
        check_json_limits('[1.' + "5" * 60 + "e-" + "1" * 41 + "]", "body")
    check_json_limits('[1.' + "5" * 59 + "e-" + "1" * 40 + "]", "body")
    check_json_limits('["' + "1" * 200 + '", ' + "2" * 100 + "]", "body")


def test_a_quote_after_an_escaped_backslash_ends_the_string_and_an_escaped_quote_does_not():
    with pytest.raises(InvalidInput, match="nested deeper"):
        check_json_limits('{"a": "x\\\\", "b": ' + "[" * 33 + "]" * 33 + "}", "body")
    check_json_limits('{"a": "x\\"' + "[" * 33 + '"}', "body")
