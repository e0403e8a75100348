"""Structured logs, EMF metrics and request ids: what an operator reads, checked as they would read it.

Everything the app writes goes to stdout (pytest's capsys): each line must be one JSON object,
either a log line or an EMF document (it has `_aws`)."""
from __future__ import annotations

import json
import logging
from typing import Any

import jsonschema
import pytest
from moto.core.botocore_stubber import BotocoreStubber

from chalicelib import logs, metrics
from tests.conftest import load_payload

TG_SECRET = "tg-secret_0123456789"
WEBHOOK = "/telegram/webhook"
THROTTLED = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                        "message": "throttled"})

# The EMF specification's document structure (docs.aws.amazon.com, CloudWatch "Specification:
# Embedded metric format"), as JSON Schema; the cross-references it also requires (each metric
# and dimension named in a directive is a root member of the right type) are checked in code.
EMF_SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "additionalProperties": False,
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Dimensions": {
                                "type": "array",
                                "items": {"type": "array", "maxItems": 30,
                                          "items": {"type": "string", "minLength": 1, "maxLength": 250}},
                            },
                            "Metrics": {
                                "type": "array", "minItems": 1, "maxItems": 100,
                                "items": {
                                    "type": "object", "required": ["Name"], "additionalProperties": False,
                                    "properties": {
                                        "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                        "Unit": {"enum": [
                                            "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes",
                                            "Megabytes", "Gigabytes", "Terabytes", "Bits", "Kilobits",
                                            "Megabits", "Gigabits", "Terabits", "Percent", "Count",
                                            "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
                                            "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
                                            "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
                                            "Terabits/Second", "Count/Second", "None"]},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def validate_emf(document: dict[str, Any]) -> None:
    jsonschema.validate(document, EMF_SCHEMA)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for dimension in dimension_set:
                assert isinstance(document.get(dimension), str), (dimension, document)
                assert 0 < len(document[dimension]) <= 1024
        for metric in directive["Metrics"]:
            value = document.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            assert 0 < len(values) <= 100, document
            assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values), document


def output(capsys: pytest.CaptureFixture) -> tuple[list[dict], list[dict], str]:
    """(log lines, EMF documents, raw text) written since the last call; every line must be JSON."""
    captured = capsys.readouterr()
    raw = captured.out + captured.err
    parsed = []
    for line in captured.out.splitlines():
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON line: {line!r}")
    assert not captured.err.strip(), f"written to stderr: {captured.err!r}"
    return [p for p in parsed if "_aws" not in p], [p for p in parsed if "_aws" in p], raw


def emitted(documents: list[dict]) -> list[tuple[str, dict[str, str], Any]]:
    """(metric, {dimension: value}, value) for every metric value in the documents."""
    out = []
    for document in documents:
        validate_emf(document)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            names = {d for s in directive["Dimensions"] for d in s}
            for metric in directive["Metrics"]:
                out.append((metric["Name"], {n: document[n] for n in names}, document[metric["Name"]]))
    return out


def requests(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["message"] == "request"]


def telegram(client: Any, payload: Any, secret: str | None = TG_SECRET) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return client.http.post(WEBHOOK, headers=headers, body=json.dumps(payload, ensure_ascii=False))


def message(text: str, update_id: int, reply_to: dict | None = None) -> dict[str, Any]:
    payload = load_payload("telegram/new_operator.json")
    payload["update_id"] = update_id
    payload["message"]["text"] = text
    if reply_to is not None:
        payload["message"]["reply_to_message"] = reply_to
    return payload


def scheduled(client: Any) -> dict[str, Any]:
    return client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                           detail={}, resources=[])


@pytest.fixture(autouse=True)
def telegram_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", TG_SECRET)


@pytest.fixture
def throttled(monkeypatch: pytest.MonkeyPatch):
    """moto answers the named DynamoDB operations with a throttling error, every attempt."""
    def install(*operations: str) -> None:
        answer = BotocoreStubber.process_request

        def process_request(self: Any, request: Any) -> Any:
            target = request.headers.get("X-Amz-Target", b"")
            target = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]
            if target in operations:
                return 400, {"Content-Type": "application/x-amz-json-1.0"}, THROTTLED
            return answer(self, request)

        monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
    return install


# --- log lines ---------------------------------------------------------------------------


def test_every_http_request_writes_one_json_summary_line_with_its_ids_and_an_x_request_id(api, capsys):
    output(capsys)
    created = api.post("/incidents", {"description": "POS 7 not answering", "source": "partner"})
    got = api.get(f"/incidents/{created.json_body['id']}")
    missing = api.get("/incidents/999")
    refused = api.get("/incidents", key="wrong")
    lines, _, _ = output(capsys)
    summaries = requests(lines)
    assert [(s["route"], s["method"], s["status"]) for s in summaries] == [
        ("/incidents", "POST", 201), ("/incidents/{incident_id}", "GET", 200),
        ("/incidents/{incident_id}", "GET", 404), ("/incidents", "GET", 401)]
    for summary, response in zip(summaries, [created, got, missing, refused]):
        assert summary["level"] == "INFO" and summary["logger"] == "chalicelib.requests"
        assert summary["request_id"] and response.headers["X-Request-Id"] == summary["request_id"]
        assert isinstance(summary["latency_ms"], float) and summary["latency_ms"] >= 0
        assert summary["timestamp"].endswith("Z") and summary["function"]
    assert summaries[0]["incident_id"] == created.json_body["id"] and summaries[0]["outcome"] == "created"
    assert summaries[1]["incident_id"] == created.json_body["id"]
    assert summaries[2]["incident_id"] == 999
    assert len({s["request_id"] for s in summaries}) == 4
    opened = [line for line in lines if line["message"] == "incident opened"]
    assert opened[0]["request_id"] == summaries[0]["request_id"]  # the ids are on every line


def test_the_api_gateway_request_id_is_on_the_line_when_api_gateway_sends_one(dynamodb, capsys):
    from app import app

    event = {
        "resource": "/health", "path": "/health", "httpMethod": "GET", "headers": {},
        "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": "/health", "httpMethod": "GET", "path": "/api/health",
                           "stage": "api", "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"},
    }

    class Context:
        aws_request_id = "lambda-request-1"
        function_name = "incidents-prod-APIHandler-abc"

    output(capsys)
    response = app(event, Context())
    [summary] = requests(output(capsys)[0])
    assert response["headers"]["X-Request-Id"] == "lambda-request-1"
    assert summary["request_id"] == "lambda-request-1"
    assert summary["api_request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert summary["function"] == "incidents-prod-APIHandler-abc"


def test_an_incidents_story_can_be_read_from_the_lines_that_carry_its_id(api, client, capsys):
    incident = api.create("Самокат #17 не в сети", "monitoring")
    api.patch(f"/incidents/{incident['id']}", {"status": "in_progress", "note": "on my way"})
    telegram(client, message(f"#{incident['id']} fixed", 9001))
    api.patch(f"/incidents/{incident['id']}", {"status": "in_progress"}, headers={"If-Match": '"1-1"'})
    lines, _, _ = output(capsys)
    story = [line for line in lines if line.get("incident_id") == incident["id"]]
    told = [(line["message"], line.get("status"), line.get("by")) for line in story]
    assert told == [
        ("incident opened", None, "api"), ("request", 201, None),
        ("status changed", "in_progress", "api"), ("request", 200, None),
        ("status changed", "resolved", "telegram:ivan_ops"), ("request", 200, "telegram:ivan_ops"),
        ("request", 412, None),
    ], told
    changed = [line for line in story if line["message"] == "status changed"]
    assert changed[1]["from_status"] == "in_progress" and changed[1]["seconds_since_created"] >= 0
    webhook = story[5]
    assert webhook["route"] == WEBHOOK and webhook["update_id"] == 9001 and webhook["chat_id"] < 0
    assert webhook["outcome"] == "changed"


def test_an_unhandled_error_is_one_json_error_line_with_the_traceback_and_a_500(api, monkeypatch, capsys):
    from chalicelib import services

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "get_incident", broken)
    output(capsys)
    response = api.get("/incidents/1")
    lines, documents, _ = output(capsys)
    assert response.status_code == 500
    [error] = [line for line in lines if line.get("exception_type") == "RuntimeError"]
    assert error["level"] == "ERROR" and "boom" in error["exception"] and "\n" not in json.dumps(error)
    [summary] = requests(lines)
    assert summary["level"] == "ERROR" and summary["status"] == 500
    assert ("RequestErrors", {"StatusClass": "5xx"}, 1) in emitted(documents)


def test_each_alarm_record_gets_a_summary_line_with_alarm_name_state_and_outcome(client, capsys):
    sns = load_payload("sns_alarm_record.json")
    output(capsys)
    client.lambda_.invoke("on_alarm_notification", sns)
    client.lambda_.invoke("on_alarm_notification", sns)  # redelivered
    client.lambda_.invoke("on_alarm_state_change", load_payload("eventbridge_insufficient.json"))
    lines, documents, _ = output(capsys)
    records = [line for line in lines if line["message"] == "alarm event"]
    assert [(r["alarm_state"], r["outcome"]) for r in records] == [
        ("ALARM", "applied"), ("ALARM", "duplicate"), ("INSUFFICIENT_DATA", "ignored")]
    assert records[0]["alarm_name"] and records[0]["incident_id"] == records[1]["incident_id"]
    assert records[0]["event_key"].startswith("sns#") and records[0]["request_id"]
    invocations = [line for line in lines if line["message"] == "event invocation"]
    assert len(invocations) == 3 and invocations[0]["function"] == "on_alarm_notification"
    counted = [(d["State"], d["Outcome"]) for name, d, _ in emitted(documents) if name == "AlarmEvents"]
    assert counted == [("ALARM", "applied"), ("ALARM", "duplicate"), ("INSUFFICIENT_DATA", "ignored")]


def test_a_malformed_alarm_record_is_counted_as_malformed(client, capsys):
    output(capsys)
    event = load_payload("sns_alarm_record.json")
    event["Records"].append({"Sns": {"Message": "no MessageId"}})
    client.lambda_.invoke("on_alarm_notification", event)
    _, documents, _ = output(capsys)
    counted = [(d["State"], d["Outcome"]) for name, d, _ in emitted(documents) if name == "AlarmEvents"]
    assert counted == [("ALARM", "applied"), ("UNKNOWN", "malformed")]


def test_an_alarm_event_older_than_the_last_applied_is_counted_stale(client, capsys):
    recovery = load_payload("sns_ok_record.json")  # OK at 10:42
    alarm = load_payload("sns_alarm_record.json")  # ALARM at 10:15, delivered late
    client.lambda_.invoke("on_alarm_notification", recovery)
    client.lambda_.invoke("on_alarm_notification", alarm)

    lines, documents, _ = output(capsys)
    assert [line["outcome"] for line in lines if line["message"] == "alarm event"] == ["ignored", "stale"]
    assert ("AlarmEvents", {"State": "ALARM", "Outcome": "stale"}, 1) in emitted(documents)


# --- secrets never reach the log -----------------------------------------------------------

CANARY_API_KEY = "canary-api-key-4e1f0b9d"
CANARY_WRONG_KEY = "canary-wrong-key-8a2c"
CANARY_TG_SECRET = "canary-tg-secret-73d0"
CANARY_WRONG_TG = "canary-wrong-tg-5b1e"
CANARY_BOT_TOKEN = "123456789:canary-bot-token-AAE"
CANARY_TEXT = "canary-body-text-c0ffee"


def test_no_secret_and_no_body_text_ever_reaches_the_output_even_at_debug(client, api, monkeypatch, capsys):
    """Canary secrets and a canary text fed through every route and handler (and failing
    paths), with the app's loggers at DEBUG; none of them appears in anything written."""
    monkeypatch.setenv("API_KEYS", CANARY_API_KEY)
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", CANARY_TG_SECRET)
    monkeypatch.setenv("CURSOR_SECRET", "canary-cursor-secret-11")
    logs.setup("DEBUG")
    try:
        key = {"key": CANARY_API_KEY}
        body = {"description": f"{CANARY_TEXT} {CANARY_BOT_TOKEN}", "source": "operator",
                "dedup_key": "disk-full"}  # an identifier, logged on purpose
        created = api.post("/incidents", body, headers={"Idempotency-Key": CANARY_TEXT}, **key).json_body
        api.post("/incidents", body, headers={"Idempotency-Key": CANARY_TEXT}, **key)
        api.post("/incidents", {**body, "extra": CANARY_TEXT}, **key)
        api.post("/incidents", body=f'{{"description": "{CANARY_TEXT}"', **key)
        api.get("/incidents?status=new&limit=1", **key)
        api.get(f"/incidents?cursor={CANARY_TEXT}", **key)
        api.get(f"/incidents/{created['id']}", **key)
        api.patch(f"/incidents/{created['id']}", {"status": "in_progress", "note": CANARY_TEXT}, **key)
        api.patch(f"/incidents/{created['id']}", {"status": "new", "note": CANARY_TEXT}, **key)
        api.get("/incidents", key=CANARY_WRONG_KEY)
        api.get("/incidents", headers={"Authorization": f"Bearer {CANARY_BOT_TOKEN}"}, key=None)
        for path in ("/health", "/openapi.json", "/docs"):
            api.get(path, key=None)
        for text in (f"[operator] {CANARY_TEXT}", f"#{created['id']} fixed {CANARY_TEXT}", CANARY_TEXT,
                     f"/new {CANARY_BOT_TOKEN}"):
            telegram(client, message(text, 7000 + len(text)), secret=CANARY_TG_SECRET)
        telegram(client, message(f"[operator] {CANARY_TEXT}", 7999), secret=CANARY_WRONG_TG)
        client.http.post(WEBHOOK, body=CANARY_TEXT.encode(),
                         headers={"X-Telegram-Bot-Api-Secret-Token": CANARY_TG_SECRET})
        foreign = load_payload("telegram/foreign_chat.json")
        foreign["message"]["text"] = CANARY_TEXT
        telegram(client, foreign, secret=CANARY_TG_SECRET)
        sns = load_payload("sns_alarm_record.json")
        client.lambda_.invoke("on_alarm_notification", sns)
        sns["Records"][0]["Sns"]["Message"] = CANARY_TEXT
        sns["Records"][0]["Sns"]["MessageId"] = "0c8a4e1e-message-2"
        client.lambda_.invoke("on_alarm_notification", sns)
        client.lambda_.invoke("on_alarm_state_change", load_payload("eventbridge_ok.json"))
        client.lambda_.invoke("report_open_incidents", scheduled(client))
    finally:
        logs.setup("INFO")
    lines, documents, raw = output(capsys)
    assert requests(lines) and documents
    for canary in (CANARY_API_KEY, CANARY_WRONG_KEY, CANARY_TG_SECRET, CANARY_WRONG_TG, CANARY_BOT_TOKEN,
                   CANARY_TEXT, "canary-cursor-secret-11", "canary"):
        at = raw.find(canary)
        assert at < 0, f"{canary!r} reached the output: …{raw[max(0, at - 400):at + 100]}…"


@pytest.mark.parametrize("path", ["/incidents/²", "/incidents/٣", "/incidents/-1", "/incidents/" + "9" * 40])
def test_any_path_gets_its_answer_and_one_summary_line(api, capsys, path):
    output(capsys)
    assert api.get(path).status_code in (400, 404)
    [summary] = requests(output(capsys)[0])
    assert summary["status"] in (400, 404) and "incident_id" not in summary


def test_a_lone_surrogate_still_makes_one_json_line(capsys):
    logging.getLogger("chalicelib.test").error("bad \ud800 text", extra={"note": "\udfff"})
    [line], _, _ = output(capsys)
    assert line["message"] == "bad \ud800 text"


def test_a_field_named_like_a_secret_is_redacted_and_long_text_is_cut(capsys):
    logging.getLogger("chalicelib.test").warning(
        "x", extra={"api_key": "k", "secret_token": "s", "note": "a" * 5000})
    [line], _, _ = output(capsys)
    assert line["api_key"] == line["secret_token"] == logs.REDACTED
    assert len(line["note"]) == logs.MAX_TEXT


# --- metrics -------------------------------------------------------------------------------


def test_the_metrics_of_an_incidents_life_are_valid_emf_in_the_stages_namespace(api, client, capsys):
    output(capsys)  # the test client applies the dev stage's environment: METRICS_NAMESPACE Incidents/dev
    first = api.create("Самокат #42 не в сети", "monitoring", dedup_key="scooter-42")
    api.create("Самокат #42 не в сети", "monitoring", dedup_key="scooter-42")  # absorbed
    api.patch(f"/incidents/{first['id']}", {"status": "in_progress"})
    api.patch(f"/incidents/{first['id']}", {"status": "resolved"})
    telegram(client, message("[partner] POS 7 not answering", 4242))
    telegram(client, message("[partner] POS 7 not answering", 4242))  # redelivered
    telegram(client, message("[partner] x", 4243), secret="wrong")
    api.get("/incidents/999")
    client.lambda_.invoke("report_open_incidents", scheduled(client))
    _, documents, _ = output(capsys)
    assert documents and all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Incidents/dev" for d in documents)
    values = emitted(documents)
    names = {name for name, _, _ in values}
    assert {"IncidentsOpened", "OccurrencesAbsorbed", "StatusChanges", "TimeToAcknowledge", "TimeToResolve",
            "TelegramUpdates", "RequestErrors", "OpenIncidents"} <= names
    assert ("IncidentsOpened", {"Source": "monitoring"}, 1) in values
    assert ("IncidentsOpened", {"Source": "partner"}, 1) in values
    changes = [d for name, d, _ in values if name == "StatusChanges"]
    assert changes == [{"Status": "in_progress", "Via": "api"}, {"Status": "resolved", "Via": "api"}]
    assert [d for name, d, _ in values if name == "TelegramUpdates"] == [
        {"Outcome": "created"}, {"Outcome": "duplicate"}, {"Outcome": "unauthorized"}]
    assert ("RequestErrors", {"StatusClass": "4xx"}, 1) in values
    assert ("OpenIncidents", {"Status": "new"}, 1) in values
    for name, _, value in values:
        if name in ("TimeToAcknowledge", "TimeToResolve"):
            assert isinstance(value, float) and value >= 0
    units = {m["Name"]: m["Unit"] for d in documents for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["TimeToResolve"] == "Seconds" and units["IncidentsOpened"] == "Count"


def test_no_dimension_is_an_incident_id_a_chat_id_or_a_person(api, client, capsys):
    incident = api.create()
    telegram(client, message(f"#{incident['id']} take", 5001))
    client.lambda_.invoke("on_alarm_notification", load_payload("sns_alarm_record.json"))
    _, documents, _ = output(capsys)
    allowed = {"Source", "Status", "Via", "Outcome", "State", "StatusClass"}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert {d for s in directive["Dimensions"] for d in s} <= allowed, directive


def test_store_retries_and_store_unavailable_are_counted(api, throttled, capsys):
    throttled("Query")
    output(capsys)
    assert api.get("/incidents?status=new").status_code == 503
    lines, documents, _ = output(capsys)
    values = emitted(documents)
    assert [v for name, _, v in values if name == "StoreRetries"] == [[1.0, 1.0]]  # 3 attempts: 2 retries
    assert ("StoreUnavailable", {}, 1) in values
    assert ("RequestErrors", {"StatusClass": "5xx"}, 1) in values
    assert any(line["message"] == "store unavailable" for line in lines)


def test_values_put_inside_a_batch_are_written_together_at_its_end(capsys):
    with metrics.batch():
        metrics.put("IncidentsOpened", Source="operator")
        metrics.put("IncidentsOpened", Source="operator")
        metrics.put("IncidentsOpened", Source="partner")
        assert capsys.readouterr().out == ""
    _, documents, _ = output(capsys)
    assert [(d["Source"], d["IncidentsOpened"]) for d in documents] == [("operator", [1.0, 1.0]), ("partner", 1.0)]
    for document in documents:
        validate_emf(document)


def test_a_document_that_breaks_the_emf_specification_is_refused_by_the_check():
    good = metrics.documents([("X", 1.0, "Count", (("Source", "api"),), (("Source",),))])[0]
    validate_emf(good)
    for broken in (
        {k: v for k, v in good.items() if k != "X"},                      # metric value missing
        {k: v for k, v in good.items() if k != "Source"},                 # dimension value missing
        {**good, "_aws": {**good["_aws"], "Timestamp": "now"}},           # not epoch milliseconds
        {**good, "X": "1"},                                               # value not a number
    ):
        with pytest.raises((AssertionError, jsonschema.ValidationError)):
            validate_emf(broken)


def test_secrets_read_from_ssm_never_reach_the_output_either(api, client, monkeypatch, capsys):
    import boto3

    from chalicelib import secrets

    monkeypatch.delenv("API_KEYS", raising=False)
    monkeypatch.delenv("TELEGRAM_SECRET_TOKEN", raising=False)
    monkeypatch.setenv("API_KEYS_PARAMETER", "/incidents/dev/api-keys")
    monkeypatch.setenv("TELEGRAM_SECRET_PARAMETER", "/incidents/dev/telegram-secret")
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/incidents/dev/api-keys", Value=CANARY_API_KEY, Type="SecureString")
    secrets.clear_cache()
    logs.setup("DEBUG")
    try:
        output(capsys)
        assert api.post("/incidents", {"description": "x", "source": "operator"}, key=CANARY_API_KEY).status_code == 201
        assert api.get("/incidents", key=CANARY_WRONG_KEY).status_code == 401
        telegram(client, message("[operator] x", 6001), secret=CANARY_TG_SECRET)  # no parameter: refused
        lines, _, raw = output(capsys)
    finally:
        logs.setup("INFO")
        secrets.clear_cache()
    assert any(line.get("parameter") == "/incidents/dev/telegram-secret" for line in lines)  # the name only
    for canary in (CANARY_API_KEY, CANARY_WRONG_KEY, CANARY_TG_SECRET):
        assert canary not in raw
