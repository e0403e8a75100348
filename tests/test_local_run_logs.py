"""`make run` logs as Lambda does: after the banner, one JSON object per line, with request ids."""
import json
import urllib.error
import urllib.request

from local_run import local_service

KEY = "local-run-logs-canary-key"
TELEGRAM_SECRET = "local-run-logs-canary-secret"
BANNER_END = "Ctrl-C stops both."


def call(base, method, path, body=None, headers=None):
    request = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_make_run_prints_one_json_object_per_line_with_a_summary_per_request():
    with local_service({"API_KEYS": KEY, "TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET}) as run:
        status, headers = call(run.base, "POST", "/incidents",
                               {"description": "Самокат #42 не в сети", "source": "monitoring"},
                               {"x-api-key": KEY})
        assert status == 201
        assert call(run.base, "GET", "/incidents", headers={"x-api-key": "wrong"})[0] == 401
        assert call(run.base, "POST", "/telegram/webhook", {"update_id": 1},
                    {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})[0] == 200
    output = run.output.split(BANNER_END, 1)[1]
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # fails on a non-JSON line
    summaries = [line for line in lines if line.get("message") == "request" and line["route"] != "/health"]
    assert [(s["route"], s["status"]) for s in summaries] == [
        ("/incidents", 201), ("/incidents", 401), ("/telegram/webhook", 200)]
    assert summaries[0]["request_id"] == headers["X-Request-Id"] and summaries[0]["incident_id"] >= 1
    assert any("_aws" in line for line in lines)  # the EMF metrics
    assert any(line.get("logger") == "chalice.local" for line in lines)  # its access log, wrapped
    assert TELEGRAM_SECRET not in output and KEY not in output
