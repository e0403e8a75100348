"""The /docs page: Redoc rendering /openapi.json. Pure.

Redoc (~1 MB) is not shipped; it loads from DOCS_ASSETS_URL: docs/api.md.
"""
from __future__ import annotations

import html
import os

REDOC_VERSION = "2.5.4"
DEFAULT_ASSETS_URL = f"https://cdn.jsdelivr.net/npm/redoc@{REDOC_VERSION}/bundles/redoc.standalone.js"

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
<script src="{script_url}"></script>
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
    )
