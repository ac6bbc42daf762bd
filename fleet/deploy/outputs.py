"""Every file `telemetry deploy generate` owns, with the text it must have: each overlay's four
generated files and docs/kubernetes.md's sizing section."""

from __future__ import annotations

from pathlib import Path

from fleet.deploy.generate import overlay_files
from fleet.deploy.inputs import load_inputs
from fleet.deploy.overlays import DEPLOY_DIR, DeployError, load_overlay, overlay_names
from fleet.deploy.report import replace_section, section_lines
from fleet.deploy.sizing import size_all

DOC = DEPLOY_DIR.parents[1] / "docs" / "kubernetes.md"


def expected_files(scratch: Path) -> dict[Path, str]:
    inputs = load_inputs()
    sized = size_all(inputs.figures, inputs.policy, inputs.targets)
    files: dict[Path, str] = {}
    for name in overlay_names():
        settings = load_overlay(name)
        if settings.sizing not in sized:
            raise DeployError(f"overlay {name}: sizing {settings.sizing!r} is not a [targets.*] of deploy/flink-k8s/sizing.toml")
        files.update(overlay_files(settings, sized[settings.sizing], scratch))
    files[DOC] = replace_section(DOC.read_text(), section_lines(inputs, sized))
    return files
