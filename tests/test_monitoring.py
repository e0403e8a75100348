"""The stage's template watches the service itself: alarms notifying the operations topic, and a
dashboard whose metrics are the ones the code emits. (cfn-lint of the whole packaged template,
these resources included, runs in tests/test_deploy.py.)"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from deploy import monitoring, resources
from tests.conftest import ROOT
from tests.test_deploy import STAGES, package

SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.([A-Za-z]+))?\}")


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return package("prod", tmp_path_factory.mktemp("prod"))


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as CloudFormation would render it (references filled with dummies)."""
    [board] = of_type(template, "AWS::CloudWatch::Dashboard").values()
    body = board["Properties"]["DashboardBody"]["Fn::Sub"]
    for logical_id, _ in SUB_REFERENCE.findall(body):
        assert logical_id == "AWS::Region" or logical_id in template["Resources"], logical_id
    return json.loads(SUB_REFERENCE.sub("filled", body))


def emitted_metric_names() -> set[str]:
    source = (ROOT / "chalicelib" / "metrics.py").read_text()
    return set(re.findall(r'put\("([A-Za-z]+)"', source))


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_has_its_own_metrics_namespace(stage):
    assert resources.stage_environment(stage)["METRICS_NAMESPACE"] == f"Incidents/{stage}"


def test_the_required_alarms_are_in_the_template_and_all_notify_the_operations_topic(prod):
    alarms = of_type(prod, "AWS::CloudWatch::Alarm")
    watched = {(p.get("Namespace"), p.get("MetricName")) for p in (a["Properties"] for a in alarms.values())}
    assert {("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "Latency"),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible")} <= watched
    latency = next(a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "Latency")
    assert latency["ExtendedStatistic"] == "p99"
    five_xx = next(a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "5XXError")
    assert five_xx["Statistic"] == "Average" and 0 < five_xx["Threshold"] < 1  # a rate
    assert {"Name": "ApiName", "Value": "incidents-prod"} in five_xx["Dimensions"]
    assert prod["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["info"]["title"] == "incidents-prod"
    throttled = [a for a in alarms.values() if "Metrics" in a["Properties"]]
    [throttle] = throttled
    names = {q["MetricStat"]["Metric"]["MetricName"] for q in throttle["Properties"]["Metrics"] if "MetricStat" in q}
    assert names == {"ReadThrottleEvents", "WriteThrottleEvents"}
    topic = {"Ref": monitoring.OPERATIONS_TOPIC}
    assert prod["Resources"][monitoring.OPERATIONS_TOPIC]["Type"] == "AWS::SNS::Topic"
    for name, alarm in alarms.items():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [topic] and properties["OKActions"] == [topic], name
        assert properties["AlarmName"].startswith("incidents-prod-"), name
        assert "docs/operations.md#" in properties["AlarmDescription"], name
    assert "OperationsTopicArn" in prod["Outputs"] and "DashboardUrl" in prod["Outputs"]


def test_every_function_has_an_errors_and_a_throttles_alarm(prod):
    functions = set(of_type(prod, "AWS::Serverless::Function"))
    assert {"APIHandler", "OnAlarmNotification", "OnAlarmStateChange", "ReportOpenIncidents"} <= functions
    alarmed = {(p["MetricName"], p["Dimensions"][0]["Value"]["Ref"])
               for p in (a["Properties"] for a in of_type(prod, "AWS::CloudWatch::Alarm").values())
               if p.get("Namespace") == "AWS/Lambda"}
    assert alarmed == {(metric, f) for f in functions for metric in ("Errors", "Throttles")}


def test_each_alarm_has_a_section_in_the_operations_guide(prod):
    guide = (ROOT / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", guide, re.MULTILINE)}
    for alarm in of_type(prod, "AWS::CloudWatch::Alarm").values():
        anchor = alarm["Properties"]["AlarmDescription"].split("docs/operations.md#")[1].rstrip(".")
        assert anchor in anchors, anchor


def test_the_dashboard_shows_the_incident_metrics_and_the_services_health(prod):
    body = dashboard(prod)
    namespace = "Incidents/prod"
    titles = {w["properties"].get("title"): w for w in body["widgets"]}
    opened = titles["Incidents opened, by source"]["properties"]["metrics"]
    assert [m[1:4] for m in opened] == [["IncidentsOpened", "Source", s] for s in ("operator", "monitoring", "partner")]
    assert titles["Open now (new, in progress)"]["properties"]["metrics"][0][:2] == [namespace, "OpenIncidents"]
    resolve = titles["Time to resolve, seconds (p50, p90)"]["properties"]["metrics"]
    assert [m[1] for m in resolve] == ["TimeToResolve"] * 2 and [m[-1]["stat"] for m in resolve] == ["p50", "p90"]
    assert "Alarms" in titles and len(titles["Alarms"]["properties"]["alarms"]) == \
        len(of_type(prod, "AWS::CloudWatch::Alarm"))
    assert {"API requests and errors", "API latency, ms (p50, p99)", "Lambda errors and throttles",
            "Failed events waiting"} <= set(titles)
    used = set()
    for widget in body["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            if isinstance(metric[0], str) and metric[0] == namespace:
                used.add(metric[1])
            elif isinstance(metric[0], dict):
                used.update(re.findall(r'MetricName="(\w+)"', metric[0]["expression"]))
                assert namespace in metric[0]["expression"]
    assert used <= emitted_metric_names(), used - emitted_metric_names()
    assert {"IncidentsOpened", "OpenIncidents", "TimeToResolve", "AlarmEvents", "TelegramUpdates"} <= used


def test_dev_gets_the_same_watch_under_its_own_names():
    built = resources.build("dev")
    alarms = [r for r in built["Resources"].values() if r.get("Type") == "AWS::CloudWatch::Alarm"]
    assert alarms and all(a["Properties"]["AlarmName"].startswith("incidents-dev-") for a in alarms)
    body = built["Resources"][monitoring.DASHBOARD]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert "Incidents/dev" in body and "Incidents/prod" not in body
    assert Path(ROOT / "docs" / "operations.md").is_file()
