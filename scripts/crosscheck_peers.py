"""Cross-check convzoo's params and MACs on every torchvision classifier against its peers.

For each model of ``torchvision.models.list_models(module=torchvision.models)``
(``weights=None``, ``init_weights=False`` where the builder takes it, eval mode, batch 1,
input ``3 x S x S`` with ``S`` the crop size of the model's documented default transforms,
read from the weights enum without downloading; ViTs are built for that size):

* params: ``convzoo.analyze`` == the sum of the model's unique parameters == the
  documented ``num_params`` of torchvision's weights;
* MACs: ``convzoo.analyze`` (meta tensors) == torchvision's documented GFLOPS (its
  ``_ops``: multiply-adds, 3 decimals) == ``FlopCounterMode`` FLOPs / 2 (a real forward
  under ``torch.no_grad``) == fvcore's conv + linear + matmul + einsum counts
  (:func:`convzoo.analysis.peers.compare_fvcore`); fvcore's total also holds its own
  norm and pooling counts, each checked against fvcore's per-element factor.

Each difference is attributed to named reasons whose amounts are computed exactly from
what the forward ran (hooks, a TorchFunctionMode, a TorchDispatchMode), never from the
counters' outputs; the rest is "unexplained" (exit status 1). Models over
``--real-max-gmacs`` (vit_h_14) are "meta-only": params and MACs against the documentation.

    python scripts/crosscheck_peers.py [--models a,b] [--output FILE] [--max-seconds S]
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from tabulate import tabulate
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

import convzoo
from convzoo.analysis import peers

aten = torch.ops.aten
REAL_MAX_GMACS = 400.0  # above: a real check takes minutes on 2 cores (vit_h_14: ~1 TMAC)
GFLOPS_ROUNDING = 500_000  # torchvision documents GFLOPS to 3 decimals: +- 0.0005e9 MACs
FAST_MHA = aten._native_multi_head_attention  # nn.MultiheadAttention's fused eval path
DROPPED_BY_WEIGHTS = {"googlenet": ("aux1", "aux2")}  # the builder drops them with weights
REAL = "real forward"


# -- models --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """A torchvision classifier: builder kwargs, input (C, H, W) and documented counts."""

    name: str
    input_size: tuple[int, int, int]
    kwargs: dict[str, Any]
    doc_params: int
    doc_gflops: float  # torchvision's "GFLOPS": billions of multiply-adds, 3 decimals


def _takes_init_weights(builder: Any) -> bool:
    module = sys.modules[builder.__module__]
    classes = [c for c in vars(module).values() if isinstance(c, type)]
    classes = [c for c in classes if issubclass(c, nn.Module) and c.__module__ == module.__name__]
    return any("init_weights" in inspect.signature(c).parameters for c in classes)


def specs(names: Sequence[str] | None = None) -> list[Spec]:
    """Specs of ``names`` (default: every classification model torchvision lists)."""
    known = torchvision.models.list_models(module=torchvision.models)
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise SystemExit(f"not torchvision classification models: {', '.join(unknown)}")
    out = []
    for name in names or known:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        size = int(weights.transforms.keywords["crop_size"])
        kwargs: dict[str, Any] = {}
        if _takes_init_weights(torchvision.models.get_model_builder(name)):
            kwargs["init_weights"] = False
        if name.startswith("vit_"):  # its position embedding fixes the input size
            kwargs["image_size"] = size
        meta = weights.meta
        out.append(Spec(name, (3, size, size), kwargs, meta["num_params"], meta["_ops"]))
    return out


@contextmanager
def empty_weights() -> Iterator[None]:
    """Create parameters on the meta device (no memory, no init); unlike
    ``torch.device("meta")`` this works for builders that compute with tensors (regnet)."""
    register = nn.Module.register_parameter

    def on_meta(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(self, name, param)

    nn.Module.register_parameter = on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


def build(spec: Spec, meta: bool) -> nn.Module:
    """The model in eval mode, its parameters on the meta device if ``meta``."""
    with warnings.catch_warnings(), ExitStack() as stack:
        warnings.simplefilter("ignore")
        if meta:
            stack.enter_context(empty_weights())
        model = torchvision.models.get_model(spec.name, weights=None, **spec.kwargs)
    return model.eval()


# -- comparisons -------------------------------------------------------------------------
@dataclass
class Reason:
    """Part of ``convzoo - peer`` attributed to one cause, computed independently."""

    text: str
    amount: int


@dataclass
class Comparison:
    """convzoo's count against one peer's, with the reasons for their difference."""

    peer: str
    quantity: str  # "params" or "MACs"
    convzoo: int
    peer_value: int
    reasons: list[Reason] = field(default_factory=list)
    tolerance: int = 0  # the peer's own rounding
    convention: bool = False  # the peer counts more than MACs by design (fvcore's total)

    @property
    def diff(self) -> int:
        return self.convzoo - self.peer_value

    @property
    def agrees(self) -> bool:
        return abs(self.diff) <= self.tolerance

    @property
    def unexplained(self) -> int:
        return 0 if self.agrees else self.diff - sum(r.amount for r in self.reasons)


@dataclass
class Result:
    spec: Spec
    mode: str  # REAL or "meta-only (params + convzoo MACs): <why>"
    params: int = 0
    macs: int = 0
    comparisons: list[Comparison] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    @property
    def status(self) -> str:
        if self.error or any(c.unexplained for c in self.comparisons):
            return "unexplained"
        if all(c.agrees for c in self.comparisons if not c.convention):
            return "agree"
        return "explained"


def unique_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def meta_comparisons(spec: Spec, model: nn.Module, report: Any) -> list[Comparison]:
    """Params against the model and the documentation; MACs against the documented GFLOPS."""
    params, macs = report.totals.params, report.totals.macs
    doc = Comparison("torchvision num_params", "params", params, spec.doc_params)
    parts = DROPPED_BY_WEIGHTS.get(spec.name, ())
    dropped = sum(unique_params(m) for n, m in model.named_children() if n in parts)
    if dropped:
        text = (
            f"weights=None keeps aux_logits=True: {' and '.join(parts)} (never run in eval) "
            "are built; the documented count is of the released weights, without them"
        )
        doc.reasons.append(Reason(text, dropped))
    gflops = round(spec.doc_gflops * 1e9)
    return [
        Comparison("sum of unique parameters", "params", params, unique_params(model)),
        doc,
        Comparison("torchvision GFLOPS", "MACs", macs, gflops, tolerance=GFLOPS_ROUNDING),
    ]


# -- what a real forward ran ---------------------------------------------------------------
LOGGED = {torch.einsum, F.batch_norm, F.layer_norm, F.group_norm, F.instance_norm}
LOGGED.add(F.adaptive_avg_pool2d)


class CallLog(TorchFunctionMode):
    """Records (function name, bound arguments) of the calls fvcore counts per call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in LOGGED:
            bound = inspect.signature(func).bind(*args, **kwargs)
            bound.apply_defaults()
            self.calls.append((func.__name__, dict(bound.arguments)))
        return func(*args, **kwargs)


class OpLog(TorchDispatchMode):
    """Counts aten op packets (an independent witness of what a forward ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[Any] = Counter()

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        self.calls[func.overloadpacket] += 1
        return func(*args, **(kwargs or {}))


@dataclass
class Forward:
    """What the real forwards (eval, ``torch.no_grad``) ran, and FlopCounterMode's total."""

    flops: int
    ops: OpLog
    calls: list[tuple[str, dict[str, Any]]]
    mha: list[tuple[nn.MultiheadAttention, torch.Size, torch.Size]]


def real_forward(model: nn.Module, x: torch.Tensor) -> Forward:
    """A forward under FlopCounterMode as it is used (no other mode: an active
    TorchFunctionMode turns nn.MultiheadAttention's fast path off), then one under CallLog."""
    mha: list[tuple[nn.MultiheadAttention, torch.Size, torch.Size]] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        query = args[0] if args else kwargs["query"]
        key = args[1] if len(args) > 1 else kwargs["key"]
        mha.append((module, query.shape, key.shape))  # type: ignore[arg-type]

    attention = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in attention]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter, OpLog() as log:
            model(x)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad(), CallLog() as calls:
        model(x)
    return Forward(counter.get_total_flops(), log, calls.calls, mha)


# -- reasons -------------------------------------------------------------------------------
def mha_macs(module: nn.MultiheadAttention, query: torch.Size, key: torch.Size) -> int:
    """One nn.MultiheadAttention call: q, k, v, out projections and the attention core."""
    assert module._qkv_same_embed_dim, "k/v projections assume kdim == vdim == embed_dim"
    e = module.embed_dim
    if len(query) == 2:  # unbatched (L, E)
        b, n, s = 1, query[0], key[0]
    else:
        b, n, s = (query[0], query[1], key[1]) if module.batch_first else (*query[1::-1], key[0])
    return b * (2 * n + 2 * s) * e * e + b * n * s * 2 * e  # Q K^T and softmax(.) V


def _index_sizes(equation: str, shapes: Sequence[Sequence[int]]) -> dict[str, int]:
    terms = equation.replace(" ", "").split("->")[0].split(",")
    return {c: n for t, s in zip(terms, shapes, strict=True) for c, n in zip(t, s, strict=True)}


def einsum_exact_macs(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """Multiply-adds of a two-operand einsum: the product of every index size."""
    return math.prod(_index_sizes(equation, shapes).values())


def fvcore_einsum_macs(equation: str, shapes: Sequence[Sequence[int]]) -> int | None:
    """fvcore's count of one einsum: exact for its two special equations, else numpy's
    ``einsum_path`` "Optimized FLOP count" (2 per multiply-add, plus 1) as printed
    (``%.3e``: 4 significant digits), halved and floored. None where not modelled."""
    eq = equation.replace(" ", "")
    eq = eq.translate(
        {ord(c): 97 + i for i, c in enumerate(dict.fromkeys(filter(str.isalpha, eq)))}
    )
    if eq == "abc,abd->acd":
        return math.prod(shapes[0]) * shapes[-1][-1]
    if eq == "abc,adc->adb":
        return math.prod(shapes[0]) * shapes[-1][1]
    if len(shapes) != 2 or "." in eq or "->" not in eq:
        return None
    sizes = _index_sizes(eq, shapes)
    cost = math.prod(sizes.values()) * (2 if set(sizes) - set(eq.split("->")[1]) else 1) + 1
    return int(math.floor(float(f"{cost:.3e}") / 2))  # numpy: sum(_flop_count) + 1, printed


def einsum_reason(calls: Sequence[tuple[str, dict[str, Any]]]) -> Reason | None:
    """exact - fvcore over every einsum call (None if none differs or one is not modelled)."""
    delta = 0
    for name, args in calls:
        if name == "einsum":
            equation, *operands = args["args"]
            if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
                operands = list(operands[0])
            shapes = [list(t.shape) for t in operands]
            theirs = fvcore_einsum_macs(equation, shapes)
            if theirs is None:
                return None  # whatever differs stays unexplained
            delta += einsum_exact_macs(equation, shapes) - theirs
    text = (
        "fvcore reads a generic einsum's count from numpy.einsum_path's printed 'Optimized "
        "FLOP count' (%.3e: 4 significant digits) and floors half of it"
    )
    return Reason(text, delta) if delta else None


def mha_reason(peer: str, fwd: Forward) -> Reason:
    text = (
        f"{peer} has no {'formula' if peer == 'FlopCounterMode' else 'handler'} for "
        "aten::_native_multi_head_attention (nn.MultiheadAttention's fused path in eval + "
        "no_grad on CPU) and drops it: B(2L+2S)E^2 projections + 2BLSE attention per call"
    )
    return Reason(text, sum(mha_macs(*call) for call in fwd.mha))


def flop_counter_comparison(macs: int, fwd: Forward) -> Comparison:
    """convzoo MACs against FlopCounterMode FLOPs / 2, with the ops it has no formula for."""
    comparison = Comparison("FlopCounterMode", "MACs", macs, fwd.flops // 2)
    fast = fwd.ops.calls[FAST_MHA]
    if fast and fast == len(fwd.mha) and FAST_MHA not in flop_registry:
        comparison.reasons.append(mha_reason("FlopCounterMode", fwd))
    return comparison


def fvcore_extra(name: str, args: dict[str, Any]) -> tuple[str, int, str] | None:
    """fvcore's count of one non-MAC call: (its peers.GROUPS row, count, the rule)."""
    if name == "einsum":
        return None
    x, affine = args["input"], args.get("weight") is not None
    if name == "batch_norm" and not args["training"]:
        rule = "fvcore counts eval batch norm as 2 flops per element (1 without affine)"
        return "batch_norm", x.numel() * (2 if affine else 1), rule
    if name in ("batch_norm", "layer_norm", "group_norm", "instance_norm"):
        rule = "fvcore counts a normalisation as 5 flops per element (4 without affine)"
        group = "batch_norm" if name == "batch_norm" else "layer/group/instance norm"
        return group, x.numel() * (5 if affine else 4), rule
    if name == "adaptive_avg_pool2d":
        rule = "fvcore counts adaptive average pooling as 1 flop per input element"
        return "adaptive avg pool / mean", x.numel(), rule
    return None


def fvcore_comparisons(macs: int, check: peers.FvcoreCheck, fwd: Forward) -> list[Comparison]:
    """convzoo MACs against compare_fvcore's convzoo side, fvcore's MAC op types and total."""
    ours, theirs = check.mac_totals()
    reasons = []
    skipped = check.unsupported.get(f"aten::{FAST_MHA.__name__}", 0)
    if skipped and skipped == len(fwd.mha):
        reasons.append(mha_reason("fvcore", fwd))
    einsum = einsum_reason(fwd.calls)
    reasons += [einsum] if einsum else []
    mac = Comparison("fvcore conv+linear+matmul", "MACs", macs, theirs, list(reasons))
    expected: Counter[tuple[str, str]] = Counter()
    for name, args in fwd.calls:
        extra = fvcore_extra(name, args)
        if extra is not None:
            expected[extra[0], extra[2]] += extra[1]
    fvcore_rows = Counter({r.op: r.fvcore for r in check.rows})
    for group in {g for g, _ in expected}:  # a group's rules are credited only if they add up
        rules = {rule: n for (g, rule), n in expected.items() if g == group}
        if fvcore_rows[group] == sum(rules.values()):
            reasons += [Reason(rule, -n) for rule, n in sorted(rules.items())]
    total = Comparison("fvcore total", "MACs", macs, check.fvcore_total, reasons, convention=True)
    return [Comparison("compare_fvcore's convzoo side", "MACs", macs, ours), mac, total]


# -- one model, the output -------------------------------------------------------------------
def check(spec: Spec, mode: str = REAL) -> Result:
    """Cross-check one model: meta analysis always, the peers' real forwards if ``mode`` is
    ``REAL``. An exception ends up in ``Result.error`` (and counts as unexplained)."""
    start = time.perf_counter()
    result = Result(spec, mode)
    try:
        meta_model = build(spec, meta=True)
        report = convzoo.analyze(meta_model, spec.input_size)
        result.params, result.macs = report.totals.params, report.totals.macs
        result.comparisons = meta_comparisons(spec, meta_model, report)
        if mode == REAL:
            model = build(spec, meta=False)
            x = torch.randn(1, *spec.input_size, generator=torch.Generator().manual_seed(0))
            fwd = real_forward(model, x)
            fvcore = peers.compare_fvcore(model, spec.input_size)
            result.comparisons.append(flop_counter_comparison(result.macs, fwd))
            result.comparisons += fvcore_comparisons(result.macs, fvcore, fwd)
    except Exception as exc:  # noqa: BLE001 - reported per model, the run goes on
        lines = str(exc).strip().splitlines()
        result.error = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    result.seconds = time.perf_counter() - start
    return result


def _reasons(c: Comparison) -> str:
    parts = [f"{r.text} [{r.amount:+,}]" for r in c.reasons]
    return "; ".join(parts + ([f"UNEXPLAINED [{c.unexplained:+,}]"] if c.unexplained else []))


def summary(results: Sequence[Result]) -> str:
    status = Counter(r.status for r in results)
    real = sum(r.mode == REAL for r in results)
    return (
        f"{len(results)} models cross-checked ({real} with real forwards, {len(results) - real}"
        f" meta-only): {status['agree']} agree exactly, {status['explained']} differ with "
        f"explained reasons, {status['unexplained']} unexplained"
    )


def render(results: Sequence[Result]) -> str:
    """Markdown: the disagreements, fvcore's extra counts by reason, every model, summary."""
    gh: dict[str, Any] = {"tablefmt": "github", "disable_numparse": True}
    rows = [
        [r.spec.name, c.peer, c.quantity, f"{c.convzoo:,}", f"{c.peer_value:,}", f"{c.diff:+,}"]
        + [_reasons(c)]
        for r in results
        for c in r.comparisons
        if not c.agrees and not c.convention
    ]
    rows += [[r.spec.name, "-", "-", "-", "-", "-", f"ERROR {r.error}"] for r in results if r.error]
    head = ["model", "peer", "quantity", "convzoo", "peer", "convzoo - peer", "reason [amount]"]
    out = ["## Disagreements", "", tabulate(rows, head, **gh) if rows else "none", ""]
    extra: dict[str, list[int]] = {}
    for c in (c for r in results for c in r.comparisons if c.convention):
        for reason in c.reasons:
            extra.setdefault(reason.text, []).append(reason.amount)
        if c.unexplained:
            extra.setdefault("UNEXPLAINED", []).append(c.unexplained)
    table = [[text, len(a), f"{sum(a):+,}"] for text, a in sorted(extra.items())]
    out += ["## fvcore total - convzoo MACs, by reason", ""]
    out += [tabulate(table, ["reason", "models", "sum of amounts"], **gh), ""]
    models = [
        [r.spec.name, "x".join(map(str, r.spec.input_size)), f"{r.params:,}", f"{r.macs:,}"]
        + [r.status, r.mode, f"{r.seconds:.1f}"]
        for r in results
    ]
    head = ["model", "input", "params", "MACs", "status", "checked with", "s"]
    return "\n".join([*out, "## Models", "", tabulate(models, head, **gh), "", summary(results)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: all)")
    parser.add_argument("--output", help="also write the markdown to this file")
    parser.add_argument("--max-seconds", type=float, help="no real forwards after this")
    parser.add_argument("--real-max-gmacs", type=float, default=REAL_MAX_GMACS)
    args = parser.parse_args(argv)
    start, results = time.perf_counter(), []
    for spec in specs(args.models.split(",") if args.models else None):
        mode, why = REAL, ""
        if spec.doc_gflops > args.real_max_gmacs:
            why = f"{spec.doc_gflops:.0f} GMACs > --real-max-gmacs {args.real_max_gmacs:g}"
        elif args.max_seconds is not None and time.perf_counter() - start > args.max_seconds:
            why = f"--max-seconds {args.max_seconds:g} spent"
        if why:
            mode = f"meta-only (params + convzoo MACs): {why}"
        results.append(check(spec, mode))
        print(f"{spec.name}: {results[-1].status} ({results[-1].seconds:.1f} s)", file=sys.stderr)
    text = render(results)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 1 if any(r.status == "unexplained" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
