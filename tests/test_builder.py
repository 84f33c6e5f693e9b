"""Building models from configs: shape inference, names, branches, repeats."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.analysis.modes import ShapeRules
from convzoo.blocks.branches import Parallel, Residual
from convzoo.targets import packaged_configs

CONV3 = {"type": "conv", "out_channels": 8, "kernel_size": 3, "padding": "same"}


def test_infers_in_channels_and_features_and_names_modules() -> None:
    model = convzoo.build(
        {
            "name": "tiny",
            "input": [3, 12, 12],
            "layers": [
                {"type": "conv", "out_channels": 4, "kernel_size": 5, "name": "stem"},
                {"type": "activation", "fn": "relu"},
                {"type": "max_pool", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "linear", "out_features": 10, "name": "head"},
            ],
        }
    )
    assert [n for n, _ in model.named_children()] == [
        "stem",
        "activation1",
        "max_pool1",
        "flatten1",
        "head",
    ]
    assert model.stem.in_channels == 3
    assert model.head.in_features == 4 * 4 * 4
    assert model.config_name == "tiny" and model.input_size == (3, 12, 12)
    assert model(torch.randn(2, 3, 12, 12)).shape == (2, 10)


def test_input_size_argument_overrides_config() -> None:
    model = convzoo.build(
        {
            "input": [3, 12, 12],
            "layers": [CONV3, {"type": "flatten"}, {"type": "linear", "out_features": 2}],
        },
        input_size=(3, 6, 6),
    )
    assert model.linear1.in_features == 8 * 36


def test_repeat_and_named_blocks() -> None:
    model = convzoo.build(
        {
            "input": [3, 8, 8],
            "blocks": {"pair": [CONV3, {"type": "activation"}]},
            "layers": [{"block": "pair", "name": "stage", "repeat": 3}, {**CONV3, "repeat": 2}],
        }
    )
    names = [n for n, _ in model.named_modules() if n]
    assert names[:3] == ["stage_1", "stage_1.conv1", "stage_1.activation1"]
    assert "stage_3.conv1" in names and "conv1" in names and "conv2" in names
    assert model.stage_2.conv1.in_channels == 8


def test_residual_matches_manual_computation() -> None:
    model = convzoo.build(
        {
            "input": [4, 9, 9],
            "layers": [{"residual": [{**CONV3, "stride": 2}], "activation": "relu", "name": "res"}],
        }
    )
    res = model.res
    assert isinstance(res, Residual) and res.shortcut is not None
    x = torch.randn(2, 4, 9, 9)
    conv, proj = res.body.conv1, res.shortcut
    body = F.conv2d(F.pad(x, (1, 1, 1, 1)), conv.weight, conv.bias, 2)
    skip = proj.norm(F.conv2d(x, proj.conv.weight, None, 2))
    torch.testing.assert_close(model(x), F.relu(body + skip))


def test_identity_residual_and_parallel_concat() -> None:
    model = convzoo.build(
        {
            "input": [8, 6, 6],
            "layers": [
                {"residual": [CONV3]},
                {"parallel": [[{"type": "pointwise", "out_channels": 3}], [CONV3]], "name": "mix"},
            ],
        }
    )
    assert model.residual1.shortcut is None
    assert isinstance(model.mix, Parallel)
    x = torch.randn(1, 8, 6, 6)
    h = model.residual1.body(x) + x
    expected = torch.cat([model.mix.branch1(h), model.mix.branch2(h)], 1)
    torch.testing.assert_close(model(x), expected)
    assert expected.shape == (1, 11, 6, 6)


def test_config_file_roundtrip(tmp_path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(
        "input: [3, 64, 64]\nlayers:\n  - {type: conv, out_channels: 2, kernel_size: 5}\n"
    )
    model = convzoo.build(path)
    assert model.config_name == "seed"
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 60, 60)


def test_meta_build_allocates_nothing_and_counts_the_same() -> None:
    config = convzoo.load_config("configs/resnet18.yaml")
    meta = convzoo.build(config, meta=True)
    real = convzoo.build(config)
    assert all(p.is_meta for p in meta.parameters())
    assert not any(p.is_meta for p in real.parameters())
    assert [(n, p.shape) for n, p in meta.named_parameters()] == [
        (n, p.shape) for n, p in real.named_parameters()
    ]
    assert str(meta) == str(real)


def _outputs(model: nn.Module, x: torch.Tensor, fast: bool) -> list[tuple]:
    """``(module name, shape, strides, dtype)`` of every module's output in one meta
    forward, with or without the builder's :class:`ShapeRules`."""
    seen: list[tuple] = []
    hooks = [
        module.register_forward_hook(
            lambda m, a, out, name=name: seen.append((name, out.shape, out.stride(), out.dtype))
        )
        for name, module in model.named_modules()
    ]
    try:
        with ShapeRules() if fast else contextlib.nullcontext():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


FAST_CONFIGS = ["every_conv", "resnet18"]  # every layer and block; the start-up's config


@pytest.mark.parametrize(
    "name",
    [
        n if n in FAST_CONFIGS else pytest.param(n, marks=pytest.mark.slow)
        for n in packaged_configs()
    ],
)
def test_shape_rules_give_what_a_plain_meta_forward_gives(name: str) -> None:
    """Issue 25: the builder infers shapes with the analyzer's shape rules
    (:class:`ShapeRules`, no Python meta kernels); every module's output in a packaged
    config is the one a plain meta forward gives (shape, strides and dtype)."""
    model = convzoo.build(name, meta=True).eval()
    x = torch.empty((1, *model.input_size), device="meta")
    assert _outputs(model, x, fast=True) == _outputs(model, x, fast=False)
