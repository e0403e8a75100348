"""IAM actions: those a boto3 call needs, those a policy grants, and a recorder of the calls
the application's own code makes, so the tests can hold the policy to exactly that."""
from __future__ import annotations

import contextlib
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


def granted_actions(policy: dict[str, Any]) -> set[str]:
    granted: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", statement
        actions = statement["Action"]
        granted.update([actions] if isinstance(actions, str) else actions)
    return granted


@contextlib.contextmanager
def recording(*, not_counted: tuple[Any, ...] = ()) -> Iterator[set[str]]:
    """Yields a set that fills with the IAM actions of every AWS call made, in any thread,
    from app.py or chalicelib/ (setup and assertions made by tests themselves don't count).
    A call made inside one of the `not_counted` functions doesn't count either: for
    set-up helpers that live in chalicelib, such as store.create_table."""
    recorded: set[str] = set()
    excluded = {function.__code__ for function in not_counted}
    original = BaseClient._make_api_call

    def _make_api_call(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        if _made_by_app(sys._getframe(1), excluded):
            recorded.update(actions_for_call(
                self.meta.service_model.signing_name, operation_name, api_params))
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
