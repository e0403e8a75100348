"""GET /board: the static page board.html, with settings from incidents.py and buttons.py. Pure.

Why and how: docs/board-and-stats.md.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from chalicelib.buttons import board_actions
from chalicelib.incidents import MAX_NOTE, Source

PAGE_FILE = Path(__file__).resolve().parent / "board.html"
REFRESH_SECONDS = 30
HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@functools.lru_cache(maxsize=1)
def page() -> str:
    settings = {
        # The Telegram buttons' actions, not every allowed transition: the same next steps everywhere.
        "actions": board_actions(),
        "sources": [str(s) for s in Source],
        "maxNote": MAX_NOTE,
        "refreshSeconds": REFRESH_SECONDS,
    }
    # No "</" in this JSON, so it cannot end its <script>.
    return PAGE_FILE.read_text(encoding="utf-8").replace(
        "/*SETTINGS*/null", json.dumps(settings, separators=(",", ":"))
    )
