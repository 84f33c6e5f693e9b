"""Every documented limit holds for the Python API as on the command line (issue 19):
``convzoo.create``, ``convzoo.analyze`` and ``convzoo.build`` refuse with the same one-line
``ConvZooError``, and user errors reach the CLI as exit 2, never as internal errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import convzoo
from convzoo import limits
from convzoo.config import ConfigError
from convzoo.errors import ConvZooError
from convzoo.registry import Registry
from tests.test_fuzz_configs import cli_error

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "configs" / "seed_64x64_5x5.yaml")
BIG = "9" * 5000  # past Python's 4,300-digit limit of int <-> str conversion
FACTORY = """\
from torch import nn


def net():
    model = nn.Conv2d(3, 4, 3)
    model.input_size = (3, 2**40, 2**40)
    return model
"""
CONFIG = {"input": [3, 8, 8], "layers": [{"type": "conv", "out_channels": 2, "kernel_size": 3}]}
BIG_YAML = f"input: [3, 8, 8]\nlayers:\n  - {{type: conv, out_channels: {BIG}, kernel_size: 3}}\n"


def refused(match: str, call: Any, *args: Any, **kwargs: Any) -> str:
    """``call(*args, **kwargs)`` raises a one-line ConvZooError matching ``match``, fast."""
    start = time.perf_counter()
    with pytest.raises(ConvZooError, match=match) as caught:
        call(*args, **kwargs)
    assert time.perf_counter() - start < 2.0  # refused before any work, nothing allocated
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300, message
    return message


# -- analyze ------------------------------------------------------------------------------

SIZE_OVER = r"has a size over the limit of 1,048,576 \(MAX_SIZE\)"
ELEMENTS_OVER = r"[0-9,]+ elements \(batch included\), over the limit of 1,099,511,627,776"
BATCH = "batch_size must be an int from 1 to 1,048,576"
DTYPE = r"dtype must be a torch.dtype, floating or complex.*got torch.int8"


@pytest.mark.parametrize(
    ("input_size", "options", "match"),
    [
        ((3, 2**30, 2**30), {}, SIZE_OVER),
        (((3, 8, 8), (1, 2**21, 1)), {}, SIZE_OVER),  # the second of two inputs
        ([[(3, 8, 8), (3, 2**30, 2**30)]], {}, SIZE_OVER),  # an image of a list input
        ((3, 8, 8), {"batch_size": 2**62}, BATCH),
        ((3, 8, 8), {"batch_size": 2**40}, BATCH),
        ((3, 1024, 1024), {"batch_size": 2**20}, "of 1048576x3x1024x1024 has " + ELEMENTS_OVER),
        ((3, 8, 8), {"dtype": torch.int8}, DTYPE),
        ((3, 8, 8), {"dtype": torch.bool}, "floating or complex"),
    ],
)  # fmt: skip
def test_analyze_refuses_what_the_cli_refuses(input_size: Any, options: dict, match: str) -> None:
    refused(match, convzoo.analyze, nn.Conv2d(3, 4, 3), input_size, **options)


def test_the_element_limit_is_exact_and_other_dtypes_run() -> None:
    """The limit itself passes (2**40 elements, batch included: meta tensors cost nothing)."""
    net = nn.Conv2d(1, 1, 1)
    report = convzoo.analyze(net, (1, 2**10, 2**10), batch_size=2**20, receptive_fields=False)
    assert report.input_shape == [[2**20, 1, 2**10, 2**10]]
    refused(ELEMENTS_OVER, convzoo.analyze, net, (1, 2**10, 2**10 + 1), batch_size=2**20)
    for dtype, size in ((torch.float16, 2), (torch.complex64, 8)):
        totals = convzoo.analyze(nn.Conv2d(3, 4, 3), (3, 8, 8), dtype=dtype).totals
        assert totals.param_bytes == 112 * size and totals.macs > 0
    tokens = torch.zeros(1, 5, dtype=torch.long)  # integer inputs: example tensors, kept
    report = convzoo.analyze(nn.Embedding(10, 4), (tokens,), dtype=torch.float16)
    assert report.totals.param_bytes == 10 * 4 * 2


# -- create -------------------------------------------------------------------------------

INT_OVER = r"expected an int of at most 1,048,576 in magnitude \(MAX_SIZE\)"
CONV = {"in_channels": 4, "out_channels": 4, "kernel_size": 3}


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("conv",), {"in_channels": 2**20, "out_channels": 2**20, "kernel_size": 3},
         r"conv has 9,895,605,698,560 parameters, over the limit of 2,000,000,000 \(MAX_PARAMS\)"),
        (("conv",), {**CONV, "stride": 2**60}, "conv: stride: " + INT_OVER),
        (("conv",), {**CONV, "padding": (1, 2**60)}, "conv: padding: " + INT_OVER),
        (("conv",), {**CONV, "dilation": 2**60}, "conv: dilation: " + INT_OVER),
        (("conv",), {**CONV, "groups": 2**21}, "conv: groups: " + INT_OVER),
        (("conv",), {**CONV, "stride": -(2**60)}, "conv: stride: " + INT_OVER),
        ((123,), {}, r"a layer name is a str such as 'conv', got 123 \(int\)"),
        ((["conv"],), {}, "a layer name is a str"),
    ],
)  # fmt: skip
def test_create_refuses_what_a_config_refuses(args: tuple, kwargs: dict, match: str) -> None:
    refused(match, convzoo.create, *args, **kwargs)


def test_create_counts_parameters_on_meta_first(monkeypatch: pytest.MonkeyPatch) -> None:
    params = 4 * 3 * 9 + 4  # conv 3 -> 4, 3x3, with bias
    monkeypatch.setattr(limits, "MAX_PARAMS", params)
    layer = convzoo.create("conv", in_channels=3, out_channels=4, kernel_size=3)
    assert sum(p.numel() for p in layer.parameters()) == params
    assert not any(p.is_meta for p in layer.parameters())
    with torch.device("meta"):  # inside a meta context: built once, on meta
        assert convzoo.create("conv", in_channels=3, out_channels=4, kernel_size=3).weight.is_meta
    monkeypatch.setattr(limits, "MAX_PARAMS", params - 1)
    refused(f"conv has {params} parameters", convzoo.create, "conv", **{**CONV, "in_channels": 3})
    with torch.device("meta"), pytest.raises(ConvZooError, match="over the limit of 111"):
        convzoo.create("conv", in_channels=3, out_channels=4, kernel_size=3)


def test_a_constructor_that_cannot_run_on_meta_is_counted_once_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = Registry("layer")

    @registry.register("odd")
    class Odd(nn.Module):  # reads a tensor's value while it is built: impossible on meta
        def __init__(self, width: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(width))
            self.scale = float(self.weight.sum().item())

    assert registry.create("odd", width=3).scale == 3.0
    monkeypatch.setattr(limits, "MAX_PARAMS", 2)
    with pytest.raises(ConvZooError, match="odd has 3 parameters"):
        registry.create("odd", width=3)


def test_the_meta_pass_leaves_the_random_stream_as_the_constructor_does() -> None:
    torch.manual_seed(1)
    made = convzoo.create("depthwise_separable", in_channels=4, out_channels=6, kernel_size=3)
    after_create = torch.rand(1)
    torch.manual_seed(1)
    direct = convzoo.LAYERS.get("depthwise_separable").cls(4, 6, 3)
    assert torch.equal(torch.rand(1), after_create)
    for a, b in zip(made.parameters(), direct.parameters(), strict=True):
        assert torch.equal(a, b)


# -- build --------------------------------------------------------------------------------


def test_build_refuses_inputs_over_the_limits_and_unreadable_yaml_values(tmp_path: Path) -> None:
    refused(
        r"input: input size \(3, 2097152, 8\) has a size over", convzoo.build, CONFIG, (3, 2**21, 8)
    )
    refused(r"input: an input of 1x4x1048576x1048576 has", convzoo.build, CONFIG, (4, 2**20, 2**20))
    config = tmp_path / "big.yaml"
    config.write_text(BIG_YAML)
    message = refused(r"line 3, column 32: an int of 5,000 digits, over", convzoo.build, config)
    assert message.startswith(str(config))
    config.write_text("input: 2020-13-45\nlayers: [{type: identity}]\n")
    with pytest.raises(ConfigError, match=r"line 1, column 8: cannot read '2020-13-45' as .*time"):
        convzoo.build(config)


# -- the command line ---------------------------------------------------------------------


def cli_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    """``(argv, part of the one stderr line)`` for the user errors that were internal ones."""
    (tmp_path / "factory.py").write_text(FACTORY)
    (tmp_path / "big.yaml").write_text(BIG_YAML)
    nested = '{"a": ' + "[" * 65000 + "]" * 65000 + "}"
    factory = str(tmp_path / "factory.py") + ":net"
    return [
        (["build", str(tmp_path / "big.yaml")], "an int of 5,000 digits, over the limit"),
        (["report", factory, "--kwargs", f'{{"c": {BIG}}}'], "--kwargs: expected an int of"),
        (["report", factory, "--kwargs", nested], "--kwargs is nested too deeply"),
        (["report", factory], "input size (3, 1099511627776, 1099511627776) has a size over"),
        (["report", SEED, "--batch", "1048576", "--input", "3x1024x1024"], "(batch included)"),
    ]  # fmt: skip


def test_cli_user_errors_are_exit_2_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, message in cli_cases(tmp_path):
        assert message in cli_error(capsys, argv)


def run_cli(argv: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "convzoo", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def check_exit_2(process: subprocess.Popen[str], message: str) -> None:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2, (process.args, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("convzoo: error: "), err
    assert message in err, err


@pytest.mark.slow  # a subprocess: the fast tier keeps one per command (test_contract)
def test_a_file_targets_default_input_over_the_limits_is_exit_2(tmp_path: Path) -> None:
    """As a user runs it: ``python -m convzoo report factory.py:net``, one process."""
    argv, message = cli_cases(tmp_path)[3]
    check_exit_2(run_cli(argv), message)


@pytest.mark.slow
def test_cli_user_errors_are_exit_2_in_a_subprocess(tmp_path: Path) -> None:
    cases = cli_cases(tmp_path)
    processes = [run_cli(argv) for argv, _ in cases]  # concurrently: each imports torch
    for process, (_, message) in zip(processes, cases, strict=True):
        check_exit_2(process, message)
