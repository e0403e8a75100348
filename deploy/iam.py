"""IAM actions: those a boto3 call needs, those a policy grants, and a recorder of the calls
the application's own code makes, so the tests can hold the policy to exactly that."""
from __future__ import annotations

import contextlib
import fnmatch
import sys
from pathlib import Path
from typing import Any, Iterator

from botocore.client import BaseClient

ROOT = Path(__file__).resolve().parent.parent
APP_CODE = (str(ROOT / "app.py"), str(ROOT / "chalicelib") + "/")

# DynamoDB has no IAM action of its own for a transaction: each item is authorized as the
# single-item action it performs (PutItem, UpdateItem, …) on its table.
_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem", "Get": "GetItem",
}


def actions_for_call(service: str, operation: str, params: dict[str, Any]) -> set[str]:
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return {
            f"dynamodb:{_TRANSACT_ITEM_ACTIONS[kind]}"
            for item in params.get("TransactItems", []) for kind in item
        }
    return {f"{service}:{operation}"}


def calls_for(service: str, operation: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """(IAM action, resource) pairs a call needs; the resource is the part of the ARN after
    account and region (`table/incidents-dev/index/by_status`, `parameter/incidents/dev/api-keys`),
    "*" where this project does not narrow it."""
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return {
            (f"dynamodb:{_TRANSACT_ITEM_ACTIONS[kind]}", f"table/{body['TableName']}")
            for item in params.get("TransactItems", []) for kind, body in item.items()
        }
    if service == "dynamodb" and operation == "BatchGetItem":
        return {(f"dynamodb:{operation}", f"table/{name}") for name in params.get("RequestItems", {})}
    if service == "dynamodb" and "TableName" in params:
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
        return {(f"dynamodb:{operation}", f"table/{params['TableName']}{index}")}
    if service == "ssm" and "Name" in params:
        return {(f"ssm:{operation}", f"parameter{params['Name']}")}
    if service == "sqs" and "QueueUrl" in params:
        return {(f"sqs:{operation}", params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1])}
    if service == "s3" and "Bucket" in params:
        return {(f"s3:{operation}", f"{params['Bucket']}/{params.get('Key', '')}")}
    return {(f"{service}:{operation}", "*")}


def grants(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether the policy allows `action` on `resource` (as calls_for names it) in any account and region."""
    service = action.split(":", 1)[0]
    # An S3 ARN names neither region nor account.
    arn = f"arn:aws:s3:::{resource}" if service == "s3" else f"arn:aws:{service}:eu-west-1:123456789012:{resource}"
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        arns = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if action in actions and any(fnmatch.fnmatchcase(arn, pattern) for pattern in arns):
            return True
    return False


def granted_pairs(policy: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (action, resource pattern) the policy allows, resource as calls_for names it."""
    pairs = set()
    for statement in policy["Statement"]:
        for action in statement["Action"]:
            for arn in statement["Resource"]:
                pairs.add((action, arn.split(":", 5)[5]))
    return pairs


def granted_actions(policy: dict[str, Any]) -> set[str]:
    granted: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", statement
        actions = statement["Action"]
        granted.update([actions] if isinstance(actions, str) else actions)
    return granted


@contextlib.contextmanager
def recording(*, not_counted: tuple[Any, ...] = (), resources: bool = False) -> Iterator[set[Any]]:
    """Yields a set that fills with the IAM actions of every AWS call made, in any thread,
    from app.py or chalicelib/ (setup and assertions made by tests themselves don't count);
    with `resources`, (action, resource) pairs as calls_for names them.
    A call made inside one of the `not_counted` functions doesn't count either: for
    set-up helpers that live in chalicelib, such as store.create_table."""
    recorded: set[str] = set()
    excluded = {function.__code__ for function in not_counted}
    original = BaseClient._make_api_call

    def _make_api_call(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        if _made_by_app(sys._getframe(1), excluded):
            service = self.meta.service_model.signing_name
            if resources:
                recorded.update(calls_for(service, operation_name, api_params))
            else:
                recorded.update(actions_for_call(service, operation_name, api_params))
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = _make_api_call
    try:
        yield recorded
    finally:
        BaseClient._make_api_call = original


def _made_by_app(frame: Any, excluded: set[Any]) -> bool:
    by_app = False
    while frame is not None:
        code = frame.f_code
        if code in excluded:
            return False
        by_app = by_app or code.co_filename.startswith(APP_CODE)
        frame = frame.f_back
    return by_app
