"""The reliability suite: one local run (`make run` on free ports) shared by the tests that
need real HTTP, and the figures every test reports, printed at the end of the pytest run
(by tests/conftest.py, which pytest-xdist's controller loads: this file only its workers do)."""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

from conftest import RELIABILITY_FIGURE
from local_run import local_service
from reliability.reliability_http import LOCAL_KEYS, LOCAL_TELEGRAM_SECRET, Http


@pytest.fixture(scope="session")
def local_run() -> Iterator[Http]:
    """`make run` with two API keys and a Telegram secret, serving 127.0.0.1 only."""
    with local_service({"API_KEYS": ",".join(LOCAL_KEYS),
                        "TELEGRAM_SECRET_TOKEN": LOCAL_TELEGRAM_SECRET}) as run:
        yield Http(run.base, run.moto_url)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """figures("line") adds a line to the figures printed under this test's name. They travel
    in the test's report, so they reach the terminal from a pytest-xdist worker too."""

    def add(line: str) -> None:
        request.node.user_properties.append((RELIABILITY_FIGURE, line))

    return add
