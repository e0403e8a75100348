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
from tests.conftest import API_KEY, ROOT, load_payload

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
                 "CURSOR_SECRET_PARAMETER", "TELEGRAM_ALLOWED_CHATS", "LOG_LEVEL"):
        assert name in env, f"stage {stage} has no {name}"
    assert env["TABLE_NAME"].endswith(f"-{stage}")
    settings = config()["stages"][stage]
    assert settings["autogen_policy"] is False
    assert (ROOT / ".chalice" / settings["iam_policy_file"]).is_file()


def test_no_secret_value_is_kept_in_the_config():
    everything = [config().get("environment_variables", {})] + [
        stage.get("environment_variables", {}) for stage in config()["stages"].values()]
    for env in everything:
        assert not {"API_KEYS", "TELEGRAM_SECRET_TOKEN", "CURSOR_SECRET"} & set(env), env


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
    assert properties == TABLE_DEFINITION
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
def test_the_policy_reaches_only_the_stage_table_its_index_and_its_parameters(stage):
    env = resources.stage_environment(stage)
    table = f"arn:aws:dynamodb:*:*:table/{env['TABLE_NAME']}"
    assert arns(stage, "dynamodb") == {table, f"{table}/index/{STATUS_INDEX}"}
    index_only = [s for s in statements(stage, "dynamodb") if "dynamodb:Query" in s["Action"]]
    assert [s["Resource"] for s in index_only] == [[f"{table}/index/{STATUS_INDEX}"]]
    assert arns(stage, "ssm") == {
        f"arn:aws:ssm:*:*:parameter{env['API_KEYS_PARAMETER']}",
        f"arn:aws:ssm:*:*:parameter{env['TELEGRAM_SECRET_PARAMETER']}",
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
    secrets.clear_cache()
    granted = granted_actions(resources.load_policy("prod")) - INFRASTRUCTURE_ACTIONS
    assert called == granted, (
        f"called but not granted: {sorted(called - granted)}; granted but never called: {sorted(granted - called)}")


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
    for name, function in events.items():
        destination = function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert destination == {"Type": "SQS", "Destination": {"Fn::GetAtt": [resources.FAILED_EVENTS, "Arn"]}}
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
