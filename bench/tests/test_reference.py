import re


def create(client, description="Scooter #42 offline", source="monitoring", **extra):
    return client.post("/incidents", json={"description": description, "source": source, **extra})


def test_create_returns_201_location_and_incident(client):
    r = create(client, description="  Самокат #42 не в сети  ")
    assert r.status_code == 201
    body = r.json()
    assert r.headers["location"] == f"/incidents/{body['id']}"
    assert r.headers["etag"]
    assert body["id"] == 1
    assert body["description"] == "Самокат #42 не в сети"
    assert body["status"] == "new" and body["source"] == "monitoring"
    assert body["dedup_key"] is None and body["occurrences"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["created_at"])
    assert body["history"] == [{"at": body["created_at"], "status": "new", "note": None, "by": "api"}]
    assert create(client).json()["id"] == 2


def test_get_200_and_404(client):
    incident = create(client).json()
    r = client.get(f"/incidents/{incident['id']}")
    assert r.status_code == 200 and r.json() == incident
    assert client.get("/incidents/999").status_code == 404


def test_list_newest_first_filtered_by_status_and_limited(client):
    ids = [create(client, description=f"n{i}").json()["id"] for i in range(5)]
    assert client.patch(f"/incidents/{ids[2]}", json={"status": "resolved"}).status_code == 200
    r = client.get("/incidents", params={"status": "new"})
    assert r.status_code == 200
    assert [i["id"] for i in r.json()["items"]] == [ids[4], ids[3], ids[1], ids[0]]
    assert [i["id"] for i in client.get("/incidents").json()["items"]] == ids[::-1]
    assert [i["id"] for i in client.get("/incidents", params={"limit": 2}).json()["items"]] == [ids[4], ids[3]]
    for bad in ({"limit": 0}, {"limit": 101}, {"status": "open"}):
        assert client.get("/incidents", params=bad).status_code == 422


def test_patch_transition_conflict_and_noop(client):
    incident_id = create(client).json()["id"]
    r = client.patch(f"/incidents/{incident_id}", json={"status": "in_progress", "note": "on it"})
    assert r.status_code == 200
    after = r.json()
    assert after["status"] == "in_progress"
    assert [h["status"] for h in after["history"]] == ["new", "in_progress"]
    assert after["history"][1]["note"] == "on it"

    same = client.patch(f"/incidents/{incident_id}", json={"status": "in_progress"})
    assert same.status_code == 200 and same.json() == after
    assert same.headers["etag"] == r.headers["etag"]

    assert client.patch(f"/incidents/{incident_id}", json={"status": "closed"}).status_code == 200
    refused = client.patch(f"/incidents/{incident_id}", json={"status": "in_progress"})
    assert refused.status_code == 409 and "closed" in refused.json()["detail"]
    assert client.get(f"/incidents/{incident_id}").json()["status"] == "closed"
    assert client.patch("/incidents/999", json={"status": "closed"}).status_code == 404


def test_dedup_key_counts_occurrences_while_open(client):
    first = create(client, dedup_key="alarm-1")
    assert first.status_code == 201
    again = create(client, dedup_key="alarm-1")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["occurrences"] == 2
    client.patch(f"/incidents/{first.json()['id']}", json={"status": "resolved"})
    assert create(client, dedup_key="alarm-1").status_code == 201


def test_401_without_or_with_wrong_key(client):
    for headers in ({"x-api-key": ""}, {"x-api-key": "wrong"}):
        assert client.get("/incidents", headers=headers).status_code == 401
        assert client.post("/incidents", headers=headers,
                           json={"description": "x", "source": "operator"}).status_code == 401
    from fastapi.testclient import TestClient
    assert TestClient(client.app).get("/incidents/1").status_code == 401


def test_422_on_bad_body_and_nothing_stored(client):
    bad_bodies = [
        {},
        {"description": "   ", "source": "operator"},
        {"description": "x" * 4001, "source": "operator"},
        {"description": "ok", "source": "email"},
        {"description": "ok", "source": "operator", "priority": "high"},
        {"description": 42, "source": "operator"},
        {"description": "ok", "source": "operator", "dedup_key": "k" * 257},
    ]
    for body in bad_bodies:
        assert client.post("/incidents", json=body).status_code == 422, body
    assert client.post("/incidents", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.get("/incidents").json()["items"] == []
    incident_id = create(client).json()["id"]
    assert client.patch(f"/incidents/{incident_id}", json={"status": "done"}).status_code == 422
    assert client.patch(f"/incidents/{incident_id}", json={}).status_code == 422
    assert create(client, description="x" * 4000).status_code == 201
