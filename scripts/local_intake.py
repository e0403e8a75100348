"""The intake queue, read the way Lambda's SQS event source reads it, for the local run:
`chalice local` runs no event sources, so `make run` receives what `/alertmanager` and
`/v2/enqueue` handed off and gives each message to the same handler Lambda would call.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

logger = logging.getLogger(__name__)

ACCOUNT = "123456789012"  # moto's account: the embedded queue's URL and the bucket's name
REGION = "eu-west-1"
VISIBILITY_SECONDS = 5  # locally a failed message comes back quickly
MAX_RECEIVES = 5  # then parked in the local failure queue, as the stack's redrive does


def queue_url(endpoint: str, queue: str) -> str:
    return f"{endpoint}/{ACCOUNT}/{queue}"


def bucket_name(queue: str) -> str:
    return f"{queue.removesuffix('.fifo')}-{ACCOUNT}"


def ensure_intake(sqs: Any, s3: Any, queue: str) -> None:
    """The queue, its failure queue and the bucket, as the stack has them (deploy/resources.py)."""
    failed = sqs.create_queue(QueueName=f"{queue.removesuffix('.fifo')}-failed.fifo",
                              Attributes={"FifoQueue": "true"})["QueueUrl"]
    failed_arn = sqs.get_queue_attributes(QueueUrl=failed, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(QueueName=queue, Attributes={
        "FifoQueue": "true", "VisibilityTimeout": str(VISIBILITY_SECONDS),
        "RedrivePolicy": f'{{"deadLetterTargetArn": "{failed_arn}", "maxReceiveCount": "{MAX_RECEIVES}"}}'})
    if bucket_name(queue) not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket_name(queue), CreateBucketConfiguration={"LocationConstraint": REGION})


def sqs_event(messages: list[dict[str, Any]], queue: str) -> dict[str, Any]:
    """What Lambda hands an SQS-triggered function."""
    return {"Records": [{
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"], "attributes": message.get("Attributes", {}),
        "messageAttributes": {}, "md5OfBody": message.get("MD5OfBody", ""), "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", "awsRegion": REGION,
    } for message in messages]}


def run_consumer(sqs: Any, url: str, queue: str, handle: Callable[[dict[str, Any]], None],
                 stop: threading.Event, interval: float = 0.2) -> None:
    """Until `stop`: each message to `handle`, one at a time (batch size 1, as deployed), deleted
    once handled; a failure is logged and the message comes back after its visibility timeout.
    Short polls: the embedded server answers one call at a time, so a long poll would hold
    every other call (the SendMessage it waits for among them) behind it."""
    while not stop.is_set():
        try:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        except Exception as error:  # the embedded server stopping, or busy: try again
            logger.warning("intake queue not read, will retry: %s", error)
            stop.wait(1)
            continue
        if not messages:
            stop.wait(interval)
        for message in messages:
            try:
                handle(sqs_event([message], queue))
            except Exception as error:
                logger.warning("accepted alerts not applied yet, will retry: %s", error)
                continue
            try:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            except Exception as error:  # applied: a redelivery changes nothing twice
                logger.warning("applied message not deleted, it will be delivered again: %s", error)


def start(stop: threading.Event) -> threading.Thread:
    """In this process, whose environment local_stream.start set up: the intake consumer."""
    import os

    import boto3

    import app as app_module

    queue = os.environ["INTAKE_QUEUE"]
    thread = threading.Thread(
        target=run_consumer, name="local-intake", daemon=True,
        args=(boto3.client("sqs"), os.environ["INTAKE_QUEUE_URL"], queue,
              lambda event: app_module.apply_alerts(event, None), stop),
    )
    thread.start()
    return thread
