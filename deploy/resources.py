"""The CloudFormation that Chalice does not generate, per stage, for `chalice package --merge-template`.

    python deploy/resources.py --stage prod --output out/prod/resources.json

It adds the DynamoDB table (from chalicelib.store.TABLE_DEFINITION, the definition the code,
the tests and the local run use), the SNS alarm topic, the SQS queue that receives events the
alarm handlers failed on, API Gateway stage throttling, and it scopes each function's IAM policy
(.chalice/policy-<stage>-<function>.json) to this account and region and names each function as
`chalice deploy` would, so that its policy can name its own log group. Names come from the stage's
environment_variables in .chalice/config.json, so the Lambda configuration, the policy and
the resources cannot drift apart unnoticed (tests/test_deploy.py checks they agree).
The SecureString parameters are not here: CloudFormation cannot create them (see docs/deploy.md).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chalicelib.store import STATUS_INDEX, TABLE_DEFINITION, TTL_ATTRIBUTE  # noqa: E402
from deploy import monitoring  # noqa: E402

CONFIG_FILE = ROOT / ".chalice" / "config.json"

# Logical ids Chalice gives its own resources (chalice/package.py); the merge adds to them.
# With autogen_policy false every function gets a role `<function>_role` with the policy file the
# stage's lambda_functions.<function>.iam_policy_file names.
REST_API = "RestAPI"
API_FUNCTION = "api_handler"

TABLE = "IncidentTable"
ALARM_TOPIC = "AlarmTopic"
FAILED_EVENTS = "FailedEvents"
INTAKE_QUEUE = "IntakeQueue"
INTAKE_FAILED = "IntakeFailed"
INTAKE_BUCKET = "IntakeBucket"
INTAKE_FUNCTION = "apply_alerts"

# A failed async invocation (SNS, EventBridge) is retried by Lambda this often, then parked.
EVENT_RETRIES = 2
EVENT_MAX_AGE_SECONDS = 6 * 3600
# A stream batch that keeps failing (Telegram down) is retried this often, then parked.
STREAM_RETRIES = 20
FAILED_EVENTS_RETENTION_SECONDS = 14 * 24 * 3600
# An accepted batch the consumer keeps failing on is delivered this often, then parked in the
# failure queue; its S3 object outlives the failure queue's retention, so a parked one can be replayed.
INTAKE_RECEIVES = 5
INTAKE_OBJECT_DAYS = 15


@dataclass(frozen=True)
class StageSettings:
    protect_data: bool  # point-in-time recovery, deletion protection, retain on stack delete
    rate_limit: float  # requests per second, steady, for the whole API stage
    burst_limit: int
    snap_start: bool = False  # the API and alarm handlers start from a snapshot (docs/cold-start.md)


STAGE_SETTINGS = {
    "dev": StageSettings(protect_data=False, rate_limit=10, burst_limit=20),
    "prod": StageSettings(protect_data=True, rate_limit=50, burst_limit=100, snap_start=True),
}

# SnapStart: Python 3.12 or later, and only for published versions, so each function gets an
# alias that its triggers invoke. Chalice picks the runtime from the Python that packages
# (3.11 here), so the merge sets it; the code is plain Python, the same on 3.12.
SNAP_START_RUNTIME = "python3.12"
SNAP_START_ALIAS = "live"


def stage_environment(stage: str, config: dict[str, Any] | None = None) -> dict[str, str]:
    config = config if config is not None else load_config()
    if stage not in config.get("stages", {}):
        raise ValueError(f"no stage {stage!r} in {CONFIG_FILE}; stages: {sorted(config['stages'])}")
    return {**config.get("environment_variables", {}),
            **config["stages"][stage].get("environment_variables", {})}


def load_config() -> dict[str, Any]:
    return json.loads(CONFIG_FILE.read_text())


def policy_file(stage: str, function: str, config: dict[str, Any] | None = None) -> Path:
    config = config if config is not None else load_config()
    settings = config["stages"][stage].get("lambda_functions", {}).get(function, {})
    return ROOT / ".chalice" / settings.get("iam_policy_file", f"policy-{stage}-{function}.json")


def load_policy(stage: str, function: str) -> dict[str, Any]:
    return json.loads(policy_file(stage, function).read_text())


def function_names(stage: str) -> list[str]:
    """Every Lambda function of the app, by its name in app.py (api_handler for the routes)."""
    return list(load_config()["stages"][stage].get("lambda_functions", {}))


def lambda_function_name(stage: str, function: str) -> str:
    """The function's name in Lambda, as `chalice deploy` names it; its log group is
    /aws/lambda/<this name>."""
    app_name = load_config()["app_name"]
    return f"{app_name}-{stage}" if function == API_FUNCTION else f"{app_name}-{stage}-{function}"


def failed_events_queue_name(stage: str) -> str:
    return f"{load_config()['app_name']}-{stage}-failed-events"


def table_properties(table_name: str, protect_data: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"TableName": table_name, **copy.deepcopy(TABLE_DEFINITION)}
    # CloudFormation turns the stream on by its view type alone (StreamEnabled is the API's).
    properties["StreamSpecification"].pop("StreamEnabled", None)
    properties["TimeToLiveSpecification"] = {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    if protect_data:
        properties["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
        properties["DeletionProtectionEnabled"] = True
    return properties


def build(stage: str) -> dict[str, Any]:
    """The template to merge for `stage`; imports app.py to find its event handlers."""
    if stage not in STAGE_SETTINGS:
        raise ValueError(f"no deployment settings for stage {stage!r}; known: {sorted(STAGE_SETTINGS)}")
    settings = STAGE_SETTINGS[stage]
    env = stage_environment(stage)
    retain = "Retain" if settings.protect_data else "Delete"
    resources: dict[str, Any] = {
        TABLE: {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": retain,
            "UpdateReplacePolicy": retain,
            "Properties": table_properties(env["TABLE_NAME"], settings.protect_data),
        },
        ALARM_TOPIC: {
            # Not KMS-encrypted: CloudWatch alarms cannot publish to a topic under the AWS managed key.
            "Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": _topic_name(env["ALARM_TOPIC"])},
        },
        FAILED_EVENTS: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": failed_events_queue_name(stage),
                "MessageRetentionPeriod": FAILED_EVENTS_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
            },
        },
        **intake_resources(stage, env),
        REST_API: {
            "Properties": {
                # The API's name, the ApiName dimension of its metrics: one per stage.
                "DefinitionBody": {"info": {"title": monitoring.api_name(load_config()["app_name"], stage)}},
                "MethodSettings": [{
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "ThrottlingRateLimit": settings.rate_limit,
                    "ThrottlingBurstLimit": settings.burst_limit,
                }],
            },
        },
    }
    app = _load_app(env)
    resources.update(_functions(stage, env, app))
    _merge(resources, _intake_wiring(app))
    if settings.snap_start:
        _merge(resources, _snap_start(app))
    # Alarms on the service itself, the operations topic they notify, the dashboard.
    watched = monitoring.build(
        stage, load_config()["app_name"], env["METRICS_NAMESPACE"], function_ids(app),
        table=TABLE, queue=FAILED_EVENTS, table_name=env["TABLE_NAME"], index_name=STATUS_INDEX,
        intake_queue=INTAKE_QUEUE, intake_failed=INTAKE_FAILED)
    resources.update(watched["Resources"])
    return {
        "Resources": resources,
        "Outputs": {
            "TableName": {"Value": {"Ref": TABLE}},
            "AlarmTopicArn": {"Value": {"Ref": ALARM_TOPIC}},
            "FailedEventsQueueUrl": {"Value": {"Ref": FAILED_EVENTS}},
            "IntakeQueueUrl": {"Value": {"Ref": INTAKE_QUEUE}},
            "IntakeFailedQueueUrl": {"Value": {"Ref": INTAKE_FAILED}},
            "IntakeBucketName": {"Value": {"Ref": INTAKE_BUCKET}},
            **watched["Outputs"],
        },
    }


def intake_name(stage: str) -> str:
    """`incidents-<stage>-intake`: the queue's name without `.fifo`."""
    return stage_environment(stage)["INTAKE_QUEUE"].removesuffix(".fifo")


def intake_bucket_name(stage: str) -> dict[str, Any]:
    """Bucket names are global: the intake's name and the account."""
    return {"Fn::Sub": f"{intake_name(stage)}-${{AWS::AccountId}}"}


def intake_resources(stage: str, env: dict[str, str]) -> dict[str, Any]:
    """The integration routes' hand-off (docs/integrations.md#order-repeats-and-retries): the
    FIFO queue the consumer reads, redriven to its own failure queue (a FIFO queue's must be
    FIFO too), and the bucket for bodies that do not fit a message, private, its objects
    expired by a lifecycle rule."""
    timeout = load_config()["stages"][stage]["lambda_functions"][INTAKE_FUNCTION]["lambda_timeout"]
    return {
        INTAKE_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": env["INTAKE_QUEUE"],
                "FifoQueue": True,
                "VisibilityTimeout": timeout + 30,  # at least the consumer's timeout, as Lambda requires
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [INTAKE_FAILED, "Arn"]},
                                  "maxReceiveCount": INTAKE_RECEIVES},
            },
        },
        INTAKE_FAILED: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": f"{intake_name(stage)}-failed.fifo",
                "FifoQueue": True,
                "MessageRetentionPeriod": FAILED_EVENTS_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
            },
        },
        INTAKE_BUCKET: {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "BucketName": intake_bucket_name(stage),
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True, "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {"Rules": [{
                    "Id": "expire-intake", "Status": "Enabled", "Prefix": "intake/",
                    "ExpirationInDays": INTAKE_OBJECT_DAYS}]},
            },
        },
    }


def _intake_wiring(app: Any) -> dict[str, Any]:
    """The queue's URL and the bucket's name into the two functions that use them, and the
    consumer's event source onto the queue resource (so it is created first)."""
    from chalice.app import SQSEventConfig
    from chalice.utils import to_cfn_resource_name

    variables = {"Environment": {"Variables": {"INTAKE_QUEUE_URL": {"Ref": INTAKE_QUEUE},
                                               "INTAKE_BUCKET": {"Ref": INTAKE_BUCKET}}}}
    wired: dict[str, Any] = {"APIHandler": {"Properties": copy.deepcopy(variables)}}
    for source in app.event_sources:
        if isinstance(source, SQSEventConfig):
            event_name = to_cfn_resource_name(f"{source.name}-sqs-event-source")
            wired[to_cfn_resource_name(source.name)] = {"Properties": {
                **copy.deepcopy(variables),
                # Merged key by key onto Chalice's {"Fn::Sub": "arn:…:<queue name>"}: same ARN, plus the dependency.
                "Events": {event_name: {"Properties": {"Queue": {"Fn::Sub": f"${{{INTAKE_QUEUE}.Arn}}"}}}},
            }}
    return wired


def function_ids(app: Any) -> dict[str, str]:
    """Logical id of each Lambda function Chalice packages -> its handler's name."""
    from chalice.utils import to_cfn_resource_name

    names = [*(source.name for source in app.event_sources),
             *(function.name for function in app.pure_lambda_functions)]
    return {"APIHandler": API_FUNCTION, **{to_cfn_resource_name(name): name for name in names}}


def account_scoped(policy: dict[str, Any]) -> dict[str, Any]:
    """`arn:aws:<service>:*:*:…` -> this stack's partition, region and account.

    The policy file keeps wildcards so `chalice deploy` can use it as it is; the packaged
    stack knows where it runs and narrows each ARN to that."""
    scoped = copy.deepcopy(policy)
    for statement in scoped["Statement"]:
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        statement["Resource"] = [_scoped_arn(arn) for arn in resources]
    return scoped


def _scoped_arn(arn: str) -> Any:
    bucket = re.fullmatch(r"arn:aws:s3:::([a-z0-9.-]+)-\*(/.*)?", arn)
    if bucket is not None:  # the stage's bucket, named for its account (intake_bucket_name)
        name, objects = bucket.groups()
        return {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{name}-${{AWS::AccountId}}{objects or ''}"}
    match = re.fullmatch(r"arn:aws:([a-z0-9-]+):\*:\*:(.+)", arn)
    if match is None:
        return arn
    service, rest = match.groups()
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{rest}"}


def _functions(stage: str, env: dict[str, str], app: Any) -> dict[str, Any]:
    """Each function's role gets the account-scoped policy; each asynchronously invoked
    handler an EventInvokeConfig; the alarm topic's subscription refers to the topic
    resource, so CloudFormation creates the topic before subscribing to it."""
    from chalice.app import (
        CloudWatchEventConfig,
        DynamoDBEventConfig,
        ScheduledEventConfig,
        SNSEventConfig,
    )
    from chalice.utils import to_cfn_resource_name

    invoke_config = {
        "MaximumRetryAttempts": EVENT_RETRIES,
        "MaximumEventAgeInSeconds": EVENT_MAX_AGE_SECONDS,
        "DestinationConfig": {
            "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [FAILED_EVENTS, "Arn"]}},
        },
    }
    resources: dict[str, Any] = {}
    for name in [API_FUNCTION, *(source.name for source in app.event_sources),
                 *(function.name for function in app.pure_lambda_functions)]:
        role = to_cfn_resource_name(f"{name}_role")
        resources[role] = {"Properties": {"Policies": [
            {"PolicyName": f"{role}Policy", "PolicyDocument": account_scoped(load_policy(stage, name))},
        ]}}
        function = "APIHandler" if name == API_FUNCTION else to_cfn_resource_name(name)
        resources[function] = {"Properties": {"FunctionName": lambda_function_name(stage, name)}}
    for source in app.event_sources:
        if isinstance(source, DynamoDBEventConfig):
            for logical_id, resource in _stream_consumer(source).items():
                merged = resources.setdefault(logical_id, {})
                merged.update({k: v for k, v in resource.items() if k != "Properties"})
                merged.setdefault("Properties", {}).update(resource["Properties"])
            continue
        if not isinstance(source, (SNSEventConfig, CloudWatchEventConfig, ScheduledEventConfig)):
            continue
        properties = resources[to_cfn_resource_name(source.name)]["Properties"]
        properties["EventInvokeConfig"] = copy.deepcopy(invoke_config)
        if isinstance(source, SNSEventConfig) and _topic_name(source.topic) == _topic_name(env["ALARM_TOPIC"]):
            event_name = to_cfn_resource_name(f"{source.name}-sns-subscription")
            # Merged key by key onto Chalice's {"Fn::Sub": "arn:…:<topic name>"}: same ARN, plus the dependency.
            topic = {"Fn::Sub": f"${{{ALARM_TOPIC}}}"}
            properties["Events"] = {event_name: {"Properties": {"Topic": topic}}}
    return resources


def snap_start_functions(app: Any) -> list[str]:
    """Logical ids of the functions that a person or an alarm waits for: the API and the alarm
    handlers (the schedules and the stream consumer wait for nobody)."""
    from chalice.app import CloudWatchEventConfig, SNSEventConfig
    from chalice.utils import to_cfn_resource_name

    return ["APIHandler", *(to_cfn_resource_name(source.name) for source in app.event_sources
                            if isinstance(source, (SNSEventConfig, CloudWatchEventConfig)))]


def _snap_start(app: Any) -> dict[str, Any]:
    """SnapStart on those functions: each publishes a version per deployment behind the alias
    `live` (SAM's AutoPublishAlias wires the function's own events, SNS and EventBridge, to it).
    API Gateway is Chalice's own definition, which invokes the unqualified function ($LATEST,
    never restored from a snapshot): every route's integration and the invoke permission are
    pointed at the alias."""
    alias = f"APIHandlerAlias{SNAP_START_ALIAS}"  # the alias resource SAM generates
    resources: dict[str, Any] = {
        name: {"Properties": {"Runtime": SNAP_START_RUNTIME, "AutoPublishAlias": SNAP_START_ALIAS,
                              "SnapStart": {"ApplyOn": "PublishedVersions"}}}
        for name in snap_start_functions(app)
    }
    uri = {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/"
                      f"functions/${{{alias}}}/invocations"}
    paths: dict[str, Any] = {}
    for path, methods in app.routes.items():
        for method in methods:
            paths.setdefault(path, {})[method.lower()] = {"x-amazon-apigateway-integration": {"uri": uri}}
    resources[REST_API] = {"Properties": {"DefinitionBody": {"paths": paths}}}
    resources["APIHandlerInvokePermission"] = {"Properties": {"FunctionName": {"Ref": alias}}}
    return resources


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _stream_consumer(source: Any) -> dict[str, Any]:
    """The notifier reads the table's own stream (Chalice only knows a literal ARN): retried
    batch by batch, halved on failure, then parked in the failure queue; its role may read
    that stream and nothing else of the kind."""
    from chalice.utils import to_cfn_resource_name

    event_name = to_cfn_resource_name(f"{source.name}-dynamodb-event-source")
    stream = {"Fn::GetAtt": [TABLE, "StreamArn"]}
    role = to_cfn_resource_name(f"{source.name}_role")
    return {
        to_cfn_resource_name(source.name): {"Properties": {"Events": {event_name: {"Properties": {
            "Stream": stream,
            "MaximumRetryAttempts": STREAM_RETRIES,
            "BisectBatchOnFunctionError": True,
            "MaximumRecordAgeInSeconds": EVENT_MAX_AGE_SECONDS,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [FAILED_EVENTS, "Arn"]}}},
        }}}}},
        f"{role}StreamPolicy": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": f"{role}Stream",
                "Roles": [{"Ref": role}],
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                               "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
                    "Resource": [stream],
                }]},
            },
        },
    }


def _load_app(env: dict[str, str]) -> Any:
    # app.py reads ALARM_TOPIC at import, as `chalice package` does with the stage's variables.
    saved_env, loaded = dict(os.environ), sys.modules.pop("app", None)
    os.environ.update(env)
    try:
        import app as app_module
        return app_module.app
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.modules.pop("app", None)
        if loaded is not None:
            sys.modules["app"] = loaded


def _topic_name(topic: str) -> str:
    return topic.rsplit(":", 1)[-1] if topic.startswith("arn:") else topic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=sorted(STAGE_SETTINGS))
    parser.add_argument("--output", type=Path, help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    text = json.dumps(build(args.stage), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
