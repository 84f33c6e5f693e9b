"""One place makes real models (issue 19): configs built on meta get their real twin with
seeded weights only for real-tensor work, and every real-tensor consumer uses it: the
effective field (``rf --plot``), ``--check-fvcore`` and the analyzer's fallback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import convzoo
from convzoo.config import load_config
from convzoo.errors import ConvZooError
from convzoo.real import materialize, on_meta, seeded
from convzoo.targets import packaged_configs
from tests.helpers import cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(packaged_configs())


def test_a_meta_config_model_gets_a_seeded_real_twin() -> None:
    meta = convzoo.build(ROOT / "configs" / "encoder_decoder.yaml", meta=True)  # batch norm
    assert on_meta(meta)
    state = torch.random.get_rng_state()
    first, second = materialize(meta), materialize(meta)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG untouched
    assert not on_meta(first) and first is not second
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name  # the same weights on every call
        assert torch.isfinite(a.float()).all(), name  # initialised, never garbage
    assert on_meta(meta)  # the meta model itself is left as it was


def test_a_real_model_is_its_own_real_twin() -> None:
    model = nn.Conv2d(3, 4, 3)
    assert materialize(model) is model


def test_a_meta_module_without_a_config_is_refused_in_one_line() -> None:
    with torch.device("meta"):
        model = nn.Conv2d(3, 4, 3)
    with pytest.raises(ConvZooError, match="holds meta tensors") as info:
        materialize(model)
    assert "\n" not in str(info.value)


def test_seeded_leaves_the_global_generator_alone() -> None:
    state = torch.random.get_rng_state()
    a, b = seeded(lambda: torch.randn(4)), seeded(lambda: torch.randn(4))
    assert torch.equal(a, b) and torch.equal(torch.random.get_rng_state(), state)


def test_effective_field_of_a_meta_config_in_python() -> None:
    from convzoo.plots import effective_field

    meta = convzoo.build(ROOT / "configs" / "seed_64x64_5x5.yaml", meta=True)
    erf, unit = effective_field(meta, (3, 64, 64), samples=1)
    rows, cols = erf.nonzero(as_tuple=True)
    assert unit == (30, 30)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (30, 34, 30, 34)


def test_a_meta_config_model_changed_after_its_build_is_refused() -> None:
    meta = convzoo.build(ROOT / "configs" / "seed_64x64_5x5.yaml", meta=True)
    with torch.device("meta"):
        meta.add_module("extra", nn.Conv2d(2, 2, 1))  # the config does not describe it
    with pytest.raises(ConvZooError, match="changed after it was built on meta"):
        materialize(meta)


@pytest.mark.slow  # a subprocess: the fast tier keeps one per command (test_contract)
def test_two_inputs_for_a_one_input_config_get_the_forwards_own_error() -> None:
    done = cli("report", "seed_64x64_5x5", "--input", "1x64x64", "--input", "1x64x64")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "takes 2 positional arguments but 3 were given" in lines[0]


UNIT = re.compile(r"^unit \((\d+), (\d+)\): input h (\d+)\.\.(\d+), w (\d+)\.\.(\d+) \(exact\)$")
SUPPORT = re.compile(
    r"^effective field of unit \((\d+), (\d+)\): nonzero on input rows (\d+)\.\.(\d+), "
    r"cols (\d+)\.\.(\d+)$"
)


def check_effective_field_inside_exact(config: str, tmp_path: Path) -> None:
    """``rf CONFIG --plot``: the plotted unit's effective field (its gradient support over
    random inputs, real seeded weights) lies inside the exact field the command prints."""
    png = tmp_path / f"{config}.png"
    done = cli("rf", config, "--plot", str(png), "--samples", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    units = [m for m in map(UNIT.match, lines) if m]
    supports = [m for m in map(SUPPORT.match, lines) if m]
    assert len(units) == 1 and len(supports) == 1, done.stdout
    u, s = (tuple(map(int, m.groups())) for m in (units[0], supports[0]))
    assert u[:2] == s[:2]  # the same unit
    assert u[2] <= s[2] <= s[3] <= u[3] and u[4] <= s[4] <= s[5] <= u[5], (u, s)
    assert png.stat().st_size > 10_000  # a picture was drawn


def test_rf_plot_of_a_config_with_batch_norm(tmp_path: Path) -> None:
    check_effective_field_inside_exact("encoder_decoder", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_rf_plot_of_every_shipped_config(config: str, tmp_path: Path) -> None:
    data = load_config(packaged_configs()[config])
    if len(data["input"]) != 3:  # an MLP's features: rf --plot draws CxHxW inputs only
        done = cli("rf", config, "--plot", str(tmp_path / "out.png"))
        assert done.returncode == 2 and "--plot needs a CxHxW input" in done.stderr
    elif data.get("init") == "zeros":  # every weight 0: no input pixel moves any unit
        done = cli("rf", config, "--plot", str(tmp_path / "out.png"), "--samples", "1")
        assert done.returncode == 0 and "zero everywhere" in done.stdout, done.stderr
    else:
        check_effective_field_inside_exact(config, tmp_path)


@pytest.mark.slow
def test_rf_plot_is_byte_deterministic(tmp_path: Path) -> None:
    """Same target and flags, same bytes: the weights are seeded (a torchvision model's
    random weights too, in the slow tier)."""
    runs = [cli("rf", "seed_7x7_alternatives", "--plot", str(tmp_path / f"{i}.png")) for i in "ab"]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.slow
def test_rf_plot_of_a_torchvision_model_is_byte_deterministic(tmp_path: Path) -> None:
    argv = ("rf", "torchvision:resnet18", "--input", "3x64x64", "--samples", "1", "--plot")
    runs = [cli(*argv, str(tmp_path / f"{i}.png")) for i in "ab"]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.slow
def test_check_fvcore_on_a_config_with_batch_norm() -> None:
    pytest.importorskip("fvcore")
    done = cli("report", "encoder_decoder", "--check-fvcore", "--no-fields")
    assert done.returncode == 0, done.stderr
    assert "fvcore" in done.stdout and "conv" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_check_fvcore_on_every_shipped_config(config: str) -> None:
    pytest.importorskip("fvcore")
    done = cli("report", config, "--check-fvcore", "--no-fields")
    assert done.returncode == 0, done.stderr
