"""The peer's own venv: Quix Streams pins its own confluent-kafka and rocksdict, which must not meet
PyFlink's pins in the project venv. A side venv (infra.side_venv): created on demand, from PyPI only,
reused while its requirements stay the same and it still imports them."""

from __future__ import annotations

from pathlib import Path

from infra.side_venv import default_folder, ensure_side_venv, run

NAME = "peer-venv"
# 3.28 is the version the figures came from; orjson and geohash2 are what the pure udfs/
# modules the peer imports need (udfs.telemetry_schema, udfs.geohash, udfs.dedup).
PEER_REQUIREMENTS = ("quixstreams>=3.28,<3.29", "orjson>=3.10", "geohash2>=1.1")
PEER_IMPORTS = "import quixstreams, orjson, geohash2"


def default_peer_venv() -> Path:
    return default_folder(NAME)


def ensure_peer_venv(folder: Path | None = None, *, out=print) -> Path:
    """The peer venv's python, creating or updating the venv first if needed (or if it no longer
    imports what it should)."""
    return ensure_side_venv(NAME, PEER_REQUIREMENTS, PEER_IMPORTS, folder or default_peer_venv(), out=out)


def peer_version(python: Path) -> str:
    result = run(python, ["-c", "import quixstreams; print(quixstreams.__version__)"], capture_output=True, text=True, check=True)
    return result.stdout.strip()
