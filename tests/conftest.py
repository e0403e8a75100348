"""Shared fixtures: fake AWS credentials, moto with the app's own table, and Chalice's test client."""
from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Any

import _pytest.runner
import boto3
import botocore.loaders
import pytest
from chalice.test import Client
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from app import app
from chalicelib import aws
from chalicelib.intake import default_intake
from chalicelib.store import Store, create_table, default_store
from localaws import shim

# Everything local runs on the same embedded DynamoDB: moto with DynamoDB's costs
# (localaws/shim.py; tests/test_embedded_dynamodb.py holds it to plain moto's answers).
shim.install()

ROOT = Path(__file__).resolve().parent.parent
PAYLOADS = Path(__file__).resolve().parent / "payloads"
API_KEY = "test-key-primary"
OTHER_API_KEY = "test-key-secondary"
CURSOR_SECRET = "test-cursor-key"


def stage_environment(stage: str = "dev") -> dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config.get("environment_variables", {}),
            **config["stages"][stage].get("environment_variables", {})}


TABLE_NAME = stage_environment()["TABLE_NAME"]
INTAKE_QUEUE = stage_environment()["INTAKE_QUEUE"]
INTAKE_BUCKET = f"{INTAKE_QUEUE.removesuffix('.fifo')}-123456789012"  # as the stack names it: deploy/resources.py


def load_payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


# Every test gets botocore sessions of its own (`dynamodb` below), and each new session parsed
# botocore's service and endpoint JSON again: about 0.2 s a test, a quarter of the suite. The
# files never change during a run; each is parsed once. (A session already shares what it
# loaded among all its clients, so botocore treats the loaded data as read-only.)
_load_json_file = botocore.loaders.JSONFileLoader.load_file


@functools.cache
def _parsed_json_file(file_path: str) -> Any:
    return _load_json_file(botocore.loaders.JSONFileLoader(), file_path)


botocore.loaders.JSONFileLoader.load_file = lambda self, file_path: _parsed_json_file(file_path)


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials so nothing here can ever reach a real AWS account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "TABLE_NAME": TABLE_NAME,
        "API_KEYS": f"{API_KEY},{OTHER_API_KEY}",
        "CURSOR_SECRET": CURSOR_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
                 "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTAKE_QUEUE_URL", f"https://sqs.eu-west-1.amazonaws.com/123456789012/{INTAKE_QUEUE}")
    monkeypatch.setenv("INTAKE_BUCKET", INTAKE_BUCKET)


@pytest.fixture
def atomic_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto evaluates a condition and writes without a lock; DynamoDB applies each call
    atomically. Serialising moto's request handling restores that, so races between
    calls are real and races inside one call (which DynamoDB never has) are not."""
    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)


@pytest.fixture
def dynamodb(aws_credentials: None, atomic_moto: None) -> Any:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, TABLE_NAME)
        create_intake()
        # A fresh botocore session and store per test, made from this test's environment: a
        # container keeps one for its life, but a test must not inherit another test's.
        aws.session.cache_clear()
        default_store.cache_clear()
        default_intake.cache_clear()
        yield client
        default_intake.cache_clear()
        default_store.cache_clear()
        aws.session.cache_clear()


def create_intake() -> None:
    """The integration routes' queue and bucket, as the stack has them (moto's own account)."""
    boto3.client("sqs").create_queue(QueueName=INTAKE_QUEUE, Attributes={"FifoQueue": "true"})
    boto3.client("s3").create_bucket(Bucket=INTAKE_BUCKET,
                                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})


def drain_intake() -> list[str]:
    """Applies what the integration routes handed off, as the intake consumer does in Lambda;
    the outcome of each alert or event, in order. Synchronous: the tests assert right after."""
    from chalicelib import integrations

    sqs, outcomes = boto3.client("sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=default_intake().queue_url,
                                       MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return outcomes
        for message in messages:
            try:
                outcomes += integrations.apply_message(default_store(), default_intake().read(message["Body"]))
            except Exception:  # delivered again at once (SQS: after the visibility timeout)
                for unapplied in messages:
                    sqs.change_message_visibility(QueueUrl=default_intake().queue_url,
                                                  ReceiptHandle=unapplied["ReceiptHandle"], VisibilityTimeout=0)
                raise
            sqs.delete_message(QueueUrl=default_intake().queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def drain(dynamodb: Any) -> Any:
    return drain_intake


@pytest.fixture
def store(dynamodb: Any) -> Store:
    return default_store()


class Api:
    """Chalice's test client with the API key and JSON bodies filled in."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def request(self, method: str, path: str, *, json_body: Any = None, body: Any = None,
                headers: dict[str, str] | None = None, key: str | None = API_KEY) -> Any:
        all_headers = {"Content-Type": "application/json"}
        if key is not None:
            all_headers["x-api-key"] = key
        all_headers.update(headers or {})
        if json_body is not None:
            body = json.dumps(json_body)
        return getattr(self.client.http, method.lower())(path, headers=all_headers, body=body)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json_body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json_body=json_body, **kw)

    def patch(self, path: str, json_body: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", path, json_body=json_body, **kw)

    def create(self, description: str = "Самокат #42 не в сети", source: str = "operator",
               **extra: Any) -> dict[str, Any]:
        response = self.post("/incidents", {"description": description, "source": source, **extra})
        assert response.status_code in (200, 201), response.body
        return response.json_body


@pytest.fixture
def client(dynamodb: Any) -> Client:
    with Client(app) as test_client:
        yield test_client


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client)


@pytest.fixture(scope="session", autouse=True)
def app_aws_actions() -> Any:
    """IAM actions of every AWS call the app's code makes in the whole run; at the end each
    must be granted by the stage policies (tests/test_deploy.py holds them to "nothing more")."""
    from deploy.iam import granted_actions, recording
    from deploy.resources import load_policy

    from deploy.resources import function_names

    with recording(not_counted=(create_table,)) as actions:
        yield actions
    for stage in ("dev", "prod"):
        granted = set().union(*(granted_actions(load_policy(stage, f)) for f in function_names(stage)))
        missing = actions - granted
        assert not missing, f"no .chalice/policy-{stage}-*.json grants {sorted(missing)}, which the code calls"


def _in_a_roomy_stack_chunk(function: Any, *args: Any) -> Any:
    return function(*args)


# CPython 3.11 keeps Python frames in 16 KiB chunks, got from mmap and given back as soon as the
# frame that opened one returns. A loop whose calls cross a chunk's end (moto's sorts call
# DynamoType.__lt__ millions of times) does an mmap and a munmap per call: 20 times slower,
# at whatever depth the test happens to run (pytest-xdist's worker runs it deeper than pytest
# alone). This frame claims 512 KiB of stack slots, so it opens a 1 MiB chunk of its own, and
# every frame of the test fits in the other half: no chunk is opened or given back per call.
_in_a_roomy_stack_chunk.__code__ = _in_a_roomy_stack_chunk.__code__.replace(co_stacksize=1 << 16)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool:
    """pytest's own protocol for the test (setup, call, teardown), run above that frame."""
    return _in_a_roomy_stack_chunk(_pytest.runner.pytest_runtest_protocol, item, nextitem)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """pytest-xdist sends each report from its worker as UTF-8: a lone surrogate in what a test
    logged (tests/test_observability.py logs one on purpose) would stop the worker."""
    report = yield
    report.sections = [(title, text.encode("utf-8", "backslashreplace").decode("utf-8"))
                       for title, text in report.sections]
    return report


# --- the reliability figures (tests/reliability/conftest.py's `figures`), at the end of the run ---

RELIABILITY_FIGURE = "reliability figure"
_figures: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's figures, from its report: under pytest-xdist the controller sees only reports."""
    if report.when == "call":
        name = report.nodeid.rsplit("::", 1)[-1]
        _figures.extend((name, line) for key, line in report.user_properties if key == RELIABILITY_FIGURE)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _figures:
        return
    terminalreporter.section("reliability figures")
    current = None
    for name, line in _figures:
        if name != current:
            terminalreporter.write_line(f"{name}:")
            current = name
        terminalreporter.write_line(f"  {line}")


# --- pytest-xdist (make test): which tests share a worker ---

@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadscope (a module's tests on one worker, so its module fixtures are made once),
    with two wider groups: tests/reliability/ shares one `make run` (its session fixture), and
    tests/test_monitoring.py runs beside tests/test_deploy.py, not at the same time: both run
    `chalice package`, which writes one file in .chalice/deployments/."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/reliability/"):
                return "tests/reliability/"
            if nodeid.startswith("tests/test_monitoring.py::"):
                return "tests/test_deploy.py"
            return super()._split_scope(nodeid)

    return Scheduling(config, log)
