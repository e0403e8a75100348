"""Notifications into the Telegram group, driven by the table's change stream and the schedules,
against a fake Bot API on 127.0.0.1."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from chalicelib import notifier, services, telegram_client
from chalicelib.telegram_client import SendFailed
from scripts.local_stream import StreamReader, scheduled_event
from tests.conftest import TABLE_NAME, load_payload
from tests.fake_bot_api import FakeBotApi, server_error, too_many_requests

CHAT = "-1001234567890"
TOKEN = "123456:test-bot-token"
WEBHOOK_SECRET = "tg-secret_0123456789"
ALARM_SNS = "on_alarm_notification"


@pytest.fixture
def bot(monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeBotApi() as fake:
        monkeypatch.setenv("TELEGRAM_API_URL", fake.url)
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_NOTIFY_CHAT", CHAT)
        monkeypatch.setenv("TELEGRAM_TIMEOUT_SECONDS", "1")
        monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", WEBHOOK_SECRET)
        yield fake


@pytest.fixture
def stream(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> StreamReader:
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")  # see docs/notifications.md
    return StreamReader(dynamodb, boto3.client("dynamodbstreams"), TABLE_NAME)


def deliver(client: Any, records: list[dict[str, Any]]) -> None:
    """Hand stream records to the handler as Lambda's event source mapping would."""
    client.lambda_.invoke("on_incident_change", {"Records": records})


def deliver_new(client: Any, stream: StreamReader) -> list[dict[str, Any]]:
    records = stream.poll()
    deliver(client, records)
    return records


def sns_alarm(name: str, state: str = "ALARM", at: str = "2026-11-23T10:15:30.123+0000") -> dict[str, Any]:
    event = load_payload("sns_alarm_record.json" if state == "ALARM" else "sns_ok_record.json")
    sns = event["Records"][0]["Sns"]
    message = json.loads(sns["Message"])
    message.update(AlarmName=name, AlarmArn=f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}",
                   StateChangeTime=at)
    sns["Message"], sns["MessageId"] = json.dumps(message), f"{name}-{state}-{at}"
    return event


def telegram_update(text: str, update_id: int, reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = load_payload("telegram/new_operator.json")
    payload["update_id"], payload["message"]["text"] = update_id, text
    if reply_to is not None:
        payload["message"]["reply_to_message"] = reply_to
    return payload


def post_update(client: Any, payload: dict[str, Any]) -> Any:
    response = client.http.post("/telegram/webhook", body=json.dumps(payload, ensure_ascii=False),
                                headers={"Content-Type": "application/json",
                                         "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
    assert response.status_code == 200, response.body
    return json.loads(response.body)


# What is sent

def test_an_incident_opened_through_the_api_is_announced_with_its_source(api, client, bot, stream):
    api.create("Касса #7 не отвечает", "partner")
    deliver_new(client, stream)

    assert bot.texts == ["#1 [partner] new: Касса #7 не отвечает"]
    assert bot.messages[0]["chat_id"] == CHAT
    assert bot.paths == [f"/bot{TOKEN}/sendMessage"]


def test_a_long_description_is_cut_to_300_characters_on_one_line(api, client, bot, stream):
    api.create("Строка один\nстрока два " + "x" * 400, "operator")
    deliver_new(client, stream)

    [text] = bot.texts
    assert "\n" not in text
    assert len(text.split(": ", 1)[1]) == 300 and text.endswith("…")


def test_an_alarm_and_its_recovery_are_announced(client, bot, stream):
    client.lambda_.invoke(ALARM_SNS, sns_alarm("pos-7-down"))
    client.lambda_.invoke(ALARM_SNS, sns_alarm("pos-7-down", "OK", "2026-11-23T10:42:05.337+0000"))
    deliver_new(client, stream)

    assert bot.texts[0].startswith("#1 [monitoring] new: pos-7-down ")
    assert bot.texts[1:] == ["#1 resolved: alarm recovered"]


def test_a_status_change_made_outside_the_group_is_announced_with_its_note(api, client, bot, stream):
    api.create()
    api.patch("/incidents/1", {"status": "in_progress"})
    api.patch("/incidents/1", {"status": "closed", "note": "заменили\nконтроллер"})
    deliver_new(client, stream)

    assert bot.texts[1:] == ["#1 → in_progress by api", "#1 → closed by api: заменили контроллер"]


def test_what_happens_in_the_group_is_not_repeated_to_it(client, bot, stream):
    post_update(client, telegram_update("[operator] Самокат 42 не в сети", 1))
    post_update(client, telegram_update("#1 take", 2))
    deliver_new(client, stream)

    assert bot.texts == []


def test_an_api_change_to_an_incident_made_in_the_group_is_announced(api, client, bot, stream):
    post_update(client, telegram_update("[operator] Самокат 42 не в сети", 1))
    api.patch("/incidents/1", {"status": "resolved"})
    deliver_new(client, stream)

    assert bot.texts == ["#1 → resolved by api"]


# Delivered once, whatever Lambda redelivers

def test_redelivered_stream_records_send_nothing_twice(api, client, bot, stream):
    api.create()
    api.patch("/incidents/1", {"status": "closed"})
    records = deliver_new(client, stream)

    deliver(client, records)
    deliver(client, records[::-1])

    assert bot.texts == ["#1 [operator] new: Самокат #42 не в сети", "#1 → closed by api"]


def test_a_burst_of_100_alarm_incidents_is_folded_into_one_message(client, bot, stream):
    for n in range(100):
        client.lambda_.invoke(ALARM_SNS, sns_alarm(f"scooter-{n}-offline"))
    deliver_new(client, stream)

    [folded] = bot.texts
    lines = folded.split("\n")
    assert len(folded) <= 4096
    assert lines[0].startswith("#1 [monitoring] new: scooter-0-offline")
    assert lines[-1].startswith("… and ") or len(lines) == 100
    shown = [line for line in lines if line.startswith("#")]
    assert [int(line.split()[0][1:]) for line in shown] == list(range(1, len(shown) + 1))


# Telegram down: the service answers as before, and the retry delivers

def test_the_api_answers_while_telegram_hangs_and_the_retry_sends_once(api, client, bot, stream):
    bot.answers = ["hang"]
    bot.hang_seconds = 2

    response = api.post("/incidents", {"description": "Касса #7 не отвечает", "source": "partner"})

    assert response.status_code == 201 and bot.paths == []  # nothing on the request's path
    records = stream.poll()
    with pytest.raises(SendFailed):
        deliver(client, records)  # Lambda would retry the batch
    deliver(client, records)
    assert bot.texts == ["#1 [partner] new: Касса #7 не отвечает"]


@pytest.mark.parametrize("failure", [server_error(), too_many_requests(30)])
def test_a_refused_send_raises_and_the_retry_sends_once(api, client, bot, stream, failure):
    api.create()
    records = stream.poll()
    bot.answers = [failure]

    with pytest.raises(SendFailed):
        deliver(client, records)
    deliver(client, records)

    assert bot.texts == ["#1 [operator] new: Самокат #42 не в сети"]


def test_a_short_retry_after_is_waited_out_and_sent(api, client, bot, stream, monkeypatch):
    waited = []
    monkeypatch.setattr(telegram_client.time, "sleep", waited.append)
    api.create()
    bot.answers = [too_many_requests(2)]

    deliver_new(client, stream)

    assert waited == [2]
    assert bot.texts == ["#1 [operator] new: Самокат #42 не в сети"]


def test_past_twenty_messages_a_minute_the_rest_waits_for_the_next_minute(store, bot, stream):
    settings = notifier.Settings(chat_id=CHAT)
    sender = telegram_client.BotApi(TOKEN, bot.url)
    now = datetime(2026, 11, 23, 10, 0, 5, tzinfo=timezone.utc)
    for n in range(21):
        services.open_incident(store, description=f"report {n}", source="partner", by="api")
        notifier.deliver_changes(store, sender, settings, stream.poll(), now) if n < 20 else None
    pending = stream.poll()

    with pytest.raises(notifier.OverBudget):
        notifier.deliver_changes(store, sender, settings, pending, now)
    notifier.deliver_changes(store, sender, settings, pending, now + timedelta(minutes=1))

    assert len(bot.texts) == 21 and bot.texts[-1] == "#21 [partner] new: report 20"


# A failed run loses nothing: it gives its claims back, and a claim it could not give back is
# taken over after the lease, never skipped

def fixed_now() -> datetime:
    return datetime(2026, 11, 23, 10, 0, 5, tzinfo=timezone.utc)


def throttled_once(monkeypatch: pytest.MonkeyPatch, method: str, nth: int = 1) -> None:
    """The `nth` call of the Outbox's `method` fails as a DynamoDB throttle past boto3's
    retries does."""
    from chalicelib.incidents import Unavailable
    from chalicelib.outbox import Outbox

    original = getattr(Outbox, method)
    calls = []

    def failing_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == nth:
            raise Unavailable("injected ProvisionedThroughputExceededException")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Outbox, method, failing_once)


@pytest.mark.parametrize("method", ["claim", "take_budget"])
def test_a_throttled_outbox_call_fails_the_run_and_its_retry_sends_every_notice(
        store, bot, stream, monkeypatch, method):
    from chalicelib.incidents import Unavailable

    sender, settings = telegram_client.BotApi(TOKEN, bot.url), notifier.Settings(chat_id=CHAT)
    for n in (1, 2):
        services.open_incident(store, description=f"report {n}", source="partner", by="api")
    records = stream.poll()
    throttled_once(monkeypatch, method, nth=2 if method == "claim" else 1)  # a claim: after the first

    with pytest.raises(Unavailable):
        notifier.deliver_changes(store, sender, settings, records, fixed_now())
    notifier.deliver_changes(store, sender, settings, records, fixed_now() + timedelta(seconds=1))

    assert bot.texts == ["#1 [partner] new: report 1", "#2 [partner] new: report 2"]


def test_a_claim_a_failed_run_could_not_give_back_is_sent_after_the_lease_never_skipped(
        store, bot, stream, monkeypatch):
    from chalicelib.incidents import Unavailable
    from chalicelib.outbox import CLAIM_LEASE_SECONDS

    sender, settings = telegram_client.BotApi(TOKEN, bot.url), notifier.Settings(chat_id=CHAT)
    services.open_incident(store, description="report 1", source="partner", by="api")
    records = stream.poll()
    throttled_once(monkeypatch, "take_budget")
    throttled_once(monkeypatch, "release")

    with pytest.raises(Unavailable):
        notifier.deliver_changes(store, sender, settings, records, fixed_now())
    monkeypatch.undo()
    monkeypatch.setenv("TELEGRAM_API_URL", bot.url)
    with pytest.raises(notifier.NotYetSent):  # still within the lease: Lambda retries later
        notifier.deliver_changes(store, sender, settings, records, fixed_now() + timedelta(seconds=5))
    assert bot.texts == []
    notifier.deliver_changes(store, sender, settings, records,
                             fixed_now() + timedelta(seconds=CLAIM_LEASE_SECONDS + 1))

    assert bot.texts == ["#1 [partner] new: report 1"]
    notifier.deliver_changes(store, sender, settings, records, fixed_now() + timedelta(hours=1))
    assert bot.texts == ["#1 [partner] new: report 1"]


def test_the_claim_lease_outlasts_every_stages_lambda_timeout():
    """Past the lease a claim's sender is surely gone (Lambda ended it), so a takeover never
    races a live sender. The intake consumer (apply_alerts, a longer timeout for a storm's
    batches) sends nothing and claims nothing."""
    from chalicelib.outbox import CLAIM_LEASE_SECONDS
    from tests.conftest import ROOT

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for stage in config["stages"].values():
        timeouts = [stage.get("lambda_timeout", config.get("lambda_timeout", 60))]
        timeouts += [f.get("lambda_timeout", timeouts[0])
                     for name, f in stage.get("lambda_functions", {}).items() if name != "apply_alerts"]
        assert max(timeouts) < CLAIM_LEASE_SECONDS


def test_a_sent_notice_whose_mark_is_throttled_once_is_not_sent_again(store, bot, stream, monkeypatch):
    sender, settings = telegram_client.BotApi(TOKEN, bot.url), notifier.Settings(chat_id=CHAT)
    services.open_incident(store, description="report 1", source="partner", by="api")
    records = stream.poll()
    throttled_once(monkeypatch, "mark_sent")

    notifier.deliver_changes(store, sender, settings, records, fixed_now())
    notifier.deliver_changes(store, sender, settings, records, fixed_now() + timedelta(hours=1))

    assert bot.texts == ["#1 [partner] new: report 1"]


# Reminders and the digest (a fixed clock)

def reminders(store: Any, bot: FakeBotApi, at: datetime) -> list[str]:
    before = len(bot.texts)
    notifier.send_reminders(store, telegram_client.BotApi(TOKEN, bot.url),
                            notifier.Settings(chat_id=CHAT), at)
    return bot.texts[before:]


def created_at(store: Any, incident_id: int) -> datetime:
    moment = store.get_incident_item(incident_id)["created_at"]
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_a_new_incident_is_reminded_after_15_minutes_then_hourly(store, bot):
    services.open_incident(store, description="Касса #7 не отвечает", source="partner", by="api")
    start = created_at(store, 1)

    assert reminders(store, bot, start + timedelta(minutes=14)) == []
    assert reminders(store, bot, start + timedelta(minutes=16)) == ["#1 has waited 16 min in new"]
    assert reminders(store, bot, start + timedelta(minutes=40)) == []
    assert reminders(store, bot, start + timedelta(minutes=76)) == ["#1 has waited 76 min in new"]
    assert reminders(store, bot, start + timedelta(minutes=80)) == []
    assert reminders(store, bot, start + timedelta(hours=3)) == ["#1 has waited 3 h in new"]


def test_past_the_reminder_cap_the_longest_waiting_are_reminded_first(store, bot, monkeypatch):
    monkeypatch.setattr(notifier, "MAX_REMINDERS_PER_RUN", 2)
    for n in (1, 2, 3):
        services.open_incident(store, description=f"report {n}", source="partner", by="api")

    sent = reminders(store, bot, created_at(store, 3) + timedelta(minutes=20))

    assert [text.split()[0] for text in sent] == ["#1", "#2"]


def test_an_incident_someone_took_is_not_reminded(store, bot):
    services.open_incident(store, description="x", source="partner", by="api")
    services.change_status(store, 1, "in_progress", by="api")

    assert reminders(store, bot, created_at(store, 1) + timedelta(hours=1)) == []


def test_mute_quiets_reminders_and_the_digest_but_never_a_new_incident(api, client, store, bot, stream):
    answer = post_update(client, telegram_update("/mute 2h", 1))
    assert "muted until" in answer["text"]
    api.create("Касса #7 не отвечает", "partner")
    deliver_new(client, stream)
    start = created_at(store, 1)

    assert bot.texts == ["#1 [partner] new: Касса #7 не отвечает"]
    assert reminders(store, bot, start + timedelta(minutes=20)) == []
    notifier.send_digest(store, telegram_client.BotApi(TOKEN, bot.url), notifier.Settings(chat_id=CHAT),
                         start + timedelta(minutes=30))
    assert len(bot.texts) == 1
    assert reminders(store, bot, start + timedelta(hours=3)) == ["#1 has waited 3 h in new"]

    post_update(client, telegram_update("/unmute", 2))
    assert reminders(store, bot, start + timedelta(hours=4)) == ["#1 has waited 4 h in new"]


def test_the_digest_counts_open_incidents_and_lists_the_five_oldest(store, bot):
    for n, source in enumerate(["partner", "monitoring", "monitoring", "operator", "monitoring",
                                "partner", "operator"], start=1):
        services.open_incident(store, description=f"report {n}", source=source, by="api")
    services.change_status(store, 2, "in_progress", by="api")
    services.change_status(store, 3, "closed", by="api")
    now = created_at(store, 7) + timedelta(hours=2)

    notifier.send_digest(store, telegram_client.BotApi(TOKEN, bot.url), notifier.Settings(chat_id=CHAT), now)
    notifier.send_digest(store, telegram_client.BotApi(TOKEN, bot.url), notifier.Settings(chat_id=CHAT), now)

    [digest] = bot.texts
    lines = digest.split("\n")
    assert [line.split()[0] for line in lines[:5]] == ["#1", "#2", "#4", "#5", "#6"]
    assert lines[1].startswith("#2 [monitoring] in_progress for 2 h: report 2")
    assert lines[5] == "Open: 5 new, 1 in_progress (operator 2, monitoring 2, partner 2)"


def test_no_chat_configured_sends_nothing(store, bot, stream):
    services.open_incident(store, description="x", source="partner", by="api")
    sender = telegram_client.BotApi(TOKEN, bot.url)

    sent = notifier.deliver_changes(store, sender, notifier.Settings(chat_id=None), stream.poll(),
                                    datetime.now(timezone.utc))

    assert sent == 0 and bot.paths == []


def test_the_local_run_without_a_bot_token_prints_messages_to_the_console(api, client, bot, stream,
                                                                          monkeypatch, capsys):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    monkeypatch.setenv("NOTIFY_TO_CONSOLE", "1")  # what scripts/local_stream.py sets
    api.create("Касса #7 не отвечает", "partner")
    deliver_new(client, stream)

    assert bot.paths == []
    assert f"[telegram → {CHAT}] #1 [partner] new: Касса #7 не отвечает" in capsys.readouterr().out


# The local run delivers the same notifications

def test_an_alarm_fired_at_the_local_run_reaches_the_group_exactly_once():
    import os
    import subprocess
    import time

    from tests.conftest import ROOT
    from tests.local_run import local_service

    with FakeBotApi() as fake, local_service({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": fake.url,
                                              "TELEGRAM_NOTIFY_CHAT": CHAT}) as run:
        moto_port = run.moto_url.rsplit(":", 1)[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        fired = subprocess.run(["make", "--no-print-directory", "fire-alarm", "STATE=ALARM"], cwd=ROOT,
                               env={**env, "MOTO_PORT": moto_port}, capture_output=True, text=True,
                               timeout=120)
        assert fired.returncode == 0, fired.stderr
        deadline = time.monotonic() + 30
        while not fake.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # a few more polls of the stream: nothing is sent twice

    assert [m["chat_id"] for m in fake.messages] == [CHAT]
    assert fake.texts[0].startswith("#1 [monitoring] new: scooter-42-offline")


def test_a_note_made_outside_the_group_is_announced_as_a_note(api, client, bot, stream):
    api.create()
    assert api.post("/incidents/1/notes", {"note": "звонили\nпартнёру"}).status_code == 201
    deliver_new(client, stream)

    assert bot.texts[1:] == ["#1 note by api: звонили партнёру"]


def test_the_severity_is_shown_beside_the_source(api, client, bot, stream):
    api.create("Касса #7 не отвечает", "partner", severity="critical")
    deliver_new(client, stream)

    assert bot.texts == ["#1 [partner, critical] new: Касса #7 не отвечает"]


# A stage told to notify that cannot read its bot token fails, and marks nothing sent

@pytest.mark.parametrize("parameter", ["missing", "blank"])
def test_a_stage_that_cannot_read_its_bot_token_fails_and_sends_it_all_once_the_token_is_there(
        api, client, bot, stream, monkeypatch, parameter):
    from chalicelib import secrets

    name = "/incidents/dev/telegram-bot-token"
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN_PARAMETER", name)
    ssm = boto3.client("ssm")
    if parameter == "blank":
        ssm.put_parameter(Name=name, Type="SecureString", Value=" ")
    secrets.clear_cache()
    api.create("Касса #7 не отвечает", "partner")
    records = stream.poll()

    with pytest.raises(telegram_client.BotTokenUnavailable):
        deliver(client, records)  # Lambda retries; its errors alarm fires
    with pytest.raises(telegram_client.BotTokenUnavailable):
        client.lambda_.invoke("remind_waiting_incidents", scheduled_event("2026-11-23T10:00:00Z"))
    assert bot.paths == []

    ssm.put_parameter(Name=name, Type="SecureString", Value=TOKEN, Overwrite=True)
    secrets.clear_cache()
    deliver(client, records)

    assert bot.texts == ["#1 [partner] new: Касса #7 не отвечает"]


def test_a_stage_with_no_chat_to_tell_needs_no_bot_token(api, bot, stream, monkeypatch):
    import app as app_module

    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN_PARAMETER", "/incidents/prod/telegram-bot-token")  # none in SSM
    monkeypatch.setenv("TELEGRAM_NOTIFY_CHAT", "")  # as prod's stage says (the test client would set dev's)
    api.create()

    app_module.on_incident_change({"Records": stream.poll()}, None)
    app_module.daily_digest(scheduled_event("2026-11-23T08:00:00Z"), None)

    assert bot.paths == []


FAKE_NOTICE = "\n#7 resolved: alarm recovered\n"


@pytest.mark.parametrize("entry", [
    {"status": "resolved", "by": f"pagerduty:db-1{FAKE_NOTICE}", "note": None},
    {"status": "in_progress", "by": f"alertmanager:team{FAKE_NOTICE}", "note": f"looking{FAKE_NOTICE}"},
    {"kind": "note", "status": "new", "by": f"ops{FAKE_NOTICE}", "note": f"checked{FAKE_NOTICE}"},
    {"status": "new", "by": f"pagerduty:x{FAKE_NOTICE}", "note": None},
], ids=["status change", "status change with note", "note", "new"])
def test_a_notice_is_one_line_whatever_text_a_sender_put_in_it(entry):
    from chalicelib import notifications

    incident = {"id": 3, "source": "monitoring", "description": f"Disk full{FAKE_NOTICE}more"}
    text = notifications.change_text(incident, entry)
    assert text.startswith("#3 ") and "\n" not in text and "\r" not in text
    assert "#7 resolved: alarm recovered" not in text.split("\n")
