"""AWS clients through botocore alone (boto3's package is never imported): one session per
container, whose data loader knows only SERVICES. Why (cold start): docs/cold-start.md."""
from __future__ import annotations

import builtins
import collections.abc
import functools
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
from typing import Any

import botocore.loaders
import botocore.session

SERVICES = ("dynamodb", "ssm", "sqs", "s3")  # the clients this service makes

_lock = threading.Lock()


class _Loader(botocore.loaders.Loader):
    """Lists SERVICES instead of every directory in botocore/data; loading is unchanged."""

    @botocore.loaders.instance_cache
    def list_available_services(self, type_name: str) -> list[str]:
        try:
            return sorted(name for name in SERVICES if self._has(name, type_name))
        except Exception:  # a botocore with another data layout: its own listing
            return super().list_available_services(type_name)

    def _has(self, service_name: str, type_name: str) -> bool:
        for path in self.search_paths:
            location = os.path.join(path, service_name)
            if os.path.isdir(location) and any(
                    self.file_loader.exists(os.path.join(location, version, type_name))
                    for version in os.listdir(location)):
                return True
        return False


@functools.lru_cache(maxsize=1)
def session() -> Any:
    """Made on first use, never at import."""
    made = botocore.session.get_session()
    data_path = made.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore reads it
    extra = [os.path.expanduser(os.path.expandvars(path))
             for path in data_path.split(os.pathsep)] if data_path else None
    made.register_component("data_loader", _Loader(extra_search_paths=extra))
    return made


def client(service_name: str, config: Any = None) -> Any:
    """Locked: a botocore session is not thread-safe while it loads its data."""
    with _lock:
        return session().create_client(service_name, config=config)


@functools.lru_cache(maxsize=1)
def dynamodb_types() -> types.ModuleType:
    """`boto3.dynamodb.types`, run without boto3's `__init__` (its `boto3.compat` import answered
    by the standard library); else the ordinary import: never wrong, at worst slower."""
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
