"""`make fire-alarm` against `make run`: each call is a new state change of the sample alarm."""
import json
import os
import subprocess
import urllib.request

from conftest import ROOT
from local_run import local_service

KEY = "fire-alarm-test-key"


def fire(moto_url: str, state: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(MOTO_PORT=moto_url.rsplit(":", 1)[1], API_KEYS=KEY)
    return subprocess.run(["make", "--no-print-directory", "fire-alarm", f"STATE={state}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_fire_alarm_opens_counts_and_resolves_the_sample_alarms_incident():
    with local_service({"API_KEYS": KEY}) as run:
        for state in ("ALARM", "ALARM", "OK"):
            result = fire(run.moto_url, state)
            assert result.returncode == 0, result.stderr
        request = urllib.request.Request(f"{run.base}/incidents/1", headers={"x-api-key": KEY})
        with urllib.request.urlopen(request, timeout=10) as response:
            incident = json.loads(response.read())

    assert (incident["occurrences"], incident["status"]) == (2, "resolved")
    assert "Delivered OK" in result.stdout and '"status": "resolved"' in result.stdout
