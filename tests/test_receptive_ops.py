"""Receptive fields: the rules of single ops and modules, through a tiny dispatch recorder
(flatten, unfold, reductions, cat/split/slice/pad, upsampling, unknown ops, deformable)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.analysis.receptive import (
    DEFORMABLE_NOTE,
    Field,
    module_field,
    propagate,
    summary,
)
from convzoo.analysis.receptive.resample import resample_taps
from convzoo.analysis.receptive.spatial import transposed_taps
from tests.receptive_helpers import ID, Recorder, conv, half, span_of, trace, units

# -- op rules through a tiny recorder -----------------------------------------------------


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
    f, notes = trace(lambda t: t.amax(-1), META)  # one axis only: that one is seen whole
    assert f.axes[0] == ID.axes[0] and f.axes[1].unit(0) == (0, 9) and notes  # (issue 21)
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
