"""The wheel: it carries the experiment specs and the claims file, and an installation of it runs
them by name, away from the source tree. Built and installed offline, with the tools of this
environment (pip, setuptools): no package is downloaded."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_an_installed_wheel_runs_the_bundled_specs_by_name(tmp_path):
    # the build works on a copy of the project's files, so that it leaves nothing in the source tree
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path / "dist"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(project), cwd=tmp_path)
    [wheel] = dist.glob("noisemod-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = sorted(p.name for p in (REPO / "src" / "noisemod" / "experiments" / "specs").glob("*.yaml"))
    assert {f"noisemod/experiments/specs/{s}" for s in specs} <= names and "noisemod/analysis/claims.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    installed = tmp_path / "installed"
    _pip("install", "--no-deps", "--no-index", "--target", str(installed), str(wheel), cwd=tmp_path)
    # python -S: no site-packages .pth files, so not the editable install of the source tree; torch and the
    # other dependencies come from this environment's site-packages, after the installed wheel
    paths = sysconfig.get_paths()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(installed), paths["purelib"], paths["platlib"]])),
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def noisemod(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-S", "-m", "noisemod", *args], cwd=elsewhere, env=env, capture_output=True, text=True
        )

    where = subprocess.run(
        [sys.executable, "-S", "-c", "import noisemod; print(noisemod.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(installed / "noisemod" / "__init__.py"), where.stderr
    assert noisemod("--version").stdout == "noisemod 0.1.0\n"
    listed = noisemod("sweep", "--list")
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == [
        s.removesuffix(".yaml") for s in sorted(specs, key=lambda s: s.removesuffix(".yaml"))
    ]
    dry = noisemod("sweep", "protocol", "--budget", "tier1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("sweep protocol (budget tier1): 140 runs, 140 to run") and dry.stderr == ""
    assert f"{elsewhere}/sweeps/protocol-tier1/runs/" in dry.stdout and not (elsewhere / "sweeps").exists()
    claims = noisemod("claims", "--results", str(REPO / "results"))  # the bundled claims file
    assert claims.returncode == 0 and claims.stdout.startswith("| claim | source | verdict |"), claims.stderr
