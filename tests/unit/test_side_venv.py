"""infra.side_venv on a real venv and a wheel built here (no registry): installed once, reused while
its marker matches and it imports, re-created when it no longer does — and the import check is not
fooled by our PYTHONPATH (the bug a Flink environment caused: pip and the check saw the project
venv's packages)."""

from __future__ import annotations

import zipfile

import pytest

from infra.side_venv import MARKER, clean_env, ensure_side_venv, run

MODULE = "fleet_side_probe"


def _wheel(folder) -> str:
    path = folder / f"{MODULE}-1.0-py3-none-any.whl"
    info = f"{MODULE}-1.0.dist-info"
    files = {
        f"{MODULE}.py": 'WHERE = "wheel"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {MODULE}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return str(path)


def test_clean_env_drops_our_python_path_and_adds_extra(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setenv("PYTHONHOME", "/elsewhere")
    env = clean_env({"JAVA_HOME": "/jdk"})
    assert "PYTHONPATH" not in env and "PYTHONHOME" not in env and env["JAVA_HOME"] == "/jdk"


@pytest.mark.timeout(120)
def test_installed_once_reused_and_recreated_when_it_no_longer_imports(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path)
    shadow = tmp_path / "shadow"  # our PYTHONPATH holds a module of the same name
    shadow.mkdir()
    (shadow / f"{MODULE}.py").write_text('WHERE = "shadow"\n')
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    folder = tmp_path / "venvs" / "probe"
    said = []
    check = f"import {MODULE}; assert {MODULE}.WHERE == 'wheel'"

    python = ensure_side_venv("probe", [wheel], f"import {MODULE}", folder, out=said.append)
    assert len(said) == 1 and "installing" in said[0]  # the shadow on PYTHONPATH did not count
    assert run(python, ["-c", check]).returncode == 0
    assert (folder / MARKER).read_text() == wheel + "\n"

    assert ensure_side_venv("probe", [wheel], f"import {MODULE}", folder, out=said.append) == python
    assert len(said) == 1  # reused: nothing installed

    installed = run(python, ["-c", f"import {MODULE}; print({MODULE}.__file__)"], capture_output=True, text=True, check=True)
    (tmp_path / installed.stdout.strip()).unlink()  # absolute path: the venv lost the module
    assert ensure_side_venv("probe", [wheel], f"import {MODULE}", folder, out=said.append) == python
    assert len(said) == 2 and run(python, ["-c", check]).returncode == 0
