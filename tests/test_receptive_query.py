"""The per-unit query in Python and in ``convzoo rf``, the classifier fallback, and the
``rf --plot`` box against the measured gradient support on every shipped config."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

import convzoo
from convzoo.analysis.receptive.describe import centre_unit, pick_layer
from convzoo.cli import main
from convzoo.plots import effective_field

CONFIGS = sorted(Path("configs").glob("*.yaml"))
BIG = {"mobilenet_v1.yaml", "resnet18.yaml", "resnet50.yaml", "vgg16.yaml", "every_conv.yaml"}
ZERO_INIT = {"seed_init_zero"}  # init: zeros, so no gradient reaches the input (issue 24)


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.name in BIG else p for p in CONFIGS],
    ids=lambda p: p.stem,
)
def test_plot_box_encloses_the_gradient_support(path: Path) -> None:
    """The unit ``rf --plot`` draws (centre of the layer it picks): its box encloses the
    support of the measured input gradient (max pooling and ReLU on random inputs can
    make the support smaller than the field, never larger)."""
    model = convzoo.build(str(path))
    size = tuple(model.input_size)
    report = convzoo.analyze(model, size)
    row, _ = pick_layer(report, "")
    if row.receptive_field is None or row.receptive_field.is_global:
        pytest.skip(f"{path.stem}: no spatial layer")
    unit = centre_unit(row)
    erf, shown = effective_field(model, size, row.name, samples=1, unit=unit)
    seen = erf > 0
    if path.stem in ZERO_INIT:  # the seed's point: zero weights pass no gradient back
        assert not seen.any(), (path.stem, row.name)
        return
    assert seen.any(), (path.stem, row.name)
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    got = [(int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))]
    want = row.receptive_field.unit(*shown)
    for (lo, hi), (first, last) in zip(got, want, strict=True):
        assert first <= lo <= hi <= last, (path.stem, row.name, shown, got, want)


def test_unit_query_in_python() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.ConvTranspose2d(1, 1, 2, stride=2))
    report = convzoo.analyze(model, (1, 9, 9))
    rf = report.layer("1").receptive_field
    assert rf.unit(0, 5) == [(0, 2), (4, 6)] and rf.unit(1, 1) == [(0, 2), (0, 2)]
    assert rf.size == (3, 3) and rf.stride == (1, 1) and rf.period == (2, 2)
    assert convzoo.analyze(nn.Conv1d(1, 1, 5, dilation=2), (1, 20)).receptive_field.unit(3) == [
        (3, 11)
    ]


def test_rf_unit_and_classifier_fallback(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rf", "configs/encoder_decoder.yaml", "--unit", "32,32"])
    out = capsys.readouterr().out
    assert code == 0 and "unit (32, 32): input h 25..42, w 25..42 (exact)" in out
    assert "18x18 /1 (period 4)" in out
    code = main(["rf", "configs/resnet18.yaml", "--unit", "3,3"])
    out = capsys.readouterr().out
    assert code == 0 and "showing 'layer4', the last layer (in module order) whose units" in out
    assert "unit (3, 3): input h 0..223, w 0..223" in out
    code = main(["rf", "configs/encoder_decoder.yaml", "--unit", "3,x"])
    assert code == 2 and "--unit must look like" in capsys.readouterr().err
    code = main(["rf", "configs/encoder_decoder.yaml", "--layer", "encoder", "--unit", "16,0"])
    assert code == 2 and "out of range" in capsys.readouterr().err


class Windows(nn.Module):
    """Window partition as in Swin: a view that splits each spatial axis across two dims."""

    def forward(self, x):  # noqa: ANN001, ANN201
        b, c, h, w = x.shape
        return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).mean((-1, -2))


def test_unfollowable_views_are_unknown_with_a_reason_and_flips_are_exact() -> None:
    report = convzoo.analyze(nn.Sequential(nn.Conv2d(1, 1, 3), Windows()), (1, 10, 10))
    rf = report.receptive_field
    assert rf.size is None and not rf.is_global and "split across dims" in rf.field.reason
    assert any("split across dims" in n for n in report.notes)
    flipped = convzoo.analyze(nn.Sequential(nn.Conv2d(1, 1, 3), Flip()), (1, 10, 10))
    assert flipped.receptive_field.unit(0, 2) == [(7, 9), (2, 4)]


class Flip(nn.Module):
    def forward(self, x):  # noqa: ANN001, ANN201
        return x.flip(-2)


def test_one_and_three_axis_fields_render() -> None:
    sequence = convzoo.analyze(nn.Conv1d(1, 1, 3, stride=2), (1, 20))
    assert sequence.receptive_field.size == (3,) and "3 /2" in sequence.to_table()
    assert "3,,2,,1," in sequence.to_csv()  # size, stride, start of the one axis (as h)
    video = convzoo.analyze(nn.Conv3d(1, 1, (1, 3, 3)), (1, 4, 8, 8))
    assert video.receptive_field.size == (1, 3, 3) and "1x3x3 /1" in video.to_table()
