"""The OpenAPI document: valid OpenAPI 3.1, complete, one source for limits, and proven against
the running service by an independent fuzzer (Schemathesis, over HTTP against the local run)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from app import app
from chalicelib import incidents, payloads
from openapi.__main__ import main as openapi_main
from openapi.document import INCIDENT_ID_PATTERN, build_document
from local_run import local_service

FUZZ_API_KEY = "schemathesis-key"
FUZZ_TELEGRAM_SECRET = "schemathesis-telegram-secret"
SCHEMATHESIS_CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
# Bounded so the whole run stays around a minute on 2 cores; raise it locally to dig deeper.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261123")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def _documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items()
            for method in item if method != "parameters"}


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_of_the_app_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    routes = {(re.sub(r"\{[^}]+\}", "{id}", path), method)
              for path, methods in app.routes.items() for method in methods}
    documented = {(re.sub(r"\{[^}]+\}", "{id}", path), method)
                  for path, method in _documented_operations(document)}
    assert documented == routes


def test_limits_and_enums_come_from_the_code(document: dict[str, Any]) -> None:
    new = _schema(document, "NewIncident")["properties"]
    change = _schema(document, "StatusChange")["properties"]
    params = document["components"]["parameters"]
    assert new["description"]["maxLength"] == incidents.MAX_DESCRIPTION
    assert new["dedup_key"]["maxLength"] == incidents.MAX_DEDUP_KEY
    assert change["note"]["maxLength"] == incidents.MAX_NOTE
    assert params["Limit"]["schema"]["maximum"] == payloads.MAX_LIMIT
    assert params["Limit"]["schema"]["default"] == payloads.DEFAULT_LIMIT
    assert params["IdempotencyKey"]["schema"]["maxLength"] == payloads.MAX_IDEMPOTENCY_KEY
    assert _schema(document, "Status")["enum"] == [s.value for s in incidents.Status]
    assert _schema(document, "Source")["enum"] == [s.value for s in incidents.Source]


def test_request_bodies_reject_unknown_fields(document: dict[str, Any]) -> None:
    for name in ("NewIncident", "StatusChange"):
        assert _schema(document, name)["additionalProperties"] is False


@pytest.mark.parametrize("text", ["1", "42", "10", "9" * 18])
def test_id_pattern_accepts_what_the_app_accepts(text: str) -> None:
    assert re.search(INCIDENT_ID_PATTERN, text)
    assert incidents.parse_incident_id(text) >= 1


@pytest.mark.parametrize("text", ["0", "000", "0042", "01", "+1", "1e3", "-1", "1.5", "abc", "1" * 19, "٣", ""])
def test_id_pattern_refuses_what_the_app_refuses(text: str) -> None:
    assert not re.search(INCIDENT_ID_PATTERN, text)
    with pytest.raises(incidents.InvalidInput):
        incidents.parse_incident_id(text)


def test_only_health_openapi_docs_and_the_board_page_are_open_and_the_webhook_has_its_own_secret(
    document: dict[str, Any],
) -> None:
    assert document["security"] == [{"ApiKey": []}]
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "x-api-key")
    open_paths = {path for path, item in document["paths"].items()
                  for op in item.values() if isinstance(op, dict) and op.get("security") == []}
    # /v2/enqueue authenticates by the body's routing_key, which OpenAPI cannot name as a scheme.
    assert open_paths == {"/health", "/openapi.json", "/docs", "/board", "/v2/enqueue"}
    webhook = document["paths"]["/telegram/webhook"]["post"]
    assert webhook["security"] == [{"TelegramSecretToken": []}]
    enqueue = document["components"]["schemas"]["PagerDutyEvent"]
    assert "routing_key" in enqueue["required"]
    assert document["paths"]["/alertmanager"]["post"]["security"] == [{"BearerApiKey": []}, {"ApiKey": []}]


def test_keyed_routes_document_401_and_bodies_document_413_415_and_503(
    document: dict[str, Any],
) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or operation.get("security") == []:
                continue
            assert "401" in operation["responses"], (method, path)
            assert "503" in operation["responses"], (method, path)
    for method, path in (("post", "/incidents"), ("patch", "/incidents/{id}")):
        assert {"400", "413", "415"} <= set(document["paths"][path][method]["responses"])


def test_every_change_a_key_can_make_documents_the_read_only_403(document: dict[str, Any]) -> None:
    keyed_changes = [(path, method) for path, item in document["paths"].items()
                     for method, operation in item.items()
                     if method not in ("parameters", "get")
                     and {"ApiKey"} & {n for s in operation.get("security", [{"ApiKey": []}]) for n in s}]
    assert ("/incidents", "post") in keyed_changes and ("/alertmanager", "post") in keyed_changes
    for path, method in keyed_changes:
        answer = document["paths"][path][method]["responses"]["403"]["$ref"]
        assert answer.split("/")[-1].startswith("ReadOnlyKey"), (method, path)
        assert "read-only" in document["components"]["responses"][answer.split("/")[-1]]["description"]


def test_links_lead_from_a_create_to_reading_and_changing_it(document: dict[str, Any]) -> None:
    created = document["paths"]["/incidents"]["post"]["responses"]["201"]
    assert {link["operationId"] for link in created["links"].values()} == {
        "getIncident", "changeIncidentStatus"}


def test_openapi_json_is_served_without_a_key(api: Any) -> None:
    response = api.get("/openapi.json", key=None)
    assert response.status_code == 200
    assert response.json_body == build_document()
    assert response.json_body["servers"] == [{"url": "/", "description": "The API root"}]


def test_the_shipped_document_is_what_the_builder_makes_now(capsys: pytest.CaptureFixture[str]) -> None:
    """The service serves chalicelib/openapi.json; a constant changed without `make openapi`
    fails here, naming the command."""
    assert openapi_main(["--check"]) == 0, capsys.readouterr().err


def test_the_served_document_names_the_stage_root_behind_api_gateway(dynamodb: Any) -> None:
    event = {
        "resource": "/openapi.json", "path": "/openapi.json", "httpMethod": "GET", "headers": {},
        "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": "/openapi.json", "httpMethod": "GET",
                           "path": "/api/openapi.json", "stage": "api", "requestId": "r-1"},
    }

    class Context:
        aws_request_id = "lambda-request-1"
        function_name = "incidents-prod-APIHandler-abc"

    response = app(event, Context())
    served = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert served["servers"] == [{"url": "/api", "description": "The API root"}]
    assert {**served, "servers": None} == {**build_document(), "servers": None}


def test_openapi_json_accepts_any_content_type(api: Any) -> None:
    response = api.get("/openapi.json", key=None, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200


def test_schemathesis_finds_no_difference_between_the_document_and_the_running_service(
    tmp_path: Path,
) -> None:
    """Every phase (examples, coverage, fuzzing, stateful through the links), positive and negative
    data, against `scripts/run_local.py`. Exceptions are explained in tests/schemathesis.toml."""
    st = Path(sys.executable).parent / "st"
    env = {"API_KEYS": FUZZ_API_KEY, "TELEGRAM_SECRET_TOKEN": FUZZ_TELEGRAM_SECRET}
    with local_service(env) as run:
        base = run.base
        result = subprocess.run(
            [str(st), "--config-file", str(SCHEMATHESIS_CONFIG), "run", f"{base}/openapi.json",
             "--header", f"x-api-key: {FUZZ_API_KEY}",
             "--header", f"X-Telegram-Bot-Api-Secret-Token: {FUZZ_TELEGRAM_SECRET}",
             "--mode", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", SEED,
             "--generation-with-security-parameters", "false",
             "--generation-database", "none", "--workers", "1", "--no-color",
             "--request-timeout", "30"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output, output[-5000:]
    assert re.search(r"API Links:\s+[1-9]", output), "the stateful phase followed no link"
