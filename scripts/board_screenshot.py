"""docs/board.png: the board of a local run (`make run` on free ports), in headless chromium.

    .venv/bin/python scripts/board_screenshot.py [output.png]

The incidents are made through the service's own use cases against the local run's embedded
DynamoDB, with the clock set back, so that the picture shows incidents of several ages.
"""
from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "scripts")]

import boto3  # noqa: E402

from browser import Browser  # noqa: E402
from local_run import local_service  # noqa: E402
from run_local import stage_table_name  # noqa: E402

KEY = "screenshot-key"
NOW = datetime.now(timezone.utc)
# Two teams; whoever is on call when an incident of theirs opens becomes its assignee.
TEAMS = {
    "scooters": ["ivan_ops", "maria_sre"],
    "payments": ["oleg_k", "nina_dba"],
}
# (hours ago, source, description, severity, team, [(hours after creation, status)], note)
INCIDENTS = [
    (30, "partner", "POS 7 not answering since the night shift", "error", "payments", [], None),
    (26, "monitoring", "Склад 3: сканер не отвечает", "warning", None, [(0.2, "in_progress")], "ждём запчасть"),
    (9, "operator", "Отчёт за смену не выгрузился", None, None, [(0.5, "in_progress")], None),
    (5, "monitoring", "CPU high on api-1", "warning", None, [(0.1, "resolved")], None),
    (2.5, "operator", "Касса 3 не печатает чеки", None, "payments", [], None),
    (1.5, "monitoring", "Самокат #42 не в сети", "error", "scooters", [(0.05, "in_progress")], "техник выехал"),
    (0.3, "monitoring", "Payment gateway latency over 2 s", "critical", "payments", [], None),
    (0.1, "partner", "Partner API timeouts", "info", None, [], None),
]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed(moto_url: str) -> None:
    from chalicelib import services
    from chalicelib.oncall import teams
    from chalicelib.store import Store

    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="eu-west-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
    store = Store(client, stage_table_name())
    clock = {"now": NOW}
    services.now_iso = lambda: iso(clock["now"])
    for name, members in TEAMS.items():
        teams.put_team(store, name, {
            "chat_id": -1001234567890, "time_zone": "UTC",
            "rotation": {"members": members, "start": iso(NOW - timedelta(days=3))[:16], "shift": "daily"},
            "escalation_rules": [{"escalation_delay_in_minutes": 15, "targets": ["on_call"]}],
        }, NOW - timedelta(days=3))
    for hours, source, description, severity, team, moves, note in INCIDENTS:
        created = NOW - timedelta(hours=hours)
        clock["now"] = created
        incident = services.open_incident(store, description=description, source=source, by="api",
                                          severity=severity, team=team).incident
        for after, status in moves:
            clock["now"] = created + timedelta(hours=after)
            services.change_status(store, incident["id"], status, by="telegram:ivan_ops")
        if note:
            clock["now"] = min(NOW, clock["now"] + timedelta(minutes=5))
            services.add_note(store, incident["id"], note, by="telegram:ivan_ops")
    clock["now"] = NOW - timedelta(hours=1.4)
    services.open_incident(store, description="Самокат #42 не в сети", source="monitoring", by="api",
                           dedup_key="scooter-42")
    for _ in range(2):
        services.open_incident(store, description="Самокат #42 не в сети", source="monitoring",
                               by="api", dedup_key="scooter-42")


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "board.png"
    with local_service({"API_KEYS": KEY}) as run:
        seed(run.moto_url)
        with Browser() as browser:
            browser.viewport(1280, 800)
            browser.goto(f"{run.base}/board")
            browser.js(f"document.getElementById('key-input').value = '{KEY}';"
                       "document.getElementById('key-form').requestSubmit()")
            browser.wait_for("document.body.dataset.state === 'ready'")
            browser.js("document.querySelector('.card[data-id=\"6\"]').click()")
            browser.wait_for("document.getElementById('detail').dataset.id === '6' && "
                             "document.getElementById('history').children.length > 0")
            browser.screenshot(output)
    print(f"wrote {output}")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
