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
    IDENTITY_AXIS,
    Axis,
    Field,
    adaptive_axis,
    conv_axis,
    linear_axis,
    module_field,
    nearest_axis,
    transposed_axis,
    union,
    widest_window,
)
from convzoo.analysis.receptive_rules import DEFORMABLE_NOTE, propagate, propagate_outputs

ONE = IDENTITY_AXIS
ID = Field.identity()
half = Fraction(1, 2)


# -- the algebra by hand ------------------------------------------------------------------


def test_distill_examples() -> None:
    two = conv_axis(conv_axis(ONE, 3, 1, 0, 1), 3, 1, 0, 1)
    assert (two.size, two.stride, two.start) == (5, 1, 2)  # window [0, 4]
    strided = conv_axis(conv_axis(ONE, 3, 2, 0, 1), 3, 1, 0, 1)
    assert (strided.size, strided.stride, strided.start) == (7, 2, 3)  # window [0, 6]
    padded = conv_axis(ONE, 3, 1, 1, 1)
    assert padded.bounds(0) == (-1, 1) and padded.bounds(4) == (3, 5)
    dilated = conv_axis(ONE, 3, 1, 0, 2)  # taps at 0, 2, 4
    assert (dilated.size, dilated.start) == (5, 2)
    even = conv_axis(ONE, 2, 2, 0, 1)  # units see {0, 1}, {2, 3}, ...
    assert (even.size, even.stride, even.start) == (2, 2, half)


def test_transposed_by_hand() -> None:
    # k=3, s=2, p=0: o = 2i + j; even outputs see two inputs, odd ones one.
    a = transposed_axis(ONE, 3, 2, 0, 1)
    assert (a.size, a.stride, a.start) == (2, half, -half)
    # k=4, s=2, p=1 (DCGAN): every output sees exactly two inputs.
    b = transposed_axis(ONE, 4, 2, 1, 1)
    assert (b.size, b.stride, b.start) == (2, half, Fraction(-1, 4))
    assert transposed_axis(ONE, 2, 2, 0, 1).size == 1  # each output sees one input
    assert transposed_axis(ONE, 1, 2, 0, 1).size == 1  # odd outputs see none
    assert transposed_axis(ONE, 3, 1, 1, 1) == conv_axis(ONE, 3, 1, 1, 1)  # stride 1: a conv


def test_widest_adaptive_window_matches_enumeration() -> None:
    for n in range(1, 40):
        for m in range(1, n + 1):
            windows = [-(-(o + 1) * n // m) - (o * n) // m for o in range(m)]
            assert widest_window(n, m) == max(windows), (n, m)
    a = adaptive_axis(ONE, 5, 3)  # windows [0, 2), [1, 4), [3, 5)
    assert (a.size, a.stride) == (3, Fraction(5, 3))
    assert adaptive_axis(ONE, 8, 4) == conv_axis(ONE, 2, 2, 0, 1)


def test_resampling_by_hand() -> None:
    near = nearest_axis(ONE, half)  # outputs 0, 1 -> input 0: centres -1/4 and 1/4 on average
    assert (near.size, near.stride, near.start) == (1, half, Fraction(-1, 4))
    lin = linear_axis(ONE, half, align_corners=False)  # src = o/2 - 1/4: two pixels
    assert (lin.size, lin.stride, lin.start) == (2, half, Fraction(-1, 4))
    assert linear_axis(ONE, Fraction(3), False).size == 1  # src = 3o + 1: integers
    assert linear_axis(ONE, Fraction(1, 3), True).size == 2


def test_union_reports_misalignment_and_strides() -> None:
    a, b = Field(Axis(3, 1, 1), Axis(3, 1, 1)), Field(Axis(5, 1, 1), Axis(5, 1, 1))
    merged, notes = union([a, b])
    assert merged.h == Axis(5, 1, 1) and notes == []
    c = Field(Axis(2, 2, half), Axis(3, 2, 1))
    merged, notes = union([Field(Axis(3, 2, 1), Axis(3, 2, 1)), c])
    assert merged.h.bounds() == (0, 2) and any("misaligned" in n for n in notes)
    merged, notes = union([a, Field(Axis(3, 2, 1), Axis(3, 1, 1))])
    assert any("strides differ" in n for n in notes)
    assert union([a, Field.global_field()])[0].is_global
    assert not union([a, Field.unknown()])[0].known


def test_to_dict() -> None:
    f = Field(Axis(Fraction(5), Fraction(1, 2), Fraction(-1, 3)), Axis(3, 1, 0))
    assert f.to_dict() == {
        "size": [5, 3],
        "stride": [0.5, 1],
        "start": [-0.3333, 0],
        "global": False,
    }
    g = Field.global_field().to_dict((32, 48))
    assert g == {"size": [32, 48], "stride": None, "start": None, "global": True}


# -- published values (Araujo, Norris & Sim 2019, and their receptive_field table) --------


def rf(model: nn.Module, layer: str, size: int = 224) -> dict:
    return convzoo.analyze(model, (3, size, size)).layer(layer).receptive_field


def meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, name)()


def test_alexnet_and_vgg16_published_fields() -> None:
    # alexnet_v2 conv5 163 / 16 and pool5 195 / 32: torchvision's AlexNet has the same
    # kernels and strides (its paddings differ, which moves start only).
    alex = meta_model("alexnet")
    assert rf(alex, "features.10")["size"] == [163, 163]
    assert rf(alex, "features.10")["stride"] == [16, 16]
    assert rf(alex, "features.12")["size"] == [195, 195]
    vgg = meta_model("vgg16")
    # VGG-16: conv5_2 164 / 16 / effective padding 74; pool5 212 / 32 / padding 90;
    # start = (size - 1) / 2 - padding.
    for layer, size, stride, pad in (("features.26", 164, 16, 74), ("features.30", 212, 32, 90)):
        got = rf(vgg, layer)
        assert got["size"] == [size, size] and got["stride"] == [stride, stride]
        assert got["start"] == [(size - 1) / 2 - pad] * 2


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
    assert got["size"] == [483, 483] and got["stride"] == [32, 32]
    assert got["start"] == [(483 - 1) / 2 - 239] * 2
    # torchvision's own layout (stride on the first unit): 11 after the stem, then
    # 3 + 4 + 6 + 3 3x3 convs at jumps 4; 4 then 8 x3; 8 then 16 x5; 16 then 32 x2.
    expected = 11 + 2 * (3 * 4 + 4 + 3 * 8 + 8 + 5 * 16 + 16 + 2 * 32)
    assert rf(meta_model("resnet50"), "layer4")["size"] == [expected, expected]


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
    rec.fields[id(x)] = (x, Field.identity())
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
    assert f == Field.identity()
    f, _ = trace(
        lambda t: F.linear(F.conv2d(t, W3).permute(0, 2, 3, 1), torch.empty(3, 6, device="meta")),
        META,
    )
    assert f.layout is not None and f.h == conv_field().h


def test_unfold_matmul_view_equals_conv() -> None:
    """A convolution written as im2col + matmul + view has the conv's field."""

    def conv(t: torch.Tensor) -> torch.Tensor:
        cols = F.unfold(t, 3, dilation=2, padding=1, stride=2)  # [B, 36, L]
        return (W3.view(6, -1) @ cols).view(2, 6, 5, 4)

    assert trace(conv, META)[0] == conv_field(dilation=2, padding=1, stride=2)


def test_global_and_channel_reductions() -> None:
    assert trace(lambda t: t.mean((2, 3), keepdim=True), META)[0].is_global
    assert trace(lambda t: t.mean(1), META)[0] == Field.identity()
    f, notes = trace(lambda t: t.amax(-1), META)
    assert f.is_global and notes  # one axis only: reported as global, with a note
    se = lambda t: t * torch.sigmoid(t.mean((2, 3), keepdim=True))  # noqa: E731
    assert trace(se, META)[0].is_global  # squeeze-excitation sees the whole input
    assert trace(lambda t: F.adaptive_avg_pool2d(t, 1), META)[0].is_global
    assert trace(lambda t: t.softmax(1), META)[0] == Field.identity()


def test_cat_split_select_slice_and_padding() -> None:
    f, notes = trace(lambda t: torch.cat([t, F.conv2d(t, W3, padding=1)], 1), META)
    assert f.h == conv_axis(ONE, 3, 1, 1, 1) and notes == []
    f, notes = trace(lambda t: torch.cat([t, t], 2), META)
    assert not f.known and notes
    rec = Recorder()
    rec.fields[id(META)] = (META, Field.identity())
    with rec:
        top, bottom = META.split([5, 7], dim=2)
    assert rec.field_of(top).h.start == 0 and rec.field_of(bottom).h.start == 5
    assert trace(lambda t: t[:, :, 3], META)[0].h.start == 3
    f = trace(lambda t: t[:, :, 1::2, 2:], META)[0]
    assert (f.h.stride, f.h.start, f.w.start) == (2, 1, 2)
    f = trace(lambda t: F.pad(t, (2, 0, -1, 3)), META)[0]
    assert (f.w.start, f.h.start) == (-2, 1)


def test_empty_pad_keeps_the_field() -> None:
    """``F.pad(t, [])`` reaches ``aten.constant_pad_nd`` with ``pad=[]``: a no-op, not a
    failed rule (the rule used to fall back to a missing ``padding`` on an empty list)."""
    f, notes = trace(lambda t: F.pad(t, []), META)
    assert f == Field.identity() and notes == []
    f, notes = trace(lambda t: F.pad(F.conv2d(t, W3, stride=2), []), META)
    assert f == conv_field(stride=2) and notes == []


def test_upsampling_and_transposed_ops() -> None:
    f = trace(lambda t: F.interpolate(t, scale_factor=2), META)[0]
    assert f.h == nearest_axis(ONE, half)
    f = trace(lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"), META)[0]
    assert f.h == linear_axis(ONE, half, False)
    f = trace(lambda t: F.pixel_shuffle(t, 2), META)[0]
    assert f.h == nearest_axis(ONE, half)
    wt = torch.empty(4, 3, 4, 4, device="meta")
    f = trace(lambda t: F.conv_transpose2d(t, wt, stride=2, padding=1), META)[0]
    assert f.h == transposed_axis(ONE, 4, 2, 1, 1)


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
    field = module_field(caps, Field.identity(), (2, 4, 12, 10), (2, 2 * 5 * 4, 3))
    assert field.h == conv_axis(ONE, 3, 2, 0, 1) and field.layout is not None
    assert trace(caps.to("meta"), META)[0] == field  # the ops agree with the rule
    routing = convzoo.create(
        "routing_capsules", in_capsules=40, in_dim=3, out_capsules=2, out_dim=4
    )
    assert module_field(routing, field, (2, 40, 3), (2, 2, 4)).is_global
    assert module_field(nn.ReLU(), field, (1,), (1,)) is NotImplemented
    conv = convzoo.create("conv", in_channels=1, out_channels=1, kernel_size=3)
    assert module_field(conv, field, (1, 1, 5, 5), (1, 1, 3, 3)) is NotImplemented
    deform = convzoo.create("deformable", in_channels=4, out_channels=6, kernel_size=3, padding=1)
    got = module_field(deform, Field.identity(), (2, 4, 12, 10), (2, 6, 12, 10))
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


def predicted(rf: dict, axis: int, unit: int, n: int) -> tuple[float, float] | None:
    size, stride, start = rf["size"][axis], rf["stride"][axis], rf["start"][axis]
    centre = start + unit * stride
    lo, hi = max(centre - (size - 1) / 2, 0), min(centre + (size - 1) / 2, n - 1)
    return (lo, hi) if lo <= hi else None  # a unit that only sees padding


def check_exact(model: nn.Module, shape: tuple[int, int, int]) -> None:
    """The analyzer's field against the gradient support of the first, a middle and the
    last unit: equal ends where the field lies inside the input; where it was clipped, the
    support (which can skip border pixels between dilated taps) lies inside the input. Each
    end must be compared exactly at least once per axis."""
    report = convzoo.analyze(model, shape)
    field = report.receptive_field
    assert field is not None and not field["global"], field
    out, exact = report.output_shape[-2:], [[0, 0], [0, 0]]
    positive_(model)
    for unit in ((0, 0), (out[0] // 2, out[1] // 3), (out[0] - 1, out[1] - 1)):
        got = support(model, shape, unit)
        want = [predicted(field, a, unit[a], shape[1 + a]) for a in (0, 1)]
        if None in want:  # sees only padding along one axis, so nothing at all
            assert got == [None, None], (unit, got)
            continue
        for a, n in ((0, shape[1]), (1, shape[2])):
            for end, clipped in ((0, want[a][0] == 0), (1, want[a][1] == n - 1)):
                assert got[a][end] == want[a][end] or clipped, (unit, a, got, want, field)
                exact[a][end] += got[a][end] == want[a][end] and not clipped
    assert all(all(ends) for ends in exact), (exact, field)


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
    """Each unit's support lies within half an input pixel of its modelled interval, and
    the largest support over one period of units is exactly ``size``."""
    if name == "transposed":
        model = convzoo.create(name, in_channels=2, out_channels=2, **kw)
    else:
        model = nn.Sequential(
            convzoo.create("conv", in_channels=2, out_channels=2, kernel_size=1),
            convzoo.create(name, **kw),
        )
    shape = (2, 9, 8)
    field = convzoo.analyze(model, shape).receptive_field
    positive_(model)
    widest = [0, 0]
    for k in range(phases):
        unit = (6 + k, 6 + k)
        got = support(model, shape, unit)
        if None in got:  # dilation 2, stride 2: odd outputs receive no input at all
            continue
        for a in (0, 1):
            size, stride, start = (field[key][a] for key in ("size", "stride", "start"))
            centre = start + unit[a] * stride
            assert centre - (size - 1) / 2 - 0.5 <= got[a][0], (unit, got, field)
            assert got[a][1] <= centre + (size - 1) / 2 + 0.5, (unit, got, field)
            widest[a] = max(widest[a], got[a][1] - got[a][0] + 1)
    assert widest == field["size"]


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
        for axis, idx, n_in, pos in ((field.h, rows, 9, y), (field.w, cols, 8, w)):
            lo, hi = axis.bounds(pos)
            assert (int(idx.min()), int(idx.max())) == (max(lo, 0), min(hi, n_in - 1)), (n, pos)
