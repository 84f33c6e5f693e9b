"""The blocks and modern variants in 1-D and 3-D through ``convzoo.analyze``: MACs against
FlopCounterMode on a real forward and against hand formulas, parameters, shapes forward and
backward, and every reported per-unit receptive field against the gradient support."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo

SIZES = {1: (12,), 3: (4, 6, 4)}
DIMS = [1, 3]
SLOW = pytest.mark.slow
CASES = [
    ("residual", {"out_channels": 6, "stride": 2}),
    ("bottleneck", {"out_channels": 8, "groups": 2}),
    ("inverted_residual", {"out_channels": 4, "expand_ratio": 2}),
    ("convnext_block", {"kernel_size": 3}),
    ("repvgg_block", {"out_channels": 4}),
    ("sub_pixel", {"out_channels": 2}),
    ("ghost", {"out_channels": 5}),
    ("mix_conv", {"kernel_sizes": (3, 5)}),
    ("octave_conv", {"out_channels": 6}),
    ("involution", {"kernel_size": 3, "stride": 2, "groups": 2}),
    ("selective_kernel", {"out_channels": 6}),
    ("upsample", {"mode": "linear"}),
    ("primary_capsules", {"num_types": 2, "capsule_dim": 3, "kernel_size": 3, "stride": 1}),
]


def cases(fast: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> list:
    """``CASES`` as params, all but those named in ``fast`` marked slow (the fast tier runs
    a few; ``-m slow`` every one)."""
    return [
        pytest.param(name, kwargs, id=name, marks=() if name in fast else SLOW)
        for name, kwargs in CASES
        if name not in skip
    ]


def build(name: str, dims: int, kwargs: dict) -> nn.Module:
    torch.manual_seed(0)
    channels = {} if name == "upsample" else {"in_channels": 4}
    return convzoo.create(name, dims=dims, **channels, **kwargs)


@pytest.mark.parametrize("dims", [pytest.param(1, marks=SLOW), 3])
@pytest.mark.parametrize(("name", "kwargs"), cases(fast=tuple(c[0] for c in CASES)))
def test_counts_equal_flop_counter_and_gradients_flow(name, kwargs, dims) -> None:
    layer = build(name, dims, kwargs).eval()
    shape = (4, *SIZES[dims])
    report = convzoo.analyze(layer, shape)
    x = torch.randn(1, *shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = layer(x)
    assert report.complete, report.uncounted_ops
    assert report.totals.macs == counter.get_total_flops() // 2
    assert report.totals.params == sum(p.numel() for p in layer.parameters())
    assert report.output_shape == list(y.shape)
    layer.train()
    x = torch.randn(2, *shape, requires_grad=True)
    layer(x).square().sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.isfinite().all() for p in layer.parameters())


def macs(name: str, dims: int, **kwargs) -> int:
    return convzoo.analyze(build(name, dims, kwargs), (4, *SIZES[dims])).totals.macs


@pytest.mark.parametrize("dims", DIMS)
def test_macs_by_hand_formulas(dims) -> None:
    p, d = math.prod(SIZES[dims]), dims  # positions, spatial axes
    half = math.prod(math.ceil(n / 2) for n in SIZES[dims])
    # sub-pixel: a conv to C_out·r^d channels at every input position
    assert macs("sub_pixel", d, out_channels=2, scale=2) == p * 2 * 2**d * 4 * 3**d
    # octave, alpha 1/2 of 4 -> 6: hh at full size, lh, ll, hl at 1/2^d of the positions
    k = 3**d
    octave = p * k * 3 * 2 + p // 2**d * k * (3 * 2 + 3 * 2 + 3 * 2)
    assert macs("octave_conv", d, out_channels=6) == octave
    # involution, k 3, stride 2, 2 groups, 4 -> 1 hidden: reduce and span at the pooled
    # positions, then K·C per output position
    assert macs("involution", d, kernel_size=3, stride=2, groups=2) == half * (
        4 * 1 + 1 * k * 2 + k * 4
    )
    # ConvNeXt: depthwise k^d, then the C -> 4C -> C MLP at every position
    assert macs("convnext_block", d, kernel_size=3) == p * (4 * k + 2 * 4 * 16)
    # basic block 4 -> 6, stride 2: two 3^d convs and the 1x1 projection at the output
    assert macs("residual", d, out_channels=6, stride=2) == half * (k * 4 * 6 + k * 36 + 24)


def support(layer: nn.Module, x: torch.Tensor, select: tuple) -> list[tuple[int, int] | None]:
    """Per spatial axis, the first and last input position with a non-zero gradient."""
    x = x.clone().requires_grad_()
    layer(x)[select].sum().backward()
    seen = x.grad[0].abs().sum(0)
    seen = seen > seen.max() * 1e-9
    spans = []
    for axis in range(seen.dim()):
        hit = seen.any(tuple(a for a in range(seen.dim()) if a != axis)) if seen.dim() > 1 else seen
        idx = hit.nonzero().flatten()
        spans.append((int(idx.min()), int(idx.max())) if len(idx) else None)
    return spans


def positive(layer: nn.Module) -> nn.Module:
    """float64, eval, every weight positive (no cancellation hides a dependence) and small
    (no relu6 saturates)."""
    layer.double().eval()
    with torch.no_grad():
        for param in layer.parameters():
            param.uniform_(0.05, 0.15)
    return layer


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize(
    ("name", "kwargs"),
    cases(("sub_pixel", "octave_conv", "involution"), ("selective_kernel", "primary_capsules")),
)  # selective kernel: global; capsules: below
def test_fields_equal_gradient_support(name, kwargs, dims) -> None:
    layer = build(name, dims, kwargs)
    shape = (4, *SIZES[dims])
    field = convzoo.analyze(layer, shape).receptive_field
    assert field is not None and not field.is_global and len(field.size) == dims
    positive(layer)
    x = torch.rand(1, *shape, dtype=torch.float64) + 0.5
    out = layer(x).shape[2:]
    rng = random.Random(dims)
    units = [(0,) * dims, tuple(n - 1 for n in out), tuple(rng.randrange(n) for n in out)]
    for unit in units:
        assert support(layer, x, (0, slice(None), *unit)) == field.unit(*unit), (unit, field)


@pytest.mark.parametrize("dims", DIMS)
def test_primary_capsule_fields_follow_their_row_major_positions(dims) -> None:
    name, kwargs = CASES[-1]
    layer = build(name, dims, kwargs)
    shape = (4, *SIZES[dims])
    field = convzoo.analyze(layer, shape).receptive_field.field
    positive(layer)
    x = torch.rand(1, *shape, dtype=torch.float64) + 0.5
    out = tuple(n - 2 for n in SIZES[dims])  # kernel 3, valid
    for n in (0, 7, 2 * math.prod(out) - 1):
        position = np.unravel_index(n % math.prod(out), out)
        assert support(layer, x, (0, n)) == field.unit(*map(int, position))
