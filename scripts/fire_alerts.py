"""`make fire-alerts [STATUS=firing|resolved]`: a sample Alertmanager batch and a PagerDuty
trigger/resolve pair, sent over HTTP to the service `make run` started, as the tools would.

The Alertmanager batch is tests/payloads/integrations/alertmanager_firing.json with `startsAt`
(firing) or `endsAt` (resolved) set to now, sent with `Authorization: Bearer <API key>`. The
PagerDuty pair is the documented trigger example (dedup_key `samplekeyhere`) and its resolve.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from run_local import DEFAULT_API_KEYS, DEFAULT_INTEGRATION_KEY

from chalicelib.auth import writable_key  # noqa: E402 (run_local puts the repo on sys.path)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "payloads" / "integrations"


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def alertmanager_batch(status: str) -> dict[str, Any]:
    batch = fixture("alertmanager_firing")
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    batch["status"] = status
    for alert in batch["alerts"]:
        alert["status"] = status
        alert["startsAt" if status == "firing" else "endsAt"] = now
    return batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("status", nargs="?", default="firing", choices=["firing", "resolved"])
    args = parser.parse_args()
    base = f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"
    api_key = writable_key(os.environ.get("API_KEYS") or DEFAULT_API_KEYS)
    routing_key = (os.environ.get("INTEGRATION_KEYS") or DEFAULT_INTEGRATION_KEY).split(",")[0].strip()
    try:
        status, answer = post(f"{base}/alertmanager", alertmanager_batch(args.status),
                              {"Authorization": f"Bearer {api_key}"})
    except urllib.error.URLError:
        print(f"Nothing answers on {base}: start the service with `make run` first.", file=sys.stderr)
        return 1
    print(f"POST /alertmanager ({args.status}, 2 alerts) -> {status} {json.dumps(answer)}")
    for name in ("pagerduty_trigger", "pagerduty_resolve"):
        event = {**fixture(name), "routing_key": routing_key}
        status, answer = post(f"{base}/v2/enqueue", event, {})
        print(f"POST /v2/enqueue ({event['event_action']}) -> {status} {json.dumps(answer)}")
    print(f"\ncurl -s -H 'x-api-key: {api_key}' '{base}/incidents?source=monitoring'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
