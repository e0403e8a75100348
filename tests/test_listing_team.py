"""GET /incidents?team=: alone or with status, pages that yield every match once, PATCH moving
an incident between teams' lists, 400s, and O(limit) items read per page."""
import pytest

from chalicelib import services
from tests.oncall.test_teams_api import TEAM, put
from tests.test_listing import count_queries, walk, walk_reading_at_most_limit_plus_one

STATUSES = ("new", "in_progress", "resolved", "closed")


@pytest.fixture
def teamed(api, store):
    """24 incidents: every 3rd of ops (opened in it), every 3rd of db, the rest of no team; the
    status cycles through the four. Returns {id: (team, status)}."""
    for name in ("ops", "db"):
        assert put(api, name, TEAM).status_code == 201
    made = {}
    for n in range(24):
        team = ("ops", "db", None)[n % 3]
        incident = services.open_incident(store, description=f"report {n}", source="operator",
                                          by="api", team=team).incident
        status = STATUSES[n % 4]
        if status != "new":
            services.change_status(store, incident["id"], status, by="api")
        made[incident["id"]] = (team, status)
    return made


def matching(made, team, status=None):
    return sorted((i for i, (t, s) in made.items() if t == team and status in (None, s)), reverse=True)


@pytest.mark.parametrize("team, status", [
    ("ops", None), ("db", None), ("ops", "new"), ("db", "closed"), ("ops", "in_progress"),
    ("nobody", None), ("nobody", "new"),
])
def test_following_next_cursor_yields_every_incident_of_the_team_once_newest_first(
    api, teamed, team, status
):
    query = f"team={team}" + (f"&status={status}" if status else "")
    for limit in (1, 2, 100):
        pages = walk(api, query, limit)
        assert [i for page in pages for i in page] == matching(teamed, team, status), limit
        assert all(len(page) == limit for page in pages[:-1])


def test_a_listed_incident_shows_its_team_and_nothing_of_the_index(api, teamed):
    items = api.get("/incidents?team=ops&status=new").json_body["items"]
    assert items and all(item["team"] == "ops" and item["status"] == "new" for item in items)
    full = api.get(f"/incidents/{items[0]['id']}").json_body
    assert items[0] == {k: v for k, v in full.items() if k != "history"}
    assert not any("team_created" in item or "created_key" in item for item in items)


def test_patching_the_team_moves_the_incident_between_team_lists_and_null_takes_it_out(api, store):
    for name in ("ops", "db"):
        put(api, name, TEAM)
    incident = api.create("Самокат #42 не в сети")
    path = f"/incidents/{incident['id']}"

    def listed(team):
        return [i["id"] for i in api.get(f"/incidents?team={team}").json_body["items"]] + \
            [i["id"] for i in api.get(f"/incidents?team={team}&status=new").json_body["items"]]

    assert listed("ops") == listed("db") == []
    assert api.patch(path, {"team": "ops"}).status_code == 200
    assert listed("ops") == [incident["id"]] * 2 and listed("db") == []
    assert api.patch(path, {"team": "db"}).status_code == 200
    assert listed("ops") == [] and listed("db") == [incident["id"]] * 2
    assert api.patch(path, {"status": "in_progress"}).status_code == 200
    assert [i["id"] for i in api.get("/incidents?team=db&status=in_progress").json_body["items"]] == [incident["id"]]
    assert api.get("/incidents?team=db&status=new").json_body["items"] == []
    assert api.patch(path, {"team": None}).status_code == 200
    assert listed("ops") == listed("db") == []
    assert api.get(path).json_body["team"] is None


def test_a_deleted_teams_incidents_are_still_listed_under_its_name(api, teamed):
    assert api.request("DELETE", "/teams/ops").status_code in (200, 204)
    assert [i for page in walk(api, "team=ops", 50) for i in page] == matching(teamed, "ops")


@pytest.mark.parametrize("query, reason", [
    ("team=Ops", "team must be a team's name, 1–32 characters of a–z, 0–9 and -"),
    ("team=", "team must be a team's name"),
    ("team=" + "a" * 33, "team must be a team's name"),
    ("team=ops%23x", "team must be a team's name"),
    ("team=ops&source=operator", "team combines with status only"),
    ("team=ops&status=new&source=operator", "team combines with status only"),
    ("team=ops&status=open", "status must be one of"),
])
def test_bad_team_filters_are_400_with_the_rule(api, query, reason):
    response = api.get(f"/incidents?{query}")
    assert response.status_code == 400, response.body
    assert reason in response.json_body["Message"]


def test_a_cursor_of_one_team_is_400_for_another_or_without_the_team(api, teamed):
    cursor = api.get("/incidents?team=ops&limit=1").json_body["next_cursor"]
    for query in ("team=db", "", "status=new", "team=ops&status=new"):
        response = api.get(f"/incidents?{query}&cursor={cursor}")
        assert response.status_code == 400, (query, response.body)
        assert "cursor was issued for other filters" in response.json_body["Message"]
    assert api.get(f"/incidents?team=ops&limit=1&cursor={cursor}").status_code == 200


def test_a_cursor_issued_before_the_team_filter_still_works(api, teamed):
    """Cursors without a team are signed over the same filters as before."""
    from chalicelib import cursors

    first = api.get("/incidents?status=new&limit=1").json_body
    position = cursors.decode(first["next_cursor"], {"status": "new", "source": None})
    old = cursors.encode(position, {"status": "new", "source": None})
    assert api.get(f"/incidents?status=new&limit=1&cursor={old}").status_code == 200


# Cost: O(limit) items read per page, however many incidents other teams or no team have


@pytest.fixture
def crowded(api, store):
    """ops owns 2 incidents (the oldest: one new, one closed) under 150 closed db incidents and 30
    closed ones of no team; nobody owns none."""
    for name in ("ops", "db"):
        put(api, name, TEAM)
    for status in ("new", "closed"):
        created = services.open_incident(store, description="ops report", source="operator", by="api", team="ops")
        if status == "closed":
            services.change_status(store, created.incident["id"], "closed", by="api")
    for n in range(180):
        created = services.open_incident(store, description=f"alarm {n}", source="monitoring", by="api",
                                         team="db" if n < 150 else None)
        services.change_status(store, created.incident["id"], "closed", by="api")


# query -> (Queries a page makes: one per status partition, matches)
CROWDED_QUERIES = {
    "team=ops": (4, 2), "team=nobody": (4, 0), "team=db": (4, 150),
    "team=ops&status=closed": (1, 1), "team=ops&status=new": (1, 1),
    "team=nobody&status=closed": (1, 0), "team=db&status=closed": (1, 150),
}


@pytest.mark.parametrize("query, partitions, matches",
                         [(q, p, m) for q, (p, m) in CROWDED_QUERIES.items()])
def test_a_team_page_reads_at_most_limit_plus_one_items_per_status_partition(
    api, store, crowded, query, partitions, matches
):
    scanned = count_queries(store)
    walk_reading_at_most_limit_plus_one(api, scanned, query, partitions, matches, exact=True)


def test_an_incident_teamed_before_the_index_rejoins_the_list_when_its_assignee_changes(api, store, dynamodb):
    """Data written by earlier code has `team` without the index's key (docs/table-design.md)."""
    from chalicelib.store import _incident_key, _key

    put(api, "ops", TEAM)
    incident = services.open_incident(store, description="old", source="operator", by="api", team="ops").incident
    dynamodb.update_item(TableName=store.table_name, Key=_key(_incident_key(incident["id"])),
                         UpdateExpression="REMOVE team_created")
    assert api.get("/incidents?team=ops").json_body["items"] == []

    assert api.patch(f"/incidents/{incident['id']}", {"assignee": "oleg_k"}).status_code == 200

    assert [i["id"] for i in api.get("/incidents?team=ops").json_body["items"]] == [incident["id"]]
