"""Teams, overrides and /oncall through the HTTP API (chalice.test.Client on moto)."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.oncall import teams

TEAM = {
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


def put(api: Any, name: str, body: Any) -> Any:
    return api.request("PUT", f"/teams/{name}", json_body=body)


def delete(api: Any, path: str) -> Any:
    return api.request("DELETE", path)


def soon(hours: float) -> str:
    moment = datetime.now(timezone.utc) + timedelta(hours=hours)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def with_change(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(TEAM)
    *parents, last = path.split(".")
    target: Any = body
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is DROP:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


DROP = object()


def test_a_team_is_created_read_listed_replaced_and_deleted(api: Any) -> None:
    created = put(api, "ops", TEAM)
    assert created.status_code == 201
    assert created.json_body == {"name": "ops", **TEAM}
    assert api.get("/teams/ops").json_body == {"name": "ops", **TEAM}
    replaced = put(api, "ops", with_change("rotation.members", ["nina_dba"]))
    assert replaced.status_code == 200
    assert api.get("/teams/ops").json_body["rotation"]["members"] == ["nina_dba"]
    assert put(api, "payments", TEAM).status_code == 201
    assert [t["name"] for t in api.get("/teams").json_body["items"]] == ["ops", "payments"]
    assert delete(api, "/teams/ops").status_code == 204
    assert api.get("/teams/ops").status_code == 404
    assert [t["name"] for t in api.get("/teams").json_body["items"]] == ["payments"]


def test_thread_id_and_num_loops_may_be_left_out(api: Any) -> None:
    body = {k: v for k, v in TEAM.items() if k not in ("thread_id", "num_loops")}
    assert put(api, "ops", {**body, "time_zone": "UTC"}).json_body["num_loops"] == 0
    assert api.get("/teams/ops").json_body["thread_id"] is None


def test_an_hourly_shift_and_a_forum_topic_are_kept_as_integers(api: Any) -> None:
    body = with_change("rotation.shift", 12)
    body["thread_id"] = 42
    put(api, "ops", body)
    team = api.get("/teams/ops").json_body
    assert (team["rotation"]["shift"], team["thread_id"]) == (12, 42)


def test_unknown_teams_are_404_for_read_delete_oncall_and_overrides(api: Any) -> None:
    for method, path in (("GET", "/teams/nope"), ("DELETE", "/teams/nope"), ("GET", "/teams/nope/oncall"),
                         ("GET", "/teams/nope/overrides")):
        response = api.request(method, path)
        assert response.status_code == 404, path
        assert response.json_body["Message"] == "no team 'nope'"
    response = api.post("/teams/nope/overrides", {"user": "oleg_k", "start": soon(0), "end": soon(1)})
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["Ops", "ops_team", "a" * 33, "ops.x", "опс"])
def test_a_team_name_outside_the_rule_is_400_saying_what_is_allowed(api: Any, name: str) -> None:
    response = put(api, name, TEAM)
    assert response.status_code == 400
    assert "team name must be 1–32 characters of a–z, 0–9 and -" in response.json_body["Message"]


@pytest.mark.parametrize("path, value, message", [
    ("colour", "red", "unknown field(s): colour"),
    ("chat_id", DROP, "missing required field(s): chat_id"),
    ("chat_id", "-100123", "chat_id must be a Telegram chat id: a non-zero integer"),
    ("chat_id", 0, "chat_id must be a Telegram chat id"),
    ("chat_id", True, "chat_id must be a Telegram chat id"),
    ("thread_id", 0, "thread_id must be an integer from 1 to"),
    ("thread_id", "7", "thread_id must be an integer from 1 to"),
    ("time_zone", "Mars/Olympus", 'time_zone must be an IANA time zone name such as "Europe/Moscow"'),
    ("time_zone", "MSK+3", "time_zone must be an IANA time zone name"),
    ("time_zone", "../etc/passwd", "time_zone must be an IANA time zone name"),
    ("time_zone", 3, "time_zone must be an IANA time zone name"),
    ("rotation", [], "rotation must be an object with members, start and shift"),
    ("rotation.colour", 1, "rotation: unknown field(s): colour"),
    ("rotation.start", DROP, "rotation: missing required field(s): start"),
    ("rotation.members", [], "rotation.members must be a list of 1–50 Telegram usernames"),
    ("rotation.members", [f"member_{i:02d}" for i in range(51)], "rotation.members must be a list of 1–50"),
    ("rotation.members.1", "@maria_sre", "rotation.members[1] must be a Telegram username without @: "
                                         "5–32 characters of A–Z, a–z, 0–9 and _, starting with a letter"),
    ("rotation.members.0", "ivan", "rotation.members[0] must be a Telegram username"),
    ("rotation.members.0", "1ivan_ops", "rotation.members[0] must be a Telegram username"),
    ("rotation.members.0", "i" * 33, "rotation.members[0] must be a Telegram username"),
    ("rotation.start", "2026-12-01T10:00Z", "rotation.start must be a local date-time YYYY-MM-DDTHH:MM "
                                            "without an offset"),
    ("rotation.start", "2026-12-01 10:00", "rotation.start must be a local date-time"),
    ("rotation.start", "2026-02-30T10:00", "is not a date and time"),
    ("rotation.start", "1999-12-31T10:00", "in the years 2000–2100"),
    ("rotation.shift", "monthly", 'rotation.shift must be "daily", "weekly" or a whole number of hours 1–168'),
    ("rotation.shift", 0, "rotation.shift must be"),
    ("rotation.shift", 169, "rotation.shift must be"),
    ("rotation.shift", 1.5, "rotation.shift must be"),
    ("escalation_rules", [], "escalation_rules must be a list of 1–10 rules"),
    ("escalation_rules", [{"escalation_delay_in_minutes": 5, "targets": ["team"]}] * 11,
     "escalation_rules must be a list of 1–10 rules"),
    ("escalation_rules.0", "on_call", "escalation_rules[0] must be an object"),
    ("escalation_rules.0.escalation_delay_in_minutes", 0,
     "escalation_rules[0].escalation_delay_in_minutes must be an integer from 1 to 1440"),
    ("escalation_rules.2.escalation_delay_in_minutes", 1441,
     "escalation_rules[2].escalation_delay_in_minutes must be an integer from 1 to 1440"),
    ("escalation_rules.0.targets", [], "escalation_rules[0].targets must be a list of 1–10 targets "
                                       "(on_call, next_on_call, team, @username)"),
    ("escalation_rules.1.targets", ["on_call", "maria_sre"],
     "escalation_rules[1].targets[1] must be one of on_call, next_on_call, team, @username"),
    ("escalation_rules.1.targets", ["@x"], "escalation_rules[1].targets[0] must be one of"),
    ("escalation_rules.0.delay", 5, "escalation_rules[0]: unknown field(s): delay"),
    ("num_loops", 6, "num_loops must be an integer from 0 to 5"),
    ("num_loops", -1, "num_loops must be an integer from 0 to 5"),
    ("num_loops", None, "num_loops must be an integer from 0 to 5"),
])
def test_every_field_outside_its_rule_is_400_saying_what_is_allowed(
        api: Any, path: str, value: Any, message: str) -> None:
    response = put(api, "ops", with_change(path, value))
    assert response.status_code == 400, response.body
    assert message in response.json_body["Message"]
    assert api.get("/teams/ops").status_code == 404  # nothing stored


def test_a_body_that_is_not_a_json_object_is_400(api: Any) -> None:
    assert api.request("PUT", "/teams/ops", body="[]").status_code == 400
    assert api.request("PUT", "/teams/ops", body="{").status_code == 400


def test_more_than_100_teams_is_409_and_replacing_one_still_works(api: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(teams, "MAX_TEAMS", 3)
    for name in ("a", "b", "c"):
        assert put(api, name, TEAM).status_code == 201
    response = put(api, "d", TEAM)
    assert response.status_code == 409
    assert "there are 3 teams, the most allowed; delete one before adding 'd'" in response.json_body["Message"]
    assert put(api, "a", TEAM).status_code == 200


# --- who is on call ---


def test_oncall_answers_who_until_when_and_who_is_next(api: Any) -> None:
    put(api, "ops", TEAM)  # Moscow, weekly at 10:00 = 07:00 UTC from 2026-12-01
    response = api.get("/teams/ops/oncall?at=2026-12-09T12:00:00Z")
    assert response.status_code == 200
    assert response.json_body == {"team": "ops", "at": "2026-12-09T12:00:00.000Z", "user": "maria_sre",
                                  "override": False, "until": "2026-12-15T07:00:00.000Z", "next": "oleg_k"}


def test_oncall_takes_an_offset_and_reads_a_time_without_one_as_utc(api: Any) -> None:
    put(api, "ops", TEAM)
    with_offset = api.get("/teams/ops/oncall?at=2026-12-08T10:00:00%2B03:00").json_body
    assert (with_offset["at"], with_offset["user"]) == ("2026-12-08T07:00:00.000Z", "maria_sre")
    assert api.get("/teams/ops/oncall?at=2026-12-08T06:59:59").json_body["user"] == "ivan_ops"
    unencoded = api.get("/teams/ops/oncall?at=2026-12-08T09:59:59+03:00").json_body
    assert (unencoded["at"], unencoded["user"]) == ("2026-12-08T06:59:59.000Z", "ivan_ops")


def test_oncall_without_at_answers_for_now(api: Any) -> None:
    put(api, "ops", TEAM)
    body = api.get("/teams/ops/oncall").json_body
    at = datetime.fromisoformat(body["at"])
    assert abs(at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert body["user"] in TEAM["rotation"]["members"]


@pytest.mark.parametrize("query, message", [
    ("at=yesterday", "at must be an ISO 8601 time such as 2026-12-03T18:00:00Z"),
    ("at=2026-13-01T00:00:00Z", "at must be an ISO 8601 time"),
    ("at=0001-01-01T00:00:00Z", "in the years 2000–2199"),
    ("when=2026-12-01", "unknown query parameter(s): when; allowed: at"),
])
def test_a_bad_at_is_400_with_a_message(api: Any, query: str, message: str) -> None:
    put(api, "ops", TEAM)
    response = api.get(f"/teams/ops/oncall?{query}")
    assert response.status_code == 400
    assert message in response.json_body["Message"]


def test_replacing_the_members_changes_who_is_on_call_from_then_on(api: Any) -> None:
    put(api, "ops", TEAM)
    assert api.get("/teams/ops/oncall?at=2026-12-09T12:00:00Z").json_body["user"] == "maria_sre"
    put(api, "ops", with_change("rotation.members", ["ivan_ops", "nina_dba"]))
    assert api.get("/teams/ops/oncall?at=2026-12-09T12:00:00Z").json_body["user"] == "nina_dba"


# --- overrides ---


def test_an_override_is_created_listed_answers_oncall_and_is_deleted(api: Any) -> None:
    put(api, "ops", TEAM)
    start, end = soon(-1), soon(3)
    created = api.post("/teams/ops/overrides", {"user": "zoe_backup", "start": start, "end": end})
    assert created.status_code == 201
    override = created.json_body
    assert (override["user"], override["start"], override["end"]) == ("zoe_backup", start, end)
    assert len(override["id"]) == 16
    assert api.get("/teams/ops/overrides").json_body == {"items": [override]}
    now = api.get("/teams/ops/oncall").json_body
    assert (now["user"], now["override"], now["until"]) == ("zoe_backup", True, end)
    assert delete(api, f"/teams/ops/overrides/{override['id']}").status_code == 204
    assert api.get("/teams/ops/overrides").json_body == {"items": []}
    assert api.get("/teams/ops/oncall").json_body["override"] is False
    again = delete(api, f"/teams/ops/overrides/{override['id']}")
    assert again.status_code == 404
    assert "has no current or future override" in again.json_body["Message"]


def test_an_override_write_applied_but_whose_answer_was_lost_answers_201_once(api: Any, store: Any,
                                                                             monkeypatch: Any) -> None:
    """botocore retries a call whose answer was lost; the retry then finds its own override there."""
    from chalicelib.oncall.store import TeamStore

    put(api, "ops", TEAM)
    first_write = TeamStore.add_override

    def applied_then_retried(self: Any, *args: Any) -> None:
        first_write(self, *args)
        first_write(self, *args)

    monkeypatch.setattr(TeamStore, "add_override", applied_then_retried)
    created = api.post("/teams/ops/overrides", {"user": "zoe_backup", "start": soon(-1), "end": soon(3)})

    assert created.status_code == 201, created.json_body
    assert api.get("/teams/ops/overrides").json_body == {"items": [created.json_body]}


def test_the_override_created_last_wins_where_two_overlap(api: Any) -> None:
    put(api, "ops", TEAM)
    api.post("/teams/ops/overrides", {"user": "zoe_backup", "start": soon(-1), "end": soon(5)})
    api.post("/teams/ops/overrides", {"user": "petr_night", "start": soon(-1), "end": soon(2)})
    assert api.get("/teams/ops/oncall").json_body["user"] == "petr_night"
    assert api.get(f"/teams/ops/oncall?at={soon(3)}").json_body["user"] == "zoe_backup"
    listed = [o["user"] for o in api.get("/teams/ops/overrides").json_body["items"]]
    assert sorted(listed) == ["petr_night", "zoe_backup"]


def test_replacing_a_team_keeps_its_overrides_and_deleting_it_drops_them(api: Any) -> None:
    put(api, "ops", TEAM)
    api.post("/teams/ops/overrides", {"user": "zoe_backup", "start": soon(-1), "end": soon(5)})
    put(api, "ops", with_change("num_loops", 2))
    assert len(api.get("/teams/ops/overrides").json_body["items"]) == 1
    delete(api, "/teams/ops")
    put(api, "ops", TEAM)
    assert api.get("/teams/ops/overrides").json_body == {"items": []}
    assert api.get("/teams/ops/oncall").json_body["override"] is False


@pytest.mark.parametrize("body, message", [
    ({"user": "zoe_backup", "start": "2026-12-01T00:00:00Z"}, "missing required field(s): end"),
    ({"user": "zoe_backup", "start": "S", "end": "E", "why": "x"}, "unknown field(s): why"),
    ({"user": "@zoe", "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
     "user must be a Telegram username without @"),
    ({"user": "zoe_backup", "start": "tomorrow", "end": "2030-01-02T00:00:00Z"},
     "start must be an ISO 8601 time with Z or an offset"),
    ({"user": "zoe_backup", "start": "2030-01-01T00:00:00", "end": "2030-01-02T00:00:00Z"}, "has no offset"),
    ({"user": "zoe_backup", "start": "2030-01-02T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
     "end must be after start"),
    ({"user": "zoe_backup", "start": "2030-01-01T00:00:00Z", "end": "2030-02-01T00:00:01Z"},
     "an override lasts at most 31 days"),
    ({"user": "zoe_backup", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
     "end must be in the future"),
    ({"user": "zoe_backup", "start": "2030-01-01T00:00:00Z", "end": "9999-01-02T00:00:00Z"},
     "in the years 2000–2199"),
])
def test_a_bad_override_is_400_saying_what_is_allowed(api: Any, body: dict[str, Any], message: str) -> None:
    put(api, "ops", TEAM)
    response = api.post("/teams/ops/overrides", body)
    assert response.status_code == 400, response.body
    assert message in response.json_body["Message"]
    assert api.get("/teams/ops/overrides").json_body == {"items": []}


def test_a_31_day_override_is_allowed(api: Any) -> None:
    put(api, "ops", TEAM)
    body = {"user": "zoe_backup", "start": "2030-01-01T00:00:00Z", "end": "2030-02-01T00:00:00Z"}
    assert api.post("/teams/ops/overrides", body).status_code == 201


def test_past_100_current_and_future_overrides_a_team_answers_409(api: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(teams, "MAX_OVERRIDES", 2)
    put(api, "ops", TEAM)
    for hours in (1, 2):
        assert api.post("/teams/ops/overrides", {"user": "zoe_backup", "start": soon(hours),
                                                 "end": soon(hours + 1)}).status_code == 201
    response = api.post("/teams/ops/overrides", {"user": "zoe_backup", "start": soon(5), "end": soon(6)})
    assert response.status_code == 409
    assert "has 2 current and future overrides, the most allowed" in response.json_body["Message"]


def test_a_malformed_override_id_is_400(api: Any) -> None:
    put(api, "ops", TEAM)
    response = delete(api, "/teams/ops/overrides/xyz")
    assert response.status_code == 400
    assert "override id must be 16 hexadecimal digits" in response.json_body["Message"]


def test_an_override_for_a_team_deleted_meanwhile_is_404_and_not_stored(api: Any, store: Any,
                                                                        monkeypatch: Any) -> None:
    from chalicelib.oncall.store import TeamStore

    put(api, "ops", TEAM)
    original = TeamStore.add_override

    def delete_first(self: TeamStore, *args: Any) -> None:
        TeamStore(store).delete_team("ops")
        original(self, *args)

    monkeypatch.setattr(TeamStore, "add_override", delete_first)
    response = api.post("/teams/ops/overrides", {"user": "zoe_backup", "start": soon(0), "end": soon(1)})
    assert response.status_code == 404
    monkeypatch.setattr(TeamStore, "add_override", original)
    put(api, "ops", TEAM)
    assert api.get("/teams/ops/overrides").json_body == {"items": []}
