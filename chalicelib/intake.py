"""The durable hand-off between an integration request and the function that applies it: one
SQS message per request, its body inline, or in S3 when it does not fit a message. Knows SQS
and S3 only. Why this shape: docs/integrations.md#order-repeats-and-retries."""
from __future__ import annotations

import functools
import json
import os
import uuid
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.incidents import Unavailable

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
        return cls(aws.client("sqs", BOTO_CONFIG), aws.client("s3", BOTO_CONFIG),
                   os.environ["INTAKE_QUEUE_URL"], os.environ["INTAKE_BUCKET"])

    def hand_off(self, message: dict[str, Any]) -> None:
        """Stored durably, or Unavailable: two calls at most, whatever the message holds."""
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        try:
            if len(text.encode("utf-8", "surrogatepass")) > INLINE_MAX_BYTES:
                key = f"{OBJECT_PREFIX}{uuid.uuid4().hex}.json"
                self._s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"),
                                    ContentType="application/json")
                text = json.dumps({"object": key})
            self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=text)
        except (BotoCoreError, ClientError) as error:
            raise Unavailable(f"the hand-off failed: {error}") from error

    def read(self, body: str) -> dict[str, Any]:
        """A message as hand_off was given it. Its object is left for the bucket's lifecycle
        rule to expire, so a message delivered twice still finds it."""
        message = json.loads(body)
        if set(message) == {"object"}:
            stored = self._s3.get_object(Bucket=self.bucket, Key=message["object"])
            message = json.loads(stored["Body"].read())
        return message


@functools.lru_cache(maxsize=1)
def default_intake() -> Intake:
    return Intake.from_environment()
