"""stop_with_savepoint against a stand-in for a MiniCluster's REST API (a real HTTP server on
loopback): the answer Flink gives, and the race CI met — the job finishes, its process exits and the
REST API vanishes before the savepoint's status is read; then the savepoint's own _metadata on disk
tells whether it completed."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fleet.live.flink_rest import FlinkRestError, savepoint_on_disk, stop_with_savepoint

JOB = "73ac8532e9b04d829560b3c634a876b3"


class FakeMiniCluster:
    """GET /jobs: one running job; POST /jobs/<id>/stop: a trigger id, and `on_stop()` runs (it may
    write a savepoint folder); GET /jobs/<id>/savepoints/<trigger>: `status` — or, with
    `vanish=True`, the connection is dropped unanswered, as by a process that exited."""

    def __init__(self, on_stop=lambda: None, status: dict | None = None, vanish: bool = False):
        self.on_stop, self.status, self.vanish = on_stop, status, vanish
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/jobs":
                    self._json({"jobs": [{"id": JOB, "status": "RUNNING"}]})
                elif fake.vanish:
                    self.close_connection = True  # no answer at all: the client sees the peer go
                else:
                    self._json(fake.status or {"status": {"id": "IN_PROGRESS"}})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.on_stop()
                self._json({"request-id": "trigger-1"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeMiniCluster:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "savepoints" / "pipeline"
    folder.mkdir(parents=True)
    yield folder


def write_savepoint(folder: Path, name: str) -> Path:
    savepoint = folder / name
    savepoint.mkdir()
    (savepoint / "_metadata").write_bytes(b"\x00" * 16)
    return savepoint


def test_the_location_flink_reports_is_returned(target):
    location = f"file:{target}/savepoint-73ac85-000000000001"
    with FakeMiniCluster(status={"status": {"id": "COMPLETED"}, "operation": {"location": location}}) as rest:
        assert stop_with_savepoint(rest.url, target.as_uri(), timeout_s=5) == location


def test_a_failed_savepoint_is_an_error_with_flinks_cause(target):
    failed = {"status": {"id": "COMPLETED"}, "operation": {"failure-cause": {"class": "CheckpointException"}}}
    with FakeMiniCluster(status=failed) as rest, pytest.raises(FlinkRestError, match="CheckpointException"):
        stop_with_savepoint(rest.url, target.as_uri(), timeout_s=5)


def test_when_the_rest_api_vanishes_the_completed_savepoint_on_disk_is_found(target):
    made: list[Path] = []
    with FakeMiniCluster(on_stop=lambda: made.append(write_savepoint(target, "savepoint-73ac85-0aa386467b78")), vanish=True) as rest:
        location = stop_with_savepoint(rest.url, target.as_uri(), timeout_s=5)
    assert location == f"file:{made[0]}"
    assert Path(location.removeprefix("file:"), "_metadata").exists()


def test_when_the_rest_api_vanishes_without_a_savepoint_it_is_an_error(target):
    # Neither an older savepoint of the same job nor a new one of another job counts.
    old = write_savepoint(target, "savepoint-73ac85-old000000000")
    os.utime(old / "_metadata", (time.time() - 3_600, time.time() - 3_600))
    with FakeMiniCluster(on_stop=lambda: write_savepoint(target, "savepoint-0bb0ff-other0000000"), vanish=True) as rest:
        with pytest.raises(FlinkRestError):
            stop_with_savepoint(rest.url, target.as_uri(), timeout_s=5)


def test_savepoint_on_disk_takes_the_newest_complete_one_of_the_job(target):
    since = time.time()
    write_savepoint(target, "savepoint-73ac85-aaaaaaaaaaaa")
    newest = write_savepoint(target, "savepoint-73ac85-bbbbbbbbbbbb")
    later = time.time() + 5
    os.utime(newest / "_metadata", (later, later))
    (target / "savepoint-73ac85-cccccccccccc").mkdir()  # not complete: no _metadata yet
    assert savepoint_on_disk(str(target), JOB, since) == f"file:{newest}"
    assert savepoint_on_disk(target.as_uri(), JOB, since) == f"file:{newest}"
    assert savepoint_on_disk(str(target), "0bb0ff" + JOB[6:], since) is None
