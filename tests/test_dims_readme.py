"""The lists of which layers take ``dims`` (docs/zoo.md) against the registry, every listed layer
built from a 1-D and a 3-D config, and 3-D configs of residual blocks, through the library
and the installed command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.registry import LAYERS

ROOT = Path(__file__).resolve().parents[1]
ZOO_PAGE = (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8")
LABELS = {"`dims=1|2|3`": "any", "`dims=2` only": "2-D", "no `dims`": "none"}
SIZES = {1: (8,), 3: (6, 6, 6)}


def documented_lists() -> dict[str, list[str]]:
    """``{"any" | "2-D" | "none": names}`` from the bullets ``- LABEL: NAMES (remark)``."""
    bullets = re.findall(r"^- (.*?)(?=\n- |\n\n)", ZOO_PAGE, re.M | re.S)
    found: dict[str, list[str]] = {}
    for bullet in bullets:
        label, _, rest = " ".join(bullet.split()).partition(": ")
        key = label.split(" (")[0]
        if key in LABELS:
            assert LABELS[key] not in found, f"two bullets for {key}"
            found[LABELS[key]] = re.findall(r"`([^`]+)`", rest.split(" (")[0])
    return found


LISTS = documented_lists()


def every_conv_specs() -> dict[str, dict]:
    """The first ``{type: NAME, ...}`` spec of each layer in the every_conv config."""
    specs: dict[str, dict] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "type" in node:
                specs.setdefault(node["type"], {k: v for k, v in node.items() if k != "name"})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((ROOT / "configs" / "every_conv.yaml").read_text()))
    return specs


def test_the_lists_name_every_registered_layer_once() -> None:
    assert set(LISTS) == {"any", "2-D", "none"} and all(LISTS.values())
    named = [name for names in LISTS.values() for name in names]
    assert len(named) == len(set(named)), "a layer is in two lists"
    assert sorted(named) == sorted(LAYERS.names())  # each exists; none is left out
    for kind, names in LISTS.items():
        for name in names:
            assert ("dims" in LAYERS.get(name).keywords()) is (kind != "none"), name


@pytest.mark.parametrize("dims", [1, 3])
def test_every_listed_layer_builds_in_1d_and_3d_or_says_why_not(dims) -> None:
    specs = every_conv_specs()
    size = SIZES[dims]
    for name in LISTS["any"]:
        config = {"input": [16, *size], "layers": [specs[name]]}
        layer = convzoo.build(config)[0].eval().to("meta")
        assert layer.dims == dims, name
        y = layer(torch.empty(1, 16, *size, device="meta"))
        capsules = name == "primary_capsules"  # Tensor[B, N, D]
        assert y.dim() == (3 if capsules else 2 + dims), name
    for name in LISTS["2-D"]:
        config = {"input": [16, *size], "layers": [specs[name]]}
        with pytest.raises(ValueError, match=r"^[^\n]*dims must be 2: [^\n]*2-D only; got"):
            convzoo.build(config)


CONFIG_3D = {
    "name": "volume_resnet",
    "input": [2, 8, 8, 8],
    "layers": [
        {"type": "conv_norm_act", "out_channels": 8},
        {"type": "residual", "out_channels": 8},
        {"type": "bottleneck", "out_channels": 16, "stride": 2},
        {"residual": [{"type": "conv", "out_channels": 16, "kernel_size": 3, "padding": "same"}]},
        {"type": "global_avg_pool"},
        {"type": "flatten"},
        {"type": "linear", "out_features": 3},
    ],
}


def test_a_3d_config_of_residual_blocks_builds_and_is_counted_exactly() -> None:
    model = convzoo.build(CONFIG_3D).eval()
    assert (model[1].dims, model[2].dims) == (3, 3)
    x = torch.randn(1, 2, 8, 8, 8)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = model(x)
    report = convzoo.analyze(CONFIG_3D)
    assert report.complete and y.shape == (1, 3) and report.output_shape == [1, 3]
    assert report.totals.macs == counter.get_total_flops() // 2
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    stride = report.layer("bottleneck1").receptive_field.stride  # it halves every axis
    assert stride == (2, 2, 2)


@pytest.mark.slow  # a subprocess: the fast tier keeps one per command (test_contract)
def test_the_command_reports_a_3d_residual_config(tmp_path: Path) -> None:
    path = tmp_path / "volume.yaml"
    path.write_text(yaml.safe_dump(CONFIG_3D))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "convzoo", "report", str(path), "--format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    report = json.loads(done.stdout)
    assert report["input_shape"] == [[1, 2, 8, 8, 8]] and report["output_shape"] == [1, 3]
    assert report["totals"]["macs"] == convzoo.analyze(CONFIG_3D).totals.macs
