"""The /docs page: Redoc rendering /openapi.json. Pure.

Redoc (~1 MB) is not shipped; it loads from DOCS_ASSETS_URL, pinned by its hash, under a
Content-Security-Policy: docs/api.md, docs/security.md.
"""
from __future__ import annotations

import html
import os
from urllib.parse import quote, urlsplit

REDOC_VERSION = "2.5.4"
DEFAULT_ASSETS_URL = f"https://cdn.jsdelivr.net/npm/redoc@{REDOC_VERSION}/bundles/redoc.standalone.js"
# Subresource Integrity of that file (tests/assets/ holds it): a CDN or mirror serving anything
# else is refused by the browser, so the page, on the origin of /board and its key, runs only it.
REDOC_INTEGRITY = "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>This page needs JavaScript; the raw document is at <a href="{spec_url}">{spec_url}</a>.</noscript>
<redoc spec-url="{spec_url}"></redoc>
<script src="{script_url}" integrity="{integrity}" crossorigin="anonymous"></script>
</body>
</html>
"""


def assets_url() -> str:
    return os.environ.get("DOCS_ASSETS_URL", "").strip() or DEFAULT_ASSETS_URL


def render(spec_url: str = "openapi.json", script_url: str | None = None,
           title: str = "Incident API") -> str:
    """`spec_url` is relative, so the page works under an API Gateway stage prefix."""
    return _PAGE.format(
        title=html.escape(title),
        spec_url=html.escape(spec_url, quote=True),
        script_url=html.escape(script_url or assets_url(), quote=True),
        integrity=REDOC_INTEGRITY,
    )


def headers(script_url: str | None = None) -> dict[str, str]:
    """Redoc injects its styles, runs its search in a worker from a blob: URL, shows its
    makers' logo, and fetches the document from this origin. No other script runs."""
    policy = (
        f"default-src 'none'; script-src {_source(script_url or assets_url())}; "
        f"style-src 'unsafe-inline'; img-src data: {REDOC_LOGO}; font-src data:; connect-src 'self'; "
        "worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _source(url: str) -> str:
    """The script's URL as a CSP source: no query, nothing that could end the directive."""
    parts = urlsplit(url)
    if not (parts.scheme and parts.netloc):
        return "'self'"
    return f"{parts.scheme}://{quote(parts.netloc, safe=':@[]')}{quote(parts.path, safe='/@:%+!$&()*=~')}"
