"""The table's change stream, read the way Lambda's event source mapping reads it, for the
local run and the tests: `chalice local` runs no event sources, so `make run` polls the embedded
DynamoDB's stream itself and hands each batch to the same handler Lambda would call.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

logger = logging.getLogger(__name__)


class StreamReader:
    """Every record of a table's stream, from its start, each handed out once."""

    def __init__(self, dynamodb: Any, streams: Any, table_name: str) -> None:
        self._streams = streams
        self._arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        self._iterators: dict[str, str | None] = {}

    def poll(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        shards = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self._iterators[shard_id]
            while iterator:
                response = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                records.extend(response["Records"])
                iterator = response.get("NextShardIterator")
                if not response["Records"]:
                    break
            self._iterators[shard_id] = iterator
        return records


def run_notifier(reader: StreamReader, deliver: Callable[[list[dict[str, Any]]], None],
                 every_minute: Callable[[], None], stop: threading.Event,
                 interval: float = 1.0) -> None:
    """Until `stop`: each second hand new stream records to `deliver`; each minute call
    `every_minute` (the schedules). A failure is logged and the same records tried again."""
    pending: list[dict[str, Any]] = []
    ticks = 0
    while not stop.wait(interval):
        try:
            pending += reader.poll()
            if pending:
                deliver(pending)
                pending = []
            ticks += 1
            if ticks % max(1, int(60 / interval)) == 0:
                every_minute()
        except Exception as error:  # a local run keeps going, as Lambda would retry
            logger.warning("notification delivery failed, will retry: %s", error)


def scheduled_event(now_iso: str) -> dict[str, Any]:
    """What EventBridge hands a scheduled Lambda."""
    return {"version": "0", "id": f"local-{now_iso}", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000", "time": now_iso,
            "region": "eu-west-1", "resources": [], "detail": {}}


def start(app_environment: dict[str, str], stop: threading.Event) -> threading.Thread:
    """In this process, with the app's environment: read the embedded table's stream and run
    the notification handler and the schedules (reminders, escalation, digest) as Lambda would."""
    import os
    from datetime import datetime, timezone

    import boto3

    logging.getLogger("botocore").setLevel(logging.WARNING)  # its credential chatter at INFO
    os.environ.update(app_environment)
    os.environ.pop("TELEGRAM_BOT_TOKEN_PARAMETER", None)  # locally the token, if any, is in the environment
    os.environ["NOTIFY_TO_CONSOLE"] = "1"  # with none, print: only the local run may
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"  # moto serves streams on the regional endpoint
    import app as app_module

    endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    reader = StreamReader(boto3.client("dynamodb"),
                          boto3.client("dynamodbstreams", endpoint_url=endpoint),
                          os.environ["TABLE_NAME"])

    def every_minute() -> None:
        now = datetime.now(timezone.utc)
        event = scheduled_event(now.isoformat(timespec="seconds").replace("+00:00", "Z"))
        schedules = {"remind_waiting_incidents": app_module.remind_waiting_incidents,
                     "escalate": app_module.escalate}
        if now.hour == app_module.DIGEST_HOUR_UTC:
            # once a day: the outbox remembers it was sent
            schedules["daily_digest"] = app_module.daily_digest
        for name, schedule in schedules.items():  # each on its own, as in Lambda
            try:
                schedule(event, None)
            except Exception as error:
                logger.warning("%s failed, runs again next minute: %s", name, error)

    thread = threading.Thread(
        target=run_notifier, name="local-notifier", daemon=True,
        args=(reader, lambda records: app_module.on_incident_change({"Records": records}, None),
              every_minute, stop),
    )
    thread.start()
    return thread
