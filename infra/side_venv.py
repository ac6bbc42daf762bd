"""Side venvs: a tool whose pins clash with PyFlink's (Quix Streams for the benchmark's peer, Spark
for checking the lake's Delta tables) gets a venv of its own, created on demand from the package
registry pip is configured with (PyPI by default) and reused while its requirements stay the same.

A venv lives in $XDG_CACHE_HOME (or ~/.cache) /fleet-telemetry/<name>; a marker file there holds the
requirements it was installed with. It is reused when the marker matches and its import check still
passes; updated (pip install) when the requirements changed, re-created when its python no longer
starts (its base interpreter moved) or it fails the check though installed as wanted (damaged). A lock file beside it keeps two processes from installing at once.

Every command runs without PYTHONPATH/PYTHONHOME (`clean_env`): a Flink environment made earlier in
the same process puts the project venv's site-packages on PYTHONPATH, and pip run with it there
counts what that venv holds (typing_extensions, say) as installed and leaves it out of the side
venv's."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

MARKER = "fleet-telemetry-requirements.txt"


def cache_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fleet-telemetry"


def default_folder(name: str) -> Path:
    return cache_root() / name


def base_python() -> str:
    """The interpreter our venv was made from: a venv made from a venv's python links back to it anyway."""
    return getattr(sys, "_base_executable", None) or sys.executable


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without PYTHONPATH/PYTHONHOME (see the module docstring), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra or {})
    return env


def run(python: Path | str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
        **kwargs) -> subprocess.CompletedProcess:
    """`python args…` in `clean_env(env)`; other keywords go to subprocess.run."""
    return subprocess.run([str(python), *args], env=clean_env(env), **kwargs)


def _starts(python: Path) -> bool:
    return python.exists() and run(python, ["-c", "pass"], capture_output=True).returncode == 0


def _imports(python: Path, import_check: str) -> bool:
    return run(python, ["-c", import_check], capture_output=True).returncode == 0


def ensure_side_venv(name: str, requirements: Sequence[str], import_check: str, folder: Path | None = None, *,
                     out: Callable[[str], None] = print) -> Path:
    """The python of side venv `name` holding `requirements`, creating or updating the venv first if
    needed. `import_check` is Python code (e.g. "import pyspark, delta") that must run in it."""
    folder = Path(folder) if folder else default_folder(name)
    python = folder / "bin" / "python"
    marker = folder / MARKER
    wanted = "\n".join(requirements) + "\n"

    def ready() -> bool:
        return marker.is_file() and marker.read_text() == wanted and _starts(python) and _imports(python, import_check)

    if ready():  # the common case, without taking the lock
        return python
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if ready():  # another process installed it while we waited
            return python
        out(f"{name} venv: installing {', '.join(requirements)} into {folder} (once)")
        # Installed as wanted but no longer importing: damaged (pip would call it satisfied), start over.
        damaged = marker.is_file() and marker.read_text() == wanted
        if damaged or not _starts(python):
            # --clear only over a venv (its pyvenv.cfg there): never empty a folder that is something else.
            clear = ["--clear"] if (folder / "pyvenv.cfg").is_file() else []
            subprocess.run([base_python(), "-m", "venv", *clear, str(folder)], env=clean_env(), check=True)
        marker.unlink(missing_ok=True)  # an interrupted install must not look finished
        # No --index-url: whatever pip is configured with (PyPI by default); quiet but errors shown.
        run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements], check=True)
        if not _imports(python, import_check):
            raise RuntimeError(f"{name} venv {folder}: {', '.join(requirements)} installed but {import_check!r} fails")
        marker.write_text(wanted)
    return python
