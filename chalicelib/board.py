"""GET /board: one static page (chalicelib/board.html, plain JS, nothing loaded from elsewhere)
that shows the open incidents to people. Pure: no Chalice.

The page holds no data and no secret: it asks the person for an API key, keeps it in
sessionStorage and calls the API with it, from the same origin. The transition table is filled
in from incidents.py, so the page offers exactly the moves the service allows.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from chalicelib.incidents import MAX_NOTE, TRANSITIONS, Source

PAGE_FILE = Path(__file__).resolve().parent / "board.html"
REFRESH_SECONDS = 30
HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-cache",
    # Everything the page needs is inline or from its own origin.
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@functools.lru_cache(maxsize=1)
def page() -> str:
    settings = {
        "transitions": {str(s): [str(t) for t in targets] for s, targets in TRANSITIONS.items()},
        "sources": [str(s) for s in Source],
        "maxNote": MAX_NOTE,
        "refreshSeconds": REFRESH_SECONDS,
    }
    # "</" cannot occur in this JSON, so it cannot end the <script> it is placed in.
    return PAGE_FILE.read_text(encoding="utf-8").replace(
        "/*SETTINGS*/null", json.dumps(settings, separators=(",", ":"))
    )
