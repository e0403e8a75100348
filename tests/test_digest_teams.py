"""The daily digest per team: each team's chat (and topic) gets its own open incidents, the
stage's group those without a team or whose team was deleted; a muted chat gets none; once a
day per chat; read from the open incidents and the teams, never the table."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib import notifier, services, telegram_client
from tests.oncall.test_teams_api import TEAM, put
from tests.test_listing import count_queries
from tests.test_notifications import CHAT, TOKEN, bot  # noqa: F401 (the fake Bot API fixture)

OPS_CHAT, OPS_TOPIC = -1001111111111, 7
DB_CHAT = -1002222222222


def team(chat_id: int, thread_id: int | None = None) -> dict[str, Any]:
    return {**copy.deepcopy(TEAM), "chat_id": chat_id, "thread_id": thread_id}


@pytest.fixture
def teams(api):
    assert put(api, "ops", team(OPS_CHAT, OPS_TOPIC)).status_code == 201
    assert put(api, "db", team(DB_CHAT)).status_code == 201


def open_incident(store, n: int, team: str | None, source: str = "operator", status: str = "new") -> int:
    incident = services.open_incident(store, description=f"report {n}", source=source, by="api",
                                      team=team).incident
    if status != "new":
        services.change_status(store, incident["id"], status, by="api")
    return incident["id"]


def digest(store, bot, now: datetime, chat: str | None = CHAT) -> int:  # noqa: F811
    return notifier.send_digest(store, telegram_client.BotApi(TOKEN, bot.url),
                                notifier.Settings(chat_id=chat), now)


def sent_to(bot, chat_id) -> list[dict[str, Any]]:  # noqa: F811
    return [m for m in bot.messages if str(m["chat_id"]) == str(chat_id)]


def ids(message: dict[str, Any]) -> list[str]:
    return [line.split()[0] for line in message["text"].split("\n") if line.startswith("#")]


def later(store, incident_id: int) -> datetime:
    at = store.get_incident_item(incident_id)["created_at"]
    return datetime.fromisoformat(at.replace("Z", "+00:00")) + timedelta(hours=2)


def test_each_team_gets_its_own_open_incidents_and_the_group_those_without_a_team(
    api, store, bot, teams  # noqa: F811
):
    for n in range(1, 8):
        open_incident(store, n, "ops", source=("operator", "monitoring")[n % 2])
    open_incident(store, 8, "ops", status="closed")
    open_incident(store, 9, "db", status="in_progress")
    open_incident(store, 10, None, source="partner")
    last = open_incident(store, 11, None, status="resolved")

    assert digest(store, bot, later(store, last)) == 3

    [ops] = sent_to(bot, OPS_CHAT)
    assert ops["message_thread_id"] == OPS_TOPIC
    assert ids(ops) == ["#1", "#2", "#3", "#4", "#5"]  # its five oldest open
    assert ops["text"].split("\n")[-1] == "Open in ops: 7 new, 0 in_progress (operator 3, monitoring 4, partner 0)"
    [db] = sent_to(bot, DB_CHAT)
    assert "message_thread_id" not in db
    assert ids(db) == ["#9"]
    assert db["text"].split("\n")[-1] == "Open in db: 0 new, 1 in_progress (operator 1, monitoring 0, partner 0)"
    [group] = sent_to(bot, CHAT)
    assert ids(group) == ["#10"]
    assert group["text"].split("\n")[-1] == (
        "Open without a team: 1 new, 0 in_progress (operator 0, monitoring 0, partner 1)")


def test_a_deleted_teams_incidents_go_to_the_group_digest(api, store, bot, teams):  # noqa: F811
    kept = open_incident(store, 1, "ops")
    gone = open_incident(store, 2, "db")
    assert api.request("DELETE", "/teams/db").status_code in (200, 204)

    digest(store, bot, later(store, gone))

    assert ids(sent_to(bot, CHAT)[0]) == [f"#{gone}"]
    assert ids(sent_to(bot, OPS_CHAT)[0]) == [f"#{kept}"]
    assert sent_to(bot, DB_CHAT) == []


def test_a_team_with_nothing_open_is_told_so(api, store, bot, teams):  # noqa: F811
    last = open_incident(store, 1, "ops")

    digest(store, bot, later(store, last))

    assert sent_to(bot, DB_CHAT)[0]["text"] == "No open incidents in db."
    assert sent_to(bot, CHAT)[0]["text"] == "No open incidents without a team."


def test_with_no_team_the_group_digest_reads_as_before(store, bot):  # noqa: F811
    last = open_incident(store, 1, None)

    digest(store, bot, later(store, last))

    [group] = bot.texts
    assert group.split("\n")[-1] == "Open: 1 new, 0 in_progress (operator 1, monitoring 0, partner 0)"


def test_a_muted_chat_gets_no_digest_and_the_others_still_do(api, store, bot, teams):  # noqa: F811
    last = open_incident(store, 1, "ops")
    open_incident(store, 2, "db")
    notifier.mute(store, DB_CHAT, later(store, last) + timedelta(hours=1))
    notifier.mute(store, int(CHAT), later(store, last) + timedelta(hours=1))

    digest(store, bot, later(store, last))

    assert sent_to(bot, DB_CHAT) == [] and sent_to(bot, CHAT) == []
    assert ids(sent_to(bot, OPS_CHAT)[0]) == [f"#{last}"]


def test_each_digest_is_sent_once_a_day_per_chat(api, store, bot, teams):  # noqa: F811
    last = open_incident(store, 1, "ops")
    now = later(store, last)

    assert digest(store, bot, now) == 3
    assert digest(store, bot, now + timedelta(hours=1)) == 0
    assert len(bot.messages) == 3
    assert digest(store, bot, now + timedelta(days=1)) == 3
    assert len(bot.messages) == 6


def test_a_team_sharing_the_groups_chat_gets_its_digest_there_beside_the_groups(api, store, bot):  # noqa: F811
    put(api, "ops", team(int(CHAT)))
    mine = open_incident(store, 1, "ops")
    other = open_incident(store, 2, None)

    digest(store, bot, later(store, other))

    assert sorted(ids(m) for m in sent_to(bot, CHAT)) == [[f"#{mine}"], [f"#{other}"]]


def test_a_stage_without_a_group_still_tells_the_teams(api, store, bot, teams):  # noqa: F811
    last = open_incident(store, 1, "ops")

    assert digest(store, bot, later(store, last), chat=None) == 2
    assert sent_to(bot, CHAT) == []


def test_one_chat_refusing_does_not_keep_the_digest_from_the_others_and_the_retry_sends_only_it(
    api, store, bot, teams  # noqa: F811
):
    from chalicelib.telegram_client import SendFailed
    from tests.fake_bot_api import server_error

    last = open_incident(store, 1, "ops")
    bot.answers.extend([(200, None), server_error()])  # the group's, then db's (teams by name)

    with pytest.raises(SendFailed):
        digest(store, bot, later(store, last))
    delivered = len(bot.messages)
    assert delivered == 2 and sent_to(bot, DB_CHAT) == []
    assert digest(store, bot, later(store, last)) == 1
    assert len(bot.messages) == 3 and len(sent_to(bot, DB_CHAT)) == 1


def test_the_digest_reads_the_open_incidents_and_the_teams_never_the_closed_past(
    api, store, bot, teams  # noqa: F811
):
    for n in range(60):
        open_incident(store, n, ("ops", "db", None)[n % 3], status="closed")
    last = open_incident(store, 61, "ops")
    scanned = count_queries(store)

    digest(store, bot, later(store, last))

    assert sum(scanned) <= 1 + 2  # the one open incident, the two teams
