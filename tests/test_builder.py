"""Building models from configs: shape inference, names, branches, repeats."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import convzoo
from convzoo.blocks.branches import Parallel, Residual

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
