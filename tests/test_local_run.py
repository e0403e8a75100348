"""The README's `make run`: moto server + `chalice local`, driven over real HTTP."""
import json
import urllib.error
import urllib.request

from local_run import answers, local_service

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
    assert run.stopped_by_ctrl_c, run.output
    assert f"Incident API on {base}" in run.output and f"API key: {KEY}" in run.output
    assert not answers(base + "/health") and not answers(run.moto_url)
