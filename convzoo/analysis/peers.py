"""Cross-check convzoo's counts against fvcore's ``FlopCountAnalysis``, op type by op type.

fvcore traces the model with ``torch.jit.trace`` and counts one "flop" per multiply-add
(so its conv/linear/matmul numbers are MACs); it also counts a few normalisation and
pooling ops with its own per-element factors, silently ignores a list of ops (relu,
clamp, ...) and skips every other op it has no handler for (``unsupported_ops()``).
convzoo counts MACs for linear algebra and one element-wise op per value elsewhere
(:mod:`convzoo.analysis.ops`). :func:`compare_fvcore` runs both on the same real input
(batch 1, eval mode, ``torch.no_grad``) and explains every difference it finds.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tabulate import tabulate
from torch import nn

from convzoo.analysis import formulas
from convzoo.analysis.analyzer import analyze
from convzoo.analysis.guard import check_forward
from convzoo.analysis.isolation import private_copy
from convzoo.analysis.render import human
from convzoo.analysis.report import Report
from convzoo.errors import ConvZooError, first_line, user_code
from convzoo.real import materialize

MACS, ELEMENTWISE = "MACs", "element-wise ops"
OTHER = "other element-wise"
MHA = "aten::_native_multi_head_attention"  # nn.MultiheadAttention's fused eval path
SDPA = "aten::scaled_dot_product_attention"  # on meta it decomposes into bmm + softmax


@dataclass(frozen=True)
class Group:
    """One op type as both tools see it.

    ``aten``: convzoo's op packet names; ``fvcore``: fvcore's ``by_operator`` keys;
    ``jit``: prefixes of the jit op names fvcore reports as unsupported for this type;
    ``reason``: why the counts differ when both tools count the op type.
    """

    name: str
    unit: str
    aten: frozenset[str]
    fvcore: frozenset[str] = frozenset()
    jit: tuple[str, ...] = ()
    reason: str = ""


def _group(
    name: str, unit: str, aten: set[str], fvcore: set[str], jit: tuple[str, ...], reason: str
) -> Group:
    return Group(name, unit, frozenset(aten), frozenset(fvcore), jit, reason)


GROUPS: tuple[Group, ...] = (
    _group(
        "conv",
        MACS,
        {"convolution", "_convolution"},
        {"conv"},
        ("aten::_convolution", "aten::conv"),
        "both count one multiply-add per weight per output position (per input position "
        "when transposed); a difference means one tool missed calls",
    ),
    _group(
        "linear/matmul",
        MACS,
        {"mm", "bmm", "matmul", "dot", "mv", "addmm", "baddbmm", "addmv", "addbmm"},
        {"addmm", "linear", "matmul", "mm", "bmm", "einsum"},
        ("aten::dot", "aten::mv", "aten::baddbmm", "aten::addmv", "aten::addbmm", SDPA, MHA),
        "fvcore's matmul formula (prod(a.shape) * b.shape[-1]) ignores broadcast batch "
        "dims of b and complex inputs (convzoo: 3 real MACs per complex one)",
    ),
    _group(
        "attention",
        MACS,
        {
            "_scaled_dot_product_flash_attention_for_cpu",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_cudnn_attention",
        },
        set(),
        (SDPA, MHA),
        "fvcore has no attention handler; convzoo counts B*L*S*(E+E_v) MACs",
    ),
    _group(
        "fft",
        MACS,
        {"_fft_r2c", "_fft_c2r", "_fft_c2c"},
        set(),
        ("aten::fft_",),
        "fvcore has no FFT handler; convzoo counts 2.5 N log2 N MACs per transform",
    ),
    _group(
        "deform_conv2d",
        MACS,
        {"deform_conv2d"},
        set(),
        ("torchvision::deform_conv2d",),
        "fvcore has no handler for torchvision's deformable convolution",
    ),
    _group(
        "batch_norm",
        ELEMENTWISE,
        {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"},
        {"batch_norm"},
        ("aten::batch_norm",),
        "fvcore counts 2 flops per element in eval mode with affine (1 without), "
        "convzoo 1 element-wise op per output value",
    ),
    _group(
        "layer/group/instance norm",
        ELEMENTWISE,
        {"native_layer_norm", "native_group_norm"},
        {"layer_norm", "group_norm", "instance_norm"},
        ("aten::layer_norm", "aten::group_norm", "aten::instance_norm"),
        "fvcore counts 5 flops per element with affine (4 without), convzoo 1 "
        "element-wise op per output value",
    ),
    _group(
        "upsample",
        ELEMENTWISE,
        {"upsample_nearest2d", "upsample_bilinear2d", "_upsample_bilinear2d_aa"},
        {"upsample_nearest2d", "upsample_bilinear2d"},
        ("aten::upsample",),
        "fvcore counts 4 flops per output value for bilinear, convzoo 1",
    ),
    _group(
        "adaptive avg pool / mean",
        ELEMENTWISE,
        {"_adaptive_avg_pool2d", "mean"},
        {"adaptive_avg_pool2d"},
        ("aten::adaptive_avg_pool2d", "aten::mean"),
        "both count one op per input value for adaptive average pooling",
    ),
)


@dataclass
class OpComparison:
    """One op type: convzoo's count (in ``unit``), fvcore's and why they differ."""

    op: str
    unit: str
    convzoo: int
    fvcore: int
    reason: str = ""
    ops: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.convzoo == self.fvcore


@dataclass
class FvcoreCheck:
    """What :func:`compare_fvcore` returns; ``to_text()`` renders it."""

    input_shape: list[int]
    convzoo_macs: int
    convzoo_elementwise: int
    fvcore_total: int
    rows: list[OpComparison]
    unsupported: dict[str, int] = field(default_factory=dict)
    convzoo_uncounted: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def convzoo_flops(self) -> int:
        return formulas.flops(self.convzoo_macs)

    def mac_totals(self) -> tuple[int, int]:
        """(convzoo, fvcore) summed over the op types convzoo counts in MACs."""
        rows = [r for r in self.rows if r.unit == MACS]
        return sum(r.convzoo for r in rows), sum(r.fvcore for r in rows)

    def row(self, op: str) -> OpComparison:
        for r in self.rows:
            if r.op == op:
                return r
        raise KeyError(op)

    def to_text(self) -> str:
        """Totals, the per-op-type table and each difference's reason."""
        ours, theirs = self.mac_totals()
        verdict = "match" if ours == theirs else f"differ by {human(ours - theirs)}"
        lines = [
            f"fvcore cross-check (input {'x'.join(map(str, self.input_shape))}, eval mode)",
            f"  fvcore total:  {human(self.fvcore_total)} ({self.fvcore_total:,}) "
            f"'flops' (fvcore counts one multiply-add as one flop)",
            f"  convzoo total: {human(self.convzoo_macs)} MACs ({self.convzoo_macs:,}) = "
            f"{human(self.convzoo_flops)} FLOPs, plus {human(self.convzoo_elementwise)} "
            f"element-wise ops",
            f"  MAC op types:  convzoo {ours:,}, fvcore {theirs:,}: {verdict}",
            "",
        ]
        table = [
            [r.op, r.unit, f"{r.convzoo:,}", f"{r.fvcore:,}", "yes" if r.matches else "no"]
            for r in self.rows
        ]
        lines.append(
            tabulate(
                table,
                headers=["op type", "convzoo unit", "convzoo", "fvcore", "same"],
                colalign=("left", "left", "right", "right", "left"),
                disable_numparse=True,
            )
        )
        diffs = [r for r in self.rows if not r.matches]
        if diffs:
            lines += ["", "differences:"]
            lines += [
                f"  {r.op}{' (' + ', '.join(r.ops) + ')' if r.op == OTHER else ''}: {r.reason}"
                for r in diffs
            ]
        if self.unsupported:
            skipped = ", ".join(f"{op} x{n}" for op, n in sorted(self.unsupported.items()))
            lines += ["", f"fvcore skipped (no handler): {skipped}"]
        if self.convzoo_uncounted:
            missed = ", ".join(f"{op} x{n}" for op, n in sorted(self.convzoo_uncounted.items()))
            lines += [f"convzoo has no formula for: {missed}"]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def op_counts(report: Report) -> Counter[tuple[str, str]]:
    """``{(kind, op name): count}`` from a report's per-operator totals
    (:meth:`~convzoo.analysis.report.Report.by_operator`): MACs of "macs" ops, element-wise
    ops of "elementwise" ops and the element-wise work fused into a MAC kernel (as
    ``("elementwise", op)``), calls of "uncounted" ops; free ops are left out."""
    counts: Counter[tuple[str, str]] = Counter()
    for o in report.by_operator():
        if o.kind == "uncounted":
            counts[(o.kind, o.op)] += o.calls
        elif o.kind == "macs":
            counts[(o.kind, o.op)] += o.macs
            if o.elementwise_ops:
                counts[("elementwise", o.op)] += o.elementwise_ops
        elif o.kind == "elementwise":
            counts[(o.kind, o.op)] += o.elementwise_ops
    return counts


def convzoo_report(
    model: nn.Module, input_size: Sequence[int], max_memory: int | None = None
) -> Report:
    """:func:`~convzoo.analysis.analyzer.analyze` of one eval-mode forward at batch 1
    without receptive fields: on meta tensors (so fused eval-only fast paths such as
    ``_native_multi_head_attention`` are not taken either), with its real-tensor fallback
    (within ``max_memory`` bytes; None: the default budget)."""
    return analyze(model, tuple(input_size), receptive_fields=False, max_memory=max_memory)


def fvcore_by_op(
    model: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> tuple[Counter[str], Counter[str], set[str]]:
    """fvcore's ``by_operator()``, ``unsupported_ops()`` and its ignored op names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit deprecation and tracer warnings
        from fvcore.nn import FlopCountAnalysis

        with torch.no_grad():
            analysis = FlopCountAnalysis(private_copy(model, meta=False).eval(), inputs)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            by_op = Counter({k: int(v) for k, v in analysis.by_operator().items()})
            unsupported = Counter(analysis.unsupported_ops())
    return by_op, unsupported, set(getattr(analysis, "_ignored_ops", ()))


def _group_of(name: str, side: str) -> Group | None:
    for group in GROUPS:
        if name in (group.aten if side == "aten" else group.fvcore):
            return group
    return None


def _jit_groups(op: str) -> list[str]:
    """The op types a jit op fvcore skipped belongs to (one op may fuse several)."""
    return [g.name for g in GROUPS if g.jit and op.startswith(g.jit)] or [OTHER]


def compare(
    ours: Counter[tuple[str, str]],
    theirs: Counter[str],
    unsupported: Counter[str],
    ignored: set[str],
) -> list[OpComparison]:
    """Pair convzoo's per-op counts with fvcore's by op type, with a reason per difference.

    Pure: ``ours`` maps ``(kind, aten op name)`` to counts, ``theirs`` is fvcore's
    ``by_operator()``, ``unsupported`` its ``unsupported_ops()`` and ``ignored`` the jit
    op names it skips on purpose.
    """
    rows: dict[str, OpComparison] = {}
    members: dict[str, set[str]] = {}

    def row(name: str, unit: str) -> OpComparison:
        return rows.setdefault(name, OpComparison(name, unit, 0, 0))

    for (kind, op), count in ours.items():
        if kind == "uncounted":
            continue
        group = _group_of(op, "aten")
        unit = MACS if kind == "macs" else ELEMENTWISE
        name = group.name if group else (op if kind == "macs" else OTHER)
        row(name, group.unit if group else unit).convzoo += count
        members.setdefault(name, set()).add(op)
    for op, count in theirs.items():
        group = _group_of(op, "fvcore")
        row(group.name if group else op, group.unit if group else "-").fvcore += count
    skipped: dict[str, list[str]] = {}
    for op, calls in sorted(unsupported.items()):
        for name in _jit_groups(op):
            skipped.setdefault(name, []).append(f"{op} x{calls}")
    static = {g.name: g.reason for g in GROUPS}
    for r in rows.values():
        if not r.matches:
            r.reason = _reason(
                r,
                static.get(r.op, ""),
                skipped.get(r.op, []),
                sorted(f"aten::{op}" for op in members.get(r.op, ()) if f"aten::{op}" in ignored),
            )
    for name, names in members.items():
        rows[name].ops = sorted(names)
    order = [g.name for g in GROUPS]
    return sorted(
        rows.values(),
        key=lambda r: (order.index(r.op) if r.op in order else len(order), r.op == OTHER, r.op),
    )


def _reason(r: OpComparison, static: str, skipped: list[str], ignored: list[str]) -> str:
    if r.convzoo == 0:
        return "convzoo counts no arithmetic for this op type (free or uncounted op)"
    parts = []
    if ignored:
        parts.append(f"fvcore ignores on purpose: {', '.join(ignored)}")
    if skipped:
        parts.append(f"fvcore has no handler, skipped with a warning: {', '.join(skipped)}")
    if not parts:
        parts.append(static or "the two tools count this op type differently")
    return "; ".join(parts)


def compare_fvcore(
    model: nn.Module, input_size: Sequence[int], max_memory: int | None = None
) -> FvcoreCheck:
    """Count with convzoo and with fvcore's ``FlopCountAnalysis`` at batch 1, op type by type.

    ``input_size`` is ``(C, H, W)`` (or any per-sample shape). Both run in eval mode under
    ``torch.no_grad`` (fvcore on a real random input, convzoo on meta tensors like
    ``analyze``); the model's mode flags are restored. fvcore's real forward is refused
    above ``max_memory`` bytes (None: the default budget) before it runs
    (:func:`~convzoo.analysis.guard.check_forward`: fvcore's ``torch.jit.trace`` cannot
    run under the guard itself).
    """
    try:
        report = convzoo_report(model, input_size, max_memory)
    except Exception as exc:
        raise ConvZooError(
            f"the model fails for input {tuple(input_size)}: {first_line(exc)}"
        ) from None
    shape = (1, *input_size)
    check_forward(model, shape, max_memory, "--check-fvcore (fvcore's real forward)")
    inputs = (torch.randn(shape),)
    try:
        with user_code("the model's forward under fvcore"):
            theirs, unsupported, ignored = fvcore_by_op(materialize(model), inputs)
    except ConvZooError:
        raise
    except Exception as exc:
        raise ConvZooError(f"fvcore cannot analyse the model: {first_line(exc)}") from None
    ours = op_counts(report)
    return FvcoreCheck(
        input_shape=list(inputs[0].shape),
        convzoo_macs=report.totals.macs,
        convzoo_elementwise=report.totals.elementwise_ops,
        fvcore_total=sum(theirs.values()),
        rows=compare(ours, theirs, unsupported, ignored),
        unsupported=dict(unsupported),
        convzoo_uncounted={op: n for (kind, op), n in ours.items() if kind == "uncounted"},
        notes=report.notes,
    )
