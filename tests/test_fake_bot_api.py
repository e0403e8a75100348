"""The fake Bot API refuses what Telegram refuses, so a test cannot pass on a call Telegram would reject."""
from __future__ import annotations

import pytest

from chalicelib.telegram_client import BotApi, SendFailed
from tests.fake_bot_api import FakeBotApi

CHAT = "-1001234567890"


@pytest.fixture
def fake():
    with FakeBotApi() as bot:
        yield bot


def keyboard(data: str) -> dict:
    return {"inline_keyboard": [[{"text": "Take", "callback_data": data}]]}


def test_a_button_whose_callback_data_is_over_64_bytes_is_refused_as_telegram_does(fake):
    api = BotApi("123:token", fake.url)

    with pytest.raises(SendFailed, match="BUTTON_DATA_INVALID"):
        api.send_message(CHAT, "#1 new", buttons=keyboard("x" * 65))
    api.send_message(CHAT, "#1 new", buttons=keyboard("x" * 64))

    assert len(fake.messages) == 1 and fake.refused[0][2] == "BUTTON_DATA_INVALID"


def test_an_edit_changes_the_message_and_its_buttons(fake):
    api = BotApi("123:token", fake.url)
    api.send_message(CHAT, "#1 new", buttons=keyboard("take:1:new"))

    api.edit_message_text(CHAT, 1, "#1 in_progress", keyboard("resolve:1:in_progress"))
    assert fake.message(CHAT, 1)["text"] == "#1 in_progress"
    api.edit_message_reply_markup(CHAT, 1, None)

    assert fake.message(CHAT, 1)["reply_markup"] == {"inline_keyboard": []}
    assert [name for name, _ in fake.calls] == ["sendMessage", "editMessageText", "editMessageReplyMarkup"]


def test_an_edit_that_changes_nothing_is_refused_by_telegram_and_taken_as_done(fake):
    api = BotApi("123:token", fake.url)
    api.send_message(CHAT, "#1 new", buttons=keyboard("take:1:new"))

    api.edit_message_text(CHAT, 1, "#1 new", keyboard("take:1:new"))

    assert "message is not modified" in fake.refused[0][2]


def test_an_edit_of_a_message_never_sent_fails(fake):
    with pytest.raises(SendFailed, match="message to edit not found"):
        BotApi("123:token", fake.url).edit_message_text(CHAT, 9, "#1", None)
