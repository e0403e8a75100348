"""The README's `make run`: moto server + `chalice local`, driven over real HTTP; its data kept
across restarts; its failures; `make say`, the local Telegram group."""
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from local_run import ROOT, answers, clean_environment, free_ports, local_service

KEY = "local-run-test-key"


def call(base, method, path, body=None, key=KEY):
    request = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_the_local_run_serves_the_api_over_http_and_ctrl_c_stops_all_of_it():
    with local_service({"API_KEYS": KEY}) as run:
        base = run.base
        status, headers, created = call(base, "POST", "/incidents",
                                        {"description": "Самокат #42 не в сети", "source": "monitoring"})
        assert status == 201 and headers["Location"] == f"/incidents/{created['id']}"
        assert created["description"] == "Самокат #42 не в сети"
        assert call(base, "GET", f"/incidents/{created['id']}")[2] == created
        status, _, page = call(base, "GET", "/incidents?status=new")
        assert status == 200 and created["id"] in [i["id"] for i in page["items"]]
        status, _, changed = call(base, "PATCH", f"/incidents/{created['id']}",
                                  {"status": "resolved", "note": "back online"})
        assert status == 200 and changed["history"][-1]["note"] == "back online"
        assert call(base, "GET", "/incidents/999999")[0] == 404
        status, _, error = call(base, "PATCH", f"/incidents/{created['id']}", {"status": "new"})
        assert status == 409 and "resolved" in error["Message"]
        assert call(base, "GET", "/incidents", key="wrong")[0] == 401
        assert answers(run.moto_url)
    assert run.stopped and not run.left_processes, run.output
    assert f"Incident API on {base}" in run.output and f"API key: {KEY}" in run.output
    assert not answers(base + "/health") and not answers(run.moto_url)


def test_the_data_survives_a_restart_after_sigterm_or_sigint_to_make(tmp_path):
    """Stopped by SIGTERM, then by SIGINT, each sent to make's pid alone: every incident comes
    back with its history, and ids go on from where they were."""
    kept = tmp_path / "local"
    with local_service({"API_KEYS": KEY}, local_dir=kept, stop_signal=signal.SIGTERM) as run:
        first = call(run.base, "POST", "/incidents", {"description": "Самокат #42 не в сети",
                                                      "source": "monitoring", "dedup_key": "scooter-42"})[2]
        second = call(run.base, "POST", "/incidents", {"description": "POS 7", "source": "partner"})[2]
        call(run.base, "POST", "/incidents", {"description": "again", "source": "monitoring",
                                              "dedup_key": "scooter-42"})
        call(run.base, "PATCH", f"/incidents/{first['id']}", {"status": "in_progress", "note": "on it"})
        before = {i: call(run.base, "GET", f"/incidents/{i}")[1:] for i in (first["id"], second["id"])}
    assert run.stopped and not run.left_processes, run.output
    assert not answers(run.base + "/health") and not answers(run.moto_url)

    with local_service({"API_KEYS": KEY}, local_dir=kept, stop_signal=signal.SIGINT) as run:
        after = {i: call(run.base, "GET", f"/incidents/{i}")[1:] for i in before}
        assert [(h["ETag"], body) for h, body in after.values()] == \
               [(h["ETag"], body) for h, body in before.values()]
        assert after[first["id"]][1]["occurrences"] == 2
        assert [e["status"] for e in after[first["id"]][1]["history"]] == ["new", "in_progress"]
        third = call(run.base, "POST", "/incidents", {"description": "Касса 3", "source": "operator"})[2]
        assert third["id"] == second["id"] + 1
        call(run.base, "PATCH", f"/incidents/{second['id']}", {"status": "resolved", "note": "fixed"})
        before = {i: call(run.base, "GET", f"/incidents/{i}")[2] for i in (first["id"], second["id"], third["id"])}
    assert run.stopped and not run.left_processes, run.output
    assert "items loaded" in run.output

    with local_service({"API_KEYS": KEY}, local_dir=kept) as run:
        assert {i: call(run.base, "GET", f"/incidents/{i}")[2] for i in before} == before
        assert call(run.base, "POST", "/incidents", {"description": "four", "source": "operator"})[2]["id"] \
            == third["id"] + 1
        listed = call(run.base, "GET", "/incidents?status=resolved")[2]["items"]
        assert [i["id"] for i in listed] == [second["id"]]

    with local_service({"API_KEYS": KEY, "FRESH": "1"}, local_dir=kept) as run:
        assert call(run.base, "GET", f"/incidents/{first['id']}")[0] == 404
        assert call(run.base, "POST", "/incidents", {"description": "x", "source": "operator"})[2]["id"] == 1


@pytest.mark.parametrize("variable", ["PORT", "MOTO_PORT"])
def test_a_taken_port_is_one_line_naming_it_and_its_variable_before_anything_else(variable, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = dict(zip(("PORT", "MOTO_PORT"), map(str, free_ports(2))))
        ports = {**free, variable: str(port)}
        env = clean_environment()
        env.update(ports, LOCAL_DIR=str(tmp_path))
        started = time.monotonic()
        result = subprocess.run(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 5, f"took {elapsed:.1f} s"
    ours = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("make:")]
    assert ours == [f"port {port} is in use: set {variable} to another port (make run {variable}={port + 100})"]


def say(run, text, **extra):
    env = {**run.env, "TEXT": text, **extra}
    result = subprocess.run(["make", "--no-print-directory", "say"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_make_say_talks_to_the_local_bot_and_replies_reach_the_incident_it_named():
    with local_service({"API_KEYS": KEY}) as run:
        assert say(run, "[monitoring] Самокат 42 не в сети") == [
            "ivan_ops [1]: [monitoring] Самокат 42 не в сети",
            "IncidentBot [2]: Incident #1 created: Самокат 42 не в сети  [Take] [Resolve]",
        ]
        assert say(run, "/new@IncidentBot POS 7 not answering", FROM="anna_support")[1] == \
            "IncidentBot [4]: Incident #2 created: POS 7 not answering  [Take] [Resolve]"
        assert say(run, "в работе смотрю", REPLY_TO="2") == [
            "ivan_ops [5]: в работе смотрю",
            "IncidentBot [6]: #1 → in_progress, assignee @ivan_ops  [Resolve] [Close]"]
        assert say(run, "кто смотрит #3?", FROM="222222222") == [
            "222222222 [7]: кто смотрит #3?",
            "(no answer: the bot ignores this message; make run's log says why)"]
        incident = call(run.base, "GET", "/incidents/1")[2]
        assert [(e["status"], e["note"], e["by"]) for e in incident["history"]] == [
            ("new", None, "telegram:ivan_ops"), ("in_progress", "смотрю", "telegram:ivan_ops")]
        assert incident["source"] == "monitoring"
        assert call(run.base, "GET", "/incidents/2")[2]["history"][0]["by"] == "telegram:anna_support"

        assert say(run, "", PRESS="4:resolve", FROM="maria_sre") == [
            "maria_sre presses [Resolve] on [4]",
            "IncidentBot answers: #2 → resolved",
            "IncidentBot [4] now: #2 [operator] resolved: POS 7 not answering  [Reopen] [Close]"]
        assert say(run, "", PRESS="2:Take")[1:] == [  # message 2 still showed #1 as new
            "IncidentBot answers: #1 is already in_progress, assignee @ivan_ops",
            "IncidentBot [2] now: #1 [monitoring] in_progress, assignee @ivan_ops: Самокат 42 не в сети"
            "  [Resolve] [Close]"]
        assert call(run.base, "GET", "/incidents/2")[2]["history"][-1]["by"] == "telegram:maria_sre"
