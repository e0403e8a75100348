"""What a cold start loads: the import path stays free of boto3's package and of the modules only
some routes need (issue 16; the figures are `make bench`'s, the reasons docs/cold-start.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from chalicelib import aws

ROOT = Path(__file__).resolve().parent.parent
LAZY = ("chalicelib.openapi", "chalicelib.docs_page", "chalicelib.board", "chalicelib.stats",
        "chalicelib.telegram", "chalicelib.telegram_bot", "chalicelib.alarms", "chalicelib.notifier",
        "chalicelib.oncall", "chalicelib.oncall.teams", "zoneinfo")


def loaded_after(code: str, **env: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (fake AWS settings)."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    full_env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "eu-west-1", "TABLE_NAME": "incidents-test", "API_KEYS": "k",
                **env}
    full_env.pop("AWS_PROFILE", None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_import_app_and_building_the_store_load_neither_boto3_nor_s3transfer() -> None:
    modules = loaded_after("import app\nfrom chalicelib.store import default_store\ndefault_store()")
    assert not {m for m in modules if m.split(".")[0] in ("boto3", "s3transfer")}
    assert "botocore.session" in modules


def test_an_api_request_loads_none_of_the_modules_other_routes_need() -> None:
    modules = loaded_after("import app")
    assert not modules & set(LAZY)


def test_the_type_serializers_are_boto3s_own_code() -> None:
    from boto3.dynamodb import types as boto3_types

    ours = aws._load_without_boto3_package()
    assert Path(ours.__file__) == Path(boto3_types.__file__)
    value = {"n": 3, "d": Decimal("1.5"), "s": "Самокат", "l": [1, "x", None, True],
             "ss": {"a", "b"}, "b": b"\x00", "m": {"k": {"nested": 1}}}
    serialized = ours.TypeSerializer().serialize(value)
    assert serialized == boto3_types.TypeSerializer().serialize(value)
    assert ours.TypeDeserializer().deserialize(serialized) == value


def test_the_endpoint_variable_still_points_the_store_at_a_local_dynamodb() -> None:
    code = ("from chalicelib.store import default_store\n"
            "print('ENDPOINT', default_store()._client.meta.endpoint_url)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "AWS_ACCESS_KEY_ID": "testing",
                                            "AWS_SECRET_ACCESS_KEY": "testing",
                                            "AWS_DEFAULT_REGION": "eu-west-1", "TABLE_NAME": "t",
                                            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8999"})
    assert proc.returncode == 0, proc.stderr
    assert "ENDPOINT http://127.0.0.1:8999" in proc.stdout


def test_the_session_knows_only_the_services_it_makes_clients_for() -> None:
    loader = aws.session().get_component("data_loader")
    assert loader.list_available_services("service-2") == sorted(aws.SERVICES)
    assert aws.client("ssm").meta.service_model.service_name == "ssm"
    with pytest.raises(Exception, match="Unknown service"):
        aws.client("sns")


def test_prod_starts_the_api_and_alarm_handlers_from_a_snapshot_and_dev_does_not() -> None:
    from deploy import resources

    prod, dev = resources.build("prod")["Resources"], resources.build("dev")["Resources"]
    for name in ("APIHandler", "OnAlarmNotification", "OnAlarmStateChange"):
        properties = prod[name]["Properties"]
        assert properties["SnapStart"] == {"ApplyOn": "PublishedVersions"}
        assert properties["AutoPublishAlias"] == "live"
        assert properties["Runtime"] == "python3.12"
        assert "SnapStart" not in dev.get(name, {}).get("Properties", {})
    paths = prod["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    from app import app

    assert {(path, method.lower()) for path, methods in app.routes.items() for method in methods} == {
        (path, method) for path, methods in paths.items() for method in methods}
    for methods in paths.values():
        for method in methods.values():
            assert "${APIHandlerAliaslive}" in method["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    assert prod["APIHandlerInvokePermission"]["Properties"]["FunctionName"] == {"Ref": "APIHandlerAliaslive"}
