"""Every unit's receptive field against the support of its gradient, over random graphs that
mix downsampling and upsampling along 1, 2 or 3 spatial axes.

The graphs are linear (no biases, positive weights, float64), so one forward pass over a
batch of one-hot inputs gives every column of the Jacobian: input pixel ``p`` is in the
support of output unit ``u`` when ``|out[p, :, u]|`` is non-zero. Per axis, the hull of
that support must equal ``Field.unit(u)`` exactly, for every unit of the output (and of a
middle layer). More examples under ``HYPOTHESIS_PROFILE=thorough`` (500 instead of 25).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import convzoo
from convzoo.analysis.receptive import Field
from tests.conftest import COUNTS

C = 2
EXAMPLES = {"thorough": 500, "ci": 100}.get(os.environ.get("HYPOTHESIS_PROFILE", ""), 25)
LIMITS = {1: (12, 40), 2: (6, 14), 3: (4, 7)}  # per-axis input size range by dims
MAX_UNITS = {1: 64, 2: 32, 3: 12}  # per-axis size kept along the graph
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAPTIVE = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


@dataclass
class Op:
    kind: str
    args: dict[str, Any]


class Net(nn.Module):
    """Applies ``ops`` in order; ``unet`` ops hold a nested list (down, up, merge)."""

    def __init__(self, ops: list[Op], n: int) -> None:
        super().__init__()
        self.ops, self.n = ops, n
        self.weights = nn.ParameterList()
        for op in self.walk(ops):
            if "shape" in op.args:
                op.args["w"] = len(self.weights)
                self.weights.append(nn.Parameter(torch.empty(op.args["shape"])))

    def extra_repr(self) -> str:
        return repr([(op.kind, {k: v for k, v in op.args.items() if k != "w"}) for op in self.ops])

    def walk(self, ops: list[Op]) -> list[Op]:
        out = []
        for op in ops:
            out.append(op)
            out += self.walk(op.args.get("body", []))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self.ops, x)

    def run(self, ops: list[Op], x: torch.Tensor) -> torch.Tensor:
        n = self.n
        for op in ops:
            a = op.args
            w = self.weights[a["w"]] if "w" in a else None
            if op.kind == "conv":
                x = CONV[n](x, w, None, a["s"], a["p"], a["d"])
            elif op.kind == "convt":
                x = CONV_T[n](x, w, None, a["s"], a["p"], a["op"], 1, a["d"])
            elif op.kind == "pool":
                x = POOL[n](x, a["k"], a["s"], a["p"], a["ceil"])
            elif op.kind == "adaptive":
                x = ADAPTIVE[n](x, a["size"])
            elif op.kind == "resample":
                x = F.interpolate(x, **a["kw"])
            elif op.kind == "shuffle":
                x = F.pixel_shuffle(CONV[n](x, w), a["r"])
            elif op.kind == "unshuffle":
                x = CONV[n](F.pixel_unshuffle(x, a["r"]), w)
            elif op.kind == "pad":
                x = F.pad(x, a["pads"], mode=a["mode"])
            elif op.kind == "slice":
                index = (slice(None), slice(None), *(slice(b, e, s) for b, e, s in a["cuts"]))
                x = x[index]
            elif op.kind == "unet":
                y = self.run(a["body"], x)
                pads = [v for size, got in zip(x.shape[:1:-1], y.shape[:1:-1], strict=True)
                        for v in ((size - got) // 2, size - got - (size - got) // 2)]  # fmt: skip
                y = F.pad(y, pads)
                x = torch.cat([x, y], 1) if a["cat"] else x + y
                if a["cat"]:
                    x = CONV[n](x, w)
        return x


def sizes_after(op: Op, sizes: list[int]) -> list[int] | None:
    """Spatial sizes after ``op`` (real run on meta), or None if it fails."""
    net = Net([op], len(sizes)).to("meta")
    try:
        return list(net(torch.empty(1, C, *sizes, device="meta")).shape[2:])
    except Exception:
        return None


@st.composite
def an_op(draw: Any, n: int, sizes: list[int], depth: int = 0) -> Op:
    kinds = ["conv", "convt", "pool", "adaptive", "resample", "pad", "slice"]
    kinds += ["unet"] * (depth == 0) + ["shuffle", "unshuffle"] * (n == 2)
    kind = draw(st.sampled_from(kinds))
    small = st.integers(1, 3)
    if kind == "conv":
        k, s, d = draw(small), draw(small), draw(st.integers(1, 2))
        return Op(kind, dict(s=s, p=draw(st.integers(0, k)), d=d, shape=(C, C) + (k,) * n))
    if kind == "convt":
        k, s, d = draw(st.integers(1, 4)), draw(small), draw(st.integers(1, 2))
        p = draw(st.integers(0, d * (k - 1)))
        op = draw(st.integers(0, max(s, d) - 1))
        return Op(kind, dict(s=s, p=p, d=d, op=op, shape=(C, C) + (k,) * n))
    if kind == "pool":
        k = draw(small)
        return Op(
            kind, dict(k=k, s=draw(small), p=draw(st.integers(0, k // 2)), ceil=draw(st.booleans()))
        )
    if kind == "adaptive":
        return Op(kind, dict(size=[draw(st.integers(min(2, s), max(2, 2 * s))) for s in sizes]))
    if kind == "resample":
        modes = ["nearest", "nearest-exact", LINEAR_MODE[n]] + ["bicubic"] * (n == 2)
        mode = draw(st.sampled_from(modes))
        kw: dict[str, Any] = {"mode": mode}
        if draw(st.booleans()):
            kw["scale_factor"] = draw(st.sampled_from([2, 3, 0.5]))
        else:
            kw["size"] = [draw(st.integers(1, 2 * s + 2)) for s in sizes]
        if mode not in ("nearest", "nearest-exact"):
            kw["align_corners"] = draw(st.booleans())
        return Op(kind, dict(kw=kw))
    if kind == "pad":
        mode = draw(st.sampled_from(["constant", "reflect", "replicate"]))
        low = -1 if mode == "constant" else 0
        pads = [draw(st.integers(low, min(2, s - 1))) for s in sizes[::-1] for _ in (0, 1)]
        return Op(kind, dict(pads=pads, mode=mode))
    if kind == "slice":
        cuts = [(draw(st.integers(0, s // 3)), None, draw(st.integers(1, 2))) for s in sizes]
        return Op(kind, dict(cuts=cuts))
    if kind in ("shuffle", "unshuffle"):
        r = draw(st.integers(2, 3))
        shape = (C * r * r, C, 1, 1) if kind == "shuffle" else (C, C * r * r, 1, 1)
        return Op(kind, dict(r=r, shape=shape))
    body = [Op("conv", dict(s=2, p=1, d=1, shape=(C, C) + (3,) * n))]
    inner = sizes_after(body[0], sizes)
    if inner is not None:
        body.append(draw(an_op(n, inner, depth + 1)))
    up = draw(st.sampled_from(["convt2", "convt4", "nearest", "linear"]))
    if up.startswith("convt"):
        k = int(up[-1])
        body.append(Op("convt", dict(s=2, p=k // 2 - 1, d=1, op=0, shape=(C, C) + (k,) * n)))
    else:
        mode = "nearest" if up == "nearest" else LINEAR_MODE[n]
        body.append(Op("resample", dict(kw={"mode": mode, "scale_factor": 2})))
    cat = draw(st.booleans())
    return Op(
        "unet",
        dict(body=body, cat=cat, shape=(C, 2 * C) + (1,) * n) if cat else dict(body=body, cat=cat),
    )


@st.composite
def graphs(draw: Any) -> tuple[Net, list[int]]:
    n = draw(st.sampled_from([1, 2, 2, 3]))
    lo, hi = LIMITS[n]
    start = [draw(st.integers(lo, hi)) for _ in range(n)]
    ops, sizes = [], start
    for _ in range(draw(st.integers(2, 5))):
        op = draw(an_op(n, sizes))
        after = sizes_after(op, sizes)
        if after is None or min(after) < 1 or max(after) > MAX_UNITS[n]:
            continue
        ops.append(op)
        sizes = after
    return Net(ops, n), start


def jacobian_support(net: Net, sizes: list[int]) -> torch.Tensor:
    """``bool[P, *out]``: input pixel ``p`` (row-major) reaches output unit (channels summed)."""
    pixels = math.prod(sizes)
    eye = torch.eye(pixels, dtype=torch.float64).reshape(pixels, 1, *sizes)
    x = torch.cat([eye, torch.zeros(pixels, C - 1, *sizes, dtype=torch.float64)], 1)
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(0.5, 1.5)
        out = net(x).abs().sum(1)
    return out > out.max() * 1e-9


def check_every_unit(net: Net, sizes: list[int]) -> None:
    net = net.double()
    report = convzoo.analyze(net, (C, *sizes), dtype=torch.float64)
    summary = report.receptive_field
    assert summary is not None and not summary.is_global, (summary, report.notes)
    field: Field = summary.field
    seen = jacobian_support(net, sizes)
    out = seen.shape[1:]
    coords = torch.stack(torch.meshgrid(*(torch.arange(s) for s in sizes), indexing="ij"))
    coords = coords.reshape(len(sizes), -1, *([1] * len(out)))  # [n, P, 1...]
    big = 1 << 30
    first = torch.where(seen, coords, big).amin(1)  # [n, *out]
    last = torch.where(seen, coords, -big).amax(1)
    for unit in (
        torch.cartesian_prod(*(torch.arange(s) for s in out)).reshape(-1, len(out)).tolist()
    ):
        want = field.unit(*unit)
        for a, span in enumerate(want):
            got = (int(first[a][tuple(unit)]), int(last[a][tuple(unit)]))
            expect = span if span is not None else (big, -big)
            if field.bound:  # noted: an upper bound at units where a branch is padding only
                COUNTS["rf units bounded, not exact"] += got != expect
                assert got == (big, -big) or expect[0] <= got[0] <= got[1] <= expect[1]
                continue
            assert got == expect, (unit, a, got, span, report.receptive_field)
    COUNTS["rf units checked"] += seen[0].numel()
    check_summary(field, summary)


def check_summary(field: Field, summary: dict[str, Any]) -> None:
    """The summary holds for every unit: no field is wider than ``size`` once clipped."""
    for a, span in enumerate(field.axes):
        assert span is not None
        widths = (span.hi - span.lo + 1).clip(min=0)
        assert int(widths.max(initial=0)) <= summary.size[a]


@settings(max_examples=EXAMPLES, deadline=None)
@given(graph=graphs())
def test_every_unit_matches_its_gradient_support(graph: tuple[Net, list[int]]) -> None:
    net, sizes = graph
    check_every_unit(net, sizes)


@pytest.mark.parametrize(
    ("ops", "n", "sizes"),
    [
        ([Op("convt", dict(s=2, p=0, d=1, op=0, shape=(C, C, 2, 2)))], 2, [8, 8]),
        (
            [
                Op("conv", dict(s=4, p=0, d=1, shape=(C, C, 3, 3))),
                Op("resample", dict(kw={"mode": "bilinear", "scale_factor": 4})),
            ],
            2,
            [16, 16],
        ),  # fmt: skip
        ([Op("adaptive", dict(size=[10]))], 1, [64]),
        ([Op("shuffle", dict(r=2, shape=(4 * C, C, 1, 1)))], 2, [5, 6]),
        ([Op("convt", dict(s=3, p=2, d=2, op=1, shape=(C, C, 3, 3, 3)))], 3, [4, 5, 4]),
    ],
)
def test_issue_examples_are_exact(ops: list[Op], n: int, sizes: list[int]) -> None:
    """The cases of issue 11: stride-2 transposed conv, conv /4 then bilinear x4 (sizes
    alternate), non-dividing adaptive pooling, pixel shuffle, a dilated 3-D transposed conv."""
    check_every_unit(Net(ops, n), sizes)
