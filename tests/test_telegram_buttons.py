"""Buttons under the bot's messages: a press (callback_query) through POST /telegram/webhook,
answered with answerCallbackQuery, the pressed message edited on a fake Bot API; and the
keyboards on the bot's replies."""
from __future__ import annotations

import logging
from typing import Any

import pytest

from chalicelib import buttons, services, telegram
from chalicelib.telegram_client import BotApi
from tests.conftest import load_payload
from tests.fake_bot_api import FakeBotApi, server_error
from tests.test_telegram_webhook import GROUP, SECRET, answer, incident, send, update

TOKEN = "123456:test-bot-token"
OTHER_CHAT = -1009876543210  # press_foreign_chat.json: neither allowed nor, at first, a team's
OFFERED = [(shown, action.name) for shown, actions in
           [("new", buttons.ACTIONS[buttons.Status.NEW]),
            ("in_progress", buttons.ACTIONS[buttons.Status.IN_PROGRESS]),
            ("resolved", buttons.ACTIONS[buttons.Status.RESOLVED])] for action in actions]
STATUSES = ["new", "in_progress", "resolved", "closed"]
STALE = [(shown, action, current) for shown, action in OFFERED for current in STATUSES if current != shown]


@pytest.fixture(autouse=True)
def telegram_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", SECRET)


@pytest.fixture
def bot(monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeBotApi() as fake:
        monkeypatch.setenv("TELEGRAM_API_URL", fake.url)
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_TIMEOUT_SECONDS", "1")
        yield fake


def at_status(store: Any, status: str) -> dict[str, Any]:
    """Incident #17 (after 16 others), `status` by the API."""
    for n in range(1, 17):
        services.open_incident(store, description=f"earlier report {n}", source="operator", by="api")
    services.open_incident(store, description="Касса #7 не отвечает", source="monitoring", by="api",
                           severity="critical")
    if status != "new":
        services.change_status(store, 17, status, by="api")
    return services.get_incident(store, 17)


def posted(bot: FakeBotApi, shown: dict[str, Any], chat: int = GROUP) -> int:
    """The bot's message about `shown` in the chat (the press payloads name message 1)."""
    BotApi(TOKEN, base_url=bot.url).send_message(str(chat), telegram.incident_line(shown),
                                                 buttons=buttons.keyboard(shown))
    return len([key for key in bot.chats if key[0] == str(chat)])


def press(client: Any, name: str = "press_take", data: str | None = None,
          update_id: int | None = None, bot: FakeBotApi | None = None) -> dict[str, Any]:
    """The webhook's answer to a press; with `bot`, Telegram then calls the method it names."""
    payload = load_payload(f"telegram/{name}.json")
    if data is not None:
        payload["callback_query"]["data"] = data
    if update_id is not None:
        payload["update_id"] = update_id
    body = answer(send(client, payload))
    if body:
        assert body["method"] == "answerCallbackQuery"
        assert body["callback_query_id"] == payload["callback_query"]["id"]
        assert len(body["text"]) <= 200
        if bot is not None:
            bot.webhook_reply(body)
    return body


def shows(bot: FakeBotApi, incident_now: dict[str, Any], chat: int = GROUP) -> None:
    message = bot.message(chat, 1)
    assert message["text"] == telegram.incident_line(incident_now)
    assert message["reply_markup"] == (buttons.keyboard(incident_now) or {"inline_keyboard": []})


# A press applies the action shown


@pytest.mark.parametrize("shown, action", OFFERED)
def test_every_offered_button_applies_its_action_by_the_presser_and_shows_the_new_state(
        client, api, store, bot, shown, action):
    before = at_status(store, shown)
    posted(bot, before)
    target = buttons.BY_NAME[action].target

    said = press(client, data=f"{action}:17:{shown}", bot=bot)

    after = incident(api, 17)
    assert after["status"] == target
    assert after["history"][-1]["by"] == "telegram:anna_support"
    assert after["history_count"] == before["history_count"] + 1
    taken = target == "in_progress"
    assert after["assignee"] == ("anna_support" if taken else None)
    assert said["text"] == f"#17 → {target}" + (", assignee @anna_support" if taken else "")
    shows(bot, after)
    assert after["status"] in bot.message(GROUP, 1)["text"]
    assert [name for name, _ in bot.calls] == ["sendMessage", "editMessageText", "answerCallbackQuery"]
    assert bot.called("answerCallbackQuery")[0]["text"] == said["text"]


def test_the_edited_message_names_status_severity_team_assignee_and_the_description(client, api, store, bot):
    posted(bot, at_status(store, "new"))
    press(client)
    assert bot.message(GROUP, 1)["text"] == \
        "#17 [monitoring, critical] in_progress, assignee @anna_support: Касса #7 не отвечает"
    assert [b["text"] for b in bot.message(GROUP, 1)["reply_markup"]["inline_keyboard"][0]] == ["Resolve", "Close"]


def test_closing_by_button_leaves_the_message_without_buttons(client, api, store, bot):
    posted(bot, at_status(store, "resolved"))
    assert press(client, "press_close")["text"] == "#17 → closed"
    assert bot.message(GROUP, 1)["reply_markup"] == {"inline_keyboard": []}
    assert bot.called("editMessageText")[-1]["message_id"] == 1


def test_resolve_and_reopen_payloads_apply_as_pressed(client, api, store, bot):
    posted(bot, at_status(store, "in_progress"))
    assert press(client, "press_resolve")["text"] == "#17 → resolved"
    assert press(client, "press_reopen")["text"] == "#17 → in_progress, assignee @anna_support"
    assert [e["by"] for e in incident(api, 17)["history"][-2:]] == ["telegram:ivan_ops", "telegram:anna_support"]


def test_a_presser_without_a_username_is_recorded_by_user_id_and_the_assignee_stays(client, api, store, bot):
    posted(bot, at_status(store, "new"))
    assert press(client, "press_no_username")["text"] == "#17 → in_progress"
    after = incident(api, 17)
    assert (after["history"][-1]["by"], after["assignee"]) == ("telegram:222222222", None)


def test_a_press_in_a_forum_topic_edits_the_message_it_was_pressed_on(client, api, store, bot):
    posted(bot, at_status(store, "new"))
    assert press(client, "press_in_topic")["text"].startswith("#17 → in_progress")
    assert bot.called("editMessageText")[-1]["message_id"] == 1


# Stale and repeated presses


@pytest.mark.parametrize("shown, action, current", STALE)
def test_a_button_on_a_message_whose_status_is_gone_changes_nothing_and_shows_the_current_state(
        client, api, store, bot, shown, action, current):
    before = at_status(store, current)
    posted(bot, {**before, "status": shown})
    target = buttons.BY_NAME[action].target

    said = press(client, data=f"{action}:17:{shown}", bot=bot)

    after = incident(api, 17)
    assert (after["status"], after["history_count"], after["assignee"]) == (current, before["history_count"], None)
    assert said["text"] == (f"#17 is already {current}" if current == target else f"#17 is {current} now")
    shows(bot, after)


def test_a_stale_take_never_reopens_a_resolved_incident(client, api, store, bot):
    posted(bot, {**at_status(store, "resolved"), "status": "new"})
    assert press(client, "press_take")["text"] == "#17 is resolved now"
    assert incident(api, 17)["status"] == "resolved"
    assert [b["text"] for b in bot.message(GROUP, 1)["reply_markup"]["inline_keyboard"][0]] == ["Reopen", "Close"]


def test_a_press_on_a_message_about_a_closed_incident_is_refused_with_its_state(client, api, store, bot):
    posted(bot, {**at_status(store, "closed"), "status": "resolved"})
    assert press(client, "press_reopen")["text"] == "#17 is closed now"
    assert incident(api, 17)["history_count"] == 2
    assert bot.message(GROUP, 1)["reply_markup"] == {"inline_keyboard": []}


def test_a_double_press_makes_one_transition_and_gets_two_answers(client, api, store, bot):
    posted(bot, at_status(store, "new"))
    first = press(client, update_id=864201201)
    second = press(client, update_id=864201202)
    assert first["text"] == "#17 → in_progress, assignee @anna_support"
    assert second["text"] == "#17 is already in_progress, assignee @anna_support"
    assert incident(api, 17)["history_count"] == 2


def test_a_redelivered_press_makes_one_transition_and_gets_the_same_answer(client, api, store, bot):
    posted(bot, at_status(store, "new"))
    first = press(client)
    again = press(client)
    assert first == again
    assert incident(api, 17)["history_count"] == 2


def test_a_press_while_someone_else_took_it_names_who_has_it(client, api, store, bot):
    posted(bot, at_status(store, "new"))
    services.change_status(store, 17, "in_progress", by="telegram:ivan_ops", assignee="ivan_ops")
    assert press(client)["text"] == "#17 is already in_progress, assignee @ivan_ops"
    assert incident(api, 17)["assignee"] == "ivan_ops"


# Where presses are served


@pytest.mark.parametrize("name, text", [
    ("press_foreign_chat", "This chat is not served: buttons work in the incident groups only."),
    ("press_private", "Buttons work in the incident groups only, not in a private chat."),
])
def test_a_press_outside_the_served_chats_changes_nothing_and_says_why(client, api, store, bot, name, text):
    at_status(store, "new")
    assert press(client, name)["text"] == text
    assert incident(api, 17)["history_count"] == 1
    assert bot.calls == []


def test_a_press_in_a_teams_chat_is_served(client, api, store, bot):
    at_status(store, "new")
    put = api.request("PUT", "/teams/ops", json_body={
        "chat_id": OTHER_CHAT, "time_zone": "Europe/Moscow",
        "rotation": {"members": ["maria_sre"], "start": "2026-12-01T10:00", "shift": "weekly"},
        "escalation_rules": [{"escalation_delay_in_minutes": 15, "targets": ["on_call"]}]})
    assert put.status_code in (200, 201), put.body
    posted(bot, incident(api, 17), chat=OTHER_CHAT)
    assert press(client, "press_foreign_chat")["text"] == "#17 → in_progress, assignee @anna_support"
    assert incident(api, 17)["status"] == "in_progress"


@pytest.mark.parametrize("data", ["snooze:17:new", "take:17:closed", "resolve:17", "", "take:0:new"])
def test_a_button_this_bot_does_not_make_changes_nothing_and_is_answered(client, api, store, bot, data):
    posted(bot, at_status(store, "new"))
    assert press(client, data=data)["text"] == \
        "This button is no longer supported: reply to the message with the command instead."
    assert incident(api, 17)["history_count"] == 1
    assert bot.called("editMessageText") == []


def test_a_press_on_an_unknown_incident_is_answered_not_found(client, api, store, bot):
    assert press(client)["text"] == "Incident #17 not found"


# Telegram unreachable while editing


def test_when_telegram_fails_the_edit_the_press_is_still_stored_and_answered(client, api, store, bot, caplog):
    posted(bot, at_status(store, "new"))
    bot.answers = [server_error()]
    with caplog.at_level(logging.WARNING, logger="chalicelib.telegram_bot"):
        said = press(client)
    assert said["text"] == "#17 → in_progress, assignee @anna_support"
    assert incident(api, 17)["status"] == "in_progress"
    warning = next(r for r in caplog.records if r.getMessage() == "telegram message not edited")
    assert (warning.chat_id, warning.message_id, warning.incident_id) == (GROUP, 1, 17)
    assert "HTTP 500" in warning.error


def test_when_telegram_does_not_answer_the_edit_in_time_the_press_is_still_answered(client, api, store, bot):
    posted(bot, at_status(store, "new"))
    bot.hang_seconds = 2.0  # beyond TELEGRAM_TIMEOUT_SECONDS
    bot.answers = ["hang"]
    assert press(client)["text"] == "#17 → in_progress, assignee @anna_support"
    assert incident(api, 17)["status"] == "in_progress"


def test_without_a_bot_token_the_press_is_still_stored_and_answered(client, api, store, monkeypatch):
    at_status(store, "new")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("NOTIFY_TO_CONSOLE", raising=False)
    assert press(client)["text"] == "#17 → in_progress, assignee @anna_support"
    assert incident(api, 17)["status"] == "in_progress"


# Keyboards on the bot's replies


def keyboard_of(body: dict[str, Any]) -> list[str] | None:
    markup = body.get("reply_markup")
    return None if markup is None else [b["callback_data"] for b in markup["inline_keyboard"][0]]


@pytest.mark.parametrize("text, status, data", [
    ("#42 take", "new", ["resolve:42:in_progress", "close:42:in_progress"]),
    ("#42 fixed", "new", ["reopen:42:resolved", "close:42:resolved"]),
    ("#42 note checking the cable", "in_progress", ["resolve:42:in_progress", "close:42:in_progress"]),
    ("#42 take", "closed", None),  # refused: closed has no buttons
    ("#42 take", "resolved", ["resolve:42:in_progress", "close:42:in_progress"]),
    ("#42 fixed", "closed", None),
])
def test_a_reply_about_one_incident_carries_the_buttons_for_its_status_now(client, store, text, status, data):
    for n in range(1, 43):
        services.open_incident(store, description=f"earlier report {n}", source="operator", by="api")
    if status != "new":
        services.change_status(store, 42, status, by="api")
    assert keyboard_of(answer(send(client, update("status_english", text=text)))) == data


def test_a_refused_change_carries_the_buttons_of_the_status_it_has(client, store):
    for n in range(1, 43):
        services.open_incident(store, description=f"earlier report {n}", source="operator", by="api")
    services.change_status(store, 42, "in_progress", by="api")
    body = answer(send(client, update("status_english", text="#42 take")))
    assert body["text"] == "#42 → in_progress"  # already so: confirmed
    services.change_status(store, 42, "closed", by="api")
    refused = answer(send(client, update("status_english", text="#42 fixed", update_id=864201999)))
    assert (refused["text"], "reply_markup" in refused) == ("#42 is closed; allowed: none", False)


@pytest.mark.parametrize("text", ["#99 fixed", "/open", "/stats"])
def test_replies_about_no_single_incident_carry_no_buttons(client, store, text):
    services.open_incident(store, description="earlier report", source="operator", by="api")
    body = answer(send(client, update("status_english", text=text)))
    assert body["method"] == "sendMessage" and "reply_markup" not in body
