"""Domain rules: statuses, transitions, validation. No AWS, no HTTP."""
import pytest

from chalicelib.incidents import (
    MAX_DESCRIPTION,
    TRANSITIONS,
    InvalidInput,
    Status,
    TransitionNotAllowed,
    allowed_targets,
    clean_dedup_key,
    clean_description,
    clean_note,
    parse_incident_id,
    parse_source,
    parse_status,
    statuses_leading_to,
    versions_matching,
)

CONTRACT_TRANSITIONS = {
    "new": {"in_progress", "resolved", "closed"},
    "in_progress": {"resolved", "closed"},
    "resolved": {"in_progress", "closed"},
    "closed": set(),
}


def test_transition_table_is_the_contracts():
    assert {str(k): {str(t) for t in v} for k, v in TRANSITIONS.items()} == CONTRACT_TRANSITIONS


def test_closed_is_final_and_says_so_when_refused():
    error = TransitionNotAllowed(7, "closed", "in_progress")
    assert "closed" in str(error) and "final" in str(error)
    assert allowed_targets(Status.CLOSED) == []


def test_refusal_names_the_current_status_and_allowed_targets():
    message = str(TransitionNotAllowed(3, "resolved", "new"))
    assert "resolved" in message and "in_progress, closed" in message


def test_nothing_leads_back_to_new():
    assert statuses_leading_to(Status.NEW) == []
    assert set(statuses_leading_to(Status.CLOSED)) == {Status.NEW, Status.IN_PROGRESS, Status.RESOLVED}


def test_description_is_trimmed_and_may_be_any_unicode():
    assert clean_description("  Самокат #42 не в сети 🛴 \n") == "Самокат #42 не в сети 🛴"


def test_description_of_exactly_the_limit_is_accepted_and_one_more_is_not():
    assert len(clean_description("я" * MAX_DESCRIPTION)) == MAX_DESCRIPTION
    with pytest.raises(InvalidInput, match="at most 4000"):
        clean_description("я" * (MAX_DESCRIPTION + 1))


@pytest.mark.parametrize("value", ["", "   \n\t", None, 42, ["x"], {"a": 1}, True])
def test_description_must_be_non_empty_text(value):
    with pytest.raises(InvalidInput, match="description"):
        clean_description(value)


def test_lone_surrogates_are_refused():
    with pytest.raises(InvalidInput, match="surrogate"):
        clean_description("broken \ud800 text")


def test_unknown_status_lists_the_allowed_values():
    with pytest.raises(InvalidInput, match="new, in_progress, resolved, closed"):
        parse_status("done")


def test_unknown_source_lists_the_allowed_values():
    with pytest.raises(InvalidInput, match="operator, monitoring, partner"):
        parse_source("customer")
    assert parse_source("partner") == "partner"


def test_note_is_optional_and_limited():
    assert clean_note(None) is None
    assert clean_note("  ") is None
    assert clean_note(" rebooted ") == "rebooted"
    with pytest.raises(InvalidInput, match="note"):
        clean_note("x" * 1001)


def test_dedup_key_is_null_or_up_to_256_characters():
    assert clean_dedup_key(None) is None
    assert clean_dedup_key("k" * 256) == "k" * 256
    for bad in ("", "k" * 257, 5):
        with pytest.raises(InvalidInput, match="dedup_key"):
            clean_dedup_key(bad)


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "+3", " 4", "٣", "9" * 19, "9" * 5000,
                                  "00001", "01", "+1", "1e3", "0x1", "1_000"])
def test_incident_id_must_be_a_positive_integer(text):
    with pytest.raises(InvalidInput, match="positive integer"):
        parse_incident_id(text)


def test_if_match_accepts_quoted_weak_and_star_forms():
    assert versions_matching('"5-2"', 5) == [2]
    assert versions_matching('W/"5-2", "5-3"', 5) == [2, 3]
    assert versions_matching("*", 5) is None
    assert versions_matching('"6-2"', 5) == []
    assert versions_matching("garbage", 5) == []


def test_if_match_takes_at_most_ten_tags():
    ten = ", ".join(f'"5-{n}"' for n in range(1, 11))
    assert versions_matching(ten, 5) == list(range(1, 11))
    with pytest.raises(InvalidInput, match="11 entity tags; at most 10"):
        versions_matching(ten + ', "5-11"', 5)
    with pytest.raises(InvalidInput, match="1001 entity tags"):
        versions_matching(", ".join(['"5-1"'] * 1001), 5)


def test_if_match_ignores_a_version_too_long_to_be_one_and_repeats():
    assert versions_matching('"5-' + "9" * 5000 + '"', 5) == []
    assert versions_matching('"5-2", W/"5-2"', 5) == [2]
