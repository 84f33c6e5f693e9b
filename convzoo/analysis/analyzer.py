"""``analyze(model, input_size) -> Report``: one traced forward, on meta tensors by default."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from convzoo.analysis import formulas
from convzoo.analysis.counting import ModuleStats, Tracer
from convzoo.analysis.report import LayerStats, Report, UncountedOp
from convzoo.errors import ConvZooError

try:
    from convzoo.analysis.receptive import Field
except Exception:  # pragma: no cover
    Field = None  # type: ignore[assignment,misc]

InputSize = tuple[int, ...] | list[int]


class AnalysisError(ConvZooError):
    """The model cannot run on the given input (names the layer where it failed)."""


def _sizes(input_size: Any) -> list[tuple[int, ...]] | None:
    """Normalise ``(C, H, W)`` or a tuple of such sizes; None if these are example tensors."""
    if isinstance(input_size, torch.Tensor) or (
        isinstance(input_size, (tuple, list))
        and input_size
        and all(isinstance(t, torch.Tensor) for t in input_size)
    ):
        return None
    if (
        isinstance(input_size, (tuple, list))
        and input_size
        and all(isinstance(v, int) and not isinstance(v, bool) for v in input_size)
    ):
        sizes = [tuple(input_size)]
    elif (
        isinstance(input_size, (tuple, list))
        and input_size
        and all(isinstance(s, (tuple, list)) for s in input_size)
    ):
        sizes = [tuple(s) for s in input_size]
    else:
        raise ConvZooError(
            f"input_size must be (C, H, W), a tuple of sizes or example tensors, got {input_size!r}"
        )
    for s in sizes:
        if not s or not all(isinstance(v, int) and v > 0 for v in s):
            raise ConvZooError(f"input sizes must be positive ints, got {s!r}")
    return sizes


def _inputs(input_size: Any, batch: int, dtype: torch.dtype, device: str) -> list[torch.Tensor]:
    sizes = _sizes(input_size)
    if sizes is None:
        tensors = [input_size] if isinstance(input_size, torch.Tensor) else list(input_size)
        return [t.to(device=device) if device == "meta" else t for t in tensors]
    return [torch.zeros((batch, *s), dtype=dtype, device=device) for s in sizes]


def _state(model: nn.Module, dtype: torch.dtype, meta: bool) -> dict[str, torch.Tensor]:
    """Parameters and buffers to run with: meta copies, or clones of the buffers."""
    state = {}
    for name, t in [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]:
        if meta:
            cast = dtype if t.is_floating_point() else t.dtype
            state[name] = torch.empty(t.shape, dtype=cast, device="meta")
        elif not isinstance(t, nn.Parameter):
            state[name] = t.clone()  # running statistics must not change
    return state


@contextmanager
def _mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Run in train or eval mode, restoring every module's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.train(train)
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _trace(
    model: nn.Module,
    inputs: list[torch.Tensor],
    dtype: torch.dtype,
    meta: bool,
    train: bool,
    fields: bool = True,
) -> Tracer:
    tracer = Tracer(fast=meta, fields=fields)
    if Field is not None and fields:
        for t in inputs:
            if 3 <= t.dim() <= 5:  # (N, C, L), (N, C, H, W), (N, C, D, H, W)
                tracer.set_field(t, Field.identity(t.shape[2:]))
    state = _state(model, dtype, meta)
    with _mode(model, train), tracer.hooks(model), torch.no_grad(), tracer:
        try:
            functional_call(model, state, tuple(inputs))
        except Exception as exc:
            exc.convzoo_layer = tracer.failed_in  # type: ignore[attr-defined]
            raise
    return tracer


def _unique(params: Any) -> dict[int, nn.Parameter]:
    return {id(p): p for p in params}


def subtree_params(model: nn.Module) -> dict[str, int]:
    """Parameters of every module's subtree by qualified name, each tensor once per subtree
    (a tensor shared by two modules counts in both, and once in their common ancestors)."""
    seen: dict[str, set[int]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for name, p in model.named_parameters(remove_duplicate=False):
        parts = name.split(".")[:-1]
        for i in range(len(parts) + 1):
            prefix = ".".join(parts[:i])
            if id(p) not in seen[prefix]:
                seen[prefix].add(id(p))
                counts[prefix] += p.numel()
    return counts


def _type_name(module: nn.Module) -> str:
    return getattr(type(module), "registry_name", type(module).__name__)


def analyze(
    model: nn.Module | dict | str | Path,
    input_size: Any = None,
    *,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    meta: bool = True,
    train: bool = False,
    receptive_fields: bool = True,
) -> Report:
    """Params, MACs, shapes, receptive fields and activation memory of ``model``.

    ``model`` is an ``nn.Module``, a config dict or a config path; ``input_size`` is
    ``(C, H, W)`` (the batch is ``batch_size``), a tuple of sizes for several inputs, or
    example tensors; models built from configs default to their config's input. Runs on
    meta tensors (no arithmetic, no activation memory) and falls back to real tensors,
    saying so in ``notes``, when the model cannot run on meta. Counts are for eval mode
    (dropout off, batch norm with running statistics) unless ``train=True``; the model's
    own mode flags are restored. ``receptive_fields=False`` skips the field propagation
    (about half the time on a ResNet-50; every ``receptive_field`` is then None). The model
    is not changed.
    """
    target = str(model)
    if isinstance(model, nn.Module):
        target = getattr(model, "config_name", None) or type(model).__name__
    if not isinstance(model, nn.Module):
        from convzoo.builder import build

        model = build(model, tuple(input_size) if input_size is not None else None)
        target = getattr(model, "config_name", target)
    if input_size is None:
        input_size = getattr(model, "input_size", None) or None  # () for a sliced Model
        if input_size is None:
            raise ConvZooError("analyze needs input_size, e.g. (3, 224, 224)")
    notes: list[str] = []
    inputs = _inputs(input_size, batch_size, dtype, "meta" if meta else "cpu")
    tracer: Tracer | None = None
    try:
        tracer = _trace(model, inputs, dtype, meta, train, receptive_fields)
    except ConvZooError as exc:
        raise _failure(exc, input_size) from None
    except Exception as exc:
        if not meta:
            raise _failure(exc, input_size) from None
        reason = str(exc).splitlines()[0] if str(exc) else ""
        notes.append(
            f"ran on real tensors: the model cannot run on meta tensors "
            f"({type(exc).__name__}: {reason})"
        )
    if tracer is None:  # outside the except block: hooks read sys.exc_info()
        inputs = _inputs(input_size, batch_size, dtype, "cpu")
        try:
            tracer = _trace(model, inputs, dtype, False, train, receptive_fields)
        except Exception as exc:
            raise _failure(exc, input_size) from None
    return _report(model, target, inputs, tracer, notes)


def _failure(exc: Exception, input_size: Any) -> AnalysisError:
    layer = getattr(exc, "convzoo_layer", "")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = f" in layer '{layer}'" if layer else ""
    return AnalysisError(f"model fails for input {tuple(input_size)}{where}: {first}")


def _report(
    model: nn.Module, target: str, inputs: list[torch.Tensor], tracer: Tracer, notes: list[str]
) -> Report:
    spatial = inputs[0].shape[2:] if inputs and 3 <= inputs[0].dim() <= 5 else None
    input_hw = tuple(spatial) if spatial is not None else None
    rows = []
    leaves = 0
    owned = subtree_params(model)
    for name, module in model.named_modules():
        stats = tracer.stats.get(name, ModuleStats())
        if not any(True for _ in module.children()):
            leaves += stats.activation_bytes
        field = stats.rf.to_dict(input_hw) if stats.rf is not None else None
        rows.append(
            LayerStats(
                name=name,
                type=_type_name(module),
                depth=name.count(".") + 1 if name else 0,
                output_shape=stats.output_shape,
                params=owned.get(name, 0),
                macs=stats.macs,
                elementwise_ops=stats.elementwise,
                receptive_field=field,
                activation_bytes=stats.activation_bytes,
                calls=stats.calls,
            )
        )
    params = _unique(model.parameters()).values()
    root = tracer.stats.get("", ModuleStats())
    totals = {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "macs": root.macs,
        "flops": formulas.flops(root.macs),
        "elementwise_ops": root.elementwise,
        "activation_bytes": leaves,
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
    }
    uncounted = [
        UncountedOp(op, module or "(model)", calls)
        for (op, module), calls in sorted(tracer.uncounted.items())
    ]
    return Report(
        target=target,
        input_shape=[list(t.shape) for t in inputs],
        totals=totals,
        output_shape=root.output_shape,
        receptive_field=rows[0].receptive_field if rows else None,
        layers=rows,
        uncounted_ops=uncounted,
        complete=not uncounted,
        notes=notes + list(dict.fromkeys(tracer.notes)),
    )
