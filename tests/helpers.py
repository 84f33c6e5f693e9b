"""Shared test helpers: dtypes and tolerances."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DTYPES = [torch.float32, torch.float64]


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
