"""A plain (non-editable) install works from any directory: packaged configs, file and
module targets, no source checkout, no network, no extras.

The fresh virtual environment borrows the running interpreter's dependencies (torch,
torchvision, ...) through a ``.pth`` file added *after* convzoo is installed, so pip never
sees another convzoo and nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import torch

from convzoo import __version__ as convzoo_version

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = (".git", ".venv", "__pycache__", "build", "*.egg-info", ".*_cache", ".hypothesis")


def sh(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_plain_install_runs_every_target_form_outside_the_checkout(tmp_path: Path) -> None:
    wheels, env_dir, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    source = tmp_path / "source"  # a copy: building leaves build/ and *.egg-info behind
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
       "-w", wheels, source, cwd=tmp_path)  # fmt: skip
    wheel = next(wheels.glob("convzoo-*.whl"))
    listing = sh(sys.executable, "-m", "zipfile", "-l", wheel, cwd=tmp_path)
    assert "convzoo/configs/resnet18.yaml" in listing
    assert "convzoo/configs/compare/bottleneck_vs_two_3x3.yaml" in listing
    assert "convzoo/profiles/nvidia-h100.json" in listing  # machine profiles (issue 23)
    assert "convzoo/py.typed" in listing  # PEP 561: type checkers read convzoo's hints

    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    sh(python, "-m", "pip", "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                   cwd=tmp_path).strip())  # fmt: skip
    deps = {Path(torch.__file__).parents[1], Path(sysconfig.get_path("purelib"))}
    (site / "borrowed_dependencies.pth").write_text("\n".join(map(str, sorted(deps))) + "\n")

    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    convzoo = env_dir / "bin" / "convzoo"
    where = sh(python, "-c", "import convzoo; print(convzoo.__file__)", cwd=work, env=clean)
    assert Path(where.strip()).is_relative_to(site)  # the installed copy, not the checkout

    out = sh(convzoo, "report", "resnet18", "--format", "json", cwd=work, env=clean)
    assert json.loads(out)["totals"]["macs"] == 1_814_073_344  # torchvision's ResNet-18

    (work / "some_model.py").write_text((ROOT / "tests" / "data" / "some_model.py").read_text())
    out = sh(convzoo, "report", "some_model.py:Net", "--input", "3x32x32", "--format", "json",
             cwd=work, env=clean)  # fmt: skip
    assert json.loads(out)["totals"]["macs"] == 30 * 30 * 8 * 27 + 8 * 10

    package = work / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text((ROOT / "tests" / "data" / "some_model.py").read_text())
    out = sh(convzoo, "report", "userpkg.models:make_net", "--kwargs", '{"num_classes": 2}',
             "--format", "json", cwd=work, env=clean)  # fmt: skip
    assert json.loads(out)["totals"]["macs"] == 30 * 30 * 8 * 27 + 8 * 2
    version = sh(convzoo, "--version", cwd=work, env=clean).strip()
    assert version == f"convzoo {convzoo_version}"


def test_the_package_is_typed() -> None:
    """PEP 561: ``py.typed`` is in the package and in its package data (so in the wheel)."""
    assert (ROOT / "convzoo" / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^"convzoo" = \[[^\]]*"py\.typed"', pyproject, re.M)
