"""Receptive fields: the algebra by hand, published values, op rules, and an empirical check
against the support of the input gradient of single output units."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import convzoo
from convzoo.analysis.receptive import (
    DEFORMABLE_NOTE,
    Field,
    Span,
    merge_fields,
    module_field,
    propagate,
    propagate_outputs,
    summary,
)
from convzoo.analysis.receptive.intervals import window
from convzoo.analysis.receptive.resample import resample_taps
from convzoo.analysis.receptive.spatial import adaptive_taps, conv_span, transposed_taps
from convzoo.analysis.report import ReceptiveField
from convzoo.errors import ConvZooError

ID = Field.identity((12, 10))
half = Fraction(1, 2)


# -- the algebra by hand ------------------------------------------------------------------


def span_of(n_out: int, n_in: int, taps, period: int = 1, advance: int = 1) -> Span:  # noqa: ANN001
    return window(Span.identity(n_in), n_out, taps, period, advance)


def conv(n: int, k: int, s: int = 1, p: int = 0, d: int = 1, a: Span | None = None) -> Span:
    a = a if a is not None else Span.identity(n)
    return conv_span(a, (len(a) + 2 * p - d * (k - 1) - 1) // s + 1, k, s, p, d)


def units(a: Span) -> list[tuple[int, int] | None]:
    return [a.unit(u) for u in range(len(a))]


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


# -- op rules through a tiny recorder -----------------------------------------------------


class Recorder(TorchDispatchMode):
    """Runs ops and keeps each output's field (the analyzer does the same, with counting)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[int, tuple[torch.Tensor, Field | None]] = {}
        self.notes: list[str] = []

    def field_of(self, t: object) -> Field | None:
        hit = self.fields.get(id(t))
        return hit[1] if hit is not None and hit[0] is t else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        fields, notes = propagate_outputs(func, args, kwargs or {}, out, self.field_of)
        outs = [t for t in (out if isinstance(out, (tuple, list)) else [out])]
        for t, f in zip(outs, fields, strict=False):
            self.fields[id(t)] = (t, f)
        self.notes += notes
        return out


def trace(fn, x: torch.Tensor) -> tuple[Field | None, list[str]]:  # noqa: ANN001
    rec = Recorder()
    rec.fields[id(x)] = (x, Field.identity(x.shape[2:]))
    with rec:
        y = fn(x)
    return rec.field_of(y), rec.notes


META = torch.empty(2, 4, 12, 10, device="meta")
W3 = torch.empty(6, 4, 3, 3, device="meta")


def conv_field(x: torch.Tensor = META, **kw: object) -> Field:
    return trace(lambda t: F.conv2d(t, W3, **kw), x)[0]


def test_flatten_then_linear_is_global_but_channels_last_linear_is_not() -> None:
    lin = torch.empty(5, 4 * 12 * 10, device="meta")
    f, notes = trace(lambda t: F.linear(t.flatten(1), lin), META)
    assert f.is_global and notes == []
    pointwise = torch.empty(7, 4, device="meta")  # a 1x1 conv written as a Linear
    f, _ = trace(lambda t: F.linear(t.permute(0, 2, 3, 1), pointwise).permute(0, 3, 1, 2), META)
    assert f == ID
    f, _ = trace(
        lambda t: F.linear(F.conv2d(t, W3).permute(0, 2, 3, 1), torch.empty(3, 6, device="meta")),
        META,
    )
    assert f.layout is not None and f.axes == conv_field().axes


def test_unfold_matmul_view_equals_conv() -> None:
    """A convolution written as im2col + matmul + view has the conv's field."""

    def conv(t: torch.Tensor) -> torch.Tensor:
        cols = F.unfold(t, 3, dilation=2, padding=1, stride=2)  # [B, 36, L]
        return (W3.view(6, -1) @ cols).view(2, 6, 5, 4)

    assert trace(conv, META)[0] == conv_field(dilation=2, padding=1, stride=2)


def test_global_and_channel_reductions() -> None:
    assert trace(lambda t: t.mean((2, 3), keepdim=True), META)[0].is_global
    assert trace(lambda t: t.mean(1), META)[0] == ID
    f, notes = trace(lambda t: t.amax(-1), META)
    assert f.is_global and notes  # one axis only: reported as global, with a note
    se = lambda t: t * torch.sigmoid(t.mean((2, 3), keepdim=True))  # noqa: E731
    assert trace(se, META)[0].is_global  # squeeze-excitation sees the whole input
    assert trace(lambda t: F.adaptive_avg_pool2d(t, 1), META)[0].is_global
    assert trace(lambda t: t.softmax(1), META)[0] == ID


def test_cat_split_select_slice_and_padding() -> None:
    f, notes = trace(lambda t: torch.cat([t, F.conv2d(t, W3, padding=1)], 1), META)
    assert f.axes[0] == conv(12, 3, 1, 1) and notes == []
    f, notes = trace(lambda t: torch.cat([t, t[:, :, 2:]], 2), META)  # along h: end to end
    assert units(f.axes[0]) == [(u, u) for u in range(12)] + [(u, u) for u in range(2, 12)]
    assert notes == [] and summary(f.axes[0]).period is None
    rec = Recorder()
    rec.fields[id(META)] = (META, ID)
    with rec:
        top, bottom = META.split([5, 7], dim=2)
    assert rec.field_of(top).unit(0, 0) == [(0, 0), (0, 0)]
    assert rec.field_of(bottom).unit(0, 0) == [(5, 5), (0, 0)]
    f = trace(lambda t: t[:, :, 3], META)[0]
    assert f.layout is not None and f.unit(0, 4) == [(3, 3), (4, 4)]
    f = trace(lambda t: t[:, :, 1::2, 2:], META)[0]
    assert f.unit(2, 0) == [(5, 5), (2, 2)] and f.to_dict()["stride"] == [2, 1]
    f = trace(lambda t: F.pad(t, (2, 0, -1, 3)), META)[0]
    assert f.unit(0, 0) is not None and f.unit(0, 2) == [(1, 1), (0, 0)]
    assert f.unit(11, 0) == [None, None]  # padding: sees nothing
    assert f.to_dict()["start"] == [1, -2]
    f = trace(lambda t: F.pad(t, (2, 0, 0, 0), mode="reflect"), META)[0]
    assert f.unit(0, 0) == [(0, 0), (2, 2)] and f.to_dict()["start"] == [0, -2]


def test_empty_pad_keeps_the_field() -> None:
    """``F.pad(t, [])`` reaches ``aten.constant_pad_nd`` with ``pad=[]``: a no-op, not a
    failed rule (the rule used to fall back to a missing ``padding`` on an empty list)."""
    f, notes = trace(lambda t: F.pad(t, []), META)
    assert f == ID and notes == []
    f, notes = trace(lambda t: F.pad(F.conv2d(t, W3, stride=2), []), META)
    assert f == conv_field(stride=2) and notes == []


def test_upsampling_and_transposed_ops() -> None:
    f = trace(lambda t: F.interpolate(t, scale_factor=2), META)[0]
    nearest = span_of(24, 12, resample_taps(half, 0, False, 12), 2, 1)
    assert f.axes[0] == nearest
    f = trace(lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"), META)[0]
    assert f.axes[0] == span_of(24, 12, resample_taps(half, 2, False, 12), 2, 1)
    f = trace(lambda t: F.pixel_shuffle(t, 2), META)[0]
    assert f.axes[0] == nearest
    wt = torch.empty(4, 3, 4, 4, device="meta")
    f = trace(lambda t: F.conv_transpose2d(t, wt, stride=2, padding=1), META)[0]
    assert f.axes[0] == span_of(24, 12, transposed_taps(4, 2, 1, 1), 2)


def test_unknown_ops_give_a_note_and_poison_merges() -> None:
    f, notes = trace(lambda t: torch.ops.aten.as_strided(t, (2, 4, 3, 3), (480, 120, 10, 1)), META)
    assert not f.known and notes
    f, notes = trace(lambda t: t + torch.ops.aten.as_strided(t, t.shape, t.stride()), META)
    assert not f.known
    broken = propagate(torch.ops.aten.convolution.default, (META,), {}, META, lambda t: ID)
    assert not broken[0].known and "failed" in broken[1][0]  # never raises


def test_module_rules() -> None:
    caps = convzoo.create("primary_capsules", in_channels=4, num_types=2, capsule_dim=3, stride=2)
    caps.conv = convzoo.create("conv", in_channels=4, out_channels=6, kernel_size=3, stride=2)
    field = module_field(caps, ID, (2, 4, 12, 10), (2, 2 * 5 * 4, 3))
    assert field.axes[0] == conv(12, 3, 2) and field.layout is not None
    assert trace(caps.to("meta"), META)[0] == field  # the ops agree with the rule
    routing = convzoo.create(
        "routing_capsules", in_capsules=40, in_dim=3, out_capsules=2, out_dim=4
    )
    assert module_field(routing, field, (2, 40, 3), (2, 2, 4)).is_global
    assert module_field(nn.ReLU(), field, (1,), (1,)) is NotImplemented
    plain = convzoo.create("conv", in_channels=1, out_channels=1, kernel_size=3)
    assert module_field(plain, field, (1, 1, 5, 5), (1, 1, 3, 3)) is NotImplemented
    deform = convzoo.create("deformable", in_channels=4, out_channels=6, kernel_size=3, padding=1)
    got = module_field(deform, ID, (2, 4, 12, 10), (2, 6, 12, 10))
    assert got == conv_field(padding=1) and "offsets" in DEFORMABLE_NOTE


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
