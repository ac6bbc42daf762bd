"""`kustomize build` with the binary scripts/setup.sh installs (sigs.k8s.io/kustomize/kustomize/v5,
built by `go install` into the venv's bin/), parsed into plain objects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from fleet.deploy.overlays import DeployError

# The version scripts/setup.sh installs; `kustomize version` must print it.
KUSTOMIZE_VERSION = "v5.8.2"


def kustomize_binary() -> Path:
    """The venv's kustomize (next to this interpreter), else $KUSTOMIZE, else one on PATH."""
    candidates = [Path(sys.executable).parent / "kustomize", Path(os.environ.get("KUSTOMIZE", "")), Path(shutil.which("kustomize") or "")]
    for candidate in candidates:
        if candidate.name and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise DeployError(f"no kustomize binary: `make setup` installs {KUSTOMIZE_VERSION} into the venv "
                      f"(go install sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}), or set $KUSTOMIZE")


def kustomize_version(binary: Path | None = None) -> str:
    out = subprocess.run([str(binary or kustomize_binary()), "version"], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def build_text(folder: Path) -> str:
    result = subprocess.run([str(kustomize_binary()), "build", str(folder)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise DeployError(f"kustomize build {folder} failed: {result.stderr.strip()}")
    return result.stdout


def build(folder: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(build_text(folder)) if doc]
