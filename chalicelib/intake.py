"""The durable hand-off between an integration request and the function that applies it: one
SQS message per request, its body inline, or in S3 when it does not fit a message. Knows SQS
and S3 only. Why this shape: docs/integrations.md#order-repeats-and-retries."""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import uuid
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.incidents import Unavailable

logger = logging.getLogger(__name__)

# SQS takes 256 KiB a message; the rest of the envelope and the JSON escapes need some room.
INLINE_MAX_BYTES = 200 * 1024
OBJECT_PREFIX = "intake/"
# The request waits for the hand-off: fail fast and answer 503, Alertmanager sends again.
BOTO_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3},
                     connect_timeout=2, read_timeout=5)


class Intake:
    def __init__(self, sqs: Any, s3: Any, queue_url: str, bucket: str) -> None:
        self._sqs, self._s3 = sqs, s3
        self.queue_url, self.bucket = queue_url, bucket

    @classmethod
    def from_environment(cls) -> "Intake":
        """INTAKE_QUEUE_URL and INTAKE_BUCKET: the stack's queue and bucket (deploy/resources.py);
        locally botocore's AWS_ENDPOINT_URL_SQS / _S3 point the clients at the embedded AWS."""
        queue_url, bucket = os.environ.get("INTAKE_QUEUE_URL"), os.environ.get("INTAKE_BUCKET")
        if not queue_url or not bucket:  # a deployment without the stack's intake: 503, never a 500
            logger.error("INTAKE_QUEUE_URL or INTAKE_BUCKET is not set: the integrations cannot hand off")
            raise Unavailable("the intake queue is not configured")
        return cls(aws.client("sqs", BOTO_CONFIG), aws.client("s3", BOTO_CONFIG), queue_url, bucket)

    def hand_off(self, message: dict[str, Any], group: str | None = None) -> None:
        """Stored durably, or Unavailable: two calls at most, whatever the message holds. The
        queue is FIFO: messages of one `group` are applied in the order they were accepted (a
        PagerDuty key's trigger before its resolve: its events carry no time); without a group,
        one of its own, so that batches (ordered by their alerts' times) are applied in parallel."""
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        try:
            if len(text.encode("utf-8", "surrogatepass")) > INLINE_MAX_BYTES:
                key = f"{OBJECT_PREFIX}{uuid.uuid4().hex}.json"
                self._s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"),
                                    ContentType="application/json")
                text = json.dumps({"object": key})
            self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=text,
                                   MessageGroupId=_group_id(group) if group else uuid.uuid4().hex,
                                   MessageDeduplicationId=uuid.uuid4().hex)  # each request is its own
        except (BotoCoreError, ClientError) as error:
            logger.warning("hand-off failed, answered 503: %s", error)
            raise Unavailable(f"the hand-off failed: {error}") from error

    def read(self, body: str) -> dict[str, Any]:
        """A message as hand_off was given it. Its object is left for the bucket's lifecycle
        rule to expire, so a message delivered twice still finds it."""
        message = json.loads(body)
        if set(message) == {"object"}:
            stored = self._s3.get_object(Bucket=self.bucket, Key=message["object"])
            message = json.loads(stored["Body"].read())
        return message


def _group_id(group: str) -> str:
    """SQS takes 128 characters of ASCII punctuation and alphanumerics; a key may be anything."""
    return hashlib.sha256(group.encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=1)
def default_intake() -> Intake:
    return Intake.from_environment()
