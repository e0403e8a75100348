"""The OpenAPI document the service serves: chalicelib/openapi.json, built by `make openapi`
from openapi/document.py (the builder is not shipped; the built file is smaller)."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

DOCUMENT_PATH = Path(__file__).with_name("openapi.json")


@functools.cache
def _built() -> dict[str, Any]:
    return json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))


def document(server_url: str) -> dict[str, Any]:
    """The document with `server_url` (the API root as clients see it) as its one server."""
    return {**_built(), "servers": [{"url": server_url, "description": "The API root"}]}
