"""Who is on call: the pure rotation math, at the instants that break naive code (the hour that
does not exist, the hour that happens twice, a shift that straddles either)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from chalicelib.oncall.rotation import Override, Rotation, handoff, on_call, resolve_local, who

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MOSCOW = ZoneInfo("Europe/Moscow")
MEMBERS = ("ivan_ops", "maria_sre", "oleg_k")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def rotation(start: str, shift: str | int, zone: ZoneInfo = BERLIN,
             members: tuple[str, ...] = MEMBERS) -> Rotation:
    return Rotation(members, datetime.fromisoformat(start), shift, zone)


def user_at(r: Rotation, at: str, overrides: list[Override] | None = None) -> str:
    return who(r, overrides or [], utc(at))[0]


def override(user: str, start: str, end: str, created: str, ident: str = "a") -> Override:
    return Override(ident, user, utc(start), utc(end), utc(created))


# --- plain rotations ---


def test_a_daily_rotation_hands_over_at_the_local_hour_and_wraps_around() -> None:
    r = rotation("2026-12-01T10:00", "daily")  # Berlin, UTC+1 in winter: 09:00 UTC
    assert user_at(r, "2026-12-01T09:00") == "ivan_ops"
    assert user_at(r, "2026-12-02T08:59:59") == "ivan_ops"
    assert user_at(r, "2026-12-02T09:00") == "maria_sre"
    assert user_at(r, "2026-12-03T09:00") == "oleg_k"
    assert user_at(r, "2026-12-04T09:00") == "ivan_ops"


def test_a_weekly_rotation_hands_over_every_seven_days() -> None:
    r = rotation("2026-12-01T10:00", "weekly")
    assert user_at(r, "2026-12-07T23:00") == "ivan_ops"
    assert user_at(r, "2026-12-08T09:00") == "maria_sre"
    assert user_at(r, "2026-12-22T09:00") == "ivan_ops"


def test_a_12_hour_shift_hands_over_every_12_real_hours() -> None:
    r = rotation("2026-12-01T08:00", 12)  # 07:00 UTC
    assert user_at(r, "2026-12-01T18:59") == "ivan_ops"
    assert user_at(r, "2026-12-01T19:00") == "maria_sre"
    assert user_at(r, "2026-12-02T07:00") == "oleg_k"
    assert user_at(r, "2026-12-02T19:00") == "ivan_ops"


def test_before_its_start_the_rotation_runs_backwards_as_if_it_had_always_been_running() -> None:
    r = rotation("2026-12-01T10:00", "daily")
    assert user_at(r, "2026-11-30T09:00") == "oleg_k"
    assert user_at(r, "2026-11-29T09:00") == "maria_sre"
    assert user_at(r, "2026-11-30T08:59") == "maria_sre"


def test_the_answer_says_until_when_and_who_is_next_in_utc() -> None:
    answer = on_call(rotation("2026-12-01T10:00", "weekly"), [], utc("2026-12-03T12:00"))
    assert (answer.user, answer.override, answer.until, answer.next) == (
        "ivan_ops", None, utc("2026-12-08T09:00"), "maria_sre")


def test_a_single_member_is_on_call_until_the_next_handoff_and_is_next_as_well() -> None:
    answer = on_call(rotation("2026-12-01T10:00", "daily", members=("ivan_ops",)), [],
                     utc("2026-12-03T12:00"))
    assert (answer.user, answer.until, answer.next) == ("ivan_ops", utc("2026-12-04T09:00"), "ivan_ops")


def test_moscow_weekly_at_10_stays_at_07_utc_all_year() -> None:
    r = rotation("2026-01-05T10:00", "weekly", MOSCOW)
    for week in range(0, 110):
        assert handoff(r, week) == utc("2026-01-05T07:00") + timedelta(weeks=week)


# --- Europe/Berlin: 2026-03-29, 2026-10-25, 2027-03-28, 2027-10-31 ---


@pytest.mark.parametrize("before, after", [
    ("2026-03-22T10:00", "2026-03-29T10:00"), ("2027-03-21T10:00", "2027-03-28T10:00")])
def test_a_berlin_weekly_handoff_stays_at_10_local_when_summer_time_starts(before: str, after: str) -> None:
    r = rotation(before, "weekly")
    assert handoff(r, 0) == utc(before) - timedelta(hours=1)  # CET, UTC+1
    assert handoff(r, 1) == utc(after) - timedelta(hours=2)  # CEST, UTC+2: an hour earlier in UTC


@pytest.mark.parametrize("before, after", [
    ("2026-10-18T10:00", "2026-10-25T10:00"), ("2027-10-24T10:00", "2027-10-31T10:00")])
def test_a_berlin_weekly_handoff_stays_at_10_local_when_summer_time_ends(before: str, after: str) -> None:
    r = rotation(before, "weekly")
    assert handoff(r, 0) == utc(before) - timedelta(hours=2)
    assert handoff(r, 1) == utc(after) - timedelta(hours=1)


@pytest.mark.parametrize("day", ["2026-03-29", "2027-03-28"])
def test_a_handoff_at_a_time_that_does_not_exist_happens_when_the_clock_jumps(day: str) -> None:
    r = rotation("2026-03-01T02:30", "daily")
    # 02:30 does not exist that night: 02:00 CET becomes 03:00 CEST, 01:00 UTC.
    moment = datetime.fromisoformat(f"{day}T02:30")
    assert resolve_local(moment, BERLIN) == utc(f"{day}T01:00")
    before = who(r, [], utc(f"{day}T00:59:59"))[0]
    assert who(r, [], utc(f"{day}T01:00"))[0] != before
    # the next day it is 02:30 CEST again
    next_day = datetime.fromisoformat(f"{day}T02:30") + timedelta(days=1)
    assert resolve_local(next_day, BERLIN) == utc(f"{day}T00:30") + timedelta(days=1)


@pytest.mark.parametrize("day", ["2026-10-25", "2027-10-31"])
def test_a_handoff_at_a_time_that_happens_twice_happens_the_first_time(day: str) -> None:
    r = rotation("2026-10-01T02:30", "daily")
    # 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET): the first one counts.
    assert resolve_local(datetime.fromisoformat(f"{day}T02:30"), BERLIN) == utc(f"{day}T00:30")
    assert user_at(r, f"{day}T00:29") != user_at(r, f"{day}T00:30")
    assert user_at(r, f"{day}T00:30") == user_at(r, f"{day}T01:30") == user_at(r, f"{day}T01:31")


def test_a_rotation_starting_at_a_time_that_does_not_exist_starts_after_the_gap() -> None:
    r = rotation("2026-03-29T02:30", "daily")
    assert handoff(r, 0) == utc("2026-03-29T01:00")
    assert handoff(r, 1) == utc("2026-03-30T00:30")
    assert user_at(r, "2026-03-29T00:59") == "oleg_k"
    assert user_at(r, "2026-03-29T01:00") == "ivan_ops"


def test_a_12_hour_shift_straddling_the_spring_change_lasts_12_real_hours() -> None:
    r = rotation("2026-03-28T20:00", 12)  # 19:00 UTC, CET
    assert handoff(r, 1) == utc("2026-03-29T07:00")  # 09:00 CEST local: 12 real hours later
    assert user_at(r, "2026-03-29T06:59") == "ivan_ops"
    assert user_at(r, "2026-03-29T07:00") == "maria_sre"


def test_a_12_hour_shift_straddling_the_autumn_change_lasts_12_real_hours() -> None:
    r = rotation("2026-10-24T20:00", 12)  # 18:00 UTC, CEST
    assert handoff(r, 1) == utc("2026-10-25T06:00")  # 07:00 CET local
    answer = on_call(r, [], utc("2026-10-25T01:30"))  # inside the repeated hour
    assert (answer.user, answer.until, answer.next) == ("ivan_ops", utc("2026-10-25T06:00"), "maria_sre")


def test_a_daily_shift_straddling_a_change_is_23_or_25_real_hours() -> None:
    r = rotation("2026-03-28T10:00", "daily")
    assert handoff(r, 1) - handoff(r, 0) == timedelta(hours=23)
    r = rotation("2026-10-24T10:00", "daily")
    assert handoff(r, 1) - handoff(r, 0) == timedelta(hours=25)


# --- America/New_York: 2026-03-08, 2026-11-01, 2027-03-14, 2027-11-07 ---


@pytest.mark.parametrize("day", ["2026-03-08", "2027-03-14"])
def test_new_york_spring_forward_a_2_30_handoff_happens_at_3_00_edt(day: str) -> None:
    assert resolve_local(datetime.fromisoformat(f"{day}T02:30"), NEW_YORK) == utc(f"{day}T07:00")
    r = rotation("2026-01-01T02:30", "daily", NEW_YORK)
    assert user_at(r, f"{day}T06:59") != user_at(r, f"{day}T07:00")


@pytest.mark.parametrize("day", ["2026-11-01", "2027-11-07"])
def test_new_york_fall_back_a_1_30_handoff_happens_at_the_first_1_30(day: str) -> None:
    assert resolve_local(datetime.fromisoformat(f"{day}T01:30"), NEW_YORK) == utc(f"{day}T05:30")
    r = rotation("2026-01-01T01:30", "daily", NEW_YORK)
    assert user_at(r, f"{day}T05:29") != user_at(r, f"{day}T05:30")
    assert user_at(r, f"{day}T05:30") == user_at(r, f"{day}T06:30")  # the second 01:30 EST


@pytest.mark.parametrize("spring, autumn", [("2026-03-08", "2026-11-01"), ("2027-03-14", "2027-11-07")])
def test_a_new_york_weekly_handoff_at_9_follows_the_clock_across_both_changes(spring: str, autumn: str) -> None:
    r = rotation(f"{spring}T09:00", "weekly", NEW_YORK)
    assert handoff(r, 0) == utc(f"{spring}T13:00")  # EDT
    assert handoff(r, -1) == utc(f"{spring}T14:00") - timedelta(weeks=1)  # EST
    r = rotation(f"{autumn}T09:00", "weekly", NEW_YORK)
    assert handoff(r, 0) == utc(f"{autumn}T14:00")
    assert handoff(r, -1) == utc(f"{autumn}T13:00") - timedelta(weeks=1)


def test_a_new_york_8_hour_shift_counts_real_hours_across_the_change() -> None:
    r = rotation("2026-11-01T00:00", 8, NEW_YORK)  # 04:00 UTC, EDT
    assert [handoff(r, n) for n in range(3)] == [
        utc("2026-11-01T04:00"), utc("2026-11-01T12:00"), utc("2026-11-01T20:00")]


# --- overrides ---


def test_an_override_puts_its_user_on_call_until_it_ends() -> None:
    r = rotation("2026-12-01T10:00", "weekly")
    o = override("zoe_backup", "2026-12-03T00:00", "2026-12-04T00:00", "2026-12-02T00:00")
    answer = on_call(r, [o], utc("2026-12-03T12:00"))
    assert (answer.user, answer.override, answer.until, answer.next) == (
        "zoe_backup", o, utc("2026-12-04T00:00"), "ivan_ops")


def test_before_an_override_starts_the_member_is_on_call_until_it_starts() -> None:
    r = rotation("2026-12-01T10:00", "weekly")
    o = override("zoe_backup", "2026-12-03T00:00", "2026-12-04T00:00", "2026-12-02T00:00")
    answer = on_call(r, [o], utc("2026-12-02T12:00"))
    assert (answer.user, answer.until, answer.next) == ("ivan_ops", utc("2026-12-03T00:00"), "zoe_backup")


def test_an_override_across_a_handoff_hides_it_and_ends_with_the_new_member() -> None:
    r = rotation("2026-12-01T10:00", "daily")
    o = override("zoe_backup", "2026-12-01T20:00", "2026-12-02T20:00", "2026-12-01T00:00")
    answer = on_call(r, [o], utc("2026-12-02T08:00"))
    assert (answer.user, answer.until, answer.next) == ("zoe_backup", utc("2026-12-02T20:00"), "maria_sre")


def test_of_two_overlapping_overrides_the_one_created_last_wins() -> None:
    r = rotation("2026-12-01T10:00", "weekly")
    long = override("zoe_backup", "2026-12-02T00:00", "2026-12-06T00:00", "2026-12-01T00:00", "a")
    short = override("petr_night", "2026-12-03T00:00", "2026-12-04T00:00", "2026-12-01T01:00", "b")
    assert user_at(r, "2026-12-02T12:00", [long, short]) == "zoe_backup"
    answer = on_call(r, [long, short], utc("2026-12-03T12:00"))
    assert (answer.user, answer.until, answer.next) == ("petr_night", utc("2026-12-04T00:00"), "zoe_backup")
    # created first, it loses wherever they overlap
    older = override("petr_night", "2026-12-03T00:00", "2026-12-04T00:00", "2026-11-30T00:00", "b")
    assert user_at(r, "2026-12-03T12:00", [long, older]) == "zoe_backup"


def test_an_override_for_the_person_already_on_call_does_not_end_their_turn_early() -> None:
    r = rotation("2026-12-01T10:00", "daily")
    o = override("ivan_ops", "2026-12-01T12:00", "2026-12-01T14:00", "2026-12-01T00:00")
    answer = on_call(r, [o], utc("2026-12-01T11:00"))
    assert (answer.user, answer.until, answer.next) == ("ivan_ops", utc("2026-12-02T09:00"), "maria_sre")


def test_an_override_ending_exactly_at_a_handoff_hands_over_to_the_new_member() -> None:
    r = rotation("2026-12-01T10:00", "daily")
    o = override("zoe_backup", "2026-12-01T20:00", "2026-12-02T09:00", "2026-12-01T00:00")
    answer = on_call(r, [o], utc("2026-12-02T08:00"))
    assert (answer.until, answer.next) == (utc("2026-12-02T09:00"), "maria_sre")


def test_replacing_the_members_changes_who_is_on_call_from_then_on() -> None:
    before = rotation("2026-12-01T10:00", "daily")
    after = rotation("2026-12-01T10:00", "daily", members=("ivan_ops", "nina_dba"))
    assert user_at(before, "2026-12-02T12:00") == "maria_sre"
    assert user_at(after, "2026-12-02T12:00") == "nina_dba"
    assert user_at(after, "2026-12-03T12:00") == "ivan_ops"


def test_a_half_hour_gap_is_handled_by_the_same_rule() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 becomes 02:30 on 2026-10-04.
    zone = ZoneInfo("Australia/Lord_Howe")
    assert resolve_local(datetime(2026, 10, 4, 2, 15), zone) == utc("2026-10-03T15:30")
