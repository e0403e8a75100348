"""GET /docs: a page that renders the OpenAPI document with Redoc, checked in a real headless
chromium against the local run, with Redoc served from a vendored copy on 127.0.0.1 (no CDN)."""
from __future__ import annotations

import gzip
import http.server
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib import docs_page
from local_run import free_port, local_service

ASSETS = Path(__file__).resolve().parent / "assets"
REDOC_BUNDLE = ASSETS / "redoc.standalone.js.gz"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--virtual-time-budget=10000",
]


def test_docs_page_is_served_without_a_key_as_html(api: Any) -> None:
    response = api.get("/docs", key=None)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'spec-url="/openapi.json"' in response.body.decode()
    assert docs_page.DEFAULT_ASSETS_URL in response.body.decode()


def test_docs_page_loads_redoc_from_docs_assets_url(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_ASSETS_URL", "http://127.0.0.1:9/redoc.js")
    body = api.get("/docs", key=None).body.decode()
    assert '<script src="http://127.0.0.1:9/redoc.js"></script>' in body
    assert "cdn" not in body


def test_docs_page_escapes_what_it_inserts() -> None:
    page = docs_page.render(spec_url='/x"><script>', script_url="http://127.0.0.1/a.js?x=1&y=2")
    assert '"><script>' not in page
    assert "a.js?x=1&amp;y=2" in page


def test_the_lambda_package_does_not_carry_the_redoc_bundle() -> None:
    chalicelib = Path(docs_page.__file__).resolve().parent
    assert not list(chalicelib.rglob("*.js")) and not list(chalicelib.rglob("*.gz"))
    assert all(p.stat().st_size < 50 * 1024 for p in chalicelib.rglob("*") if p.is_file())


class _AssetHandler(http.server.BaseHTTPRequestHandler):
    """Serves only the vendored Redoc bundle, gzip-encoded as it is stored."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/redoc.standalone.js":
            self.send_error(404)
            return
        data = REDOC_BUNDLE.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/javascript; charset=utf-8")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def asset_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _AssetHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/redoc.standalone.js"
    server.shutdown()
    server.server_close()


def test_vendored_bundle_is_redoc() -> None:
    head = gzip.decompress(REDOC_BUNDLE.read_bytes())[:300].decode()
    assert "Redoc" in head


def _dump_dom(url: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is missing and could not be installed (scripts/ensure_chromium.sh, run by "
           "`make test`, installs Debian's chromium where apt-get is usable)",
)
def test_docs_page_renders_every_route_in_a_real_browser(asset_server: str) -> None:
    with local_service({"API_KEYS": "docs-test-key", "DOCS_ASSETS_URL": asset_server}) as run:
        dom = _dump_dom(f"{run.base}/docs")
    assert "Incident API" in dom
    assert "redoc-wrap" in dom or "api-content" in dom, dom[:3000]  # Redoc rendered, not a blank page
    for path in ("/incidents", "/incidents/{id}", "/health", "/telegram/webhook"):
        assert f">{path}<" in dom, path
    for summary in ("Report an incident", "Change an incident's status"):
        assert summary in dom or summary.replace("'", "&#39;") in dom, summary
