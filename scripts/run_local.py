"""`make run`: the service on http://127.0.0.1:$PORT through `chalice local`, backed by moto
in server mode on 127.0.0.1:$MOTO_PORT as the embedded DynamoDB. Ctrl-C stops both."""
from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.store import create_table  # noqa: E402

DEFAULT_API_KEY = "local-dev-key"
DEFAULT_TELEGRAM_SECRET = "local-telegram-secret"
STAGE = "dev"


# `chalice local`, with a listen backlog of 128 instead of socketserver's 5: with more clients
# connecting at once than that, the kernel resets the ones it could not queue.
CHALICE_LOCAL = (
    "import socketserver, sys; socketserver.TCPServer.request_queue_size = 128; "
    "sys.argv[0] = 'chalice'; from chalice.cli import main; sys.exit(main())"
)


def stage_table_name() -> str:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage_env = config["stages"][STAGE].get("environment_variables", {})
    return stage_env.get("TABLE_NAME") or config["environment_variables"]["TABLE_NAME"]


def local_environment(moto_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    # The embedded server accepts any credentials; fixed fake ones keep a real profile out of it.
    env.update(
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{moto_port}",
        API_KEYS=env.get("API_KEYS") or DEFAULT_API_KEY,
        # Set here so that nothing local ever asks SSM (the stage names a parameter for Lambda).
        TELEGRAM_SECRET_TOKEN=env.get("TELEGRAM_SECRET_TOKEN") or DEFAULT_TELEGRAM_SECRET,
        # A new cursor-signing key every run unless one is given: cursors stay valid for the
        # run (chalice local is one process) and nothing guessable ever signs them.
        CURSOR_SECRET=env.get("CURSOR_SECRET") or secrets.token_urlsafe(32),
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def ensure_table(env: dict[str, str], name: str) -> None:
    client = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    if name not in client.list_tables()["TableNames"]:
        create_table(client, name)


def serialize_moto_calls() -> None:
    """DynamoDB applies each call atomically; moto's server evaluates a condition and writes
    without a lock, so concurrent clients of the local run could see what DynamoDB never shows
    (two creates both claiming one dedup_key). One call at a time restores that, as the tests'
    atomic_moto fixture does in-process."""
    lock = threading.Lock()
    original = DomainDispatcherApplication.__call__

    def __call__(self: DomainDispatcherApplication, environ: Any, start_response: Any) -> Any:
        with lock:
            return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = __call__


def main() -> int:
    port = int(os.environ.get("PORT") or 8000)
    moto_port = int(os.environ.get("MOTO_PORT") or 8001)
    env = local_environment(moto_port)
    # SIGTERM (a test or a supervisor stopping us) ends things the same way Ctrl-C does;
    # SIGINT is set explicitly because a shell starting us in the background ignores it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    serialize_moto_calls()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    chalice = None
    try:
        table = stage_table_name()
        ensure_table(env, table)
        api_key = env["API_KEYS"].split(",")[0].strip()
        print(f"Embedded DynamoDB (moto) on {env['AWS_ENDPOINT_URL_DYNAMODB']}, table {table}")
        print(f"Incident API on http://127.0.0.1:{port}")
        print(f"API key: {api_key}   (header x-api-key; set API_KEYS to choose your own)")
        print(f"Telegram webhook secret: {env['TELEGRAM_SECRET_TOKEN']}   (header X-Telegram-Bot-Api-Secret-Token)")
        print("Ctrl-C stops both.", flush=True)
        chalice = subprocess.Popen(
            [sys.executable, "-c", CHALICE_LOCAL, "local", "--host", "127.0.0.1", "--port", str(port),
             "--stage", STAGE, "--no-autoreload"],
            cwd=ROOT, env=env,
        )
        return chalice.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if chalice is not None and chalice.poll() is None:
            chalice.terminate()
            try:
                chalice.wait(timeout=10)
            except subprocess.TimeoutExpired:
                chalice.kill()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
