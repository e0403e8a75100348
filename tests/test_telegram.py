import copy
import json
from pathlib import Path

import pytest

from chalicelib import buttons, telegram
from chalicelib.incidents import Status
from chalicelib.telegram import (
    AddNote,
    ChangeStatus,
    Context,
    CreateIncident,
    Ignore,
    ListOpen,
    created_text,
    not_found_text,
    open_list_text,
    parse_allowed_chats,
    parse_update,
    reply,
    status_changed_text,
    transition_refused_text,
    update_id_of,
)

PAYLOADS = Path(__file__).parent / "payloads" / "telegram"
GROUP = -1001234567890
ALLOWED = frozenset({GROUP})


def load(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


def with_text(name: str, text: str) -> dict:
    update = load(name)
    update["message"]["text"] = text
    return update


def parse(update: object) -> telegram.Command:
    return parse_update(update, ALLOWED)


def incident(**fields) -> dict:
    return {
        "id": 17,
        "description": "Самокат #42 не в сети",
        "status": "new",
        "source": "operator",
        "occurrences": 1,
        **fields,
    }


# Creating incidents


def test_an_operator_tag_in_the_group_creates_an_operator_incident_by_the_sender():
    assert parse(load("new_operator")) == CreateIncident(
        context=Context(chat_id=GROUP, message_id=1101, by="telegram:ivan_ops"),
        description="Самокат #42 не в сети",
        source="operator",
    )


def test_the_new_command_addressed_to_the_bot_creates_an_operator_incident():
    command = parse(load("new_command"))
    assert command == CreateIncident(
        context=Context(chat_id=GROUP, message_id=1102, by="telegram:anna_support"),
        description="POS 7 not answering",
        source="operator",
    )


def test_a_sender_without_a_username_is_recorded_by_user_id():
    command = parse(load("new_no_username"))
    assert isinstance(command, CreateIncident)
    assert command.context.by == "telegram:222222222"
    assert command.source == "monitoring"


def test_a_photo_caption_with_a_partner_tag_creates_a_partner_incident():
    command = parse(load("photo_with_caption"))
    assert isinstance(command, CreateIncident)
    assert command.source == "partner"
    assert command.description == "Terminal at Lenina 5 shows error E17"


@pytest.mark.parametrize(
    "text, source, description",
    [
        ("[operator] Самокат #42 не в сети", "operator", "Самокат #42 не в сети"),
        ("[monitoring] disk full on db-1", "monitoring", "disk full on db-1"),
        ("[partner] Terminal E17", "partner", "Terminal E17"),
        ("[OPERATOR] shouting works", "operator", "shouting works"),
        ("  [ Partner ]   spaced out  \n", "partner", "spaced out"),
        ("[operator]: with a colon", "operator", "with a colon"),
        ("[оператор] Самокат не в сети", "operator", "Самокат не в сети"),
        ("[Мониторинг] диск заполнен", "monitoring", "диск заполнен"),
        ("[партнёр] терминал молчит", "partner", "терминал молчит"),
        ("[партнер] терминал молчит", "partner", "терминал молчит"),
        ("/new POS 7 not answering", "operator", "POS 7 not answering"),
        ("/NEW@IncidentBot касса молчит", "operator", "касса молчит"),
        ("[operator] line one\nline two", "operator", "line one\nline two"),
    ],
)
def test_every_create_form_works_in_both_languages(text, source, description):
    command = parse(with_text("new_operator", text))
    assert isinstance(command, CreateIncident)
    assert (command.source, command.description) == (source, description)


@pytest.mark.parametrize("text", ["[operator]", "[monitoring]    ", "/new", "/new@IncidentBot   "])
def test_a_tag_or_new_command_without_text_creates_nothing(text):
    assert parse(with_text("new_operator", text)) == Ignore("empty description")


def test_an_unknown_tag_is_not_a_command():
    assert parse(with_text("new_operator", "[urgent] something broke")) == Ignore("not a command")


def test_a_description_longer_than_the_contract_allows_is_cut_to_fit():
    command = parse(with_text("new_operator", "[operator] " + "x" * 4080))
    assert isinstance(command, CreateIncident)
    assert len(command.description) == 4000
    assert command.description.endswith("…")


def test_a_new_command_addressed_to_another_bot_is_ignored_when_the_bot_knows_its_name():
    update = with_text("new_operator", "/new@OtherBot POS 7 not answering")
    assert parse_update(update, ALLOWED, bot_username="IncidentBot") == Ignore(
        "command for another bot"
    )
    assert isinstance(parse_update(update, ALLOWED), CreateIncident)


def test_a_tag_works_even_as_a_reply_to_a_human():
    update = load("reply_to_human")
    update["message"]["text"] = "[operator] Самокат #42 не в сети"
    assert isinstance(parse(update), CreateIncident)


# Changing status


def test_hash_id_fixed_resolves_the_incident_with_the_rest_as_the_note():
    assert parse(load("status_english")) == ChangeStatus(
        context=Context(chat_id=GROUP, message_id=1104, by="telegram:anna_support"),
        incident_id=42,
        status="resolved",
        note="rebooted",
    )


def test_hash_id_v_rabote_takes_the_incident_in_russian():
    command = parse(load("status_russian"))
    assert command == ChangeStatus(
        context=Context(chat_id=GROUP, message_id=1105, by="telegram:ivan_ops"),
        incident_id=42,
        status="in_progress",
        note="смотрю",
    )


def test_hash_id_zakryto_closes_the_incident_whatever_the_case():
    command = parse(load("close_russian"))
    assert isinstance(command, ChangeStatus)
    assert (command.incident_id, command.status, command.note) == (42, "closed", "дубль #41")


@pytest.mark.parametrize(
    "word, status",
    [
        ("fixed", "resolved"),
        ("resolved", "resolved"),
        ("done", "resolved"),
        ("решено", "resolved"),
        ("исправлено", "resolved"),
        ("take", "in_progress"),
        ("in progress", "in_progress"),
        ("в работе", "in_progress"),
        ("close", "closed"),
        ("closed", "closed"),
        ("закрыто", "closed"),
        ("FIXED", "resolved"),
        ("Решено", "resolved"),
        ("In   Progress", "in_progress"),
        ("В РАБОТЕ", "in_progress"),
    ],
)
def test_every_status_word_works_after_an_incident_id(word, status):
    command = parse(with_text("status_english", f"  #7 {word}  "))
    assert command == ChangeStatus(
        context=Context(chat_id=GROUP, message_id=1104, by="telegram:anna_support"),
        incident_id=7,
        status=status,
        note=None,
    )


@pytest.mark.parametrize(
    "text, note",
    [
        ("#42 fixed   rebooted the router  ", "rebooted the router"),
        ("#42 fixed: rebooted", "rebooted"),
        ("#42 решено — перезагрузили", "перезагрузили"),
        ("#42: done", None),
        ("#42 done\nзаменили модуль\nпроверено", "заменили модуль\nпроверено"),
    ],
)
def test_the_note_is_whatever_follows_the_status_word_trimmed(text, note):
    command = parse(with_text("status_english", text))
    assert isinstance(command, ChangeStatus)
    assert command.note == note


def test_a_note_longer_than_the_contract_allows_is_cut_to_fit():
    command = parse(with_text("status_english", "#42 fixed " + "n" * 1500))
    assert isinstance(command, ChangeStatus)
    assert len(command.note) == 1000


@pytest.mark.parametrize(
    "text",
    [
        "#42",
        "#42 кто смотрит?",
        "#42fixed",
        "#42 fixedit",
        "#0 fixed",
        "#abc fixed",
        "fixed #42",
        "#1234567890123456789 fixed",
    ],
)
def test_text_that_only_looks_like_a_status_change_is_not_a_command(text):
    assert parse(with_text("status_english", text)) == Ignore("not a command")


# Status by replying to the bot


def test_a_status_word_replying_to_the_bots_created_message_changes_that_incident():
    assert parse(load("reply_to_bot")) == ChangeStatus(
        context=Context(chat_id=GROUP, message_id=1107, by="telegram:ivan_ops"),
        incident_id=17,
        status="resolved",
        note=None,
    )


@pytest.mark.parametrize(
    "bot_text",
    [
        "#17 → resolved",
        "Incident #17 is already open (occurrences: 3)",
        "#17 is closed; allowed: none",
        "#17 [new] Самокат #42 не в сети",
    ],
)
def test_replying_to_any_bot_message_about_one_incident_targets_it(bot_text):
    update = with_text("reply_to_bot", "take on it")
    update["message"]["reply_to_message"]["text"] = bot_text
    command = parse(update)
    assert isinstance(command, ChangeStatus)
    assert (command.incident_id, command.status, command.note) == (17, "in_progress", "on it")


@pytest.mark.parametrize(
    "text, status, note",
    [
        ("fixed rebooted", "resolved", "rebooted"),
        ("в работе", "in_progress", None),
        ("Закрыто, дубль", "closed", "дубль"),
    ],
)
def test_replies_to_the_bot_work_in_both_languages(text, status, note):
    command = parse(with_text("reply_to_bot", text))
    assert isinstance(command, ChangeStatus)
    assert (command.incident_id, command.status, command.note) == (17, status, note)


def test_an_explicit_id_in_a_reply_to_the_bot_wins_over_the_replied_message():
    command = parse(with_text("reply_to_bot", "#5 fixed"))
    assert isinstance(command, ChangeStatus)
    assert command.incident_id == 5


def test_a_status_word_replying_to_a_human_changes_nothing():
    assert parse(load("reply_to_human")) == Ignore("reply is not to the bot")


def test_a_status_word_that_is_not_a_reply_changes_nothing():
    assert parse(with_text("new_operator", "решено")) == Ignore("not a command")


def test_ordinary_talk_replying_to_the_bots_message_about_an_incident_is_a_note_on_it():
    command = parse(with_text("reply_to_bot", "спасибо!"))
    assert isinstance(command, AddNote)
    assert (command.incident_id, command.note) == (17, "спасибо!")


def test_replying_to_the_bots_list_of_several_incidents_is_ambiguous_and_changes_nothing():
    update = load("reply_to_bot")
    update["message"]["reply_to_message"]["text"] = open_list_text(
        [incident(id=17), incident(id=18)]
    )
    assert parse(update) == Ignore("replied message names no single incident")


def test_replying_to_the_bots_empty_list_changes_nothing():
    update = load("reply_to_bot")
    update["message"]["reply_to_message"]["text"] = "No open incidents"
    assert parse(update) == Ignore("replied message names no single incident")


def test_an_id_inside_a_quoted_description_is_not_taken_for_the_incident():
    bot_text = created_text(incident(id=17, description="Склад\n#42 не в сети"))
    update = load("reply_to_bot")
    update["message"]["reply_to_message"]["text"] = bot_text
    command = parse(update)
    assert isinstance(command, ChangeStatus)
    assert command.incident_id == 17


def test_a_reply_to_another_bot_is_ignored_when_the_bot_knows_its_name():
    update = load("reply_to_bot")
    update["message"]["reply_to_message"]["from"]["username"] = "SomeOtherBot"
    assert parse_update(update, ALLOWED, bot_username="IncidentBot") == Ignore(
        "reply is not to the bot"
    )
    ours = parse_update(load("reply_to_bot"), ALLOWED, bot_username="incidentbot")
    assert isinstance(ours, ChangeStatus)


# Listing


def test_open_addressed_to_the_bot_lists_open_incidents():
    assert parse(load("open_list")) == ListOpen(
        Context(chat_id=GROUP, message_id=1109, by="telegram:anna_support")
    )


@pytest.mark.parametrize("text", ["/open", "/OPEN", " /open  ", "/open@IncidentBot please"])
def test_open_works_with_or_without_the_bot_suffix(text):
    assert isinstance(parse(with_text("open_list", text)), ListOpen)


@pytest.mark.parametrize("text", ["/opened", "/start", "/help@IncidentBot", "/"])
def test_other_slash_commands_are_ignored(text):
    assert parse(with_text("open_list", text)) == Ignore("not a command")


# Who and what is served


def test_a_chat_that_is_not_allowed_gets_nothing_even_for_a_valid_command():
    assert parse(load("foreign_chat")) == Ignore("chat not allowed")


def test_no_allowed_chats_means_no_chat_is_served():
    assert parse_update(load("new_operator"), frozenset()) == Ignore("chat not allowed")


def test_an_edited_message_never_creates_a_second_incident():
    assert parse(load("edited_message")) == Ignore("edited message")


def test_an_edited_status_change_is_not_applied_again():
    update = load("edited_message")
    update["edited_message"]["text"] = "#42 fixed"
    assert parse(update) == Ignore("edited message")


def test_a_channel_post_is_ignored():
    update = load("channel_post")
    assert parse_update(update, frozenset({update["channel_post"]["chat"]["id"]})) == Ignore(
        "channel post"
    )


@pytest.mark.parametrize("name", ["sticker", "new_chat_members"])
def test_messages_without_text_are_ignored(name):
    assert parse(load(name)) == Ignore("no text")


def test_a_photo_without_a_caption_is_ignored():
    update = load("photo_with_caption")
    del update["message"]["caption"]
    assert parse(update) == Ignore("no text")


def test_a_blank_message_is_ignored():
    assert parse(with_text("new_operator", "  \n ")) == Ignore("no text")


def test_a_button_press_is_no_message_command():
    assert parse(load("callback_query")) == Ignore("unsupported update")


def test_a_button_press_names_the_pressed_message_the_presser_and_what_the_button_asks():
    pressed = telegram.parse_press(load("press_take"))
    assert pressed == telegram.ButtonPress(
        "4382bfdwdsb323b301", Context(GROUP, 1, "telegram:anna_support"),
        buttons.Press(buttons.TAKE, 17, Status.NEW))
    assert (pressed.context.username, pressed.private) == ("anna_support", False)
    assert telegram.chat_id_of(load("press_take")) == GROUP


def test_a_press_in_a_forum_topic_and_in_a_private_chat_say_so():
    assert telegram.parse_press(load("press_in_topic")).context.topic == 5
    assert telegram.parse_press(load("press_private")).private is True


def test_a_press_on_a_button_of_an_older_kind_carries_no_action():
    assert telegram.parse_press(load("callback_query")).press is None


@pytest.mark.parametrize("broken", [
    lambda u: u["callback_query"].pop("id"),
    lambda u: u["callback_query"].pop("from"),
    lambda u: u["callback_query"].pop("message"),
    lambda u: u["callback_query"]["message"].pop("chat"),
    lambda u: u.pop("update_id"),
])
def test_a_press_that_cannot_be_answered_or_placed_is_malformed(broken):
    update = load("press_take")
    broken(update)
    assert telegram.parse_press(update) == Ignore("malformed update")


def test_the_line_a_pressed_message_shows_names_what_the_incident_has_on_one_line():
    incident = {"id": 17, "source": "monitoring", "severity": "critical", "status": "in_progress",
                "team": "payments", "assignee": "ivan_ops", "description": "Касса #7\nне отвечает"}
    assert telegram.incident_line(incident) == \
        "#17 [monitoring, critical] in_progress, team payments, assignee @ivan_ops: Касса #7 не отвечает"
    bare = {**incident, "severity": None, "team": None, "assignee": None, "status": "new"}
    assert telegram.incident_line(bare) == "#17 [monitoring] new: Касса #7 не отвечает"


def test_the_answer_to_a_press_fits_what_telegram_shows():
    answer = telegram.press_answer("q1", "x" * 500)
    assert answer["method"] == "answerCallbackQuery" and len(answer["text"]) == 200


def test_chit_chat_mentioning_an_incident_is_ignored():
    assert parse(load("chit_chat")) == Ignore("not a command")


def test_every_fixture_has_its_own_update_id():
    ids = [update_id_of(load(path.stem)) for path in PAYLOADS.glob("*.json")]
    assert None not in ids
    assert len(ids) == len(set(ids))


# Malformed input


def _without_chat() -> dict:
    update = load("new_operator")
    del update["message"]["chat"]
    return update


def _set(name: str, path: tuple[str, ...], value: object) -> dict:
    update = load(name)
    target = update
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return update


@pytest.mark.parametrize(
    "update",
    [
        None,
        [],
        "update",
        42,
        {},
        {"update_id": "x"},
        {"update_id": True, "message": {}},
        {"update_id": 1, "message": None},
        {"update_id": 1, "message": "hello"},
        _without_chat(),
        _set("new_operator", ("message", "chat"), "group"),
        _set("new_operator", ("message", "chat", "id"), "-1001234567890"),
        _set("new_operator", ("message", "message_id"), None),
        _set("new_operator", ("message", "from"), None),
        _set("new_operator", ("message", "from"), {"is_bot": False}),
        _set("new_operator", ("message", "text"), ["[operator] x"]),
        _set("photo_with_caption", ("message", "caption"), 7),
    ],
    ids=lambda u: json.dumps(u, ensure_ascii=False)[:40],
)
def test_a_malformed_update_is_ignored_without_raising(update):
    assert parse(copy.deepcopy(update)) == Ignore("malformed update")


def test_a_reply_to_a_malformed_message_is_ignored_without_raising():
    update = with_text("reply_to_bot", "fixed")
    update["message"]["reply_to_message"] = {"from": "bot", "text": None}
    assert parse(update) == Ignore("reply is not to the bot")
    update["message"]["reply_to_message"] = {"from": {"is_bot": True}, "text": 17}
    assert parse(update) == Ignore("replied message names no single incident")


def test_update_id_of_reads_the_id_or_says_none():
    assert update_id_of(load("new_operator")) == 864201001
    assert update_id_of({"update_id": "x"}) is None
    assert update_id_of({"update_id": False}) is None
    assert update_id_of(None) is None


# Configuration


def test_allowed_chats_are_read_from_a_comma_separated_list_skipping_blanks():
    assert parse_allowed_chats(" -1001234, -1005678,,\n") == frozenset({-1001234, -1005678})
    assert parse_allowed_chats("") == frozenset()


@pytest.mark.parametrize("bad", ["abc", "1_000", "-100 123", "+-5", "１２３"])
def test_a_bad_allowed_chat_id_is_refused_naming_the_piece(bad):
    with pytest.raises(ValueError, match=repr(bad).replace("+", r"\+")):
        parse_allowed_chats(f"-1001234,{bad}")


# Replies


CONTEXT = Context(chat_id=GROUP, message_id=1101, by="telegram:ivan_ops")


def test_a_reply_is_a_send_message_call_answering_the_command():
    assert reply(CONTEXT, "Incident #17 created: x") == {
        "method": "sendMessage",
        "chat_id": GROUP,
        "reply_to_message_id": 1101,
        "text": "Incident #17 created: x",
    }


def test_a_reply_never_exceeds_telegrams_message_limit():
    assert len(reply(CONTEXT, "x" * 5000)["text"]) == 4096


def test_the_created_text_names_the_id_and_the_description():
    assert created_text(incident()) == "Incident #17 created: Самокат #42 не в сети"


def test_the_created_text_shows_only_the_first_200_characters_on_one_line():
    text = created_text(incident(description="строка\n" + "я" * 300))
    assert text == "Incident #17 created: строка " + "я" * 193 + "…"
    assert "\n" not in text


def test_the_status_changed_text_names_the_id_and_new_status():
    assert status_changed_text(incident(status="resolved")) == "#17 → resolved"


def test_the_not_found_text_names_the_id():
    assert not_found_text(99) == "Incident #99 not found"


def test_the_refused_transition_text_names_current_status_and_what_is_allowed():
    assert transition_refused_text(17, "closed", []) == "#17 is closed; allowed: none"
    assert (
        transition_refused_text(17, "in_progress", ["resolved", "closed"])
        == "#17 is in_progress; allowed: resolved, closed"
    )


def test_the_open_list_shows_one_line_per_incident():
    text = open_list_text(
        [incident(id=18, status="in_progress", description="POS 7\nnot answering"), incident()]
    )
    assert text == "#18 [in_progress] POS 7 not answering\n#17 [new] Самокат #42 не в сети"


def test_the_open_list_says_so_when_nothing_is_open():
    assert open_list_text([]) == "No open incidents"


def test_the_open_list_stays_short_even_with_many_long_incidents():
    text = open_list_text([incident(id=i, description="d" * 4000) for i in range(1, 30)])
    assert len(text.splitlines()) == 10
    assert len(text) < 4096
    assert text.splitlines()[0].endswith("…")


# /mute and /unmute

@pytest.mark.parametrize("text, minutes", [
    ("/mute 2h", 120), ("/mute 30m", 30), ("/mute 1d", 1440), ("/mute", 60), ("/mute 90 min", 90),
    ("/mute 30d", 7 * 24 * 60), ("/unmute", 0), ("/mute@IncidentBot 2h", 120),
])
def test_mute_takes_a_duration_up_to_a_week(text, minutes):
    command = parse(with_text("new_operator", text))
    assert isinstance(command, telegram.Mute) and command.minutes == minutes


@pytest.mark.parametrize("text", ["/mute soon", "/mute 0h", "/mute -2h"])
def test_a_mute_duration_that_is_not_understood_is_ignored(text):
    assert parse(with_text("new_operator", text)) == telegram.Ignore(telegram.BAD_DURATION)
