"""AWS clients through botocore alone: boto3's package is never imported here.

`import boto3` costs about 150 ms of a cold start (boto3.session, and s3transfer through
boto3.compat), and this service needs none of it: the store and the secrets use low-level
clients, which botocore makes itself. The endpoint (`AWS_ENDPOINT_URL_DYNAMODB`,
`AWS_ENDPOINT_URL`), the region and the credential chain are botocore's own, exactly as under
`boto3.client(...)`.

One botocore session per container, shared by every client: the endpoint data, the list of
services and the credentials are loaded once, so the SSM client a first request may need
costs less after the DynamoDB one (or the other way round).

The DynamoDB type (de)serializers are boto3's own (`boto3/dynamodb/types.py`), run from the
installed boto3 without running boto3's package `__init__` (see `dynamodb_types`).
"""
from __future__ import annotations

import builtins
import collections.abc
import functools
import importlib.machinery
import importlib.util
import os
import threading
import types
from typing import Any

import botocore.session

_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def session() -> Any:
    """The container's botocore session, made on first use (never at import)."""
    return botocore.session.get_session()


def client(service_name: str, config: Any = None) -> Any:
    """A low-level client; built in a lock because a botocore session is not thread-safe
    while it loads its data (the concurrency tests build clients from threads)."""
    with _lock:
        return session().create_client(service_name, config=config)


def reset() -> None:
    """Forget the session (tests that change the credential chain between cases)."""
    session.cache_clear()


@functools.lru_cache(maxsize=1)
def dynamodb_types() -> types.ModuleType:
    """boto3's `boto3.dynamodb.types` (TypeSerializer, TypeDeserializer, Binary).

    That module needs only `decimal` and `collections.abc`, but it takes the latter from
    `boto3.compat`, whose import runs boto3's `__init__` (boto3.session, s3transfer). So its
    code (boto3's cached bytecode) runs here with that one import answered by the standard
    library. Where boto3 is imported already, or its file is not where it should be, this is
    the ordinary import: never wrong, at worst slower."""
    import sys

    if "boto3" not in sys.modules:
        try:
            return _load_without_boto3_package()
        except Exception:  # an unexpected boto3 layout: fall through to the plain import
            pass
    from boto3.dynamodb import types as boto3_types

    return boto3_types


_STAND_INS = {"boto3.compat": types.SimpleNamespace(collections_abc=collections.abc)}


def _load_without_boto3_package() -> types.ModuleType:
    spec = importlib.util.find_spec("boto3")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("boto3 is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "dynamodb", "types.py")
    name = "chalicelib.aws.boto3_dynamodb_types"
    code = importlib.machinery.SourceFileLoader(name, path).get_code(name)
    real_import = builtins.__import__

    def answering_stand_ins(module: str, *args: Any, **kwargs: Any) -> Any:
        stand_in = _STAND_INS.get(module)
        return stand_in if stand_in is not None else real_import(module, *args, **kwargs)

    module = types.ModuleType(name)
    module.__file__ = path
    module.__dict__["__builtins__"] = {**vars(builtins), "__import__": answering_stand_ins}
    exec(code, module.__dict__)
    return module
