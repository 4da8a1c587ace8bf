"""The package installs as a wheel: a non-editable install in a fresh virtual environment carries its schema and runs
`genssl config` and a tiny `genssl prepare` outside the checkout."""

import os
import shutil
import site
import subprocess
import sys

import pytest
import yaml

from tests.helpers import REPO


def _run(command, cwd, env):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_a_built_wheel_installs_and_runs_without_the_checkout(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("genssl-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    (purelib,) = [p for p in (venv / "lib").glob("python3*/site-packages")]
    # The dependencies (torch, ...) come from this interpreter's site-packages, after the fresh venv's own: a path
    # line in a .pth file does not run that directory's .pth files, so the checkout's editable install stays out.
    (purelib / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], tmp_path, env)

    work = tmp_path / "work"
    work.mkdir()
    location = _run([str(python), "-c", "import genssl; print(genssl.__file__)"], work, env).strip()
    assert location.startswith(str(purelib)), location
    genssl = venv / "bin" / "genssl"
    resolved = yaml.safe_load(
        _run([str(genssl), "config", "--config", str(REPO / "config" / "config.yaml")], work, env)
    )
    assert resolved["pretrain"]["dataset"] == "digits" and resolved["probe"]["protocol"] == "features"
    (work / "tiny.yaml").write_text(yaml.safe_dump({"datasets": {"digits": {"source": "digits", "image_size": 8}}}))
    _run([str(genssl), "prepare", "--config", "tiny.yaml", "--dataset", "digits", "--out", "digits"], work, env)
    assert _run([str(genssl), "store", "verify", "digits"], work, env).strip() == "digits: ok"
