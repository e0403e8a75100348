"""The app with its logs and metrics taken out, for `make bench`'s "without" rows.

    BENCH_WITHOUT_OBSERVABILITY=1 .venv/bin/python bench/app_lambda_cold_start.py

Before `import app`, install() puts inert stand-ins for chalicelib.logs, chalicelib.metrics and
chalicelib.observability into sys.modules: the same names, doing nothing (decorators hand the
function back). Nothing is imported for them, nothing is formatted or written, so the
difference to a normal run is what structured logging and EMF metrics cost.
"""
from __future__ import annotations

import os
import sys
import types
from typing import Any

SWITCH = "BENCH_WITHOUT_OBSERVABILITY"


def _inert(*args: Any, **kwargs: Any) -> Any:
    # Used as a decorator (alarm_record, counting_unavailable): hand the function back.
    if len(args) == 1 and not kwargs and isinstance(args[0], types.FunctionType):
        return args[0]
    return None


class _Inert(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _inert


def install() -> None:
    import chalicelib

    for name in ("logs", "metrics", "observability"):
        module = _Inert(f"chalicelib.{name}")
        sys.modules[module.__name__] = module
        setattr(chalicelib, name, module)


def install_if_asked() -> bool:
    if os.environ.get(SWITCH):
        install()
        return True
    return False
