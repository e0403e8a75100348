"""`make fire-alarm STATE=ALARM|OK|INSUFFICIENT_DATA`: deliver a sample CloudWatch alarm to the local run.

`chalice local` serves HTTP only; it runs no SNS or EventBridge handler. So this builds the
delivery Lambda would receive (from the test fixtures, with a fresh MessageId or event id),
invokes the app's own handler in-process against the embedded DynamoDB that `make run` started,
and prints the alarm's incident as the running API now shows it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from run_local import ROOT, STAGE, local_environment, stage_table_name

FIXTURES = ROOT / "tests" / "payloads"
SNS_FIXTURES = {
    "ALARM": "sns_alarm_record.json",
    "OK": "sns_ok_record.json",
    "INSUFFICIENT_DATA": "sns_insufficient_record.json",
}
EVENTBRIDGE_FIXTURES = {
    "ALARM": "eventbridge_alarm.json",
    "OK": "eventbridge_ok.json",
    "INSUFFICIENT_DATA": "eventbridge_insufficient.json",
}
HANDLERS = {"sns": "on_alarm_notification", "eventbridge": "on_alarm_state_change"}


def sns_delivery(state: str) -> dict[str, Any]:
    event = _fixture(SNS_FIXTURES[state])
    sns = event["Records"][0]["Sns"]
    sns["MessageId"] = str(uuid.uuid4())  # a new notification, not a redelivery of the last one
    sns["Timestamp"] = _now()
    # A state change happening now: the service ignores events older than the last one applied.
    message = json.loads(sns["Message"])
    message["StateChangeTime"] = _now()
    sns["Message"] = json.dumps(message, ensure_ascii=False)
    return event


def eventbridge_delivery(state: str) -> dict[str, Any]:
    event = _fixture(EVENTBRIDGE_FIXTURES[state])
    event["id"] = str(uuid.uuid4())
    event["time"] = event["detail"]["state"]["timestamp"] = _now()
    return event


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("state", nargs="?", default="ALARM", type=str.upper, choices=sorted(SNS_FIXTURES))
    parser.add_argument("--via", choices=sorted(HANDLERS), default="sns",
                        help="which delivery to imitate (default: sns)")
    args = parser.parse_args()

    moto_port = int(os.environ.get("MOTO_PORT") or 8001)
    os.environ.update(local_environment(moto_port), TABLE_NAME=stage_table_name())
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(ROOT))
    from chalice.test import Client

    from app import app
    from chalicelib.alarms import parse_eventbridge_event
    from chalicelib.incidents import Unavailable, public_view
    from chalicelib.store import default_store

    store = default_store()
    try:
        store.ping()
    except Unavailable:
        print(f"No embedded DynamoDB with table {store.table_name} on "
              f"{os.environ['AWS_ENDPOINT_URL_DYNAMODB']}: start the service with `make run` first.",
              file=sys.stderr)
        return 1

    event = sns_delivery(args.state) if args.via == "sns" else eventbridge_delivery(args.state)
    with Client(app, stage_name=STAGE, project_dir=str(ROOT)) as client:
        client.lambda_.invoke(HANDLERS[args.via], event)

    # Both fixtures name the same alarm, so its dedup key finds the incident it touched.
    alarm_key = parse_eventbridge_event(_fixture(EVENTBRIDGE_FIXTURES[args.state])).dedup_key
    record = store.dedup_record(alarm_key)
    owner = record.incident_id if record is not None else None
    incident = store.get_incident(owner) if owner is not None else None
    print(f"Delivered {args.state} for {alarm_key} via {args.via}.")
    if incident is None:
        print("No incident for that alarm (nothing was opened).")
        return 0
    print(json.dumps(public_view(incident), ensure_ascii=False, indent=2))
    port = os.environ.get("PORT") or "8000"
    from chalicelib.auth import writable_key

    api_key = writable_key(os.environ["API_KEYS"])
    print(f"\ncurl -s -H 'x-api-key: {api_key}' http://127.0.0.1:{port}/incidents/{incident['id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
