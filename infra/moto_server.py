"""moto's server: the AWS APIs (Timestream, DynamoDB, SNS, S3) for local runs and tests, on loopback.

State lives in memory: a restart of the server is a fresh account, which is what tests want.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from infra.process import ComponentStatus, InfraError, ManagedProcess, probe_status, wait_until

# moto accepts any credentials; set them so boto3 never looks for real ones.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


_LAUNCH = "import sys; from moto.server import main; main(sys.argv[2:])"


class MotoServer:
    name = "moto"

    def __init__(self, run_dir: Path, host: str, port: int):
        self.folder = run_dir / "moto"
        self.host, self.port = host, port
        self.process = ManagedProcess("moto", self.folder)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def up(self, timeout_s: float = 30.0) -> int:
        try:
            import moto.server  # noqa: F401 - only checks that the extra is installed
        except ImportError as exc:
            raise InfraError("moto[server] is not installed: pip install 'fleet-telemetry[local]' (make setup does)") from exc
        self.process.refuse_taken(self.host, self.port)
        self.folder.mkdir(parents=True, exist_ok=True)
        # The folder rides on the command line (ignored by moto) so the pid check can recognise it.
        pid = self.process.start(
            [sys.executable, "-c", _LAUNCH, str(self.folder), "-H", self.host, "-p", str(self.port)],
            env=FAKE_CREDENTIALS,
        )
        wait_until(self._ready, timeout_s=timeout_s, what=f"moto on {self.endpoint}", process=self.process)
        return pid

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=2) as response:
            return response.status == 200

    def down(self) -> bool:
        return self.process.stop(timeout_s=15.0)

    def status(self) -> ComponentStatus:
        return probe_status(self.name, self.endpoint, self.process, self._ready, not_ready="not answering")
