"""Routes: which team a new incident belongs to. The matching table (chalicelib/oncall/routing.py,
pure), then PUT and GET /routes through the HTTP API (chalice.test.Client on moto)."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.oncall import routing


def incident(description: str = "Самокат #42 не в сети", source: str = "monitoring",
             severity: str | None = None, labels: dict[str, str] | None = None,
             dedup_key: str | None = None) -> dict[str, Any]:
    return {"description": description, "source": source, "severity": severity,
            "labels": labels or {}, "dedup_key": dedup_key}


def routed(routes: list[dict[str, Any]], incident: dict[str, Any]) -> str | None:
    """The team of the first route that matches (every team exists here)."""
    parsed = routing.parse_routes({"routes": routes})
    return next(routing.teams_for(parsed, incident), None)


CONTRACT_EXAMPLE = [
    {"match": {"source": ["monitoring"], "severity": ["critical", "error"],
               "labels": {"service": "payments"}}, "team": "payments"},
    {"match": {"text": "самокат"}, "team": "scooters"},
    {"match": {}, "team": "ops"},
]


# --- the table ---


def test_the_first_route_that_matches_wins_even_when_a_later_one_matches_too() -> None:
    routes = [{"match": {"source": ["partner"]}, "team": "partners"},
              {"match": {"source": ["monitoring"]}, "team": "first"},
              {"match": {"source": ["monitoring"]}, "team": "second"}]
    assert routed(routes, incident(source="monitoring")) == "first"
    assert routed(routes, incident(source="partner")) == "partners"


def test_the_contract_example_sends_each_incident_where_it_says() -> None:
    payments = incident("Платежи не проходят", severity="critical", labels={"service": "payments", "env": "prod"})
    assert routed(CONTRACT_EXAMPLE, payments) == "payments"
    assert routed(CONTRACT_EXAMPLE, {**payments, "severity": "warning"}) == "ops"
    assert routed(CONTRACT_EXAMPLE, incident("Самокат #42 не в сети")) == "scooters"
    assert routed(CONTRACT_EXAMPLE, incident("Касса #7 не отвечает", source="partner")) == "ops"


@pytest.mark.parametrize("match, holds, fails", [
    ({"source": ["operator", "partner"]}, incident(source="partner"), incident(source="monitoring")),
    ({"severity": ["critical"]}, incident(severity="critical"), incident(severity="error")),
    ({"severity": ["info"]}, incident(severity="info"), incident(severity=None)),
    ({"labels": {"service": "payments"}}, incident(labels={"service": "payments", "env": "prod"}),
     incident(labels={"service": "scooters"})),
    ({"labels": {"service": "payments", "env": "prod"}}, incident(labels={"service": "payments", "env": "prod"}),
     incident(labels={"service": "payments"})),
    ({"text": "не в сети"}, incident("Самокат #42 не в сети"), incident("Самокат #42 разряжен")),
    ({"dedup_key_prefix": "pagerduty:"}, incident(dedup_key="pagerduty:pos-7"),
     incident(dedup_key="alertmanager:pagerduty:x")),
    ({"dedup_key_prefix": "scooter-"}, incident(dedup_key="scooter-42"), incident(dedup_key=None)),
], ids=["source", "severity", "severity-null-never-matches", "labels-one-pair", "labels-every-pair",
        "text", "dedup_key_prefix", "dedup_key_prefix-none"])
def test_each_matcher_alone_holds_for_what_it_names_and_no_other(match, holds, fails) -> None:
    routes = [{"match": match, "team": "chosen"}]
    assert routed(routes, holds) == "chosen"
    assert routed(routes, fails) is None


def test_a_route_with_every_matcher_needs_all_of_them_to_hold() -> None:
    match = {"source": ["monitoring"], "severity": ["critical", "error"], "labels": {"service": "payments"},
             "text": "timeout", "dedup_key_prefix": "alertmanager:"}
    holds = incident("Payment gateway TIMEOUT", severity="error", labels={"service": "payments"},
                     dedup_key="alertmanager:1a30ba71")
    assert routed([{"match": match, "team": "payments"}], holds) == "payments"
    for broken in ({"source": "partner"}, {"severity": "warning"}, {"labels": {"service": "scooters"}},
                   {"description": "Payment gateway slow"}, {"dedup_key": "pagerduty:1a30ba71"}):
        assert routed([{"match": match, "team": "payments"}], {**holds, **broken}) is None, broken


def test_an_empty_match_is_a_catch_all_for_every_incident() -> None:
    routes = [{"match": {"labels": {"service": "payments"}}, "team": "payments"}, {"match": {}, "team": "ops"}]
    assert routed(routes, incident()) == "ops"
    assert routed(routes, incident(source="operator", severity=None, labels={}, dedup_key=None)) == "ops"


def test_no_route_matching_gives_no_team() -> None:
    assert routed([], incident()) is None
    assert routed([{"match": {"source": ["partner"]}, "team": "partners"}], incident()) is None


def test_text_is_found_ignoring_case_in_any_script() -> None:
    routes = [{"match": {"text": "САМОКАТ"}, "team": "scooters"}, {"match": {"text": "strasse"}, "team": "de"}]
    assert routed(routes, incident("самокат #42 не в сети")) == "scooters"
    assert routed(routes, incident("Scooter at Hauptstraße 5")) == "de"  # casefold: ß is ss
    assert routed(routes, incident("Касса не отвечает")) is None


def test_the_teams_of_every_matching_route_come_in_order_so_a_deleted_one_can_be_passed_over() -> None:
    parsed = routing.parse_routes({"routes": CONTRACT_EXAMPLE})
    payments = incident("Самокат в платежах", severity="critical", labels={"service": "payments"})
    assert list(routing.teams_for(parsed, payments)) == ["payments", "scooters", "ops"]


# --- PUT and GET /routes ---

TEAM = {"chat_id": -1005550001111, "time_zone": "UTC",
        "rotation": {"members": ["ivan_ops"], "start": "2026-12-01T10:00", "shift": "daily"},
        "escalation_rules": [{"escalation_delay_in_minutes": 15, "targets": ["on_call"]}]}


@pytest.fixture
def teams(api: Any) -> list[str]:
    names = ["ops", "payments", "scooters"]
    for name in names:
        assert api.request("PUT", f"/teams/{name}", json_body=TEAM).status_code == 201
    return names


def put_routes(api: Any, body: Any, **kw: Any) -> Any:
    return api.request("PUT", "/routes", json_body=body, **kw)


def test_no_routes_are_set_at_first(api: Any) -> None:
    response = api.get("/routes")
    assert response.status_code == 200
    assert response.json_body == {"routes": []}


def test_get_after_put_answers_the_routes_in_their_order(api: Any, teams: list[str]) -> None:
    response = put_routes(api, {"routes": CONTRACT_EXAMPLE})
    assert response.status_code == 200
    assert response.json_body == {"routes": CONTRACT_EXAMPLE}
    assert api.get("/routes").json_body == {"routes": CONTRACT_EXAMPLE}


def test_a_put_replaces_every_route_and_an_empty_list_removes_them(api: Any, teams: list[str]) -> None:
    put_routes(api, {"routes": CONTRACT_EXAMPLE})
    replacement = [{"match": {"dedup_key_prefix": "pagerduty:"}, "team": "payments"}]
    assert put_routes(api, {"routes": replacement}).status_code == 200
    assert api.get("/routes").json_body == {"routes": replacement}
    assert put_routes(api, {"routes": []}).json_body == {"routes": []}
    assert api.get("/routes").json_body == {"routes": []}


def test_a_read_only_key_may_read_the_routes_but_not_set_them(api: Any, teams: list[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", "writer=writer-key,viewer:read=viewer-key")
    response = put_routes(api, {"routes": CONTRACT_EXAMPLE}, key="viewer-key")
    assert response.status_code == 403
    assert api.get("/routes", key="viewer-key").json_body == {"routes": []}


def at_most(n: int) -> list[dict[str, Any]]:
    return [{"match": {"text": f"scooter {i}"}, "team": "scooters"} for i in range(n)]


def test_a_hundred_routes_are_allowed_and_a_hundred_and_one_are_refused(api: Any, teams: list[str]) -> None:
    assert put_routes(api, {"routes": at_most(100)}).status_code == 200
    response = put_routes(api, {"routes": at_most(101)})
    assert response.status_code == 400
    assert response.json_body["Message"] == "routes has 101 routes; at most 100 are allowed"
    assert len(api.get("/routes").json_body["routes"]) == 100  # a refused PUT changes nothing


def test_a_route_naming_a_team_that_does_not_exist_is_refused_naming_it(api: Any, teams: list[str]) -> None:
    body = {"routes": [{"match": {}, "team": "ops"}, {"match": {"text": "склад"}, "team": "warehouse"}]}
    response = put_routes(api, body)
    assert response.status_code == 400
    message = response.json_body["Message"]
    assert message.startswith("routes[1].team 'warehouse' does not exist")
    assert "ops, payments, scooters" in message and "PUT /teams/{name}" in message
    assert api.get("/routes").json_body == {"routes": []}


def test_with_no_teams_at_all_a_route_is_refused_saying_so(api: Any) -> None:
    response = put_routes(api, {"routes": [{"match": {}, "team": "ops"}]})
    assert response.status_code == 400
    assert "there are none yet" in response.json_body["Message"]


MATCHERS_LISTED = "allowed matchers: source, severity, labels, text, dedup_key_prefix"


@pytest.mark.parametrize("body, says", [
    ({"routes": [], "default": "ops"}, "unknown field(s): default; allowed fields: routes"),
    ({}, "missing required field(s): routes"),
    ({"routes": {"match": {}, "team": "ops"}}, "routes must be a list of at most 100 routes"),
    ({"routes": ["ops"]}, 'routes[0] must be an object {"match": {...}, "team": "<name>"}'),
    ({"routes": [{"match": {}, "team": "ops", "priority": 1}]},
     "routes[0]: unknown field(s): priority; allowed fields: match, team"),
    ({"routes": [{"team": "ops"}]}, "routes[0]: missing required field(s): match"),
    ({"routes": [{"match": {}}]}, "routes[0]: missing required field(s): team"),
    ({"routes": [{"match": [], "team": "ops"}]}, "routes[0].match must be an object of matchers"),
    ({"routes": [{"match": {"service": "payments"}, "team": "ops"}]},
     f"routes[0].match has unknown matcher(s): 'service'; {MATCHERS_LISTED}"),
    ({"routes": [{"match": {"source": ["nagios"]}, "team": "ops"}]},
     "routes[0].match.source[0] must be one of: operator, monitoring, partner; got 'nagios'"),
    ({"routes": [{"match": {"source": "monitoring"}, "team": "ops"}]},
     "routes[0].match.source must be a non-empty list of: operator, monitoring, partner"),
    ({"routes": [{"match": {"severity": ["critical", "fatal"]}, "team": "ops"}]},
     "routes[0].match.severity[1] must be one of: critical, error, warning, info; got 'fatal'"),
    ({"routes": [{"match": {"severity": []}, "team": "ops"}]},
     "routes[0].match.severity must be a non-empty list of: critical, error, warning, info; got list"),
    ({"routes": [{"match": {"source": []}, "team": "ops"}]}, "routes[0].match.source must be a non-empty list"),
    ({"routes": [{"match": {"text": ""}, "team": "ops"}]},
     "routes[0].match.text must be a non-blank string of at most 256 characters"),
    ({"routes": [{"match": {"text": "x" * 257}, "team": "ops"}]}, "routes[0].match.text must be a non-blank"),
    ({"routes": [{"match": {"dedup_key_prefix": ""}, "team": "ops"}]},
     "routes[0].match.dedup_key_prefix must be a non-blank string of at most 256 characters"),
    ({"routes": [{"match": {"labels": {}}, "team": "ops"}]}, "routes[0].match.labels must name at least one label"),
    ({"routes": [{"match": {"labels": ["service"]}, "team": "ops"}]},
     "routes[0].match.labels must be an object of at most 16 pairs of strings"),
    ({"routes": [{"match": {"labels": {"service": 7}}, "team": "ops"}]},
     "routes[0].match.labels['service'] must be a string of up to 256 characters; got int"),
    ({"routes": [{"match": {"labels": {f"k{i}": "v" for i in range(17)}}, "team": "ops"}]},
     "routes[0].match.labels has 17 pairs; at most 16 are allowed"),
    ({"routes": [{"match": {"labels": {"k" * 65: "v"}}, "team": "ops"}]}, "keys must be 1–64"),
    ({"routes": [{"match": {"labels": {"service": "v" * 257}}, "team": "ops"}]},
     "routes[0].match.labels['service'] is 257 characters; at most 256 are allowed"),
    ({"routes": [{"match": {}, "team": ""}]}, "routes[0].team must be the name of an existing team"),
    ({"routes": [{"match": {}, "team": None}]}, "routes[0].team must be the name of an existing team; got null"),
], ids=lambda value: None if isinstance(value, dict) else value[:40])
def test_every_bad_routes_body_is_refused_saying_what_is_wrong_and_what_is_allowed(
        api: Any, teams: list[str], body: Any, says: str) -> None:
    put_routes(api, {"routes": [{"match": {}, "team": "ops"}]})
    response = put_routes(api, body)
    assert response.status_code == 400, response.body
    assert response.json_body["Code"] == "BadRequestError"
    assert says in response.json_body["Message"]
    assert api.get("/routes").json_body == {"routes": [{"match": {}, "team": "ops"}]}  # unchanged


def test_a_body_that_is_not_json_or_not_an_object_is_refused(api: Any) -> None:
    assert put_routes(api, ["not", "an", "object"]).status_code == 400
    response = api.request("PUT", "/routes", body="{", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json_body["Message"]
