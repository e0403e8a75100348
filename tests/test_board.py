"""GET /board: the static page, and the page at work in headless chromium against `make run`:
the key, the columns, a move, a note, a 409, a 412 and a read-only key's 403 explained, a 401, and
screenshots at phone
and laptop size (saved under test-artifacts/, checked not to be blank)."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from browser import CHROMIUM, Browser, colour_spread
from chalicelib import board
from local_run import ROOT, local_service

KEY = "board-test-key"
READ_ONLY_KEY = "board-test-read-only-key"
ARTIFACTS = ROOT / "test-artifacts"


def test_the_board_is_one_html_page_served_without_a_key(api: Any) -> None:
    response = api.get("/board", key=None)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    page = response.body.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "/*SETTINGS*/null" not in page
    assert '"in_progress":["resolved","closed"]' in page  # the service's own transition table


def test_the_page_loads_nothing_from_elsewhere_and_forbids_it(api: Any) -> None:
    page = board.page()
    assert "<script src" not in page and "<link" not in page and "http://" not in page
    assert "https://" not in page
    csp = api.get("/board", key=None).headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp


def test_the_page_stays_small() -> None:
    assert len(board.page().encode()) < 40 * 1024


# --- in a real browser ---


class Http:
    def __init__(self, base: str) -> None:
        self.base = base

    def __call__(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"x-api-key": KEY, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def service() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed (scripts/ensure_chromium.sh, "
                    "run by `make test`, installs Debian's chromium where apt-get is usable)")
    with local_service({"API_KEYS": f"{KEY},dashboard:read={READ_ONLY_KEY}"}) as run:
        http = Http(run.base)
        seeded = [
            http("POST", "/incidents", {"description": "Самокат #42 не в сети", "source": "monitoring"}),
            http("POST", "/incidents", {"description": "POS 7 not answering", "source": "partner"}),
            http("POST", "/incidents", {"description": "Отчёт за смену не выгрузился", "source": "operator"}),
            http("POST", "/incidents", {"description": "Склад 3: сканер не отвечает", "source": "operator"}),
        ]
        http("PATCH", "/incidents/3", {"status": "in_progress", "note": "смотрю"})
        http("POST", "/incidents", {"description": "CPU high on api-1", "source": "monitoring",
                                    "dedup_key": "cpu-api-1"})
        http("POST", "/incidents", {"description": "CPU high on api-1", "source": "monitoring",
                                    "dedup_key": "cpu-api-1"})
        assert [i["id"] for i in seeded] == [1, 2, 3, 4]
        yield run, http


def ids_in(browser: Browser, status: str) -> list[int]:
    return browser.js(f"[...document.querySelectorAll('#col-{status} .card')].map(c => +c.dataset.id)")


def open_board(browser: Browser, base: str, key: str = KEY) -> None:
    browser.goto(f"{base}/board")
    browser.wait_for("!document.getElementById('key-form').hidden")
    browser.js(f"document.getElementById('key-input').value = {json.dumps(key)};"
               "document.getElementById('key-form').requestSubmit()")


def choose_source(browser: Browser, source: str) -> None:
    browser.js(f"(() => {{ const s = document.getElementById('source-filter'); s.value = '{source}';"
               "s.dispatchEvent(new Event('change')); })()")


def message(browser: Browser, containing: str) -> str:
    return browser.wait_for("!document.getElementById('message').hidden && "
                            f"document.querySelector('#message p').textContent.includes('{containing}') && "
                            "document.querySelector('#message p').textContent")


def test_the_board_at_work_in_headless_chromium(service: Any) -> None:
    run, http = service
    with Browser() as browser:
        browser.viewport(1280, 800)
        open_board(browser, run.base)
        browser.wait_for("document.body.dataset.state === 'ready'")

        # The seeded incidents, in their columns, newest first; the stats above them.
        assert ids_in(browser, "new") == [5, 4, 2, 1]
        assert ids_in(browser, "in_progress") == [3]
        card = browser.js("document.querySelector('.card[data-id=\"5\"]').textContent")
        assert "monitoring" in card and "×2" in card and "CPU high on api-1" in card
        assert browser.js("document.querySelector('.card[data-id=\"1\"]').classList.contains('age-fresh')")
        assert "4 new · 1 in progress" in browser.js("document.getElementById('stats').textContent")
        assert "5 opened · 0 resolved" in browser.js("document.getElementById('stats').textContent")

        # The source filter.
        choose_source(browser, "operator")
        assert (ids_in(browser, "new"), ids_in(browser, "in_progress")) == ([4], [3])
        choose_source(browser, "")

        # Open #1: details, its history, the moves allowed from new; move it to in_progress.
        browser.js("document.querySelector('.card[data-id=\"1\"]').click()")
        browser.wait_for("document.getElementById('detail').dataset.id === '1'")
        assert browser.js("[...document.querySelectorAll('#moves .move')].map(b => b.dataset.status)") == [
            "in_progress", "resolved", "closed"]
        browser.js("document.querySelector('#moves .move[data-status=\"in_progress\"]').click()")
        browser.wait_for("document.querySelector('#col-in_progress .card[data-id=\"1\"]') !== null")
        assert ids_in(browser, "new") == [5, 4, 2]
        assert http("GET", "/incidents/1")["status"] == "in_progress"

        # A note on #1.
        browser.wait_for("document.getElementById('detail').dataset.status === 'in_progress'")
        browser.js("document.getElementById('note-text').value = 'техник выехал';"
                   "document.getElementById('note-add').click()")
        browser.wait_for("document.getElementById('history').textContent.includes('техник выехал')")
        assert http("GET", "/incidents/1")["history"][-1]["note"] == "техник выехал"
        assert browser.js("document.getElementById('note-text').value") == ""

        # #2 is closed by someone else while its pane is open: the move is refused with 409, in words.
        browser.js("document.querySelector('.card[data-id=\"2\"]').click()")
        browser.wait_for("document.getElementById('detail').dataset.id === '2'")
        http("PATCH", "/incidents/2", {"status": "closed"})
        browser.js("document.querySelector('#moves .move[data-status=\"in_progress\"]').click()")
        text = message(browser, "409")
        assert "409" in text and "incident #2 is closed; it cannot move to in_progress" in text
        browser.wait_for("document.getElementById('detail').dataset.status === 'closed'")
        assert browser.js("document.querySelectorAll('#moves .move').length") == 0
        browser.wait_for("document.querySelector('.card[data-id=\"2\"]') === null")

        # #4 changes while its pane is open: the note is refused with 412, explained, and kept.
        browser.js("document.querySelector('.card[data-id=\"4\"]').click()")
        browser.wait_for("document.getElementById('detail').dataset.id === '4'")
        http("POST", "/incidents/4/notes", {"note": "someone else's note"})
        browser.js("document.getElementById('note-text').value = 'my note';"
                   "document.getElementById('note-add').click()")
        text = message(browser, "412")
        assert "412" in text and "your note was not saved" in text
        assert browser.js("document.getElementById('note-text').value") == "my note"
        browser.wait_for("document.getElementById('history').textContent.includes(\"someone else's note\")")

        browser.js("document.querySelector('.card[data-id=\"1\"]').click()")
        browser.wait_for("document.getElementById('detail').dataset.id === '1'")
        shot = browser.screenshot(ARTIFACTS / "board-1280x800.png")
        assert_not_blank(shot)

        browser.viewport(390, 844, mobile=True)
        browser.js("document.getElementById('detail-close').click()")
        shot = browser.screenshot(ARTIFACTS / "board-390x844.png")
        assert_not_blank(shot)
        # At phone width the columns stack: the in_progress column is below the new one.
        assert browser.js("document.getElementById('col-in_progress').getBoundingClientRect().top > "
                          "document.getElementById('col-new').getBoundingClientRect().bottom")
        assert browser.js("document.documentElement.scrollWidth") <= 390


def test_a_wrong_key_is_explained_and_asked_for_again(service: Any) -> None:
    run, _ = service
    with Browser() as browser:
        open_board(browser, run.base, key="not-the-key")
        text = browser.wait_for("!document.getElementById('key-form').hidden && "
                                "document.getElementById('key-message').textContent.includes('401') && "
                                "document.getElementById('key-message').textContent")
        assert "API key was not accepted" in text
        assert browser.js("sessionStorage.length") == 0


def test_with_a_read_only_key_the_board_reads_and_its_actions_say_why_not(service: Any) -> None:
    run, http = service
    with Browser() as browser:
        open_board(browser, run.base, key=READ_ONLY_KEY)
        browser.wait_for("document.body.dataset.state === 'ready'")
        assert 5 in ids_in(browser, "new")
        browser.js("document.querySelector('.card[data-id=\"5\"]').click()")
        browser.wait_for("document.getElementById('detail').dataset.id === '5' && "
                         "document.getElementById('history').children.length > 0")

        browser.js("document.querySelector('#moves .move[data-status=\"resolved\"]').click()")
        text = message(browser, "403")
        assert "Not allowed (403)" in text and "'dashboard' is read-only" in text
        assert READ_ONLY_KEY not in text
        assert http("GET", "/incidents/5")["status"] == "new"

        browser.js("document.getElementById('note-text').value = 'from the wall screen';"
                   "document.getElementById('note-add').click()")
        browser.wait_for("document.getElementById('message').hidden === false && "
                         "!document.getElementById('note-add').disabled")
        assert "'dashboard' is read-only" in message(browser, "403")
        assert browser.js("document.getElementById('note-text').value") == "from the wall screen"
        assert "from the wall screen" not in json.dumps(http("GET", "/incidents/5/history"))
        assert browser.js("document.getElementById('key-form').hidden")  # still signed in


def test_a_service_that_does_not_answer_is_explained(service: Any) -> None:
    run, _ = service
    with Browser() as browser:
        open_board(browser, run.base)
        browser.wait_for("document.body.dataset.state === 'ready'")
        # The table goes away: every read answers 503.
        browser.js("window.fetch = ((real) => (url, init) => real(url, init).then(r => "
                   "new Response(JSON.stringify({Code: 'ServiceUnavailableError', Message: 'x'}), "
                   "{status: 503})))(window.fetch)")
        browser.js("document.getElementById('refresh').click()")
        assert "unavailable right now (503)" in message(browser, "503")


def assert_not_blank(png: bytes) -> None:
    colours, commonest = colour_spread(png)
    assert colours > 50, f"only {colours} colours"
    assert commonest < 0.9, f"one colour covers {commonest:.0%} of the screenshot"
