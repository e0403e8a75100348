"""POST /telegram/webhook through Chalice's test client, with the saved Bot API updates."""
import json
import logging
from typing import Any, Callable

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from chalicelib import services
from tests.conftest import load_payload

SECRET = "tg-secret_0123456789"
GROUP = -1001234567890
WEBHOOK = "/telegram/webhook"


@pytest.fixture(autouse=True)
def telegram_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # TELEGRAM_ALLOWED_CHATS / TELEGRAM_BOT_USERNAME come from .chalice/config.json,
    # which the test client applies per request (the example group and IncidentBot).
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", SECRET)


def update(name: str, text: str | None = None, update_id: int | None = None) -> dict[str, Any]:
    payload = load_payload(f"telegram/{name}.json")
    if text is not None:
        payload["message"]["text"] = text
    if update_id is not None:
        payload["update_id"] = update_id
    return payload


def send(client: Any, payload: Any, *, secret: str | None = SECRET,
         headers: dict[str, str] | None = None) -> Any:
    """Deliver like Telegram does: JSON body, secret header, no API key."""
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload, ensure_ascii=False)
    all_headers = {"Content-Type": "application/json"}
    if secret is not None:
        all_headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    all_headers.update(headers or {})
    return client.http.post(WEBHOOK, headers=all_headers, body=body)


def answer(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def said(response: Any) -> str:
    return answer(response)["text"]


def seed(store: Any, count: int, status: str | None = None) -> None:
    """Incidents #1..#count already reported through the API."""
    for n in range(1, count + 1):
        services.open_incident(store, description=f"earlier report {n}", source="operator", by="api")
        if status is not None:
            services.change_status(store, n, status, by="api")


def all_incidents(api: Any) -> list[dict[str, Any]]:
    response = api.get("/incidents?limit=100")
    assert response.status_code == 200
    return response.json_body["items"]


def incident(api: Any, incident_id: int) -> dict[str, Any]:
    response = api.get(f"/incidents/{incident_id}")
    assert response.status_code == 200, response.body
    return response.json_body


# Creating incidents


def test_an_operator_tag_creates_an_incident_and_the_bot_confirms_in_the_chat(client, api):
    response = send(client, update("new_operator"))

    assert answer(response) == {
        "method": "sendMessage",
        "chat_id": GROUP,
        "reply_to_message_id": 1101,
        "text": "Incident #1 created: Самокат #42 не в сети",
        "reply_markup": {"inline_keyboard": [[{"text": "Take", "callback_data": "take:1:new"},
                                              {"text": "Resolve", "callback_data": "resolve:1:new"}]]},
    }
    created = incident(api, 1)
    assert (created["description"], created["source"], created["status"]) == (
        "Самокат #42 не в сети", "operator", "new",
    )
    assert created["history"] == [
        {"at": created["created_at"], "status": "new", "note": None, "by": "telegram:ivan_ops"}
    ]


def test_the_new_command_addressed_to_the_bot_creates_an_operator_incident(client, api):
    assert said(send(client, update("new_command"))) == "Incident #1 created: POS 7 not answering"
    created = incident(api, 1)
    assert (created["source"], created["history"][0]["by"]) == ("operator", "telegram:anna_support")


def test_a_monitoring_tag_from_a_sender_without_username_is_recorded_by_user_id(client, api):
    assert said(send(client, update("new_no_username"))).startswith("Incident #1 created")
    created = incident(api, 1)
    assert (created["source"], created["description"]) == ("monitoring", "Касса 3 не печатает чеки")
    assert created["history"][0]["by"] == "telegram:222222222"


def test_a_photo_with_a_partner_caption_creates_an_incident_from_the_caption(client, api):
    assert said(send(client, update("photo_with_caption"))) == (
        "Incident #1 created: Terminal at Lenina 5 shows error E17"
    )
    assert incident(api, 1)["source"] == "partner"


@pytest.mark.parametrize(
    "text, source",
    [
        ("[operator] Касса 2 зависла", "operator"),
        ("[оператор] Касса 2 зависла", "operator"),
        ("[monitoring] Касса 2 зависла", "monitoring"),
        ("[Мониторинг] Касса 2 зависла", "monitoring"),
        ("[partner] Касса 2 зависла", "partner"),
        ("[партнёр] Касса 2 зависла", "partner"),
        ("[партнер]: Касса 2 зависла", "partner"),
        ("/new Касса 2 зависла", "operator"),
        ("/NEW@IncidentBot Касса 2 зависла", "operator"),
    ],
)
def test_every_create_form_works_in_both_languages(client, api, text, source):
    assert said(send(client, update("new_operator", text))) == "Incident #1 created: Касса 2 зависла"
    created = incident(api, 1)
    assert (created["source"], created["description"]) == (source, "Касса 2 зависла")


def test_a_new_command_for_another_bot_creates_nothing(client, api):
    response = send(client, update("new_command", "/new@OtherBot POS 7 not answering"))
    assert answer(response) == {}
    assert all_incidents(api) == []


@pytest.mark.parametrize("text", ["[operator]", "/new", "[urgent] Касса 2 зависла"])
def test_a_create_without_a_description_or_with_an_unknown_tag_creates_nothing(client, api, text):
    assert answer(send(client, update("new_operator", text))) == {}
    assert all_incidents(api) == []


# Changing status by id


def test_hash_id_fixed_resolves_the_incident_with_the_rest_as_the_note(client, api, store):
    seed(store, 42)

    response = send(client, update("status_english"))

    assert answer(response) == {
        "method": "sendMessage",
        "chat_id": GROUP,
        "reply_to_message_id": 1104,
        "text": "#42 → resolved",
        "reply_markup": {"inline_keyboard": [[{"text": "Reopen", "callback_data": "reopen:42:resolved"},
                                              {"text": "Close", "callback_data": "close:42:resolved"}]]},
    }
    changed = incident(api, 42)
    assert changed["status"] == "resolved"
    assert changed["history"][-1] == {
        "at": changed["updated_at"], "status": "resolved", "note": "rebooted",
        "by": "telegram:anna_support",
    }


def test_hash_id_v_rabote_takes_the_incident_in_russian(client, api, store):
    seed(store, 42)
    assert said(send(client, update("status_russian"))) == "#42 → in_progress, assignee @ivan_ops"
    assert incident(api, 42)["assignee"] == "ivan_ops"
    entry = incident(api, 42)["history"][-1]
    assert (entry["status"], entry["note"], entry["by"]) == ("in_progress", "смотрю", "telegram:ivan_ops")


def test_hash_id_zakryto_closes_the_incident_whatever_the_case(client, api, store):
    seed(store, 42)
    assert said(send(client, update("close_russian"))) == "#42 → closed"
    entry = incident(api, 42)["history"][-1]
    assert (entry["status"], entry["note"]) == ("closed", "дубль #41")


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
        ("В Работе", "in_progress"),
    ],
)
def test_every_status_word_works_after_an_incident_id(client, api, store, word, status):
    seed(store, 1)

    taker = ", assignee @anna_support" if status == "in_progress" else ""  # taking assigns
    assert said(send(client, update("status_english", f"#1 {word} проверили на месте"))) == (
        f"#1 → {status}{taker}"
    )

    changed = incident(api, 1)
    assert changed["status"] == status
    assert len(changed["history"]) == 2
    entry = changed["history"][-1]
    assert (entry["note"], entry["by"]) == ("проверили на месте", "telegram:anna_support")


def test_a_status_change_without_a_note_records_none(client, api, store):
    seed(store, 1)
    send(client, update("status_english", "#1 done"))
    assert incident(api, 1)["history"][-1]["note"] is None


def test_reopening_a_resolved_incident_by_taking_it_works(client, api, store):
    seed(store, 1, status="resolved")
    assert said(send(client, update("status_english", "#1 take снова не работает"))) == \
        "#1 → in_progress, assignee @anna_support"
    assert incident(api, 1)["status"] == "in_progress"


def test_an_unknown_incident_id_is_answered_with_not_found_and_creates_nothing(client, api, store):
    seed(store, 1)
    assert said(send(client, update("status_english", "#99 fixed"))) == "Incident #99 not found"
    assert [i["id"] for i in all_incidents(api)] == [1]
    assert incident(api, 1)["status"] == "new"


def test_a_refused_transition_names_the_current_status_and_the_allowed_targets(client, api, store):
    seed(store, 1, status="closed")

    assert said(send(client, update("status_english", "#1 take"))) == "#1 is closed; allowed: none"

    refused = incident(api, 1)
    assert refused["status"] == "closed"
    assert [h["status"] for h in refused["history"]] == ["new", "closed"]


def test_setting_the_status_an_incident_already_has_writes_no_history(client, api, store):
    seed(store, 1)
    send(client, update("status_english", "#1 take", update_id=1))
    assert said(send(client, update("status_english", "#1 в работе", update_id=2))) == \
        "#1 → in_progress, assignee @anna_support"
    assert [h["status"] for h in incident(api, 1)["history"]] == ["new", "in_progress"]


def test_a_message_that_only_looks_like_a_status_change_changes_nothing(client, api, store):
    seed(store, 42)
    assert answer(send(client, update("chit_chat"))) == {}
    assert incident(api, 42)["status"] == "new"


# Changing status by replying to the bot


def test_a_status_word_replying_to_the_bots_confirmation_changes_that_incident(client, api, store):
    seed(store, 17)

    response = send(client, update("reply_to_bot"))

    assert answer(response)["reply_to_message_id"] == 1107
    assert said(response) == "#17 → resolved"
    entry = incident(api, 17)["history"][-1]
    assert (entry["status"], entry["by"]) == ("resolved", "telegram:ivan_ops")


@pytest.mark.parametrize(
    "text, status, note",
    [
        ("fixed rebooted", "resolved", "rebooted"),
        ("take on it", "in_progress", "on it"),
        ("в работе", "in_progress", None),
        ("Закрыто, дубль", "closed", "дубль"),
    ],
)
def test_replies_to_the_bot_work_in_both_languages(client, api, store, text, status, note):
    seed(store, 17)
    taker = ", assignee @ivan_ops" if status == "in_progress" else ""  # taking assigns
    assert said(send(client, update("reply_to_bot", text))) == f"#17 → {status}{taker}"
    entry = incident(api, 17)["history"][-1]
    assert (entry["status"], entry["note"]) == (status, note)


def test_a_reply_to_the_bots_own_created_message_works_end_to_end(client, api):
    created = answer(send(client, update("new_operator")))
    follow_up = update("reply_to_bot", "done")
    follow_up["message"]["reply_to_message"]["text"] = created["text"]

    assert said(send(client, follow_up)) == "#1 → resolved"
    assert incident(api, 1)["status"] == "resolved"


def test_a_status_word_replying_to_a_human_changes_nothing(client, api, store):
    seed(store, 42)
    assert answer(send(client, update("reply_to_human"))) == {}
    assert incident(api, 42)["history"][-1]["status"] == "new"


def test_a_reply_to_another_bot_changes_nothing(client, api, store):
    seed(store, 17)
    payload = update("reply_to_bot")
    payload["message"]["reply_to_message"]["from"]["username"] = "SomeOtherBot"
    assert answer(send(client, payload)) == {}
    assert incident(api, 17)["status"] == "new"


# Listing


def test_open_lists_at_most_ten_open_incidents_newest_first(client, api, store):
    seed(store, 13)
    services.change_status(store, 13, "resolved", by="api")
    services.change_status(store, 12, "closed", by="api")
    services.change_status(store, 11, "in_progress", by="api")

    lines = said(send(client, update("open_list"))).splitlines()

    assert lines == [
        "#11 [in_progress] earlier report 11",
        *[f"#{n} [new] earlier report {n}" for n in range(10, 1, -1)],
    ]


def test_open_says_so_when_nothing_is_open(client, store):
    seed(store, 1, status="closed")
    assert said(send(client, update("open_list"))) == "No open incidents"


# Who may use the webhook


def test_a_chat_that_is_not_allowed_gets_no_answer_and_changes_nothing(client, api):
    assert answer(send(client, update("foreign_chat"))) == {}
    assert all_incidents(api) == []


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET.upper()])
def test_a_wrong_or_missing_secret_token_is_refused_and_changes_nothing(client, api, secret):
    response = send(client, update("new_operator"), secret=secret)

    assert response.status_code == 401
    assert json.loads(response.body)["Code"] == "UnauthorizedError"
    assert all_incidents(api) == []


def test_without_a_configured_secret_nothing_gets_in(client, api, monkeypatch):
    monkeypatch.delenv("TELEGRAM_SECRET_TOKEN")
    for secret in (None, "", SECRET):
        assert send(client, update("new_operator"), secret=secret).status_code == 401
    assert all_incidents(api) == []


def test_the_api_key_is_neither_needed_nor_enough_for_the_webhook(client, api):
    from tests.conftest import API_KEY

    refused = send(client, update("new_operator"), secret=None, headers={"x-api-key": API_KEY})
    assert refused.status_code == 401

    accepted = send(client, update("new_operator"))  # carries no x-api-key
    assert said(accepted) == "Incident #1 created: Самокат #42 не в сети"


def test_the_api_key_still_guards_the_incident_routes(api):
    assert api.get("/incidents", key=None).status_code == 401


# Telegram delivers again


def test_a_redelivered_create_makes_no_second_incident_and_repeats_the_same_confirmation(client, api):
    first = answer(send(client, update("new_operator")))
    again = answer(send(client, update("new_operator")))

    assert again == first
    assert [i["id"] for i in all_incidents(api)] == [1]


def test_a_redelivered_status_change_adds_no_second_history_entry(client, api, store):
    seed(store, 42)
    first = said(send(client, update("status_english")))
    again = said(send(client, update("status_english")))

    assert first == again == "#42 → resolved"
    assert [h["status"] for h in incident(api, 42)["history"]] == ["new", "resolved"]


def test_a_redelivered_status_change_does_not_undo_a_later_change(client, api, store):
    seed(store, 42)
    send(client, update("status_russian"))  # #42 в работе
    send(client, update("status_english"))  # #42 fixed
    history = incident(api, 42)["history"]

    again = send(client, update("status_russian"))  # Telegram delivers "в работе" again

    assert said(again) == "#42 → resolved, assignee @ivan_ops"
    after = incident(api, 42)
    assert after["status"] == "resolved"
    assert after["history"] == history


def test_a_redelivered_reply_to_the_bot_changes_nothing_the_second_time(client, api, store):
    seed(store, 17)
    send(client, update("reply_to_bot"))
    send(client, update("reply_to_bot"))
    assert [h["status"] for h in incident(api, 17)["history"]] == ["new", "resolved"]


# Odd message kinds


def test_an_edited_message_creates_no_second_incident(client, api):
    send(client, update("new_operator"))
    assert answer(send(client, update("edited_message"))) == {}
    only = all_incidents(api)
    assert [(i["id"], i["description"]) for i in only] == [(1, "Самокат #42 не в сети")]


def test_an_edited_status_change_is_not_applied(client, api, store):
    seed(store, 42)
    payload = load_payload("telegram/edited_message.json")
    payload["edited_message"]["text"] = "#42 fixed"
    assert answer(send(client, payload)) == {}
    assert incident(api, 42)["status"] == "new"


@pytest.mark.parametrize(
    "name", ["sticker", "new_chat_members", "channel_post", "chit_chat"]
)
def test_updates_that_are_not_commands_get_no_answer_and_change_nothing(client, api, name):
    assert answer(send(client, update(name))) == {}
    assert all_incidents(api) == []


def test_a_photo_without_a_caption_creates_nothing(client, api):
    payload = update("photo_with_caption")
    del payload["message"]["caption"]
    assert answer(send(client, payload)) == {}
    assert all_incidents(api) == []


def test_a_button_of_a_kind_the_bot_no_longer_makes_changes_nothing_and_is_answered(client, api, store):
    seed(store, 17)  # callback_query.json's "resolve:17" does not say which status it showed
    assert answer(send(client, update("callback_query"))) == {
        "method": "answerCallbackQuery", "callback_query_id": "4382bfdwdsb323b2d9",
        "text": "This button is no longer supported: reply to the message with the command instead."}
    assert incident(api, 17)["status"] == "new"


# Malformed deliveries


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"update_id": 1, "message": ',
        b"[]",
        b'[{"update_id": 864201001}]',
        b"null",
        b"42",
        b'"[operator] x"',
        b"\xff\xfe not utf-8",
        b'{"update_id": NaN, "message": {}}',
        b"[" * 100000,
        b'{"a":' * 10000 + b"1" + b"}" * 10000,
        b'{"update_id": ' + b"1" * 5000 + b', "message": {}}',
        b"{}",
        b'{"update_id": 1}',
        b'{"update_id": 1, "message": "[operator] x"}',
        b'{"update_id": 1, "message": {"text": "[operator] x", "chat": {"id": -1001234567890}}}',
    ],
    ids=lambda body: body[:30].decode("utf-8", "replace"),
)
def test_a_malformed_body_is_answered_200_and_changes_nothing(client, api, body):
    assert answer(send(client, body)) == {}
    assert all_incidents(api) == []


def test_a_malformed_body_is_logged_with_the_reason(client, caplog):
    with caplog.at_level(logging.INFO, logger="chalicelib.telegram_bot"):
        send(client, b"[1, 2")
        send(client, b'{"update_id": 7, "message": null}')

    reasons = [getattr(r, "reason", None) for r in caplog.records if r.name == "chalicelib.telegram_bot"]
    assert reasons == ["body is not JSON", "malformed update"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "chalicelib.telegram_bot")


def test_a_foreign_chat_is_logged_with_its_id_so_it_can_be_added_to_the_allowed_list(client, caplog):
    with caplog.at_level(logging.INFO, logger="chalicelib.telegram_bot"):
        send(client, update("foreign_chat"))

    [record] = [r for r in caplog.records if r.name == "chalicelib.telegram_bot"]
    assert (record.reason, record.chat_id, record.update_id) == (
        "chat not allowed", -1009876543210, 864201010,
    )


def test_a_lone_surrogate_in_a_description_is_refused_in_the_chat_not_with_an_error(client, api):
    body = json.dumps(update("new_operator")).replace("\\u0421", "\\ud800")  # С -> lone surrogate
    response = send(client, body)
    assert said(response).startswith("Not accepted: description contains an unpaired surrogate")
    assert all_incidents(api) == []


# Storage failures


@pytest.fixture
def table_throttles(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Every write to DynamoDB throttles past boto3's retries (reads still work);
    calling the fixture's value lets the table recover."""
    original = BaseClient._make_api_call
    writes = {"PutItem", "UpdateItem", "TransactWriteItems", "DeleteItem"}

    def make_api_call(self: BaseClient, operation: str, params: dict) -> Any:
        if operation in writes:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation
            )
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    return lambda: monkeypatch.setattr(BaseClient, "_make_api_call", original)


def test_when_the_table_throttles_a_create_is_answered_503_so_telegram_delivers_again(
    client, api, table_throttles
):
    response = send(client, update("new_operator"))

    assert response.status_code == 503
    assert response.headers.get("Retry-After") == "1"
    assert all_incidents(api) == []

    table_throttles()  # the table recovers; Telegram delivers the same update again
    assert said(send(client, update("new_operator"))) == "Incident #1 created: Самокат #42 не в сети"
    assert len(all_incidents(api)) == 1


def test_when_the_table_throttles_a_status_change_is_answered_503_and_nothing_is_written(
    client, api, store, request
):
    seed(store, 42)
    request.getfixturevalue("table_throttles")

    assert send(client, update("status_english")).status_code == 503
    assert [h["status"] for h in incident(api, 42)["history"]] == ["new"]


def test_when_the_table_does_not_answer_open_is_answered_503(client, monkeypatch):
    def no_answer(self: BaseClient, operation: str, params: dict) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, operation)

    monkeypatch.setattr(BaseClient, "_make_api_call", no_answer)
    assert send(client, update("open_list")).status_code == 503


def test_a_typed_reopen_while_another_incident_holds_its_alert_is_answered_not_failed(client, api, store):
    services.open_incident(store, description="POS 7 down", source="monitoring", by="api", dedup_key="pos-7")
    services.change_status(store, 1, "resolved", by="api")
    services.open_incident(store, description="POS 7 down again", source="monitoring", by="api",
                           dedup_key="pos-7")

    reply = answer(send(client, update("new_operator", "#1 take")))

    assert reply["text"] == "#1 cannot be reopened: #2 is open for the same alert"
    assert [b["text"] for b in reply["reply_markup"]["inline_keyboard"][0]] == ["Reopen", "Close"]
    assert incident(api, 1)["status"] == "resolved"
