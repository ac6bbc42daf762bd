"""The peer's own venv: Quix Streams pins its own confluent-kafka and rocksdict, which must not meet
PyFlink's pins in the project venv. Created on demand, from PyPI only, and reused while its
requirements stay the same (a marker file holds them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# 3.28 is the version the figures came from; orjson and geohash2 are what the pure udfs/
# modules the peer imports need (udfs.telemetry_schema, udfs.geohash, udfs.dedup).
PEER_REQUIREMENTS = ("quixstreams>=3.28,<3.29", "orjson>=3.10", "geohash2>=1.1")


def default_peer_venv() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fleet-telemetry" / "peer-venv"


def _base_python() -> str:
    """The interpreter our venv was made from: a venv made from a venv's python links back to it anyway."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _own_env() -> dict[str, str]:
    """Our environment without PYTHONPATH/PYTHONHOME: a Flink environment made earlier in this
    process puts the project venv's site-packages on PYTHONPATH, and pip run with it there counts
    what that venv holds (typing_extensions, say) as installed and leaves it out of the peer's."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _works(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import quixstreams, orjson, geohash2"],  # noqa: S603
                          env=_own_env(), capture_output=True).returncode == 0


def ensure_peer_venv(folder: Path | None = None, *, out=print) -> Path:
    """The peer venv's python, creating or updating the venv first if needed (or if it no longer
    imports what it should)."""
    folder = folder or default_peer_venv()
    python = folder / "bin" / "python"
    marker = folder / "fleet-telemetry-requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if python.exists() and marker.is_file() and marker.read_text() == wanted and _works(python):
        return python
    out(f"peer venv: installing {', '.join(PEER_REQUIREMENTS)} into {folder} (once)")
    if not python.exists():
        subprocess.run([_base_python(), "-m", "venv", str(folder)], env=_own_env(), check=True)  # noqa: S603
    # No --index-url: whatever pip is configured with (PyPI by default); quiet but errors shown.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_REQUIREMENTS],  # noqa: S603
                   env=_own_env(), check=True)
    if not _works(python):
        raise RuntimeError(f"peer venv {folder}: {', '.join(PEER_REQUIREMENTS)} installed but quixstreams does not import")
    marker.write_text(wanted)
    return python


def peer_version(python: Path) -> str:
    result = subprocess.run([str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],  # noqa: S603
                            env=_own_env(), capture_output=True, text=True, check=True)
    return result.stdout.strip()
