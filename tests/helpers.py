"""Shared test helpers: dtypes and tolerances, and the ``convzoo`` command run as a user runs it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

DTYPES = [torch.float32, torch.float64]
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("convzoo")
"""The installed console script (``pip install -e .`` puts it next to the interpreter)."""


CACHE = Path(tempfile.gettempdir()) / f"convzoo-tests-cache-{os.getuid()}"
"""The cache directory of ``convzoo`` subprocesses: one no test writes a machine profile to,
so ``--latency`` without ``--machine`` is refused alike on every machine."""


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``convzoo`` subprocess: this checkout first on the path, a
    terminal 100 columns wide (``list`` wraps to it), the tests' cache directory
    (:data:`CACHE`), ``extra`` on top."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    cache = {"XDG_CACHE_HOME": str(CACHE)}  # no measured machine profile (issue 23)
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "100", **cache, **extra}


def cli(
    *argv: str | Path, cwd: Path = ROOT, timeout: float = 600, script: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -m convzoo ARGV`` (or, with ``script``, the installed ``convzoo``) in a
    subprocess, as a user runs it; stdout and stderr decoded exactly (no newline
    translation, undecodable bytes kept as surrogates)."""
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "convzoo"]
    done = subprocess.run(
        [*command, *map(str, argv)], capture_output=True, timeout=timeout, cwd=cwd, env=cli_env()
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, decode(done.stdout), decode(done.stderr)
    )


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def tol(dtype: torch.dtype) -> dict[str, float]:
    """assert_close tolerances for a dtype."""
    if dtype == torch.float32:
        return {"rtol": 1e-4, "atol": 1e-5}
    return {"rtol": 1e-10, "atol": 1e-10}


def reference_padding(mode, n: int, k_eff: int, s: int) -> tuple[int, int]:
    """Padding written from the definitions, independently of convzoo.layers.geometry."""
    if mode == "valid":
        return (0, 0)
    if mode == "full":
        return (k_eff - 1, k_eff - 1)
    if mode == "same":  # TensorFlow: out = ceil(n / s), odd pixel at the end
        total = max((math.ceil(n / s) - 1) * s + k_eff - n, 0)
        return (total // 2, total - total // 2)
    return (mode, mode)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference_conv(x, weight, bias, stride, mode, dilation, groups=1):
    """F.conv2d after padding by :func:`reference_padding` per axis (ints or (h, w) pairs)."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    kh, kw = weight.shape[-2:]
    mh, mw = (mode, mode) if isinstance(mode, (str, int)) else mode
    pt = reference_padding(mh, x.shape[-2], dh * (kh - 1) + 1, sh)
    pl = reference_padding(mw, x.shape[-1], dw * (kw - 1) + 1, sw)
    x = F.pad(x, (pl[0], pl[1], pt[0], pt[1]))
    return F.conv2d(x, weight, bias, (sh, sw), 0, (dh, dw), groups)
