"""Listing: filters, newest first, pages that yield every incident exactly once."""
import itertools

import pytest

SOURCES = ["operator", "monitoring", "partner"]


def walk(api, query, limit):
    pages, cursor = [], None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        response = api.get(f"/incidents?{query}&limit={limit}{suffix}")
        assert response.status_code == 200, response.body
        pages.append([item["id"] for item in response.json_body["items"]])
        cursor = response.json_body["next_cursor"]
        if cursor is None:
            return pages


@pytest.fixture
def mixed(api):
    """23 incidents across sources; ids 3,6,9… in progress, ids 5,10,… closed."""
    for n, source in zip(range(1, 24), itertools.cycle(SOURCES)):
        api.create(f"report {n}", source)
        if n % 5 == 0:
            api.patch(f"/incidents/{n}", {"status": "closed"})
        elif n % 3 == 0:
            api.patch(f"/incidents/{n}", {"status": "in_progress"})
    incidents = [api.get(f"/incidents/{n}").json_body for n in range(1, 24)]
    return incidents


def expected(incidents, status=None, source=None):
    chosen = [i for i in incidents if (status is None or i["status"] == status)
              and (source is None or i["source"] == source)]
    return [i["id"] for i in sorted(chosen, key=lambda i: (i["created_at"], i["id"]), reverse=True)]


def test_an_empty_list_has_no_next_cursor(api):
    assert api.get("/incidents").json_body == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("status, source", [
    (None, None), ("new", None), ("in_progress", None), ("closed", None),
    (None, "partner"), ("new", "operator"), ("closed", "monitoring"), ("resolved", None),
])
def test_following_next_cursor_yields_every_match_once_newest_first(api, mixed, status, source):
    query = "&".join(f"{k}={v}" for k, v in {"status": status, "source": source}.items() if v)
    for limit in (1, 4, 100):
        pages = walk(api, query, limit)
        assert [i for page in pages for i in page] == expected(mixed, status, source), limit
        assert all(len(page) == limit for page in pages[:-1])
        assert len(pages[-1]) <= limit


def test_items_are_the_incidents_without_their_history(api, mixed):
    items = api.get("/incidents?status=closed&limit=2").json_body["items"]
    full = [api.get(f"/incidents/{i['id']}").json_body for i in items]
    assert items == [{k: v for k, v in incident.items() if k != "history"} for incident in full]
    assert all(item["history_count"] == len(incident["history"]) for item, incident in zip(items, full))


def test_the_default_page_holds_50(api):
    for n in range(53):
        api.create(f"r{n}")
    body = api.get("/incidents").json_body
    assert len(body["items"]) == 50 and body["next_cursor"]


@pytest.mark.parametrize("query, reason", [
    ("limit=0", "limit must be an integer from 1 to 100"),
    ("limit=101", "limit must be an integer from 1 to 100"),
    ("limit=abc", "limit must be an integer from 1 to 100"),
    ("status=open", "status must be one of: new, in_progress, resolved, closed"),
    ("source=robot", "source must be one of: operator, monitoring, partner"),
    ("cursor=garbage", "cursor was not issued by this service"),
])
def test_bad_list_parameters_are_400_with_the_reason(api, query, reason):
    response = api.get(f"/incidents?{query}")
    assert response.status_code == 400 and reason in response.json_body["Message"]


def test_a_cursor_reused_with_other_filters_is_400(api, mixed):
    cursor = api.get("/incidents?status=new&limit=1").json_body["next_cursor"]
    response = api.get(f"/incidents?status=closed&limit=1&cursor={cursor}")
    assert response.status_code == 400 and "other filters" in response.json_body["Message"]


def test_a_tampered_cursor_is_400(api, mixed):
    cursor = api.get("/incidents?limit=1").json_body["next_cursor"]
    tampered = ("A" if cursor[0] != "A" else "B") + cursor[1:]
    assert api.get(f"/incidents?limit=1&cursor={tampered}").status_code == 400


# Cost: every filter reads O(limit) items per page, whatever the data looks like

def count_queries(store):
    """ScannedCount of every Query the store's client makes from now on (botocore's own hook)."""
    scanned = []
    store._client.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: scanned.append(parsed.get("ScannedCount", 0))
    )
    return scanned


@pytest.fixture
def skewed(api, store):
    """Two partner incidents (the oldest: one new, one closed) under 150 closed monitoring ones;
    nothing from an operator."""
    from chalicelib import services

    for status in ("new", "closed"):
        created = services.open_incident(store, description="partner report", source="partner", by="api")
        if status == "closed":
            services.change_status(store, created.incident["id"], "closed", by="api")
    for n in range(150):
        created = services.open_incident(store, description=f"alarm {n}", source="monitoring", by="api")
        services.change_status(store, created.incident["id"], "closed", by="api")


# query -> (partitions read, matches)
SKEWED_QUERIES = {
    "source=partner": (1, 2), "source=operator": (1, 0), "status=closed&source=partner": (1, 1),
    "status=new&source=partner": (1, 1), "status=new&source=operator": (1, 0),
    "status=closed&source=operator": (1, 0), "status=new": (1, 1), "": (1, 152),
}


@pytest.mark.parametrize("query, partitions, matches",
                         [(q, p, m) for q, (p, m) in SKEWED_QUERIES.items()])
def test_a_page_reads_at_most_limit_plus_one_items_per_partition_however_rare_the_match(
    api, store, skewed, query, partitions, matches
):
    scanned = count_queries(store)
    walk_reading_at_most_limit_plus_one(api, scanned, query, partitions, matches)


def walk_reading_at_most_limit_plus_one(api, scanned, query, partitions, matches, exact=False):
    """Every page of `query` at limits 1 and 5: each page is at most `partitions` Queries
    (exactly, with `exact`) of at most limit + 1 items, and the pages hold every match once."""
    for limit in (1, 5):
        pages, cursor, ids = 0, None, []
        while True:
            suffix = f"&cursor={cursor}" if cursor else ""
            before = len(scanned)
            response = api.get(f"/incidents?{query}&limit={limit}{suffix}")
            assert response.status_code == 200, response.body
            calls = scanned[before:]
            assert (len(calls) == partitions) if exact else (len(calls) <= partitions), (query, limit, calls)
            assert all(count <= limit + 1 for count in calls), (query, limit, calls)
            ids += [item["id"] for item in response.json_body["items"]]
            pages += 1
            cursor = response.json_body["next_cursor"]
            if cursor is None or pages > 200:
                break
        assert cursor is None
        assert len(ids) == len(set(ids)) == matches
