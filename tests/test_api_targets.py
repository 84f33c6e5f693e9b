"""Issue 20: the Python API takes every CLI target string, and an input is checked against
the config it is for (the sizes after the channels may change, the channels may not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import convzoo
from convzoo.errors import ConvZooError

ROOT = Path(__file__).resolve().parents[1]
RESNET18 = sum(p.numel() for p in torchvision.models.resnet18().parameters())  # the reference


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """The installed command as a user runs it: ``python -m convzoo ARGV`` in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "convzoo", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )


def net_params(classes: int = 10) -> int:
    """tests/data/some_model.py's Net by hand: the 3x3 conv (3 -> 8) and the linear layer."""
    return 8 * 27 + 8 + 8 * classes + classes


def net_macs(h: int, w: int, classes: int = 10) -> int:
    return (h - 2) * (w - 2) * 8 * 27 + 8 * classes


@pytest.mark.parametrize(
    ("text", "size", "name", "shape", "params"),
    [
        ("resnet18", None, "resnet18", (3, 224, 224), RESNET18),
        ("configs/resnet18.yaml", (3, 64, 64), "resnet18", (3, 64, 64), RESNET18),
        ("torchvision:resnet18", None, "torchvision:resnet18", (3, 224, 224), RESNET18),
        ("tests/data/some_model.py:Net", (3, 32, 32), None, (3, 32, 32), net_params()),
        ("tests.data.some_model:make_net", None, None, (3, 32, 32), net_params()),
    ],
)
def test_analyze_takes_every_target_form(
    text: str,
    size: tuple[int, ...] | None,
    name: str | None,
    shape: tuple[int, ...],
    params: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    report = convzoo.analyze(text, size)
    assert report.target == (name or text)
    assert report.input_shape == [[1, *shape]]
    assert report.totals.params == params
    if "some_model" in text:
        assert report.totals.macs == net_macs(*shape[1:])


def test_analyze_takes_a_timm_target() -> None:
    pytest.importorskip("timm")
    report = convzoo.analyze("timm:resnet18", receptive_fields=False)
    assert report.totals.params == RESNET18 and report.input_shape == [[1, 3, 224, 224]]


@pytest.mark.slow  # a subprocess: the fast tier keeps one per command (test_contract)
def test_analyze_of_a_target_is_the_report_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """One resolution for both: the JSON of ``convzoo report TARGET`` is the API's report."""
    monkeypatch.chdir(ROOT)
    done = cli("report", "tests.data.some_model:make_net", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(
        convzoo.analyze("tests.data.some_model:make_net").to_json()
    )


def test_analyze_of_a_target_takes_example_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target without a default input, given example tensors instead of a size."""
    monkeypatch.chdir(ROOT)
    report = convzoo.analyze("tests/data/some_model.py:net", torch.zeros(2, 3, 16, 16))
    assert report.totals.macs == 2 * net_macs(16, 16, classes=4)
    with pytest.raises(ConvZooError, match=r"^tests/data/some_model.py:Net has no default input"):
        convzoo.analyze("tests/data/some_model.py:Net")


def test_build_takes_config_names_and_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for text in ("resnet18", "configs/resnet18.yaml"):
        model = convzoo.build(text, meta=True)
        assert model.config_name == "resnet18" and model.input_size == (3, 224, 224)
        assert sum(p.numel() for p in model.parameters()) == RESNET18


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("torchvision:resnet18", "'torchvision:resnet18' is a torchvision model, not a config"),
        ("tests/data/some_model.py:Net", "is a class or factory in a file, not a config"),
        ("tests.data.some_model:make_net", "is a class or factory in a module, not a config"),
        ("resnet81", "no config 'resnet81'; did you mean resnet18, resnet50?"),
        ("nowhere/x.yaml", "no config file 'nowhere/x.yaml'"),
    ],
)
def test_build_refuses_what_is_no_config(
    text: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConvZooError) as caught:
        convzoo.build(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


CHANNELS = (
    "resnet18 takes 3 input channels (its config's input: [3, 224, 224]); input {} has {} "
    "(only the sizes after the channels may change)"
)


@pytest.mark.parametrize("size", [(224, 224, 3), (1, 224, 224)])
def test_an_input_with_other_channels_is_refused(size: tuple[int, ...]) -> None:
    expected = CHANNELS.format("x".join(map(str, size)), size[0])
    for call in (
        lambda: convzoo.build("resnet18", size),
        lambda: convzoo.analyze("resnet18", size),
    ):
        with pytest.raises(ConvZooError) as caught:
            call()
        assert str(caught.value) == expected


def test_only_the_channels_are_fixed() -> None:
    """Other sizes after the channels build the same layers; a dict config is checked too,
    and a 1-D input's features are its channels."""
    small = convzoo.build("resnet18", (3, 64, 48), meta=True)
    assert sum(p.numel() for p in small.parameters()) == RESNET18
    assert convzoo.analyze(small).input_shape == [[1, 3, 64, 48]]
    mlp = {"input": [16], "layers": [{"type": "linear", "out_features": 4}]}
    assert convzoo.build(mlp, (16,))(torch.zeros(2, 16)).shape == (2, 4)
    with pytest.raises(ConvZooError, match=r"^model takes 16 input features .*; input 8 has 8$"):
        convzoo.build(mlp, (8,))
    conv = {"input": [3, 8, 8], "layers": [{"type": "conv", "out_channels": 4, "kernel_size": 3}]}
    with pytest.raises(ConvZooError, match=r"^model takes 3 input channels"):
        convzoo.analyze(conv, (5, 8, 8))
    assert convzoo.build({"layers": conv["layers"]}, (5, 8, 8)).input_size == (5, 8, 8)


@pytest.mark.slow  # a subprocess: the fast tier keeps one per command (test_contract)
def test_cli_refuses_an_input_with_other_channels() -> None:
    done = cli("report", "resnet18", "--input", "224x224x3")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"convzoo: error: {CHANNELS.format('224x224x3', 224)}\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "resnet18", "--input", "1x224x224"], CHANNELS.format("1x224x224", 1)),
        (["build", "resnet18", "--input", "1x224x224"], CHANNELS.format("1x224x224", 1)),
        (
            ["rf", "resnet18", "--layer", "layer1", "--input", "1x224x224"],
            CHANNELS.format("1x224x224", 1),
        ),
        (
            ["build", "torchvision:resnet18"],
            "'torchvision:resnet18' is a torchvision model: convzoo build takes a YAML config "
            "(a path, or a name from convzoo list --configs)",
        ),
    ],
)
def test_cli_errors_of_issue_20(argv: list[str], message: str) -> None:
    done = cli(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"convzoo: error: {message}\n"


@pytest.mark.slow
def test_cli_build_takes_a_packaged_config() -> None:
    done = cli("build", "resnet18", "--input", "3x64x64")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (f"resnet18: {RESNET18:,} parameters, input (3, 64, 64)")
