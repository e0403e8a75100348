"""Deployable as it stands: stages, secrets from SSM, least-privilege IAM, and the packaged
CloudFormation template validated by cfn-lint — all offline."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from cfnlint.api import lint

from chalicelib import auth, secrets
from chalicelib.store import STATUS_INDEX, TABLE_DEFINITION, TTL_ATTRIBUTE, create_table
from deploy import resources
from deploy.iam import granted_actions, recording
from tests.conftest import API_KEY, ROOT, TABLE_NAME, load_payload

STAGES = ("dev", "prod")
CHALICE = Path(sys.executable).parent / "chalice"
# Granted for the Lambda service rather than called by the code: log delivery, and the
# on-failure destination of the asynchronously invoked event handlers.
INFRASTRUCTURE_ACTIONS = {
    "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage",
}
PARAMETER = "/incidents/dev/api-keys"
TELEGRAM_PARAMETER = "/incidents/dev/telegram-secret"
LINT_REGIONS = ["eu-west-1"]


def config() -> dict[str, Any]:
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def statements(stage: str, service: str) -> list[dict[str, Any]]:
    return [s for s in resources.load_policy(stage)["Statement"]
            if any(a.startswith(f"{service}:") for a in s["Action"])]


def arns(stage: str, service: str) -> set[str]:
    return {arn for s in statements(stage, service) for arn in s["Resource"]}


# --- stages ---------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_names_its_table_topic_secrets_chats_and_log_level(stage):
    env = resources.stage_environment(stage)
    for name in ("TABLE_NAME", "ALARM_TOPIC", "API_KEYS_PARAMETER", "TELEGRAM_SECRET_PARAMETER",
                 "TELEGRAM_ALLOWED_CHATS", "LOG_LEVEL"):
        assert name in env, f"stage {stage} has no {name}"
    assert env["TABLE_NAME"].endswith(f"-{stage}")
    settings = config()["stages"][stage]
    assert settings["autogen_policy"] is False
    assert (ROOT / ".chalice" / settings["iam_policy_file"]).is_file()


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


@pytest.mark.parametrize("failure", [
    ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "GetParameter"),
    EndpointConnectionError(endpoint_url="https://ssm.eu-west-1.amazonaws.com"),
])
def test_an_unreadable_parameter_means_no_access_and_is_retried_later(ssm, api, monkeypatch, failure):
    put(ssm, PARAMETER, API_KEY)

    class Failing:
        def get_parameter(self, **kwargs: Any) -> Any:
            raise failure

    reachable = secrets._ssm_client
    monkeypatch.setattr(secrets, "_ssm_client", lambda: Failing())
    assert api.get("/incidents").status_code == 401
    monkeypatch.setattr(secrets, "_ssm_client", reachable)
    monkeypatch.setattr(secrets, "RETRY_SECONDS", 0.0)
    secrets._cache.clear()  # as if RETRY_SECONDS had passed
    assert api.get("/incidents").status_code == 200


def test_the_telegram_secret_comes_from_its_parameter(ssm):
    assert auth.configured_telegram_secret() is None
    secrets.clear_cache()
    put(ssm, TELEGRAM_PARAMETER, "tg-secret-from-ssm")
    assert auth.configured_telegram_secret() == "tg-secret-from-ssm"


def test_locally_a_plain_variable_wins_and_no_ssm_client_is_made(monkeypatch):
    secrets.clear_cache()
    monkeypatch.setenv("API_KEYS_PARAMETER", PARAMETER)
    monkeypatch.setenv("API_KEYS", "local-key")
    assert auth.configured_api_keys() == ["local-key"]
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
    assert arns(stage, "sqs") == {f"arn:aws:sqs:*:*:{queue}"}


# --- the IAM policy -------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_policy_reaches_only_the_stage_table_its_indexes_and_its_parameters(stage):
    env = resources.stage_environment(stage)
    table = f"arn:aws:dynamodb:*:*:table/{env['TABLE_NAME']}"
    indexes = {f"{table}/index/{index['IndexName']}" for index in TABLE_DEFINITION["GlobalSecondaryIndexes"]}
    assert arns(stage, "dynamodb") == {table} | indexes
    for statement in statements(stage, "dynamodb"):
        if set(statement["Resource"]) & indexes:
            assert statement["Action"] == ["dynamodb:Query"], statement  # indexes are only read
    assert arns(stage, "ssm") == {
        f"arn:aws:ssm:*:*:parameter{env['API_KEYS_PARAMETER']}",
        f"arn:aws:ssm:*:*:parameter{env['TELEGRAM_SECRET_PARAMETER']}",
        f"arn:aws:ssm:*:*:parameter{env['TELEGRAM_BOT_TOKEN_PARAMETER']}",
        f"arn:aws:ssm:*:*:parameter{env['INTEGRATION_KEYS_PARAMETER']}",
    }
    for statement in resources.load_policy(stage)["Statement"]:
        assert all("*" not in action for action in statement["Action"]), statement


def test_dev_and_prod_grant_the_same_actions():
    assert granted_actions(resources.load_policy("dev")) == granted_actions(resources.load_policy("prod"))


def test_the_policy_grants_exactly_the_calls_the_code_makes(dynamodb, api, client, monkeypatch):
    """Every route, the alarm handlers and the secrets read from SSM, while recording which
    AWS calls app.py and chalicelib/ make; the policy must grant those and nothing more.
    (The conftest fixture app_aws_actions also checks every call of the whole run is granted.)"""
    secrets.clear_cache()
    monkeypatch.delenv("API_KEYS", raising=False)
    monkeypatch.delenv("TELEGRAM_SECRET_TOKEN", raising=False)
    monkeypatch.setenv("API_KEYS_PARAMETER", PARAMETER)
    monkeypatch.setenv("TELEGRAM_SECRET_PARAMETER", TELEGRAM_PARAMETER)
    ssm = boto3.client("ssm")
    put(ssm, PARAMETER, API_KEY)
    put(ssm, TELEGRAM_PARAMETER, "tg-secret")
    with recording(not_counted=(create_table,)) as called:
        plain = api.create("plain create")
        deduplicated = {"description": "deduplicated", "source": "operator", "dedup_key": "disk-full"}
        assert api.post("/incidents", deduplicated, headers={"Idempotency-Key": "one"}).status_code == 201
        assert api.post("/incidents", deduplicated).status_code == 200
        replayed = api.post("/incidents", deduplicated, headers={"Idempotency-Key": "one"})
        assert replayed.headers.get("Idempotent-Replayed") == "true"
        assert api.get("/incidents?status=new").status_code == 200
        assert api.get(f"/incidents/{plain['id']}").status_code == 200
        assert api.patch(f"/incidents/{plain['id']}", {"status": "in_progress"},
                         headers={"Idempotency-Key": "two"}).status_code == 200
        assert api.get("/health", key=None).status_code == 200
        client.lambda_.invoke("on_alarm_notification", load_payload("sns_alarm_record.json"))
        client.lambda_.invoke("on_alarm_state_change", load_payload("eventbridge_ok.json"))
        client.http.post("/telegram/webhook", body=json.dumps(load_payload("telegram/new_operator.json")),
                         headers={"Content-Type": "application/json",
                                  "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
        unmute = {**load_payload("telegram/new_operator.json"), "update_id": 5}
        unmute["message"] = {**unmute["message"], "text": "/unmute"}
        client.http.post("/telegram/webhook", body=json.dumps(unmute),
                         headers={"Content-Type": "application/json",
                                  "X-Telegram-Bot-Api-Secret-Token": "tg-secret"})
        client.lambda_.invoke("on_incident_change", {"Records": stream_records(dynamodb, monkeypatch)})
        schedule = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
        client.lambda_.invoke("remind_waiting_incidents", schedule)
        client.lambda_.invoke("daily_digest", schedule)
    secrets.clear_cache()
    granted = granted_actions(resources.load_policy("prod")) - INFRASTRUCTURE_ACTIONS
    assert called == granted, (
        f"called but not granted: {sorted(called - granted)}; granted but never called: {sorted(granted - called)}")


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
        destination = function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert destination == {"Type": "SQS", "Destination": failed_events}
    topics = [e["Properties"]["Topic"] for f in events.values()
              for e in f["Properties"]["Events"].values() if e["Type"] == "SNS"]
    assert topics == [{"Fn::Sub": "${AlarmTopic}"}]
    for function in functions.values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["TABLE_NAME"] == "incidents-prod"
        assert variables["API_KEYS_PARAMETER"] == "/incidents/prod/api-keys"
        assert "API_KEYS" not in variables and "TELEGRAM_SECRET_TOKEN" not in variables
        role = template[function["Properties"]["Role"]["Fn::GetAtt"][0]]
        [policy] = role["Properties"]["Policies"]
        assert granted_actions(policy["PolicyDocument"]) == granted_actions(resources.load_policy("prod"))
        assert "*:*" not in json.dumps(policy), "policy ARNs not scoped to the stack's account"
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
