"""Deployable as it stands: stages, secrets from SSM, least-privilege IAM, and the packaged
CloudFormation template validated by cfn-lint — all offline."""
from __future__ import annotations

import copy
import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from cfnlint.api import lint

from chalicelib import auth, secrets
from chalicelib.store import TABLE_DEFINITION, TTL_ATTRIBUTE, create_table
from deploy import resources
from deploy.iam import granted_actions, granted_pairs, grants, recording
from tests.conftest import API_KEY, ROOT, TABLE_NAME, load_payload

STAGES = ("dev", "prod")
CHALICE = Path(sys.executable).parent / "chalice"
# Granted for the Lambda service rather than called by the code: log delivery, and the
# on-failure destination of the asynchronously invoked event handlers.
INFRASTRUCTURE_ACTIONS = {
    "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage",
}
# What Lambda's event source mapping does with the consumer's role on the intake queue.
INTAKE_EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
API = "api_handler"
EVENT_FUNCTIONS = ("on_alarm_notification", "on_alarm_state_change")
NOTIFIER_FUNCTIONS = ("on_incident_change", "remind_waiting_incidents", "daily_digest", "escalate")
GAUGE_FUNCTION = "report_open_incidents"
BACKGROUND_FUNCTIONS = (*EVENT_FUNCTIONS, *NOTIFIER_FUNCTIONS, GAUGE_FUNCTION)
INTAKE_FUNCTION = resources.INTAKE_FUNCTION
FUNCTIONS = (API, *BACKGROUND_FUNCTIONS, INTAKE_FUNCTION)
# What each function reads of the table: the table itself and the indexes.
READS = {
    API: ("", "by_status", "by_source", "by_status_source", "by_created", "by_status_team"),
    "on_alarm_notification": ("",), "on_alarm_state_change": ("",),
    "on_incident_change": ("",), "remind_waiting_incidents": ("", "by_status"),
    "escalate": ("", "by_escalation"),
    "daily_digest": ("", "by_status"), GAUGE_FUNCTION: ("by_status",),
    INTAKE_FUNCTION: ("",),
}
PARAMETER = "/incidents/dev/api-keys"
TELEGRAM_PARAMETER = "/incidents/dev/telegram-secret"
LINT_REGIONS = ["eu-west-1"]


def config() -> dict[str, Any]:
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def statements(stage: str, function: str, service: str) -> list[dict[str, Any]]:
    return [s for s in resources.load_policy(stage, function)["Statement"]
            if any(a.startswith(f"{service}:") for a in s["Action"])]


def arns(stage: str, function: str, service: str) -> set[str]:
    return {arn for s in statements(stage, function, service) for arn in s["Resource"]}


# --- stages ---------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_names_its_table_topic_secrets_chats_and_log_level(stage):
    env = resources.stage_environment(stage)
    for name in ("TABLE_NAME", "ALARM_TOPIC", "API_KEYS_PARAMETER", "TELEGRAM_SECRET_PARAMETER",
                 "CURSOR_SECRET_PARAMETER", "TELEGRAM_ALLOWED_CHATS", "LOG_LEVEL"):
        assert name in env, f"stage {stage} has no {name}"
    assert env["TABLE_NAME"].endswith(f"-{stage}")
    settings = config()["stages"][stage]
    assert settings["autogen_policy"] is False
    assert "iam_policy_file" not in settings, "one policy per function, none shared by the stage"
    for function in FUNCTIONS:
        assert resources.policy_file(stage, function).is_file()


def test_no_secret_value_is_kept_in_the_config():
    everything = [config().get("environment_variables", {})] + [
        stage.get("environment_variables", {}) for stage in config()["stages"].values()]
    for env in everything:
        assert not {"API_KEYS", "TELEGRAM_SECRET_TOKEN", "CURSOR_SECRET", "INTEGRATION_KEYS"} & set(env), env


# --- secrets --------------------------------------------------------------------------


@pytest.fixture
def ssm(dynamodb, monkeypatch):
    """moto's SSM (inside the dynamodb fixture's mock) and a Lambda-like environment:
    parameters named, no plain values."""
    secrets.clear_cache()
    monkeypatch.delenv("API_KEYS", raising=False)
    monkeypatch.delenv("TELEGRAM_SECRET_TOKEN", raising=False)
    monkeypatch.setenv("API_KEYS_PARAMETER", PARAMETER)
    monkeypatch.setenv("TELEGRAM_SECRET_PARAMETER", TELEGRAM_PARAMETER)
    client = boto3.client("ssm")
    yield client
    secrets.clear_cache()


def put(client: Any, name: str, value: str) -> None:
    client.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def test_in_lambda_the_api_keys_come_from_the_securestring_parameter(ssm, api):
    put(ssm, PARAMETER, f"{API_KEY}, other-key")
    assert api.get("/incidents").status_code == 200
    assert api.get("/incidents", key="other-key").status_code == 200
    assert api.get("/incidents", key="wrong").status_code == 401


def test_the_parameter_is_read_once_and_then_served_from_the_cache(ssm, api):
    put(ssm, PARAMETER, API_KEY)
    with recording() as calls_before:
        assert api.get("/incidents").status_code == 200
    with recording() as calls_after:
        assert api.get("/incidents").status_code == 200
    assert "ssm:GetParameter" in calls_before and "ssm:GetParameter" not in calls_after


def test_a_missing_parameter_means_no_access_not_open_access_and_not_a_500(ssm, api):
    response = api.get("/incidents")
    assert response.status_code == 401 and response.json_body["Code"] == "UnauthorizedError"
    assert api.get("/incidents", key=None).status_code == 401
    assert api.get("/health", key=None).status_code == 200


def test_an_empty_parameter_means_no_access(ssm, api):
    put(ssm, PARAMETER, " , ")
    assert api.get("/incidents", key="").status_code == 401
    assert api.get("/incidents").status_code == 401


FAILURES = [
    ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "GetParameter"),
    ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetParameter"),
    EndpointConnectionError(endpoint_url="https://ssm.eu-west-1.amazonaws.com"),
]


class FailingSsm:
    def __init__(self, failure: Exception) -> None:
        self.failure = failure
        self.calls = 0

    def get_parameter(self, **kwargs: Any) -> Any:
        self.calls += 1
        raise self.failure


def assert_secret_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.body
    assert response.headers["Retry-After"] == "1"
    assert "credentials" in response.json_body["Message"]


@pytest.mark.parametrize("failure", FAILURES)
def test_a_parameter_never_read_answers_503_with_retry_after_and_is_retried_soon(
        ssm, api, monkeypatch, failure):
    put(ssm, PARAMETER, API_KEY)
    reachable = secrets._ssm_client
    failing = FailingSsm(failure)
    monkeypatch.setattr(secrets, "_ssm_client", lambda: failing)
    assert_secret_unavailable(api.get("/incidents"))
    assert_secret_unavailable(api.get("/incidents", key="wrong"))  # not 401: nobody can tell yet
    assert failing.calls == 1  # the failure is remembered, SSM is not asked on every request
    monkeypatch.setattr(secrets, "_ssm_client", reachable)
    monkeypatch.setattr(secrets, "UNREAD_RETRY_SECONDS", 0.0)
    secrets._cache.clear()  # as if UNREAD_RETRY_SECONDS had passed
    assert api.get("/incidents").status_code == 200


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_refresh_keeps_the_last_good_value_and_logs_it(ssm, api, monkeypatch, caplog, failure):
    put(ssm, PARAMETER, API_KEY)
    assert api.get("/incidents").status_code == 200
    failing = FailingSsm(failure)
    reachable = secrets._ssm_client
    monkeypatch.setattr(secrets, "_ssm_client", lambda: failing)
    for name, cached in list(secrets._cache.items()):  # the 5 minutes are over
        secrets._cache[name] = secrets._Cached(cached.value, 0.0)
    with caplog.at_level("WARNING", logger="chalicelib.secrets"):
        assert api.get("/incidents").status_code == 200
        assert api.get("/incidents", key="wrong").status_code == 401
        assert api.get("/incidents").status_code == 200
    monkeypatch.setattr(secrets, "_ssm_client", reachable)
    assert failing.calls == 1  # retried after RETRY_SECONDS, not on every request
    assert "serving the last value read" in caplog.text
    assert API_KEY not in caplog.text


def test_a_secret_never_read_makes_the_telegram_webhook_503_so_telegram_delivers_again(
        ssm, client, monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr(secrets, "_ssm_client", lambda: FailingSsm(FAILURES[1]))
        response = client.http.post(
            "/telegram/webhook", body=json.dumps(load_payload("telegram/new_operator.json")),
            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "anything"})
    assert_secret_unavailable(response)


CURSOR_PARAMETER = "/incidents/dev/cursor-secret"


def test_in_lambda_cursors_are_signed_with_the_stages_key_from_ssm(ssm, api, monkeypatch):
    """No constant shipped in the package signs cursors: one signed with the old built-in
    secret, or with any other key, is refused."""
    import base64
    import hashlib
    import hmac as hmac_module

    put(ssm, PARAMETER, API_KEY)
    put(ssm, CURSOR_PARAMETER, "stage-cursor-key")
    monkeypatch.delenv("CURSOR_SECRET", raising=False)
    monkeypatch.setenv("CURSOR_SECRET_PARAMETER", CURSOR_PARAMETER)
    for n in range(3):
        api.create(f"incident {n}")
    page = api.get("/incidents?limit=1").json_body
    assert api.get(f"/incidents?limit=1&cursor={page['next_cursor']}").status_code == 200

    def signed(position: str, key: bytes) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(
            {"p": position, "f": {"status": None, "source": None}}, separators=(",", ":")
        ).encode()).rstrip(b"=").decode()
        mac = hmac_module.new(key, payload.encode(), hashlib.sha256).digest()[:16]
        return f"{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    position = "2026-11-23T10:15:30.123Z#00000000000000000002"
    assert api.get(f"/incidents?cursor={signed(position, b'stage-cursor-key')}").status_code == 200
    for key in (b"incident-list-cursor-v1", b"test-cursor-key", b""):
        refused = api.get(f"/incidents?cursor={signed(position, key)}")
        assert refused.status_code == 400 and "not issued" in refused.json_body["Message"]
    # Signed with the right key but not a position the service issues: refused before DynamoDB.
    with recording() as calls:
        for forged in ("x" * 1500, "2026-11-23T10:15:30.123Z#2", "incident#1", ""):
            refused = api.get(f"/incidents?cursor={signed(forged, b'stage-cursor-key')}")
            assert refused.status_code == 400, forged
    assert "dynamodb:Query" not in calls


def test_a_cursor_key_parameter_never_readable_is_503_not_a_guessable_key(ssm, api, monkeypatch):
    put(ssm, PARAMETER, API_KEY)
    monkeypatch.delenv("CURSOR_SECRET", raising=False)
    monkeypatch.setenv("CURSOR_SECRET_PARAMETER", CURSOR_PARAMETER)  # never created
    for n in range(2):
        api.create(f"incident {n}")
    assert_secret_unavailable(api.get("/incidents?limit=1"))


def test_the_telegram_secret_comes_from_its_parameter(ssm):
    assert auth.configured_telegram_secrets() == []
    secrets.clear_cache()
    put(ssm, TELEGRAM_PARAMETER, "tg-secret-from-ssm")
    assert auth.configured_telegram_secrets() == ["tg-secret-from-ssm"]


def test_each_secret_rotates_without_downtime_old_and_new_accepted_together(ssm, api, client, monkeypatch):
    """The rotations docs/security.md describes: API keys and the Telegram secret accept a list,
    the cursor key signs with the first of its list and accepts every one."""
    monkeypatch.delenv("CURSOR_SECRET", raising=False)
    monkeypatch.setenv("CURSOR_SECRET_PARAMETER", "/incidents/dev/cursor-secret")
    put(ssm, PARAMETER, "old-key")
    put(ssm, TELEGRAM_PARAMETER, "old-tg")
    put(ssm, "/incidents/dev/cursor-secret", "old-cursor-key")
    for n in range(3):
        api.post("/incidents", {"description": f"incident {n}", "source": "operator"}, key="old-key")
    old_cursor = api.get("/incidents?limit=1", key="old-key").json_body["next_cursor"]
    put(ssm, PARAMETER, "old-key,new-key")
    put(ssm, TELEGRAM_PARAMETER, "old-tg,new-tg")
    put(ssm, "/incidents/dev/cursor-secret", "new-cursor-key,old-cursor-key")
    secrets.clear_cache()  # as if the 5 minutes had passed
    for key in ("old-key", "new-key"):
        assert api.get(f"/incidents?limit=1&cursor={old_cursor}", key=key).status_code == 200
    new_cursor = api.get("/incidents?limit=1", key="new-key").json_body["next_cursor"]
    assert new_cursor != old_cursor
    for token in ("old-tg", "new-tg"):
        response = client.http.post("/telegram/webhook", body=json.dumps({"update_id": 5}), headers={
            "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": token})
        assert response.status_code == 200
    put(ssm, PARAMETER, "new-key")
    put(ssm, TELEGRAM_PARAMETER, "new-tg")
    put(ssm, "/incidents/dev/cursor-secret", "new-cursor-key")
    secrets.clear_cache()
    assert api.get("/incidents", key="old-key").status_code == 401
    assert api.get(f"/incidents?limit=1&cursor={old_cursor}", key="new-key").status_code == 400
    assert api.get(f"/incidents?limit=1&cursor={new_cursor}", key="new-key").status_code == 200
    response = client.http.post("/telegram/webhook", body=json.dumps({"update_id": 6}), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "old-tg"})
    assert response.status_code == 401


def test_no_log_line_holds_a_secret_or_a_request_body(dynamodb, api, client, monkeypatch, caplog):
    """Every route, the webhook and both alarm handlers at DEBUG: no API key, Telegram secret or
    cursor key in any log line, and no body text at INFO or above."""
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "tg-secret")
    monkeypatch.setenv("CURSOR_SECRET", "cursor-key-never-logged")
    monkeypatch.setenv("INTEGRATION_KEYS", "integration-key")
    with caplog.at_level("DEBUG"):
        exercise_the_api(api, client)
        api.post("/incidents", {"description": "body text never logged", "source": "operator",
                                "unknown": "x"})
        api.post("/incidents", body=b'{"description": "body text never logged" ', key="wrong-key-never-logged")
        for payload in ("sns_alarm_record.json", "eventbridge_ok.json"):
            client.lambda_.invoke(payload.startswith("sns") and "on_alarm_notification"
                                  or "on_alarm_state_change", load_payload(payload))
    everything = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (API_KEY, "tg-secret", "cursor-key-never-logged", "wrong-key-never-logged",
                   "integration-key"):
        assert secret not in everything, secret
    informative = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.levelno >= 20)
    assert "body text never logged" not in informative and "plain create" not in informative


def test_locally_a_plain_variable_wins_and_no_ssm_client_is_made(monkeypatch):
    secrets.clear_cache()
    monkeypatch.setenv("API_KEYS_PARAMETER", PARAMETER)
    monkeypatch.setenv("API_KEYS", "local-key")
    assert [key.secret for key in auth.configured_api_keys()] == ["local-key"]
    assert secrets._ssm_client.cache_info().currsize == 0


# --- the resources template -----------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_template_table_is_the_table_the_code_and_tests_use(stage):
    table = resources.build(stage)["Resources"][resources.TABLE]
    properties = dict(table["Properties"])
    assert properties.pop("TableName") == resources.stage_environment(stage)["TABLE_NAME"]
    assert properties.pop("TimeToLiveSpecification") == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    protected = {
        "PointInTimeRecoverySpecification": properties.pop("PointInTimeRecoverySpecification", None),
        "DeletionProtectionEnabled": properties.pop("DeletionProtectionEnabled", None),
        "DeletionPolicy": table["DeletionPolicy"],
    }
    stream = properties.pop("StreamSpecification")
    assert {**stream, "StreamEnabled": True} == TABLE_DEFINITION["StreamSpecification"]
    assert properties == {k: v for k, v in TABLE_DEFINITION.items() if k != "StreamSpecification"}
    if stage == "prod":
        assert protected == {"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                             "DeletionProtectionEnabled": True, "DeletionPolicy": "Retain"}
    else:
        assert protected == {"PointInTimeRecoverySpecification": None,
                             "DeletionProtectionEnabled": None, "DeletionPolicy": "Delete"}


@pytest.mark.parametrize("stage", STAGES)
def test_the_topic_and_the_failed_events_queue_are_the_ones_config_and_policy_name(stage):
    built = resources.build(stage)["Resources"]
    assert built[resources.ALARM_TOPIC]["Properties"]["TopicName"] == \
        resources.stage_environment(stage)["ALARM_TOPIC"]
    queue = built[resources.FAILED_EVENTS]["Properties"]["QueueName"]
    for function in EVENT_FUNCTIONS:
        assert arns(stage, function, "sqs") == {f"arn:aws:sqs:*:*:{queue}"}


# --- the IAM policies: one role per function ---------------------------------------------


def test_every_function_of_the_app_has_its_own_policy_file():
    import app

    names = {API, *(source.name for source in app.app.event_sources),
             *(function.name for function in app.app.pure_lambda_functions)}
    for stage in STAGES:
        assert set(resources.function_names(stage)) == names == set(FUNCTIONS)
        files = {resources.policy_file(stage, function) for function in FUNCTIONS}
        assert len(files) == len(FUNCTIONS)


@pytest.mark.parametrize("stage", STAGES)
def test_each_function_reads_only_the_secrets_it_needs(stage):
    env = resources.stage_environment(stage)
    assert arns(stage, API, "ssm") == {
        f"arn:aws:ssm:*:*:parameter{env[name]}"
        for name in ("API_KEYS_PARAMETER", "TELEGRAM_SECRET_PARAMETER", "CURSOR_SECRET_PARAMETER",
                     "INTEGRATION_KEYS_PARAMETER", "TELEGRAM_BOT_TOKEN_PARAMETER")}  # the token: a press's edit
    for function in NOTIFIER_FUNCTIONS:  # the bot token, and only it
        assert arns(stage, function, "ssm") == {f"arn:aws:ssm:*:*:parameter{env['TELEGRAM_BOT_TOKEN_PARAMETER']}"}
    for function in (*EVENT_FUNCTIONS, GAUGE_FUNCTION, INTAKE_FUNCTION):
        assert statements(stage, function, "ssm") == [], f"{function} may read a secret"


@pytest.mark.parametrize("stage", STAGES)
def test_only_the_background_functions_may_write_their_failure_queue(stage):
    queue = f"arn:aws:sqs:*:*:{resources.failed_events_queue_name(stage)}"
    for function in BACKGROUND_FUNCTIONS:
        assert arns(stage, function, "sqs") == {queue}
    # The intake queue parks what its consumer keeps failing on by itself (its redrive policy).
    intake = f"arn:aws:sqs:*:*:{resources.stage_environment(stage)['INTAKE_QUEUE']}"
    assert intake.endswith(".fifo")
    assert arns(stage, API, "sqs") == arns(stage, INTAKE_FUNCTION, "sqs") == {intake}


@pytest.mark.parametrize("stage", STAGES)
def test_the_intake_queue_and_bucket_are_the_ones_the_policies_name(stage):
    built = resources.build(stage)["Resources"]
    queue = built[resources.INTAKE_QUEUE]["Properties"]
    assert queue["QueueName"] == resources.stage_environment(stage)["INTAKE_QUEUE"]
    failed = built[resources.INTAKE_FAILED]["Properties"]
    assert queue["FifoQueue"] and failed["FifoQueue"] and failed["QueueName"].endswith("-failed.fifo")
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [resources.INTAKE_FAILED, "Arn"]}
    watched = [a["Properties"]["Dimensions"][0]["Value"] for a in built.values()
               if a.get("Type") == "AWS::CloudWatch::Alarm" and a["Properties"].get("Namespace") == "AWS/SQS"]
    assert {"Fn::GetAtt": [resources.INTAKE_FAILED, "QueueName"]} in watched
    timeout = config()["stages"][stage]["lambda_functions"][INTAKE_FUNCTION]["lambda_timeout"]
    assert queue["VisibilityTimeout"] >= timeout
    bucket = built[resources.INTAKE_BUCKET]["Properties"]
    name = queue["QueueName"].removesuffix(".fifo")
    assert bucket["BucketName"] == {"Fn::Sub": f"{name}-${{AWS::AccountId}}"}
    assert arns(stage, API, "s3") == arns(stage, INTAKE_FUNCTION, "s3") == {f"arn:aws:s3:::{name}-*/intake/*"}
    scoped = resources.account_scoped(resources.load_policy(stage, API))
    assert {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{name}-${{AWS::AccountId}}/intake/*"} in [
        arn for statement in scoped["Statement"] for arn in statement["Resource"]]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_may_write_only_its_own_log_group(stage, function):
    name = resources.lambda_function_name(stage, function)
    assert arns(stage, function, "logs") == {f"arn:aws:logs:*:*:log-group:/aws/lambda/{name}:*"}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_policy_reaches_only_the_stage_table_and_the_indexes_its_function_reads(stage, function):
    table = f"arn:aws:dynamodb:*:*:table/{resources.stage_environment(stage)['TABLE_NAME']}"
    indexes = {f"{table}/index/{index['IndexName']}" for index in TABLE_DEFINITION["GlobalSecondaryIndexes"]}
    assert arns(stage, function, "dynamodb") == {f"{table}/index/{index}" if index else table
                                                 for index in READS[function]}
    assert arns(stage, function, "dynamodb") <= {table} | indexes
    for statement in resources.load_policy(stage, function)["Statement"]:
        assert all("*" not in action for action in statement["Action"]), statement
        if any(arn.endswith("/index/*") or arn.endswith(":*:*:*") for arn in statement["Resource"]):
            raise AssertionError(f"wildcard resource in {statement}")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_dev_and_prod_grant_the_same_actions(function):
    assert granted_actions(resources.load_policy("dev", function)) == \
        granted_actions(resources.load_policy("prod", function))


def exercise_the_api(api: Any, client: Any) -> None:
    """Every route, every list filter (each index), a cursor, the webhook: every call the API makes."""
    plain = api.create("plain create")
    api.create("second", source="partner")
    deduplicated = {"description": "deduplicated", "source": "operator", "dedup_key": "disk-full"}
    assert api.post("/incidents", deduplicated, headers={"Idempotency-Key": "one"}).status_code == 201
    assert api.post("/incidents", deduplicated).status_code == 200
    replayed = api.post("/incidents", deduplicated, headers={"Idempotency-Key": "one"})
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    for query in ("status=new", "source=partner", "status=new&source=operator", "team=ops", ""):
        page = api.get(f"/incidents?limit=1&{query}")
        assert page.status_code == 200 and page.json_body["next_cursor"] is not None or query
    assert api.get(f"/incidents/{plain['id']}").status_code == 200
    assert api.get(f"/incidents/{plain['id']}/history").status_code == 200
    assert api.patch(f"/incidents/{plain['id']}", {"status": "in_progress"},
                     headers={"Idempotency-Key": "two"}).status_code == 200
    assert api.get("/health", key=None).status_code == 200
    response = client.http.post(
        "/telegram/webhook", body=json.dumps(load_payload("telegram/new_operator.json")),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    assert response.status_code == 200 and response.json_body
    # A button press edits its message with the bot token (a fake Bot API without that message
    # refuses the edit, or no token is configured: the webhook survives either).
    press = load_payload("telegram/press_take.json")
    press["callback_query"]["data"] = response.json_body["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    from tests.fake_bot_api import FakeBotApi

    with FakeBotApi() as bot, mock.patch.dict(os.environ, {"TELEGRAM_API_URL": bot.url}):
        pressed = client.http.post("/telegram/webhook", body=json.dumps(press), headers={
            "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    assert pressed.json_body["method"] == "answerCallbackQuery"
    unmute = load_payload("telegram/new_operator.json")
    unmute["update_id"], unmute["message"]["text"] = 5, "/unmute"
    response = client.http.post("/telegram/webhook", body=json.dumps(unmute), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
    assert "back on" in response.json_body["text"]
    assert api.post(f"/incidents/{plain['id']}/notes", {"note": "n"}).status_code == 201
    assert api.get("/stats").status_code == 200
    exercise_the_oncall_routes(api)
    trigger = {"routing_key": "integration-key", "event_action": "trigger", "dedup_key": "db-down",
               "payload": {"summary": "disk full", "source": "db-1", "severity": "error"}}
    assert api.post("/v2/enqueue", trigger, key=None).status_code == 202
    storm = load_payload("integrations/alertmanager_firing.json")
    template = storm["alerts"][0]
    storm["alerts"] = [{**template, "fingerprint": f"{n:016x}", "annotations": {"summary": "x" * 900}}
                       for n in range(300)]  # over a message: the body goes to S3
    assert api.post("/alertmanager", storm).status_code == 200
    for action in ("acknowledge", "resolve"):
        assert api.post("/v2/enqueue", {"routing_key": "integration-key", "event_action": action,
                                        "dedup_key": "db-down"}, key=None).status_code == 202


EVENTS = {
    "on_alarm_notification": ("sns_alarm_record.json", "sns_ok_record.json"),
    "on_alarm_state_change": ("eventbridge_alarm.json", "eventbridge_ok.json"),
}


def test_each_function_is_granted_exactly_the_calls_it_makes(dynamodb, api, client, monkeypatch):
    """Records every AWS call app.py and chalicelib/ make, with its resource, separately for the
    API and for each event handler: each function's policy must allow every one of its calls
    and nothing more (but for log delivery and the failure queue, which Lambda uses for it).
    (The conftest fixture app_aws_actions also checks every call of the whole run is granted.)"""
    secrets.clear_cache()
    for name in ("API_KEYS", "TELEGRAM_SECRET_TOKEN", "CURSOR_SECRET"):
        monkeypatch.delenv(name, raising=False)
    env = resources.stage_environment("dev")
    for name in ("INTEGRATION_KEYS", "TELEGRAM_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("API_KEYS_PARAMETER", "TELEGRAM_SECRET_PARAMETER", "CURSOR_SECRET_PARAMETER",
                 "INTEGRATION_KEYS_PARAMETER", "TELEGRAM_BOT_TOKEN_PARAMETER"):
        monkeypatch.setenv(name, env[name])
    ssm = boto3.client("ssm")
    put(ssm, env["API_KEYS_PARAMETER"], API_KEY)
    put(ssm, env["TELEGRAM_SECRET_PARAMETER"], "tg-secret")
    put(ssm, env["CURSOR_SECRET_PARAMETER"], "cursor-key")
    put(ssm, env["INTEGRATION_KEYS_PARAMETER"], "integration-key")
    put(ssm, env["TELEGRAM_BOT_TOKEN_PARAMETER"], "123:bot-token")
    called: dict[str, set[tuple[str, str]]] = {}
    with recording(not_counted=(create_table,), resources=True) as called[API]:
        exercise_the_api(api, client)
    for function, payloads in EVENTS.items():
        secrets.clear_cache()
        with recording(resources=True) as called[function]:
            for payload in payloads:
                # Each function its own alarm, so that neither finds the other's events newer.
                event = json.loads(json.dumps(load_payload(payload)).replace(
                    "scooter-42-offline", f"scooter-42-offline-{function}"))
                client.lambda_.invoke(function, event)
    exercise_the_background_functions(client, ssm, env, called, monkeypatch)
    exercise_the_intake_consumer(client, called)
    secrets.clear_cache()
    for function in FUNCTIONS:
        policy = resources.load_policy("dev", function)
        refused = sorted(call for call in called[function] if not grants(policy, *call))
        assert not refused, f"{function} calls what its policy does not grant: {refused}"
        unused = sorted(
            (action, pattern) for action, pattern in granted_pairs(policy)
            if action not in INFRASTRUCTURE_ACTIONS
            and not (function == INTAKE_FUNCTION and action in INTAKE_EVENT_SOURCE_ACTIONS)
            and not any(a == action and fnmatch.fnmatchcase(r, pattern) for a, r in called[function]))
        assert not unused, f"{function}'s policy grants what it never uses: {unused}"
    assert not any(action.startswith("ssm:") for f in EVENT_FUNCTIONS for action, _ in called[f])


def exercise_the_intake_consumer(client: Any, called: dict[str, Any]) -> None:
    """What the integration routes handed off, applied by the consumer as Lambda hands it
    over (the event source mapping receives and deletes; the function does neither)."""
    sqs = boto3.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=os.environ["INTAKE_QUEUE_URL"],
                                          MaxNumberOfMessages=10).get("Messages", []):
        bodies += [message["Body"] for message in messages]
    assert len(bodies) == 4
    with recording(resources=True) as called[INTAKE_FUNCTION]:
        for body in bodies:
            client.lambda_.invoke(INTAKE_FUNCTION, client.events.generate_sqs_event(
                message_bodies=[body], queue_name=resources.stage_environment("dev")["INTAKE_QUEUE"]))


def exercise_the_oncall_routes(api: Any) -> None:
    team = {"chat_id": -100123, "time_zone": "UTC", "escalation_rules": [
        {"escalation_delay_in_minutes": 5, "targets": ["on_call"]}],
        "rotation": {"members": ["ivan_ops"], "start": "2026-12-01T10:00", "shift": "daily"}}
    assert api.request("PUT", "/teams/ops", json_body=team).status_code == 201
    assert api.get("/teams").status_code == 200
    override = api.post("/teams/ops/overrides", {"user": "oleg_k", "start": "2030-01-01T00:00:00Z",
                                                 "end": "2030-01-02T00:00:00Z"}).json_body
    assert api.get("/teams/ops/oncall").status_code == 200
    assert api.request("DELETE", f"/teams/ops/overrides/{override['id']}").status_code == 204
    assert api.request("DELETE", "/teams/ops").status_code == 204


def exercise_the_background_functions(client: Any, ssm: Any, env: dict[str, str],
                                      called: dict[str, Any], monkeypatch: Any) -> None:
    """The notifier's three functions against a fake Bot API that refuses each first message
    (so a claim is given back), and the open-incidents gauge."""
    from tests.fake_bot_api import FakeBotApi, server_error

    from datetime import datetime, timedelta, timezone

    from chalicelib import services
    from chalicelib.oncall import people, teams
    from chalicelib.store import default_store
    from scripts.local_stream import scheduled_event

    monkeypatch.setenv("REMIND_NEW_AFTER_MIN", "0")  # every open `new` incident is due
    schedule = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    # An incident of a team, whose on-call person has a private chat with the bot: paged at
    # open (the stream handler), reminded in the team's chat, escalated an hour later.
    now = datetime.now(timezone.utc)
    teams.put_team(default_store(), "esc", {
        "chat_id": -100123, "time_zone": "UTC", "rotation": {
            "members": ["ivan_ops"], "start": "2026-12-01T10:00", "shift": "daily"},
        "escalation_rules": [{"escalation_delay_in_minutes": 5, "targets": ["on_call"]}] * 2}, now)
    people.link(default_store(), "ivan_ops", 111, 111, now)
    services.open_incident(default_store(), description="paged", source="operator", by="api", team="esc")
    later = scheduled_event((now + timedelta(hours=1)).isoformat(timespec="seconds").replace("+00:00", "Z"))
    records = stream_records(boto3.client("dynamodb"), monkeypatch)
    with FakeBotApi() as bot:
        monkeypatch.setenv("TELEGRAM_API_URL", bot.url)
        for function, event in (("on_incident_change", {"Records": records}),
                                ("remind_waiting_incidents", schedule), ("daily_digest", schedule),
                                ("escalate", later)):
            secrets.clear_cache()
            bot.answers = [server_error()]
            with recording(resources=True) as called[function]:
                with pytest.raises(Exception):
                    client.lambda_.invoke(function, event)  # refused: Lambda would retry
                client.lambda_.invoke(function, event)
        assert bot.messages, "the notifier sent nothing"
    secrets.clear_cache()
    with recording(resources=True) as called[GAUGE_FUNCTION]:
        client.lambda_.invoke(GAUGE_FUNCTION, schedule)


def stream_records(dynamodb: Any, monkeypatch: Any) -> list[dict[str, Any]]:
    from scripts.local_stream import StreamReader

    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    return StreamReader(dynamodb, boto3.client("dynamodbstreams"), TABLE_NAME).poll()


# --- chalice package + cfn-lint -------------------------------------------------------


def package(stage: str, out: Path) -> dict[str, Any]:
    merge = out / "resources.json"
    subprocess.run([sys.executable, str(ROOT / "deploy" / "resources.py"), "--stage", stage,
                    "--output", str(merge)], cwd=ROOT, check=True, capture_output=True, text=True)
    result = subprocess.run(
        [str(CHALICE), "package", "--stage", stage, "--merge-template", str(merge), str(out / "package")],
        cwd=ROOT, env={**os.environ, "AWS_DEFAULT_REGION": "eu-west-1"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads((out / "package" / "sam.json").read_text())


def lint_errors(template: dict[str, Any]) -> list[str]:
    return [str(match) for match in lint(json.dumps(template), regions=LINT_REGIONS)]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return {stage: package(stage, tmp_path_factory.mktemp(stage)) for stage in STAGES}


@pytest.mark.parametrize("stage", STAGES)
def test_the_packaged_stack_passes_cfn_lint(packaged, stage):
    assert lint_errors(packaged[stage]) == []


def test_a_broken_template_fails_cfn_lint(packaged):
    broken = copy.deepcopy(packaged["prod"])
    table = broken["Resources"][resources.TABLE]["Properties"]
    table["KeySchema"][0]["KeyType"] = "PRIMARY"
    broken["Resources"]["OnAlarmNotification"]["Properties"]["EventInvokeConfig"]["DestinationConfig"][
        "OnFailure"]["Destination"] = {"Fn::GetAtt": ["NoSuchQueue", "Arn"]}
    errors = lint_errors(broken)
    assert any("PRIMARY" in error for error in errors), errors
    assert any("NoSuchQueue" in error for error in errors), errors


def test_the_packaged_stack_merges_resources_onto_what_chalice_generates(packaged):
    template = packaged["prod"]["Resources"]
    functions = {name: r for name, r in template.items() if r["Type"] == "AWS::Serverless::Function"}
    events = {name: r for name, r in functions.items() if r["Properties"].get("Events")}
    assert events, "no event handlers packaged"
    failed_events = {"Fn::GetAtt": [resources.FAILED_EVENTS, "Arn"]}
    for name, function in events.items():
        [(kind, event)] = [(e["Type"], e) for e in function["Properties"]["Events"].values()]
        if kind == "DynamoDB":  # a stream consumer: its failures are parked by the event source
            assert event["Properties"]["Stream"] == {"Fn::GetAtt": [resources.TABLE, "StreamArn"]}
            assert event["Properties"]["DestinationConfig"] == {"OnFailure": {"Destination": failed_events}}
            continue
        if kind == "SQS":  # the intake consumer: the queue parks what keeps failing (its redrive)
            assert event["Properties"]["Queue"] == {"Fn::Sub": f"${{{resources.INTAKE_QUEUE}.Arn}}"}
            assert template[resources.INTAKE_QUEUE]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == \
                {"Fn::GetAtt": [resources.INTAKE_FAILED, "Arn"]}
            continue
        destination = function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert destination == {"Type": "SQS", "Destination": failed_events}
    topics = [e["Properties"]["Topic"] for f in events.values()
              for e in f["Properties"]["Events"].values() if e["Type"] == "SNS"]
    assert topics == [{"Fn::Sub": "${AlarmTopic}"}]
    for logical_id in ("APIHandler", "ApplyAlerts"):
        variables = functions[logical_id]["Properties"]["Environment"]["Variables"]
        assert (variables["INTAKE_QUEUE_URL"], variables["INTAKE_BUCKET"]) == (
            {"Ref": resources.INTAKE_QUEUE}, {"Ref": resources.INTAKE_BUCKET})
    for function in functions.values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["TABLE_NAME"] == "incidents-prod"
        assert variables["API_KEYS_PARAMETER"] == "/incidents/prod/api-keys"
        assert "API_KEYS" not in variables and "TELEGRAM_SECRET_TOKEN" not in variables
    roles = set()
    for logical_id, function in functions.items():
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        roles.add(role)
        [policy] = template[role]["Properties"]["Policies"]
        name = function["Properties"]["FunctionName"]
        [source] = [f for f in FUNCTIONS if resources.lambda_function_name("prod", f) == name]
        assert policy["PolicyDocument"] == resources.account_scoped(resources.load_policy("prod", source))
        assert "*:*" not in json.dumps(policy), "policy ARNs not scoped to the stack's account"
        assert f"log-group:/aws/lambda/{name}:*" in json.dumps(policy)
    assert len(roles) == len(functions) == len(FUNCTIONS), "one role per function"
    throttling = template["RestAPI"]["Properties"]["MethodSettings"]
    assert throttling == [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 50,
                           "ThrottlingBurstLimit": 100}]


def test_no_route_needs_an_api_gateway_key_and_no_cors_or_json_binary_is_configured(packaged):
    swagger = packaged["prod"]["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert "post" in swagger["paths"]["/telegram/webhook"]
    for path, methods in swagger["paths"].items():
        assert "options" not in methods, f"CORS preflight on {path}"
        for method, operation in methods.items():
            assert "security" not in operation, f"{method.upper()} {path} requires an API Gateway key"
    assert "securityDefinitions" not in swagger
    assert not any(t.startswith("application/json") for t in swagger["x-amazon-apigateway-binary-media-types"])
