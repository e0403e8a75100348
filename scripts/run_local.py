"""`make run`: the service on http://127.0.0.1:$PORT through `chalice local`, backed by moto
in server mode on 127.0.0.1:$MOTO_PORT as the embedded DynamoDB.

The embedded DynamoDB (localaws/: moto with DynamoDB's costs) keeps its items in $LOCAL_DIR
(default `.local/`): a snapshot written on stop, the changes since written every 2 s, both
loaded on the next start; FRESH=1 starts empty. Ctrl-C, SIGINT or SIGTERM (to this process or to the `make` above it) stops both
servers.

After the banner (for you: URL, API key), every line is one JSON object, as in Lambda: the
app's own log lines and EMF metrics pass through as they are, and what `chalice local` itself
prints as text (its access log, a traceback) is wrapped into one JSON line each. Beside
`chalice local`, this process reads the embedded table's change stream and runs the
notification handler and its schedules, and the intake queue's consumer (what the integration
routes accepted), as Lambda would (scripts/local_stream.py, scripts/local_intake.py).
"""
from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.auth import parse_api_keys, writable_key  # noqa: E402
from chalicelib.logs import iso_timestamp  # noqa: E402
from chalicelib.store import TABLE_DEFINITION, create_table  # noqa: E402
import local_intake  # noqa: E402
import local_stream  # noqa: E402

# A key that may change things, and a read-only one named dashboard (docs/security.md).
DEFAULT_API_KEYS = "local-dev-key,dashboard:read=local-dashboard-key"
DEFAULT_TELEGRAM_SECRET = "local-telegram-secret"
DEFAULT_INTEGRATION_KEY = "local-integration-key"
STAGE = "dev"
CHALICE_START_TIMEOUT = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The signals after which GNU make waits for its recipe to end without passing them on
# (SIGTERM it passes on).
UNFORWARDED_BY_MAKE = (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
STOPPING = threading.Event()


class StartFailed(Exception):
    """A reason to stop before serving, said in one line."""


# `chalice local`, with a listen backlog of 128 instead of socketserver's 5: with more clients
# connecting at once than that, the kernel resets the ones it could not queue.
CHALICE_LOCAL = (
    "import socketserver, sys; socketserver.TCPServer.request_queue_size = 128; "
    "sys.argv[0] = 'chalice'; from chalice.cli import main; sys.exit(main())"
)


def stage_table_name() -> str:
    return stage_environment()["TABLE_NAME"]


def stage_environment() -> dict[str, str]:
    """The dev stage's environment_variables over the top-level ones, as Chalice merges them."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config.get("environment_variables", {}),
            **config["stages"][STAGE].get("environment_variables", {})}


CHAT_TRANSCRIPT = "chat.jsonl"  # the local Telegram group's messages (scripts/say.py)


def local_dir() -> Path:
    """Where the local run keeps its data (the table's items, the chat simulator's transcript)."""
    return Path(os.environ.get("LOCAL_DIR") or ROOT / ".local")


def local_environment(moto_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    # The embedded server accepts any credentials; fixed fake ones keep a real profile out of it.
    env.update(
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{moto_port}",
        # The integration routes' hand-off, on the same embedded server (scripts/local_intake.py).
        AWS_ENDPOINT_URL_SQS=f"http://127.0.0.1:{moto_port}",
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{moto_port}",
        INTAKE_QUEUE_URL=local_intake.queue_url(f"http://127.0.0.1:{moto_port}", stage_environment()["INTAKE_QUEUE"]),
        INTAKE_BUCKET=local_intake.bucket_name(stage_environment()["INTAKE_QUEUE"]),
        API_KEYS=env.get("API_KEYS") or DEFAULT_API_KEYS,
        # Without a bot token, Telegram calls (a pressed button's edit, notices) are printed, and
        # edits are recorded in `make say`'s transcript.
        NOTIFY_TO_CONSOLE="1",
        LOCAL_CHAT_TRANSCRIPT=str(local_dir() / CHAT_TRANSCRIPT),
        # Set here so that nothing local ever asks SSM (the stage names a parameter for Lambda).
        TELEGRAM_SECRET_TOKEN=env.get("TELEGRAM_SECRET_TOKEN") or DEFAULT_TELEGRAM_SECRET,
        INTEGRATION_KEYS=env.get("INTEGRATION_KEYS") or DEFAULT_INTEGRATION_KEY,
        # A new cursor-signing key every run unless one is given: cursors stay valid for the
        # run (chalice local is one process) and nothing guessable ever signs them.
        CURSOR_SECRET=env.get("CURSOR_SECRET") or secrets.token_urlsafe(32),
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def notifier_environment(env: dict[str, str], table: str) -> dict[str, str]:
    """What `chalice local` gives the app (the stage's variables, then ours), for the
    notification handler this process runs beside it."""
    overridable = {name: env[name] for name in ("TELEGRAM_NOTIFY_CHAT", "REMIND_NEW_AFTER_MIN",
                                                "DIGEST_HOUR_UTC") if env.get(name)}
    # Only the webhook's edits belong in `make say`'s transcript: a notice has no message id there.
    env = {name: value for name, value in env.items() if name != "LOCAL_CHAT_TRANSCRIPT"}
    return {**env, **stage_environment(), **overridable, "TABLE_NAME": table}


def dynamodb_client(env: dict[str, str]) -> Any:
    return aws_client("dynamodb", env)


def aws_client(service: str, env: dict[str, str]) -> Any:
    """A client of the embedded server (one port serves DynamoDB, SQS and S3)."""
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def ensure_table(client: Any, name: str) -> list[str]:
    """Creates the table unless the kept data already had it; adds the indexes a newer
    chalicelib/store.py defines, as a deploy does (one UpdateTable each). Returns their names."""
    if name not in client.list_tables()["TableNames"]:
        create_table(client, name)
        return []
    described = client.describe_table(TableName=name)["Table"]
    kept_keys, kept_indexes = _layout(described)
    keys, indexes = _layout(TABLE_DEFINITION)
    if kept_keys != keys or not set(kept_indexes) <= set(indexes):
        raise StartFailed(
            f"the data kept in {local_dir()} has another table layout than chalicelib/store.py "
            "defines: start empty with `make run FRESH=1` (or `make reset`)"
        )
    added = [index for index in TABLE_DEFINITION["GlobalSecondaryIndexes"]
             if (index["IndexName"], _layout({"KeySchema": index["KeySchema"]})[0]) not in kept_indexes]
    for index in added:
        client.update_table(TableName=name, AttributeDefinitions=TABLE_DEFINITION["AttributeDefinitions"],
                            GlobalSecondaryIndexUpdates=[{"Create": index}])
    return [index["IndexName"] for index in added]


def _layout(definition: dict[str, Any]) -> tuple:
    """Key schema and indexes, whichever they are: what makes old data unusable by new code."""
    def keys(schema: list[dict[str, str]]) -> tuple:
        return tuple((key["AttributeName"], key["KeyType"]) for key in schema)
    indexes = {
        index["IndexName"]: keys(index["KeySchema"])
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
        for index in definition.get(kind, [])
    }
    return keys(definition["KeySchema"]), sorted(indexes.items())


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def check_ports(port: int, moto_port: int) -> None:
    if port == moto_port:
        raise StartFailed(f"PORT and MOTO_PORT are both {port}: set one of them to another port")
    for value, variable in ((port, "PORT"), (moto_port, "MOTO_PORT")):
        if port_in_use(value):
            raise StartFailed(f"port {value} is in use: set {variable} to another port "
                              f"(make run {variable}={value + 100})")


def start_dynamodb(port: int, state: Path) -> Any:
    """The embedded DynamoDB (localaws/) on `port`, its kept items loaded; imported here, so that
    `make say` and the other scripts that import this module do not load moto."""
    from localaws.server import EmbeddedDynamoDB

    dynamodb = EmbeddedDynamoDB(port, state)
    try:
        dynamodb.start()
    except OSError as error:
        raise StartFailed(f"port {port} is in use: set MOTO_PORT to another port ({error.strerror})")
    except (ValueError, KeyError) as error:
        raise StartFailed(f"the data kept in {state} cannot be read ({error!r}): "
                          "start empty with `make run FRESH=1` (or `make reset`)")
    return dynamodb


def no_proxy_opener() -> urllib.request.OpenerDirector:
    """Straight to 127.0.0.1, whatever HTTP_PROXY says."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


# `chalice local`, with a listen backlog of 128 instead of socketserver's 5: with more clients
# connecting at once than that, the kernel resets the ones it could not queue.
CHALICE_LOCAL = (
    "import socketserver, sys; socketserver.TCPServer.request_queue_size = 128; "
    "sys.argv[0] = 'chalice'; from chalice.cli import main; sys.exit(main())"
)


def start_chalice(port: int, env: dict[str, str]) -> subprocess.Popen:
    chalice = subprocess.Popen(
        [sys.executable, "-c", CHALICE_LOCAL, "local", "--host", "127.0.0.1", "--port", str(port),
         "--stage", STAGE, "--no-autoreload"],
        cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, preexec_fn=_end_with_parent,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
        errors="replace",
    )
    threading.Thread(target=relay, args=(chalice.stdout,), name="chalice-output", daemon=True).start()
    return chalice


def as_json_line(line: str) -> str:
    """A line of `chalice local`'s output as it is when it is JSON already, else wrapped."""
    text = line.rstrip("\n")
    if text.startswith("{"):
        try:
            json.loads(text)
            return text
        except ValueError:
            pass
    return json.dumps({"timestamp": iso_timestamp(time.time()), "level": "INFO", "message": text,
                       "logger": "chalice.local"}, ensure_ascii=False)


def relay(stream: IO[str]) -> None:
    for line in stream:
        if line.strip():
            sys.stdout.write(as_json_line(line) + "\n")
            sys.stdout.flush()


def _end_with_parent() -> None:
    """In the child: SIGTERM when this process dies, even by SIGKILL (Linux), so no orphan."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_until_serving(chalice: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + CHALICE_START_TIMEOUT
    while time.monotonic() < deadline:
        if chalice.poll() is not None:
            raise StartFailed(f"`chalice local` exited with {chalice.returncode} before serving on "
                              f"port {port} (if the port is in use: set PORT to another port)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise StartFailed(f"`chalice local` did not serve on port {port} within {CHALICE_START_TIMEOUT:.0f} s")


def watch_parent() -> str | None:
    """GNU make forwards SIGTERM to its recipe but not SIGINT: after a SIGINT sent to make
    alone (`kill -INT <make pid>`) it blocks that signal and waits for us. On Linux that shows
    in /proc, so a thread turns it into our own SIGINT. Returns a note when make ignores SIGINT
    (started with `&` from a script), since then nothing can make it act on one."""
    parent = os.getppid()
    status = _signal_masks(parent)
    if status is None or _command_name(parent) not in ("make", "gmake"):
        return None
    blocked_at_start = status["SigBlk"]
    stop_mask = sum(1 << (sig - 1) for sig in UNFORWARDED_BY_MAKE)

    def watch() -> None:
        while not STOPPING.wait(0.2):
            masks = _signal_masks(parent) if os.getppid() == parent else None
            if masks is None or masks["SigBlk"] & ~blocked_at_start & stop_mask:
                print(f"make (pid {parent}) " + ("is gone" if masks is None else "was told to stop")
                      + ": stopping", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if status["SigIgn"] & (1 << (signal.SIGINT - 1)):
        return f"SIGINT is ignored by the process that started this one (pid {parent}): stop it with SIGTERM (kill {parent})"
    return None


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _signal_masks(pid: int) -> dict[str, int] | None:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    return {name: int(fields[name].strip(), 16) for name in ("SigBlk", "SigIgn")}


def _stop_requested(signum: int, frame: Any) -> None:
    """The first stop signal stops us; any later one (Ctrl-C is SIGINT to make and to us, and
    make may pass on a SIGTERM too) must not break off the cleanup it started."""
    STOPPING.set()
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> int:
    port = int(os.environ.get("PORT") or 8000)
    moto_port = int(os.environ.get("MOTO_PORT") or 8001)
    try:
        check_ports(port, moto_port)
    except StartFailed as failure:
        print(failure, file=sys.stderr)
        return 2
    # SIGTERM (a test or a supervisor stopping us) ends things the same way Ctrl-C does;
    # SIGINT is set explicitly because a shell starting us in the background ignores it.
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_requested)
    ignored_note = watch_parent()

    state = local_dir()
    if os.environ.get("FRESH", "") not in ("", "0"):
        shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True, exist_ok=True)
    env = local_environment(moto_port)
    moto = chalice = None
    stop_notifier = threading.Event()
    try:
        chalice = start_chalice(port, env)  # its start-up overlaps the loading of the kept items
        moto = start_dynamodb(moto_port, state)
        table = stage_table_name()
        # The queue first: /health answers once the table does, and then the queue is there too.
        local_intake.ensure_intake(aws_client("sqs", env), aws_client("s3", env), stage_environment()["INTAKE_QUEUE"])
        for index in ensure_table(dynamodb_client(env), table):
            print(f"The kept table gets the index {index} this version defines, as a deploy would add it")
        wait_until_serving(chalice, port)
        local_stream.start(notifier_environment(env, table), stop_notifier)
        local_intake.start(stop_notifier)
        api_key = writable_key(env["API_KEYS"]) or "(none that may write: every key is :read)"
        read_only = [key for key in parse_api_keys(env["API_KEYS"]) if key.read_only]
        telegram = stage_environment()
        chat = telegram.get("TELEGRAM_ALLOWED_CHATS", "").split(",")[0].strip()
        kept = (f"{moto.loaded:,} items loaded" if moto.loaded else "nothing kept yet, starting empty") \
            + (" from the old request recording, migrated once" if moto.migrated else "")
        print(f"Embedded DynamoDB (moto) on {env['AWS_ENDPOINT_URL_DYNAMODB']}, table {table}")
        print(f"Data kept in {state} as items ({kept}); `make run FRESH=1` starts empty")
        print(f"Incident API on http://127.0.0.1:{port}")
        print(f"API key: {api_key}   (header x-api-key; set API_KEYS to choose your own)")
        if read_only:
            print(f"Read-only API key: {read_only[0].secret}   (named {read_only[0].name}: GET only)")
        print(f"Telegram webhook: http://127.0.0.1:{port}/telegram/webhook, secret "
              f"{env['TELEGRAM_SECRET_TOKEN']} (header X-Telegram-Bot-Api-Secret-Token)")
        print(f"Telegram bot @{telegram.get('TELEGRAM_BOT_USERNAME', '')} serves chat {chat}: "
              "try make say TEXT='[operator] Самокат 42 не в сети'")
        if ignored_note:
            print(ignored_note)
        print(f"PagerDuty routing key: {env['INTEGRATION_KEYS'].split(',')[0].strip()}   "
              "(POST /v2/enqueue; set INTEGRATION_KEYS to choose your own)")
        print("Ctrl-C stops both.", flush=True)
        return chalice.wait()
    except StartFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_notifier.set()
        if chalice is not None and chalice.poll() is None:
            chalice.terminate()
            try:
                chalice.wait(timeout=10)
            except subprocess.TimeoutExpired:
                chalice.kill()
        if moto is not None:
            moto.stop()  # and writes what it keeps


if __name__ == "__main__":
    sys.exit(main())
