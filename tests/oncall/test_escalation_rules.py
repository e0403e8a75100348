"""The escalation's step math and targets: pure, at given instants."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from chalicelib.oncall import rotation as rot
from chalicelib.oncall.escalation import Team, following, state, targets

UTC = timezone.utc


def team(rules: list[list[str]], num_loops: int = 0, overrides: tuple = ()) -> Team:
    return Team(name="ops", generation="g1", chat_id=-100, thread_id=None,
                rules=[{"escalation_delay_in_minutes": 10 * (i + 1), "targets": t} for i, t in enumerate(rules)],
                num_loops=num_loops,
                rotation=rot.Rotation(("ivan_ops", "maria_sre", "oleg_k"), datetime(2026, 12, 1, 10, 0), "daily",
                                      ZoneInfo("UTC")),
                overrides=overrides)


def test_the_rules_follow_each_other_then_start_again_for_each_loop_then_end():
    two = team([["on_call"], ["team"]], num_loops=1)

    assert following(two, 1, 0) == (2, 0)
    assert following(two, 2, 0) == (1, 1)
    assert following(two, 2, 1) is None


def test_the_next_rule_is_due_after_the_notified_rules_delay():
    two = team([["on_call"], ["team"]])
    notified = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    assert state(two, 2, 0, notified) == {"rule": 2, "loop": 0, "next_at": "2026-12-03T12:20:00.000Z",
                                               "generation": "g1"}


def test_targets_resolve_at_the_instant_and_name_each_person_once():
    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # the third day: oleg_k until 12-04 10:00
    rules = team([["on_call", "next_on_call", "@ivan_ops", "@Oleg_K"], ["team", "on_call"]])

    assert targets(rules, 1, at) == ["oleg_k", "ivan_ops"]
    assert targets(rules, 2, at) == ["ivan_ops", "maria_sre", "oleg_k"]


def test_an_override_is_who_on_call_pages():
    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    cover = rot.Override("a" * 16, "anna_support", datetime(2026, 12, 3, 11, tzinfo=UTC),
                         datetime(2026, 12, 3, 13, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))

    assert targets(team([["on_call"]], overrides=(cover,)), 1, at) == ["anna_support"]
