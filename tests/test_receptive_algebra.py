"""Receptive fields: the interval algebra by hand (distill, transposed, adaptive, resampling,
merges, unit queries) and the published fields of AlexNet, VGG-16 and ResNet-50."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torchvision
from torch import nn

import convzoo
from convzoo.analysis.receptive import (
    Field,
    Span,
    merge_fields,
    summary,
)
from convzoo.analysis.receptive.resample import resample_taps
from convzoo.analysis.receptive.spatial import adaptive_taps, transposed_taps
from convzoo.analysis.report import ReceptiveField
from convzoo.errors import ConvZooError
from tests.receptive_helpers import conv, half, span_of, units

# -- the algebra by hand ------------------------------------------------------------------


def brief(a: Span) -> tuple:
    got = summary(a)
    return got.size, got.stride, got.start, got.period


def test_distill_examples() -> None:
    assert brief(conv(9, 3, a=conv(11, 3))) == (5, 1, 2, 1)  # window [0, 4]
    assert brief(conv(9, 3, a=conv(19, 3, 2))) == (7, 2, 3, 1)  # window [0, 6]
    padded = conv(5, 3, 1, 1)
    assert units(padded)[0] == (0, 1) and units(padded)[4] == (3, 4)  # clipped
    assert brief(padded)[:3] == (3, 1, 0)  # unclipped: unit 0 sees [-1, 1]
    assert brief(conv(9, 3, d=2))[0:3] == (5, 1, 2)  # taps at 0, 2, 4
    assert brief(conv(8, 2, 2)) == (2, 2, half, 1)  # units see {0, 1}, {2, 3}, ...
    assert units(conv(8, 2, 2, p=1))[0] == (0, 0)  # one tap on padding


def test_affine_windows_match_enumeration() -> None:
    """Chains of convolutions (any kernel, stride, dilation, padding, output length, so
    with units that see only padding) against a per-unit enumeration of their taps: the
    hull of the taps inside the input. The monotone shortcut
    (``Affine.hull_of_monotone``) is taken wherever it applies, and it applied."""
    import random

    from convzoo.analysis.receptive.intervals import Affine, compute_window
    from convzoo.analysis.receptive.span import EMPTY, monotone

    rng = random.Random(12)
    shortcut = 0
    for _ in range(400):
        span = Span.identity(rng.randint(1, 30))
        for _ in range(rng.randint(1, 4)):
            k, s, d, pad = (
                rng.randint(1, 5),
                rng.randint(1, 3),
                rng.randint(1, 3),
                rng.randint(0, 6),
            )
            n_in = len(span)
            n_out = max(1, (n_in + 2 * pad - d * (k - 1) - 1) // s + 1 + rng.randint(-1, 2))
            shortcut += monotone(span)
            got = compute_window(span, n_out, Affine(s, -pad, k, d), 1, s)
            for o in range(n_out):
                seen = [o * s - pad + j * d for j in range(k)]
                seen = [u for u in seen if 0 <= u < n_in and span.lo[u] <= span.hi[u]]
                lo = min((int(span.lo[u]) for u in seen), default=int(EMPTY))
                hi = max((int(span.hi[u]) for u in seen), default=-int(EMPTY))
                assert (int(got.lo[o]), int(got.hi[o])) == (lo, hi)
            span = got
    assert shortcut > 200


def test_deep_chains_build_their_exact_fields_without_deep_recursion() -> None:
    """Exact arrays are built on first use, and a chain of unbuilt spans is cut every
    MAX_LAZY links: 3000 convolutions and merges, then a unit query, need no deep
    recursion (every unit of a 20-unit axis then sees all 20 pixels)."""
    from convzoo.analysis.receptive.intervals import Affine, union_spans, window
    from convzoo.analysis.receptive.span import MAX_LAZY

    span = Span.identity(20)
    for i in range(3000):
        step = window(span, 20, Affine(1, -1, 3, 1), 1, 1)
        span = union_spans([span, step]) if i % 7 == 0 else step
        assert span.pending <= MAX_LAZY
    assert span.unit(0) == (0, 19) and span.unit(19) == (0, 19)


def test_transposed_by_hand() -> None:
    def transposed(n: int, k: int, s: int, p: int, d: int = 1) -> Span:
        return span_of((n - 1) * s - 2 * p + d * (k - 1) + 1, n, transposed_taps(k, s, p, d), s)

    # k=2, s=2 (issue 11): output n depends on input floor(n/2) exactly.
    a = transposed(8, 2, 2, 0)
    assert units(a) == [(n // 2, n // 2) for n in range(16)]
    assert brief(a) == (1, half, 0, 2)
    # k=3, s=2, p=0: o = 2i + j; even outputs see two inputs, odd ones one.
    b = transposed(5, 3, 2, 0)
    assert units(b)[:5] == [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2)]
    assert brief(b) == (2, half, -half, 2)  # unit 0 sees virtual input -1 too
    # k=4, s=2, p=1 (DCGAN): every output sees two inputs, the borders one.
    c = transposed(6, 4, 2, 1)
    assert units(c)[:4] == [(0, 0), (0, 1), (0, 1), (1, 2)] and units(c)[-1] == (5, 5)
    assert transposed(6, 1, 2, 0).unit(1) is None  # odd outputs see none
    assert transposed(6, 3, 1, 1) == conv(6, 3, 1, 1)  # stride 1: a convolution


def test_adaptive_windows_match_enumeration() -> None:
    for n in range(1, 30):
        for m in range(1, n + 3):
            taps, period, advance = adaptive_taps(n, m)
            got = units(span_of(m, n, taps, period, advance))
            want = [((o * n) // m, -(-(o + 1) * n // m) - 1) for o in range(m)]
            assert got == want, (n, m)
    a = span_of(10, 64, *adaptive_taps(64, 10))  # non-dividing (issue 11)
    assert brief(a)[:2] == (8, Fraction(32, 5)) and brief(a)[3] == 5


def test_resampling_by_hand() -> None:
    near = span_of(8, 4, resample_taps(half, 0, False, 4), 2, 1)
    assert units(near) == [(o // 2, o // 2) for o in range(8)]
    lin = span_of(8, 4, resample_taps(half, 2, False, 4), 2, 1)  # src = o/2 - 1/4
    assert units(lin) == [(0, 0), (0, 1), (0, 1), (1, 2), (1, 2), (2, 3), (2, 3), (3, 3)]
    assert brief(lin) == (2, half, -half, 2)
    cubic = span_of(8, 4, resample_taps(half, 4, False, 4), 2, 1)
    assert units(cubic)[2:4] == [(0, 2), (0, 3)] and brief(cubic)[0] == 4  # 2 each side
    third = span_of(9, 3, resample_taps(Fraction(1, 3), 2, False, 3), 3, 1)
    assert units(third)[1] == (0, 0) and units(third)[4] == (1, 1)  # src is an integer
    aligned = span_of(5, 3, resample_taps(half, 2, True, 3), 2, 1)  # src = o/2
    assert units(aligned) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]


def test_merges_are_exact_and_note_misalignment() -> None:
    a, b = Field((conv(12, 3, p=1),)), Field((conv(12, 5, p=2),))
    merged, notes = merge_fields([a, b])
    assert merged.axes[0] == b.axes[0] and notes == []
    strided = Field((conv(12, 3, 2, 1),))
    shifted = Field((conv(12, 3, 2, 0, a=Span.identity(13)),))
    merged, notes = merge_fields([strided, shifted])
    assert any("misaligned" in n for n in notes)
    assert units(merged.axes[0])[0] == (0, 2)  # [0, 1] and [0, 2]
    assert merge_fields([a, Field.global_field()])[0].is_global
    assert not merge_fields([a, Field.unknown()])[0].known


def test_to_dict_and_unit_query() -> None:
    up = Field((span_of(8, 4, resample_taps(half, 0, False, 4), 2, 1), conv(7, 3)))
    d = up.to_dict()
    assert d == {
        "size": [1, 3],
        "stride": [0.5, 1],
        "start": [0, 1],
        "period": [2, 1],
        "global": False,
    }
    assert d.unit(5, 2) == [(2, 2), (2, 4)] and up.unit(-1, 0) == [(3, 3), (0, 2)]
    g = Field.global_field().to_dict((32, 48))
    assert g == {"size": [32, 48], "stride": None, "start": None, "period": None, "global": True}
    with pytest.raises(ConvZooError, match="global"):
        g.unit(0, 0)
    with pytest.raises(ConvZooError, match="2 indices"):
        up.unit(1)
    with pytest.raises(ConvZooError, match="out of range"):
        up.unit(8, 0)


# -- published values (Araujo, Norris & Sim 2019, and their receptive_field table) --------


def rf(model: nn.Module, layer: str, size: int = 224) -> ReceptiveField:
    got = convzoo.analyze(model, (3, size, size)).layer(layer).receptive_field
    assert got is not None
    return got


def meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, name)()


def test_alexnet_and_vgg16_published_fields() -> None:
    # alexnet_v2 conv5 163 / 16 and pool5 195 / 32: torchvision's AlexNet has the same
    # kernels and strides (its paddings differ, which moves start only).
    alex = meta_model("alexnet")
    assert rf(alex, "features.10").size == (163, 163)
    assert rf(alex, "features.10").stride == (16, 16)
    assert rf(alex, "features.12").size == (195, 195)
    vgg = meta_model("vgg16")
    # VGG-16: conv5_2 164 / 16 / effective padding 74; pool5 212 / 32 / padding 90;
    # start = (size - 1) / 2 - padding.
    for layer, size, stride, pad in (("features.26", 164, 16, 74), ("features.30", 212, 32, 90)):
        got = rf(vgg, layer)
        assert got.size == (size, size) and got.stride == (stride, stride)
        assert got.start == ((size - 1) / 2 - pad,) * 2


def test_resnet50_published_field() -> None:
    # TF-slim ResNet-50 v1 puts each block's stride on its LAST unit (3x3 conv, shortcut
    # subsampled) and pads its max pool TF-'SAME' (0 before, 1 after): block4 483 / 32,
    # effective padding 239. Rebuild that from torchvision's ResNet-50.
    net = meta_model("resnet50")
    net.maxpool = nn.Sequential(nn.ConstantPad2d((0, 1, 0, 1), float("-inf")), nn.MaxPool2d(3, 2))
    for name in ("layer2", "layer3", "layer4"):
        first = getattr(net, name)[0]
        first.conv2.stride, first.downsample[0].stride = (1, 1), (1, 1)
    for name in ("layer1", "layer2", "layer3"):
        last = getattr(net, name)[-1]
        last.conv2.stride, last.downsample = (2, 2), nn.MaxPool2d(1, 2)
    got = rf(net, "layer4")
    assert got.size == (483, 483) and got.stride == (32, 32)
    assert got.start == ((483 - 1) / 2 - 239,) * 2
    # torchvision's own layout (stride on the first unit): 11 after the stem, then
    # 3 + 4 + 6 + 3 3x3 convs at jumps 4; 4 then 8 x3; 8 then 16 x5; 16 then 32 x2.
    expected = 11 + 2 * (3 * 4 + 4 + 3 * 8 + 8 + 5 * 16 + 16 + 2 * 32)
    assert rf(meta_model("resnet50"), "layer4").size == (expected, expected)
