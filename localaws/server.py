"""The embedded DynamoDB as a server: moto's server on a thread of this process, with the shim
on, one call at a time, and (given a directory) its items kept there (persist.py)."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from localaws import persist, shim

OLD_RECORDING = "dynamodb-requests.jsonl"  # what `make run` kept before persist.py


class EmbeddedDynamoDB:
    """`start()` binds 127.0.0.1:`port` (OSError when it cannot), loads the kept items and
    serves; `stop()` stops serving and writes the snapshot."""

    def __init__(self, port: int, directory: Path | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.directory = directory
        self.kept: persist.KeptData | None = None
        self.loaded = 0
        self.migrated = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: Any = None
        self._flusher: threading.Thread | None = None

    def start(self) -> None:
        shim.install()
        from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                                   create_backend_app)
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        application = _one_call_at_a_time(DomainDispatcherApplication(create_backend_app), self._lock)
        # Bound now, served once the kept items are in: a client connecting meanwhile waits.
        self._server = make_server("127.0.0.1", self.port, application, threaded=True,
                                   request_handler=MotoRequestHandler)
        serving = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        if self.directory is None:
            serving.start()
            return
        self.kept = persist.KeptData(self.directory, self._lock)
        recording = self.directory / OLD_RECORDING
        if recording.exists() and not self.kept.exists():
            serving.start()  # the replay is sent over HTTP
            self._migrate(recording)
        with self._lock:
            self.loaded = self.kept.load()
        persist.keep(self.kept)
        self._flusher = persist.changes_every(self.kept, self._stop)
        if not serving.is_alive():
            serving.start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._flusher is not None:
            self._flusher.join()
        if self.kept is not None:
            self.kept.write_snapshot()

    def _migrate(self, recording: Path) -> None:
        """Once: the old recording replayed (as the old `make run` did), kept as items, moto
        emptied again (so that the load below, not the replay, fills it and its streams)."""
        from moto.dynamodb.models import dynamodb_backends
        from moto.moto_api._internal.recorder.models import Recorder

        data = recording.read_bytes()
        if data and not data.endswith(b"\n"):  # a line cut short by a kill mid-write
            recording.write_bytes(data[: data.rfind(b"\n") + 1])
        recorder = Recorder()
        recorder._location = str(recording)
        recorder.replay_recording(target_host=self.url)
        assert self.kept is not None
        self.kept.write_snapshot()
        recording.rename(recording.with_name(recording.name + ".migrated"))
        for _, regions in list(dynamodb_backends.items()):
            for _, backend in list(regions.items()):
                backend.reset()
        self.migrated = True


def _one_call_at_a_time(application: Any, lock: threading.Lock) -> Any:
    """DynamoDB applies each call atomically; moto's server evaluates a condition and writes
    without a lock, so concurrent clients could see what DynamoDB never shows (two creates both
    claiming one dedup_key). One call at a time restores that, as the tests' atomic_moto does."""

    def serve(environ: Any, start_response: Any) -> Any:
        with lock:
            return application(environ, start_response)

    return serve
