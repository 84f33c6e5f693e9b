"""Receptive fields that know channels, wrap-around padding, writes into part of a tensor
and linear maps along one axis (issue 21), against the support of the input gradient of
single output units (float64, positive weights): every unit, of every channel and of their
union, is exact, or the field says ``bound`` and encloses the truth."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from tests.conftest import COUNTS
from tests.test_receptive_gradients import positive_

Interval = tuple[int, int] | None


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread (several cost 10-100x on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def supports(
    model: nn.Module, shape: tuple[int, ...], picks: list[tuple[int | None, int, int]]
) -> list[list[Interval]]:
    """Per ``(channel, i, j)`` (channel None: all channels) the first and last input pixel
    per axis with a non-zero gradient of that unit; None on both axes when it sees none.
    One forward for all of them."""
    x = (torch.rand(1, *shape, dtype=torch.float64) + 0.5).requires_grad_()
    y = model(x)
    grads = []
    for c, i, j in picks:  # one forward, a backward per unit
        seed = torch.zeros_like(y)
        seed[0, slice(None) if c is None else c, i, j] = 1
        grads.append(torch.autograd.grad(y, x, seed, retain_graph=True)[0][0])
    found = []
    for grad in (g.abs().sum(0) for g in grads):
        seen = grad > grad.max() * 1e-9 if grad.max() > 0 else grad > 0
        spans: list[Interval] = []
        for hit in (seen.any(1), seen.any(0)):
            idx = hit.nonzero().flatten()
            spans.append((int(idx.min()), int(idx.max())) if len(idx) else None)
        found.append([None, None] if None in spans else spans)
    return found


def encloses(got: list[Interval], true: list[Interval]) -> bool:
    return all(
        t is None or (g is not None and g[0] <= t[0] and t[1] <= g[1])
        for g, t in zip(got, true, strict=True)
    )


def check(
    model: nn.Module, shape: tuple[int, ...], extra: int = 3, seed: int = 0
) -> convzoo.Report:
    """The analyzer's field of the output against the gradient support of corner, middle
    and random units, for the union over channels and for every channel."""
    report = convzoo.analyze(model, shape)
    rf = report.receptive_field
    assert rf is not None and rf.spatial, (rf, report.notes)
    out = report.output_shape
    positive_(model)
    rng = random.Random(seed)
    units = [(0, 0), (out[-2] - 1, out[-1] - 1), (out[-2] // 2, out[-1] // 3)]
    units += [(rng.randrange(out[-2]), rng.randrange(out[-1])) for _ in range(extra)]
    picks = [(c, i, j) for c in [None, *range(out[1])] for i, j in units]
    for (c, i, j), true in zip(picks, supports(model, shape, picks), strict=True):
        got = rf.unit(i, j, channel=c)
        COUNTS["rf units checked"] += 1
        if rf.bound:
            assert encloses(got, true), (c, i, j, got, true, report.notes)
        else:
            assert got == true, (c, i, j, got, true, report.notes)
    return report


class Lambda(nn.Module):
    """``fn(self, x)`` with the given submodules."""

    def __init__(self, fn: Callable[..., torch.Tensor], **modules: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


# -- the cases of issue 21, one test each --------------------------------------------------


def test_unshuffle_then_shuffle_is_one_pixel_per_unit() -> None:
    model = nn.Sequential(nn.PixelUnshuffle(3), nn.PixelShuffle(3))
    report = convzoo.analyze(model, (2, 9, 9))
    rf = report.receptive_field
    assert rf.size == (1, 1) and not rf.bound
    assert all(rf.unit(i, j) == [(i, i), (j, j)] for i in range(9) for j in range(9))


def test_unshuffle_then_one_channel_sees_one_pixel() -> None:
    model = Lambda(lambda m, x: F.pixel_unshuffle(x, 2)[:, :1])
    rf = convzoo.analyze(model, (2, 8, 8)).receptive_field
    assert all(
        rf.unit(i, j) == [(2 * i, 2 * i), (2 * j, 2 * j)] for i in range(4) for j in range(4)
    )
    check(model, (2, 8, 8))


def test_cat_then_keep_the_3x3_branch() -> None:
    model = Lambda(
        lambda m, x: torch.cat([m.a(x), m.b(x)], 1)[:, :2],
        a=nn.Conv2d(2, 2, 3, padding=1),
        b=nn.Conv2d(2, 2, 7, padding=3),
    )
    rf = check(model, (2, 12, 12)).receptive_field
    assert rf.size == (3, 3) and rf.unit(5, 6) == [(4, 6), (5, 7)]


def test_cat_keeps_each_branch_per_channel() -> None:
    model = Lambda(
        lambda m, x: torch.cat([m.a(x), m.b(x)], 1),
        a=nn.Conv2d(2, 2, 3, padding=1),
        b=nn.Conv2d(2, 3, 7, padding=3),
    )
    rf = check(model, (2, 12, 12)).receptive_field
    assert rf.size == (7, 7)  # the union over channels
    assert rf.unit(5, 6, channel=0) == [(4, 6), (5, 7)]
    assert rf.unit(5, 6, channel=4) == [(2, 8), (3, 9)]


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv_sees_its_group_only(groups: int) -> None:
    model = Lambda(
        lambda m, x: m.g(torch.cat([x, m.c(x)], 1)),
        c=nn.Conv2d(2, 2, 5, padding=2),
        g=nn.Conv2d(4, 4, 3, padding=1, groups=groups),
    )
    rf = check(model, (2, 12, 12)).receptive_field
    assert rf.unit(5, 5, channel=0) == [(4, 6), (4, 6)]  # group 0 reads x only
    assert rf.unit(5, 5, channel=3) == [(2, 8), (2, 8)]


def test_channel_shuffle_by_views_and_by_op() -> None:
    def by_views(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, 1)
        y = torch.cat([a, m.c(b)], 1)
        return y.view(1, 2, 2, *y.shape[2:]).transpose(1, 2).contiguous().view(y.shape)

    conv = nn.Conv2d(2, 2, 5, padding=2)
    rf = check(Lambda(by_views, c=conv), (4, 10, 10)).receptive_field
    assert [rf.unit(4, 4, channel=c)[0] for c in range(4)] == [(4, 4), (2, 6), (4, 4), (2, 6)]
    op = Lambda(lambda m, x: F.channel_shuffle(torch.cat([x, m.c(x)], 1), 2), c=conv)
    assert convzoo.analyze(op, (2, 10, 10)).receptive_field.unit(4, 4, channel=1)[0] == (2, 6)


def test_index_select_with_known_indices_is_exact() -> None:
    index = torch.tensor([3, 0])
    model = Lambda(
        lambda m, x: torch.cat([x, m.c(x)], 1).index_select(1, index),
        c=nn.Conv2d(2, 2, 5, padding=2),
    )
    rf = check(model, (2, 10, 10)).receptive_field
    assert rf.unit(4, 4, channel=0) == [(2, 6), (2, 6)] and rf.unit(4, 4, channel=1) == [
        (4, 4),
        (4, 4),
    ]


def test_channel_out_of_range_is_an_error() -> None:
    model = Lambda(lambda m, x: torch.cat([x, m.c(x)], 1), c=nn.Conv2d(2, 2, 3, padding=1))
    rf = convzoo.analyze(model, (2, 8, 8)).receptive_field
    with pytest.raises(convzoo.ConvZooError, match="channel 9 out of range"):
        rf.unit(0, 0, channel=9)


@pytest.mark.parametrize(
    "model",
    [
        nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"),
        Lambda(lambda m, x: F.pad(x, (1, 2, 2, 1), mode="circular")),
        Lambda(lambda m, x: m.c(F.pad(x, (2, 2, 1, 1), mode="circular")), c=nn.Conv2d(2, 2, 3)),
    ],
    ids=["conv", "pad", "pad-conv"],
)
def test_circular_padding_wraps_exactly(model: nn.Module) -> None:
    report = check(model, (2, 9, 9))
    assert report.receptive_field.known and not report.receptive_field.bound


def test_circular_conv_corner_sees_both_ends() -> None:
    rf = convzoo.analyze(
        nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"), (2, 9, 9)
    ).receptive_field
    assert rf.unit(0, 0) == [(0, 8), (0, 8)] and rf.unit(4, 4) == [(3, 5), (3, 5)]


def manual_pad(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = x.new_zeros(x.shape[0], x.shape[1], x.shape[2] + 2, x.shape[3] + 2)
    out[..., 1:-1, 1:-1] = x
    return m.c(out)


def test_write_into_a_fresh_tensor_is_followed() -> None:
    model = Lambda(manual_pad, c=nn.Conv2d(2, 2, 3))
    report = check(model, (2, 9, 9))
    rf = report.receptive_field
    padded = convzoo.analyze(nn.Conv2d(2, 2, 3, padding=1), (2, 9, 9)).receptive_field
    assert (rf.size, rf.stride, rf.start) == (padded.size, padded.stride, padded.start)
    assert all(rf.unit(i, j) == padded.unit(i, j) for i in range(9) for j in range(9))


def test_linear_on_the_last_axis_keeps_rows_exact() -> None:
    model = Lambda(lambda m, x: m.fc(m.c(x)), c=nn.Conv2d(2, 2, 3, padding=1), fc=nn.Linear(9, 5))
    report = check(model, (2, 9, 9))
    assert report.receptive_field.unit(5, 2) == [(4, 6), (0, 8)]
    assert any("every unit sees the whole of that axis" in n for n in report.notes)


# -- random graphs -------------------------------------------------------------------------

Step = Callable[[random.Random, int, int, int], tuple[nn.Module, int, int, int] | None]


def conv_step(rng: random.Random, c: int, h: int, w: int):  # noqa: ANN201
    k = rng.choice([1, 3, 5])
    groups = rng.choice([g for g in (1, 2, c) if c % g == 0])
    out = groups * rng.choice([1, 2])
    mode = rng.choice(["zeros", "zeros", "circular"]) if k > 1 else "zeros"
    return nn.Conv2d(c, out, k, padding=k // 2, groups=groups, padding_mode=mode), out, h, w


def cat_step(rng: random.Random, c: int, h: int, w: int):  # noqa: ANN201
    k = rng.choice([3, 5, 7])
    conv = nn.Conv2d(c, 2, k, padding=k // 2)
    first = rng.random() < 0.5
    return (
        Lambda(lambda m, x: torch.cat([x, m.c(x)] if first else [m.c(x), x], 1), c=conv),
        c + 2,
        h,
        w,
    )


def slice_step(rng: random.Random, c: int, h: int, w: int):  # noqa: ANN201
    if c < 2:
        return None
    a = rng.randrange(c - 1)
    b = rng.randrange(a + 1, c + 1)
    kind = rng.choice(["slice", "chunk", "index", "select"])
    if kind == "chunk" and c % 2 == 0:
        piece = rng.randrange(2)
        return Lambda(lambda m, x: x.chunk(2, 1)[piece]), c // 2, h, w
    if kind == "index":
        index = torch.tensor(rng.sample(range(c), b - a))
        return Lambda(lambda m, x: x.index_select(1, index)), b - a, h, w
    if kind == "select":
        return Lambda(lambda m, x: x[:, a].unsqueeze(1)), 1, h, w
    return Lambda(lambda m, x: x[:, a:b]), b - a, h, w


def shuffle_step(rng: random.Random, c: int, h: int, w: int):  # noqa: ANN201
    if h % 2 == 0 and w % 2 == 0 and rng.random() < 0.5:
        return nn.PixelUnshuffle(2), c * 4, h // 2, w // 2
    if c % 4 == 0:
        return nn.PixelShuffle(2), c // 4, h * 2, w * 2
    if c % 2 == 0:
        return nn.ChannelShuffle(2), c, h, w
    return None


def pad_step(rng: random.Random, c: int, h: int, w: int):  # noqa: ANN201
    if rng.random() < 0.5:
        p = rng.choice([1, 2]) if min(h, w) > 2 else 1
        return Lambda(lambda m, x: F.pad(x, (p, p, p, p), mode="circular")), c, h + 2 * p, w + 2 * p
    return Lambda(lambda m, x: manual_pad(m, x), c=nn.Identity()), c, h + 2, w + 2


def linear_step(rng: random.Random, c: int, h: int, w: int):  # noqa: ANN201
    out = rng.choice([w, 4])
    return nn.Linear(w, out), c, h, out


def axis_step(rng: random.Random, c: int, h: int, w: int):  # noqa: ANN201
    """A scan along one axis: unit ``u`` sees ``0..u``, flagged as a bound (the whole axis);
    a softmax would be exact, but its gradient cancels (no support to compare with)."""
    dim = rng.choice([-1, -2])
    return Lambda(lambda m, x: x.cumsum(dim)), c, h, w


def pool_step(rng: random.Random, c: int, h: int, w: int):  # noqa: ANN201
    if min(h, w) < 4:
        return None
    return nn.AvgPool2d(2), c, h // 2, w // 2


STEPS: list[Step] = [
    conv_step,
    cat_step,
    slice_step,
    shuffle_step,
    pad_step,
    linear_step,
    axis_step,
    pool_step,
]


def random_graph(seed: int, length: int = 4) -> tuple[nn.Module, tuple[int, int, int]]:
    rng = random.Random(seed)
    c, h, w = rng.choice([2, 3]), rng.choice([8, 10]), rng.choice([8, 9])
    shape = (c, h, w)
    layers: list[nn.Module] = []
    while len(layers) < length:
        got = rng.choice(STEPS)(rng, c, h, w)
        if got is None or max(got[2], got[3]) > 24 or got[1] > 24:
            continue
        module, c, h, w = got
        layers.append(module)
    return nn.Sequential(*layers), shape


@pytest.mark.parametrize("seed", range(4))
def test_random_channel_graphs_match_gradients(seed: int) -> None:
    model, shape = random_graph(seed)
    check(model, shape, extra=1, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 204))
def test_more_random_channel_graphs_match_gradients(seed: int) -> None:
    model, shape = random_graph(seed, length=random.Random(seed).randint(3, 7))
    check(model, shape, extra=3, seed=seed)
