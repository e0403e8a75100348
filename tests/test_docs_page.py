"""GET /docs: a page that renders the OpenAPI document with Redoc, checked in a real headless
chromium against the local run, with Redoc served from a vendored copy on 127.0.0.1 (no CDN)."""
from __future__ import annotations

import base64
import gzip
import hashlib
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
    assert f'<script src="http://127.0.0.1:9/redoc.js" integrity="{docs_page.REDOC_INTEGRITY}"' in body
    assert "cdn" not in body


def test_docs_page_escapes_what_it_inserts() -> None:
    page = docs_page.render(spec_url='/x"><script>', script_url="http://127.0.0.1/a.js?x=1&y=2")
    assert '"><script>' not in page
    assert "a.js?x=1&amp;y=2" in page


def test_the_lambda_package_does_not_carry_the_redoc_bundle() -> None:
    chalicelib = Path(docs_page.__file__).resolve().parent
    assert not list(chalicelib.rglob("*.js")) and not list(chalicelib.rglob("*.gz"))
    # Redoc's bundle is about 1 MB; the largest file of ours is the OpenAPI document (~55 KB).
    assert all(p.stat().st_size < 200 * 1024 for p in chalicelib.rglob("*") if p.is_file())


class _AssetHandler(http.server.BaseHTTPRequestHandler):
    """Serves only the vendored Redoc bundle, gzip-encoded as it is stored."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0]
        if path == "/redoc.standalone.js":
            data = REDOC_BUNDLE.read_bytes()
        elif path == "/tampered/redoc.standalone.js":  # one byte more than the pinned file
            data = gzip.compress(gzip.decompress(REDOC_BUNDLE.read_bytes()) + b"\n")
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/javascript; charset=utf-8")
        self.send_header("Content-Encoding", "gzip")
        # The page loads it with crossorigin="anonymous" (SRI needs CORS), as from jsDelivr.
        self.send_header("Access-Control-Allow-Origin", "*")
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


def _dump_dom(url: str, console: list[str] | None = None) -> str:
    """The page's DOM after its scripts ran; `console` gets the browser console's lines."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
             "--v=0", "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    if console is not None:
        console += [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is missing and could not be installed (scripts/ensure_chromium.sh, run by "
           "`make test`, installs Debian's chromium where apt-get is usable)",
)
def test_docs_page_renders_every_route_in_a_real_browser(asset_server: str) -> None:
    console: list[str] = []
    with local_service({"API_KEYS": "docs-test-key", "DOCS_ASSETS_URL": asset_server}) as run:
        dom = _dump_dom(f"{run.base}/docs", console)
    # Under its Content-Security-Policy, with the pinned bundle: nothing refused.
    assert not [line for line in console if "Content Security Policy" in line or "integrity" in line], console
    assert "Incident API" in dom
    assert "redoc-wrap" in dom or "api-content" in dom, dom[:3000]  # Redoc rendered, not a blank page
    for path in ("/incidents", "/incidents/{id}", "/health", "/telegram/webhook"):
        assert f">{path}<" in dom, path
    for summary in ("Report an incident", "Change an incident's status"):
        assert summary in dom or summary.replace("'", "&#39;") in dom, summary


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (see above)")
def test_a_bundle_that_is_not_the_pinned_one_does_not_run(asset_server: str) -> None:
    console: list[str] = []
    tampered = asset_server.replace("/redoc.standalone.js", "/tampered/redoc.standalone.js")
    with local_service({"API_KEYS": "docs-test-key", "DOCS_ASSETS_URL": tampered}) as run:
        dom = _dump_dom(f"{run.base}/docs", console)
    assert "api-content" not in dom and ">/incidents<" not in dom
    assert any("integrity" in line for line in console), console


def test_docs_page_pins_redoc_by_the_hash_of_the_vendored_bundle_and_allows_no_other_script(api: Any) -> None:
    bundle = gzip.decompress(REDOC_BUNDLE.read_bytes())
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(bundle).digest()).decode()
    response = api.get("/docs", key=None)
    assert f'integrity="{integrity}" crossorigin="anonymous"' in response.body.decode()
    policy = dict(d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["script-src"] == docs_page.DEFAULT_ASSETS_URL
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_script_source_in_the_policy_is_the_assets_url_without_anything_that_would_end_it(
        api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_ASSETS_URL", "https://mirror.example/redoc;script-src *, x.js?v=1")
    policy = api.get("/docs", key=None).headers["Content-Security-Policy"]
    directives = [d.split()[0] for d in policy.split(";")]
    assert directives.count("script-src") == 1 and "," not in policy
    assert "script-src https://mirror.example/redoc%3Bscript-src%20*%2C%20x.js;" in policy
