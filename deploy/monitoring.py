"""The stage's alarms on the service itself, the operations topic they notify, and its dashboard.

Merged into the template by deploy/resources.py. What each alarm means and what to do first:
docs/operations.md. Metric names and dimensions are those chalicelib/metrics.py emits, in the
stage's METRICS_NAMESPACE.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

OPERATIONS_TOPIC = "OperationsTopic"
DASHBOARD = "Dashboard"
API_STAGE = "api"  # api_gateway_stage in .chalice/config.json
SOURCES = ("operator", "monitoring", "partner")
OPEN_STATUSES = ("new", "in_progress")
VIAS = ("api", "cloudwatch", "telegram")
FIVE_MINUTES = 300


@dataclass(frozen=True)
class Thresholds:
    api_5xx_rate: float = 0.05  # share of requests answered 5xx in 5 minutes
    api_p99_ms: float = 3000  # API Gateway latency, p99, over 5 minutes (2 of 3 periods)


THRESHOLDS = Thresholds()


INTAKE_MAX_AGE_SECONDS = 60  # the contract: every accepted alert applied within a minute


def api_name(app_name: str, stage: str) -> str:
    """The REST API's name (its OpenAPI title), the ApiName dimension of its metrics: one per stage,
    so that dev and prod in one account do not share metrics."""
    return f"{app_name}-{stage}"


def build(stage: str, app_name: str, namespace: str, functions: dict[str, str],
          table: str, queue: str, table_name: str, index_name: str,
          intake_queue: str | None = None, intake_failed: str | None = None) -> dict[str, Any]:
    """`functions`: logical id -> handler name of every Lambda function; `table`, `queue`:
    logical ids of the DynamoDB table and the failed-events queue."""
    prefix = f"{app_name}-{stage}"
    api = api_name(app_name, stage)
    alarms: dict[str, Any] = {
        "Api5xxRateAlarm": _alarm(
            f"{prefix}-api-5xx-rate",
            f"More than {THRESHOLDS.api_5xx_rate:.0%} of API requests answered 5xx in 5 minutes. "
            "See docs/operations.md#api-5xx-rate.",
            metric=_metric("AWS/ApiGateway", "5XXError", ApiName=api, Stage=API_STAGE),
            statistic="Average", threshold=THRESHOLDS.api_5xx_rate),
        "ApiLatencyP99Alarm": _alarm(
            f"{prefix}-api-latency-p99",
            f"API p99 latency above {THRESHOLDS.api_p99_ms:.0f} ms in 2 of 3 five-minute periods. "
            "See docs/operations.md#api-latency-p99.",
            metric=_metric("AWS/ApiGateway", "Latency", ApiName=api, Stage=API_STAGE),
            extended_statistic="p99", threshold=THRESHOLDS.api_p99_ms, periods=3, datapoints=2),
        "FailedEventsAlarm": _alarm(
            f"{prefix}-failed-events",
            "An alarm event failed every retry and waits in the failed-events queue. "
            "See docs/operations.md#failed-events.",
            metric=_metric("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                           QueueName={"Fn::GetAtt": [queue, "QueueName"]}),
            statistic="Maximum", threshold=0),
        "TableThrottledAlarm": _throttle_alarm(prefix, table, index_name),
    }
    if intake_queue is not None:
        alarms["IntakeBacklogAlarm"] = _alarm(
            f"{prefix}-intake-backlog",
            f"Accepted alerts waited more than {INTAKE_MAX_AGE_SECONDS} s to be applied. "
            "See docs/operations.md#intake-backlog.",
            metric=_metric("AWS/SQS", "ApproximateAgeOfOldestMessage",
                           QueueName={"Fn::GetAtt": [intake_queue, "QueueName"]}),
            statistic="Maximum", threshold=INTAKE_MAX_AGE_SECONDS)
    if intake_failed is not None:
        alarms["IntakeFailedAlarm"] = _alarm(
            f"{prefix}-intake-failed",
            "An accepted alert batch or PagerDuty event failed every retry and waits in the "
            "intake's failure queue. See docs/operations.md#intake-failed.",
            metric=_metric("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                           QueueName={"Fn::GetAtt": [intake_failed, "QueueName"]}),
            statistic="Maximum", threshold=0)
    for logical_id, handler in functions.items():
        for metric, slug in (("Errors", "errors"), ("Throttles", "throttles")):
            alarms[f"{logical_id}{metric}Alarm"] = _alarm(
                f"{prefix}-{handler.replace('_', '-')}-{slug}",
                f"Lambda function {handler}: {metric.lower()} in the last 5 minutes. "
                f"See docs/operations.md#lambda-{slug}.",
                metric=_metric("AWS/Lambda", metric, FunctionName={"Ref": logical_id}),
                statistic="Sum", threshold=0)
    resources: dict[str, Any] = {
        OPERATIONS_TOPIC: {
            # Not KMS-encrypted: CloudWatch alarms cannot publish to a topic under the AWS managed key.
            "Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": f"{prefix}-operations"},
        },
        **alarms,
        DASHBOARD: {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": prefix,
                "DashboardBody": {"Fn::Sub": json.dumps(
                    dashboard_body(namespace, api, functions, queue, table_name, index_name, list(alarms)))},
            },
        },
    }
    outputs = {
        "OperationsTopicArn": {"Value": {"Ref": OPERATIONS_TOPIC}},
        "DashboardUrl": {"Value": {"Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
                                              f"?region=${{AWS::Region}}#dashboards:name={prefix}"}},
    }
    return {"Resources": resources, "Outputs": outputs}


def _metric(namespace: str, name: str, **dimensions: Any) -> dict[str, Any]:
    return {"Namespace": namespace, "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}


def _alarm(name: str, description: str, *, metric: dict[str, Any], threshold: float,
           statistic: str | None = None, extended_statistic: str | None = None,
           periods: int = 1, datapoints: int = 1) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": description,
        **metric,
        "Period": FIVE_MINUTES,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": datapoints,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": OPERATIONS_TOPIC}],
        "OKActions": [{"Ref": OPERATIONS_TOPIC}],
    }
    if extended_statistic:
        properties["ExtendedStatistic"] = extended_statistic
    else:
        properties["Statistic"] = statistic
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def _throttle_alarm(prefix: str, table: str, index_name: str) -> dict[str, Any]:
    """Read and write throttle events of the table and of its status index, summed."""
    queries = []
    for index_dims, label in (({}, "table"), ({"GlobalSecondaryIndexName": index_name}, "index")):
        for kind in ("Read", "Write"):
            queries.append({
                "Id": f"{kind.lower()}_{label}",
                "ReturnData": False,
                "MetricStat": {
                    "Metric": _metric("AWS/DynamoDB", f"{kind}ThrottleEvents",
                                      TableName={"Ref": table}, **index_dims),
                    "Period": FIVE_MINUTES, "Stat": "Sum",
                },
            })
    expression = " + ".join(f"FILL({q['Id']}, 0)" for q in queries)
    queries.append({"Id": "throttled", "Expression": expression, "Label": "throttle events",
                    "ReturnData": True})
    alarm = _alarm(f"{prefix}-table-throttled",
                   "DynamoDB throttled requests to the incident table or its status index. "
                   "See docs/operations.md#table-throttled.",
                   metric={}, statistic=None, threshold=0)
    properties = alarm["Properties"]
    for key in ("Period", "Statistic"):
        properties.pop(key, None)
    properties["Metrics"] = queries
    return alarm


def dashboard_body(namespace: str, api: str, functions: dict[str, str], queue: str, table_name: str,
                   index_name: str, alarm_ids: list[str]) -> dict[str, Any]:
    """Widgets in rows of two: the incidents first, then the service's health.
    Used inside Fn::Sub: `${Logical.Attr}` references are filled in by CloudFormation."""
    region = "${AWS::Region}"

    def widget(title: str, metrics: list[Any], *, stat: str = "Sum", period: int = FIVE_MINUTES,
               view: str = "timeSeries", stacked: bool = False, width: int = 12) -> dict[str, Any]:
        return {"type": "metric", "width": width, "height": 6, "properties": {
            "title": title, "region": region, "view": view, "stacked": stacked,
            "stat": stat, "period": period, "metrics": metrics}}

    def search(metric: str, dimensions: str, stat: str = "Sum") -> list[Any]:
        return [[{"expression": f"SEARCH('{{{namespace},{dimensions}}} MetricName=\"{metric}\"', "
                                f"'{stat}', {FIVE_MINUTES})", "id": f"s_{metric.lower()}"}]]

    incidents = [
        widget("Incidents opened, by source", [[namespace, "IncidentsOpened", "Source", s] for s in SOURCES],
               stacked=True),
        widget("Open now (new, in progress)", [[namespace, "OpenIncidents", "Status", s] for s in OPEN_STATUSES],
               stat="Maximum", stacked=True),
        widget("Time to resolve, seconds (p50, p90)", [
            [namespace, "TimeToResolve", {"stat": "p50", "label": "p50"}],
            [namespace, "TimeToResolve", {"stat": "p90", "label": "p90"}]], period=3600),
        widget("Time to acknowledge, seconds (p50, p90)", [
            [namespace, "TimeToAcknowledge", {"stat": "p50", "label": "p50"}],
            [namespace, "TimeToAcknowledge", {"stat": "p90", "label": "p90"}]], period=3600),
        widget("Status changes, by channel", [[namespace, "StatusChanges", "Via", v] for v in VIAS],
               stacked=True),
        widget("Occurrences absorbed by dedup_key", [[namespace, "OccurrencesAbsorbed"]]),
        widget("Alarm events, by state and outcome", search("AlarmEvents", "State,Outcome")),
        widget("Telegram updates, by outcome", search("TelegramUpdates", "Outcome")),
    ]
    api_dims = ["ApiName", api, "Stage", API_STAGE]
    health = [
        widget("API requests and errors", [
            ["AWS/ApiGateway", "Count", *api_dims], ["AWS/ApiGateway", "4XXError", *api_dims],
            ["AWS/ApiGateway", "5XXError", *api_dims]]),
        widget("API latency, ms (p50, p99)", [
            ["AWS/ApiGateway", "Latency", *api_dims, {"stat": "p50", "label": "p50"}],
            ["AWS/ApiGateway", "Latency", *api_dims, {"stat": "p99", "label": "p99"}]]),
        widget("Request errors, by status class (app)", search("RequestErrors", "StatusClass")),
        widget("Lambda errors and throttles", [
            ["AWS/Lambda", metric, "FunctionName", f"${{{logical_id}}}", {"label": f"{handler} {metric}"}]
            for logical_id, handler in functions.items() for metric in ("Errors", "Throttles")]),
        widget("DynamoDB: throttle events, retries, gave up", [
            ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", table_name],
            ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", table_name],
            ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", table_name,
             "GlobalSecondaryIndexName", index_name],
            [namespace, "StoreRetries"], [namespace, "StoreUnavailable"]]),
        widget("Failed events waiting", [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"${{{queue}.QueueName}}"]],
            stat="Maximum"),
    ]
    alarms = {"type": "alarm", "width": 24, "height": 4, "properties": {
        "title": "Alarms", "alarms": [f"${{{alarm}.Arn}}" for alarm in alarm_ids]}}
    widgets = [{"type": "text", "width": 24, "height": 2, "properties": {
        "markdown": f"## Incidents ({namespace})\nWhat each alarm means and what to do first: "
                    "docs/operations.md in the repository."}}]
    widgets += incidents + [alarms] + health
    return {"widgets": widgets}
