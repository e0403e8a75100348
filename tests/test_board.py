"""GET /board: the static page, and the page at work in headless chromium against `make run`:
the key, the columns, an action, a note, a stale press, a 412 and a read-only key's 403 explained,
a 401, the team filter, each card's severity, team, assignee and the Telegram buttons' actions,
and screenshots at phone and laptop size (saved under test-artifacts/, checked not to be blank)."""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from browser import CHROMIUM, Browser, colour_spread
from chalicelib import board, buttons
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
    assert '"in_progress":[{"label":"Resolve","action":"resolve","target":"resolved"}' in page


def settings_of(page: str) -> dict[str, Any]:
    match = re.search(r"const SETTINGS = (\{.*?\});\n", page)
    assert match, "no SETTINGS in the page"
    return json.loads(match.group(1))


def test_the_pages_actions_are_the_telegram_buttons_and_not_every_transition() -> None:
    actions = settings_of(board.page())["actions"]
    assert actions == buttons.board_actions()
    shown = {status: [(a["label"], a["target"]) for a in row] for status, row in actions.items()}
    assert shown == {
        "new": [("Take", "in_progress"), ("Resolve", "resolved")],  # new → closed is allowed, not offered
        "in_progress": [("Resolve", "resolved"), ("Close", "closed")],
        "resolved": [("Reopen", "in_progress"), ("Close", "closed")],
        "closed": [],
    }
    assert "transitions" not in settings_of(board.page())


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


def choose_team(browser: Browser, team: str) -> None:
    browser.js(f"(() => {{ const s = document.getElementById('team-filter'); s.value = {json.dumps(team)};"
               "s.dispatchEvent(new Event('change')); })()")


def wait_for_columns(browser: Browser, new: list[int], in_progress: list[int]) -> None:
    shown = ("JSON.stringify(['new', 'in_progress'].map(s => [...document.querySelectorAll('#col-' + s + ' .card')]"
             ".map(c => +c.dataset.id)))")
    browser.wait_for(f"{shown} === {json.dumps(json.dumps([new, in_progress], separators=(',', ':')))}")


def on_card(browser: Browser, ident: int, selector: str) -> Any:
    """The text of `selector` in card #ident, or None when the card has no such part."""
    return browser.js(f"(document.querySelector('.card[data-id=\"{ident}\"] {selector}') || {{}}).textContent")


def actions_on_card(browser: Browser, ident: int) -> list[str]:
    return browser.js(f"[...document.querySelectorAll('.card[data-id=\"{ident}\"] .move')].map(b => b.textContent)")


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
        # No team yet: the team filter offers "all teams" alone, and says why.
        assert browser.js("[...document.querySelectorAll('#team-filter option')].map(o => o.textContent)") == [
            "all teams"]
        assert browser.js("document.getElementById('team-hint').textContent") == "no teams yet"

        # The source filter.
        choose_source(browser, "operator")
        assert (ids_in(browser, "new"), ids_in(browser, "in_progress")) == ([4], [3])
        choose_source(browser, "")

        # Open #1: details, its history, the buttons' actions for new; Take moves it to in_progress.
        browser.js("document.querySelector('.card[data-id=\"1\"]').click()")
        browser.wait_for("document.getElementById('detail').dataset.id === '1'")
        assert browser.js("[...document.querySelectorAll('#moves .move')].map(b => [b.textContent, "
                          "b.dataset.status])") == [["Take", "in_progress"], ["Resolve", "resolved"]]
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

        # #2 is closed by someone else while its pane is open: Take is not applied, and the board says why
        # (as a press on a Telegram message that shows an old status).
        browser.js("document.querySelector('.card[data-id=\"2\"]').click()")
        browser.wait_for("document.getElementById('detail').dataset.id === '2'")
        http("PATCH", "/incidents/2", {"status": "closed"})
        browser.js("document.querySelector('#moves .move[data-status=\"in_progress\"]').click()")
        text = message(browser, "already closed")
        assert "#2 is already closed (the board showed new), so Take was not applied" in text
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


TEAM = {  # as in tests/oncall/test_teams_api.py
    "chat_id": -1001234567890,
    "time_zone": "Europe/Moscow",
    "rotation": {"members": ["ivan_ops", "maria_sre", "oleg_k"], "start": "2026-12-01T10:00", "shift": "weekly"},
    "escalation_rules": [{"escalation_delay_in_minutes": 15, "targets": ["on_call"]}],
}


@pytest.fixture(scope="module")
def teams(service: Any) -> dict[str, int]:
    """Two teams; a critical new incident of scooters and a warning one of payments, each with an
    assignee; an in_progress incident of payments without one."""
    _, http = service
    for name in ("scooters", "payments"):
        http("PUT", f"/teams/{name}", TEAM)
    scooter = http("POST", "/incidents", {"description": "Самокат <b>#7</b> не в сети", "source": "monitoring",
                                          "severity": "critical"})["id"]
    http("PATCH", f"/incidents/{scooter}", {"team": "scooters", "assignee": "maria_sre"})
    gateway = http("POST", "/incidents", {"description": "Payment gateway latency over 2 s",
                                          "source": "monitoring", "severity": "warning"})["id"]
    http("PATCH", f"/incidents/{gateway}", {"team": "payments", "assignee": "oleg_k"})
    refunds = http("POST", "/incidents", {"description": "Refunds stuck", "source": "partner"})["id"]
    http("PATCH", f"/incidents/{refunds}", {"status": "in_progress", "team": "payments"})
    assert http("GET", f"/incidents/{refunds}")["assignee"] is None
    return {"scooter": scooter, "gateway": gateway, "refunds": refunds}


def test_choosing_a_team_lists_only_its_incidents_and_the_source_filter_still_applies_on_the_page(
        service: Any, teams: dict[str, int]) -> None:
    run, _ = service
    scooter, gateway, refunds = teams["scooter"], teams["gateway"], teams["refunds"]
    with Browser() as browser:
        browser.viewport(1280, 800)
        open_board(browser, run.base)
        browser.wait_for("document.body.dataset.state === 'ready'")
        browser.js("window.seen = []; window.fetch = ((real) => (url, init) => "
                   "(window.seen.push(String(url)), real(url, init)))(window.fetch)")
        assert browser.js("[...document.querySelectorAll('#team-filter option')].map(o => o.textContent)") == [
            "all teams", "payments", "scooters"]
        assert browser.js("document.getElementById('team-hint').textContent") == ""

        choose_team(browser, "payments")
        wait_for_columns(browser, [gateway], [refunds])
        choose_source(browser, "partner")
        wait_for_columns(browser, [], [refunds])
        choose_source(browser, "")
        choose_team(browser, "scooters")
        wait_for_columns(browser, [scooter], [])
        seen = browser.js("window.seen")
        assert any("/incidents?status=new&team=scooters&" in url for url in seen)
        assert any("/incidents?status=in_progress&team=payments&" in url for url in seen)
        assert not [url for url in seen if "source=" in url]  # the API refuses team with source (400)

        choose_team(browser, "")
        browser.wait_for(f"document.querySelector('.card[data-id=\"{gateway}\"]') !== null")
        assert {scooter, gateway, 5} <= set(ids_in(browser, "new"))  # #5 has no team


def test_cards_show_severity_team_and_assignee_and_offer_exactly_the_telegram_buttons_actions(
        service: Any, teams: dict[str, int]) -> None:
    run, http = service
    scooter, gateway, refunds = teams["scooter"], teams["gateway"], teams["refunds"]
    with Browser() as browser:
        browser.viewport(1280, 800)
        open_board(browser, run.base)
        browser.wait_for("document.body.dataset.state === 'ready'")

        # Severity, team and assignee on the cards (the description as text, never as markup).
        assert (on_card(browser, scooter, ".severity"), on_card(browser, scooter, ".team"),
                on_card(browser, scooter, ".assignee")) == ("critical", "team scooters", "@maria_sre")
        assert (on_card(browser, gateway, ".severity"), on_card(browser, gateway, ".team"),
                on_card(browser, gateway, ".assignee")) == ("warning", "team payments", "@oleg_k")
        assert (on_card(browser, refunds, ".severity"), on_card(browser, refunds, ".team"),
                on_card(browser, refunds, ".assignee")) == (None, "team payments", None)
        assert on_card(browser, scooter, ".desc") == "Самокат <b>#7</b> не в сети"
        assert browser.js(f"document.querySelector('.card[data-id=\"{scooter}\"] b')") is None

        # Each card's actions are the Telegram buttons' for its status; Take on a card moves it.
        assert actions_on_card(browser, scooter) == ["Take", "Resolve"]
        assert actions_on_card(browser, refunds) == ["Resolve", "Close"]
        browser.js(f"document.querySelector('.card[data-id=\"{scooter}\"] .move[data-action=\"take\"]').click()")
        browser.wait_for(f"document.querySelector('#col-in_progress .card[data-id=\"{scooter}\"]') !== null")
        assert http("GET", f"/incidents/{scooter}")["status"] == "in_progress"
        assert browser.js("document.getElementById('detail').hidden")  # the button did not open the card
        assert actions_on_card(browser, scooter) == ["Resolve", "Close"]

        # A card out of date: resolved meanwhile, its Take is not applied (it would reopen it).
        http("PATCH", f"/incidents/{gateway}", {"status": "resolved"})
        browser.js(f"document.querySelector('.card[data-id=\"{gateway}\"] .move[data-action=\"take\"]').click()")
        assert f"#{gateway} is already resolved (the board showed new)" in message(browser, "already resolved")
        assert http("GET", f"/incidents/{gateway}")["status"] == "resolved"
        browser.wait_for(f"document.querySelector('.card[data-id=\"{gateway}\"]') === null")

        # A resolved incident's pane offers Reopen and Close; Reopen moves it back to in_progress.
        browser.js(f"document.querySelector('.card[data-id=\"{refunds}\"]').click()")
        browser.wait_for(f"document.getElementById('detail').dataset.id === '{refunds}'")
        http("PATCH", f"/incidents/{refunds}", {"status": "resolved"})
        browser.js("document.getElementById('refresh').click()")
        browser.wait_for("document.getElementById('detail').dataset.status === 'resolved'")
        assert browser.js("[...document.querySelectorAll('#moves .move')].map(b => b.textContent)") == [
            "Reopen", "Close"]
        browser.js("document.querySelector('#moves .move[data-action=\"reopen\"]').click()")
        browser.wait_for("document.getElementById('detail').dataset.status === 'in_progress'")
        assert http("GET", f"/incidents/{refunds}")["status"] == "in_progress"


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
        browser.wait_for("document.getElementById('team-hint').textContent === 'teams could not be read (503)'")


def assert_not_blank(png: bytes) -> None:
    colours, commonest = colour_spread(png)
    assert colours > 50, f"only {colours} colours"
    assert commonest < 0.9, f"one colour covers {commonest:.0%} of the screenshot"
