"""The reliability suite: one local run (`make run` on free ports) shared by the tests that
need real HTTP, and the figures every test reports, printed at the end of the pytest run."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from local_run import local_service
from reliability.reliability_http import LOCAL_KEYS, LOCAL_TELEGRAM_SECRET, Http

_FIGURES: list[tuple[str, str]] = []


@pytest.fixture(scope="session")
def local_run() -> Iterator[Http]:
    """`make run` with two API keys and a Telegram secret, serving 127.0.0.1 only."""
    with local_service({"API_KEYS": ",".join(LOCAL_KEYS),
                        "TELEGRAM_SECRET_TOKEN": LOCAL_TELEGRAM_SECRET}) as run:
        yield Http(run.base, run.moto_url)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """figures("line") adds a line to the figures printed under this test's name."""
    name = request.node.name

    def add(line: str) -> None:
        _FIGURES.append((name, line))

    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    current = None
    for name, line in _FIGURES:
        if name != current:
            terminalreporter.write_line(f"{name}:")
            current = name
        terminalreporter.write_line(f"  {line}")
