"""Receptive fields against the support of the input gradient of single output units: every
zoo layer, fractional strides, random multi-branch models, misaligned residuals, capsules."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

import convzoo
from convzoo.analysis.receptive import (
    DEFORMABLE_NOTE,
)
from tests.receptive_helpers import trace

# -- empirical: the support of d(output unit)/d(input) ------------------------------------


def positive_(model: nn.Module) -> nn.Module:
    """float64, eval, every weight positive (no cancellation), offset predictors left at 0."""
    model.double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "offset_conv" not in name and "mask_conv" not in name:
                p.uniform_(0.5, 1.5)
    return model


def support(
    model: nn.Module, shape: tuple[int, ...], unit: tuple[int, int]
) -> list[tuple[int, int] | None]:
    """Per axis, the first and last input pixel with a non-zero gradient of ``unit``."""
    x = (torch.rand(1, *shape, dtype=torch.float64) + 0.5).requires_grad_()
    model(x)[0, :, unit[0], unit[1]].sum().backward()
    g = x.grad[0].abs().sum(0)
    seen = g > g.max() * 1e-9
    spans = []
    for hit in (seen.any(1), seen.any(0)):
        idx = hit.nonzero().flatten()
        spans.append((int(idx.min()), int(idx.max())) if len(idx) else None)
    return spans


def check_exact(model: nn.Module, shape: tuple[int, int, int], extra: int = 2) -> None:
    """The analyzer's per-unit field against the gradient support of the corners, a middle
    unit and ``extra`` random units of the output: equal, exactly (clipped to the input)."""
    report = convzoo.analyze(model, shape)
    summary_ = report.receptive_field
    assert summary_ is not None and not summary_.is_global, summary_
    field = summary_.field
    out = report.output_shape[-2:]
    positive_(model)
    rng = random.Random(out[0] * 31 + out[1])
    units_ = [(0, 0), (out[0] // 2, out[1] // 3), (out[0] - 1, out[1] - 1), (0, out[1] - 1)]
    units_ += [(rng.randrange(out[0]), rng.randrange(out[1])) for _ in range(extra)]
    for unit in units_:
        assert support(model, shape, unit) == field.unit(*unit), (unit, summary_)


ZOO_CASES = [
    ("conv", dict(kernel_size=3)),
    ("conv", dict(kernel_size=5, padding="same", stride=2)),
    ("conv", dict(kernel_size=(2, 4), padding="same", stride=(3, 2))),
    ("conv", dict(kernel_size=3, padding="full", dilation=2)),
    ("conv", dict(kernel_size=(3, 1), padding=(2, 1), stride=2, dilation=(1, 3))),
    ("conv", dict(kernel_size=4, padding="valid", stride=3, groups=2)),
    (
        "depthwise_separable",
        dict(kernel_size=3, stride=2, padding="same", norm="batch_norm", activation="relu"),
    ),
    ("factorized", dict(kernel_size=5, padding="same", stride=2)),
    ("conv_stack", dict(kernel_size=7, padding="full", stride=2)),
    ("dilated", dict(kernel_size=3, dilation=3, padding="same")),
    ("grouped", dict(kernel_size=3, groups=2, stride=2)),
    ("fft_conv", dict(kernel_size=5, padding="same", stride=2)),
    ("fft_conv", dict(kernel_size=(3, 4), padding=(1, 2), dilation=2)),
    ("locally_connected", dict(kernel_size=3, padding="same", stride=2, input_size=(17, 15))),
    ("tiled", dict(kernel_size=3, tile_size=2, padding="same", stride=2)),
    ("tiled", dict(kernel_size=(2, 3), tile_size=3, dilation=2)),
    ("deformable", dict(kernel_size=3, padding="same", stride=2)),
    ("deformable", dict(kernel_size=3, dilation=2, version=1)),
]


@pytest.mark.parametrize(("name", "kw"), ZOO_CASES)
def test_zoo_fields_match_gradients(name: str, kw: dict) -> None:
    model = convzoo.create(name, in_channels=2, out_channels=2, **kw)
    check_exact(model, (2, 17, 15))
    if name == "deformable":
        assert DEFORMABLE_NOTE in " ".join(convzoo.analyze(model, (2, 17, 15)).notes)


@pytest.mark.parametrize(
    ("name", "kw", "phases"),
    [
        ("transposed", dict(kernel_size=3, stride=2), 2),
        ("transposed", dict(kernel_size=4, stride=2, padding=1), 2),
        ("transposed", dict(kernel_size=5, stride=3, padding="same"), 3),
        ("transposed", dict(kernel_size=3, stride=2, dilation=2, output_padding=1), 2),
        ("upsample", dict(scale_factor=2), 2),
        ("upsample", dict(scale_factor=3, mode="bilinear"), 3),
    ],
)
def test_fractional_strides_match_gradients(name: str, kw: dict, phases: int) -> None:
    """Every unit over two periods matches its gradient support exactly, and the widest
    support of the interior units is the summary's ``size``."""
    if name == "transposed":
        model = convzoo.create(name, in_channels=2, out_channels=2, **kw)
    else:
        model = nn.Sequential(
            convzoo.create("conv", in_channels=2, out_channels=2, kernel_size=1),
            convzoo.create(name, **kw),
        )
    shape = (2, 9, 8)
    summary_ = convzoo.analyze(model, shape).receptive_field
    assert summary_ is not None
    field = summary_.field
    positive_(model)
    widest = [0, 0]
    for k in range(2 * phases):
        unit = (6 + k, 6 + k)
        got = support(model, shape, unit)
        assert got == field.unit(*unit), (unit, got, summary_)
        for a in (0, 1):
            if got[a] is not None:
                widest[a] = max(widest[a], got[a][1] - got[a][0] + 1)
    assert tuple(widest) == summary_.size and summary_.period == (phases, phases)


def conv_spec(
    rng: random.Random, padding: str | None = None, stride: int = 1, channels: int = 0
) -> dict:
    spec = {
        "type": rng.choice(["conv", "conv", "dilated", "depthwise_separable", "factorized"]),
        "out_channels": channels or rng.choice([2, 3]),
        "kernel_size": rng.choice([1, 2, 3, 5]) if padding != "full" else 3,
        "padding": padding or rng.choice(["valid", "same", "full", 1]),
        "stride": stride,
    }
    if spec["type"] == "dilated":
        spec["kernel_size"], spec["padding"] = 3, padding or "same"
    return spec


def random_config(seed: int) -> dict:
    """A chain of convs, avg pools, residual sums and parallel concats or sums."""
    rng = random.Random(seed)
    layers: list[dict] = []
    for _ in range(4):
        kind = rng.choice(["conv", "pool", "residual", "parallel"])
        stride = rng.choice([1, 2])
        if kind == "conv":
            layers.append(conv_spec(rng, stride=stride))
        elif kind == "pool":
            pad = rng.choice(["valid", "same"])
            layers.append(dict(type="avg_pool", kernel_size=rng.choice([2, 3]), padding=pad))
        elif kind == "residual":
            body = [conv_spec(rng, "same", stride), {"type": "activation"}, conv_spec(rng, "same")]
            layers.append({"residual": body, "activation": "relu"})
        else:
            c = rng.choice([2, 3])
            branches = [
                [conv_spec(rng, "same", stride, c)]
                + [conv_spec(rng, "same", 1, c)] * rng.randint(0, 1)
                for _ in range(rng.randint(2, 3))
            ]
            layers.append({"parallel": branches, "merge": rng.choice(["concat", "sum"])})
    return {"input": [2, 64, 60], "layers": layers}


@pytest.mark.parametrize("seed", range(8))
def test_random_multi_branch_models_match_gradients(seed: int) -> None:
    model = convzoo.build(random_config(seed))
    check_exact(model, (2, 64, 60))


def test_misaligned_residual_is_noted_and_merged() -> None:
    """3x3 'same' at stride 2 on an even size pads (0, 1): its units centre one pixel after
    those of the 1x1 stride-2 projection shortcut. The union is checked like the rest."""
    spec = {"type": "conv", "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": "same"}
    model = convzoo.build({"input": [2, 16, 16], "layers": [{"residual": [spec]}]})
    notes = convzoo.analyze(model, (2, 16, 16)).notes
    assert any("misaligned" in n for n in notes), notes
    check_exact(model, (2, 16, 16))


def test_capsule_layout_matches_gradients() -> None:
    """Capsule ``n`` of primary capsules sits at (y, x) read off the field's layout."""
    caps = convzoo.create(
        "primary_capsules", in_channels=2, num_types=2, capsule_dim=3, kernel_size=3, padding=1
    )
    positive_(caps)
    x = torch.rand(1, 2, 9, 8, dtype=torch.float64) + 0.5
    with torch.no_grad():
        field, _ = trace(caps, x)
    ph, pw = field.layout
    for n in (0, 23, 2 * 5 * 4 - 1):
        y, w = (n // ph.inner) % ph.extent, (n // pw.inner) % pw.extent
        x.grad = None
        caps(x.requires_grad_())[0, n].sum().backward()
        seen = x.grad[0].abs().sum(0) > 0
        rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
        for axis, idx, pos in ((field.axes[0], rows, y), (field.axes[1], cols, w)):
            assert (int(idx.min()), int(idx.max())) == axis.unit(pos), (n, pos)
