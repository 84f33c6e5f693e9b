"""``analyze(model, input_size) -> Report``: one traced forward, on meta tensors by default.

The forward runs on a private copy of the model (:mod:`convzoo.analysis.isolation`), never
on the model itself: its parameters, buffers, plain attributes, hooks, mode flags and lazy
state are the same object-for-object and bit-for-bit afterwards, whatever happens inside,
and other threads may run or analyse the same model meanwhile.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from convzoo import limits
from convzoo.analysis import adapters, inputs, isolation, memory, owners, training
from convzoo.analysis.counting import ModuleStats, Tracer
from convzoo.analysis.guard import Guard, check_precision
from convzoo.analysis.receptive import Field
from convzoo.analysis.report import (
    LayerStats,
    OperatorStats,
    ReceptiveField,
    Report,
    Totals,
    UncountedOp,
)
from convzoo.errors import ConvZooError, UserCodeError, first_line
from convzoo.real import materialize


class AnalysisError(ConvZooError):
    """The model cannot run on the given input (names the layer where it failed)."""


def _check_options(batch_size: Any, dtype: Any, max_memory: Any, flags: dict[str, Any]) -> None:
    """Type-strict keyword checks: one-line errors instead of failures deep in torch.

    ``batch_size`` is a size (at most :data:`~convzoo.limits.MAX_SIZE`, as ``--batch``);
    ``dtype`` is floating or complex: it casts the model's floating parameters and the inputs
    made from sizes, which an integer dtype cannot (integer inputs of a token model are
    given as example tensors, whose dtype is kept).
    """
    limits.check_size(batch_size, "batch_size")
    if dtype is not None and not (
        isinstance(dtype, torch.dtype) and (dtype.is_floating_point or dtype.is_complex)
    ):
        shown = dtype if isinstance(dtype, torch.dtype) else inputs.describe_size(dtype)
        raise ConvZooError(
            "dtype must be a torch.dtype, floating or complex, such as torch.float16 (integer "
            f"inputs are given as example tensors), got {shown}"
        )
    if max_memory is not None and (
        not isinstance(max_memory, int) or isinstance(max_memory, bool) or max_memory < 1
    ):
        raise ConvZooError(
            f"max_memory must be a positive int of bytes, got {inputs.describe_size(max_memory)}"
        )
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ConvZooError(f"{name} must be True or False, got {inputs.describe_size(value)}")


def _model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating (or complex) parameter or buffer (float32 if
    none)."""
    for t in itertools.chain(model.parameters(), model.buffers()):  # stops at the first
        if (t.is_floating_point() or t.is_complex()) and not isolation.is_lazy(t):
            return t.dtype
    return torch.float32


def _device(model: nn.Module) -> torch.device:
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.device.type != "meta":
            return t.device
    return torch.device("cpu")


def _trace(
    model: nn.Module,
    args: tuple,
    tracer: Tracer,
    train: bool,
) -> None:
    """Run ``model(*args)`` (already a private copy) under ``tracer``. What the forward
    raises leaves with the failing layer attached: an ``Exception`` as it is (on meta
    tensors, the cue for the real-tensor fallback), a ``sys.exit`` or other
    ``BaseException`` as :class:`~convzoo.errors.UserCodeError`, which falls back to
    nothing; ``KeyboardInterrupt`` passes untouched."""
    model.train(train)
    tracer.notes.extend(adapters.adapt(model))
    if tracer.with_fields:
        for t in tree_flatten(list(args))[0]:
            if isinstance(t, torch.Tensor) and not t.is_nested and 3 <= t.dim() <= 5:
                tracer.set_field(t, Field.identity(t.shape[2:]))  # (N, C, L[, H[, W]])
    with torch.no_grad(), isolation.rng_kept():
        try:
            tracer.run(model, args)
        except Exception as exc:  # UserCodeError included (Tracer.run converts exits)
            exc.convzoo_layer = tracer.failed_in  # type: ignore[attr-defined]
            raise


def _type_name(module: nn.Module) -> str:
    if isinstance(module, torch.jit.ScriptModule):
        return f"{getattr(module, 'original_name', 'ScriptModule')} (TorchScript)"
    return getattr(type(module), "registry_name", type(module).__name__)


def analyze(
    model: nn.Module | dict | str | Path,
    input_size: Any = None,
    *,
    batch_size: int = 1,
    dtype: torch.dtype | None = None,
    meta: bool = True,
    train: bool = False,
    receptive_fields: bool = True,
    max_memory: int | None = None,
    optimizer: str | None = None,
) -> Report:
    """Params, MACs, shapes, receptive fields and activation memory of ``model``.

    ``model`` is an ``nn.Module`` (TorchScript included), a config dict or path, or any
    target string of ``convzoo report`` (:mod:`convzoo.targets`: ``"resnet18"``,
    ``"configs/resnet18.yaml"``, ``"torchvision:resnet18"``, ``"timm:resnet18"``,
    ``"file.py:Net"``, ``"package.module:factory"``), built with seeded random weights.
    ``input_size`` is ``(C, H, W)`` (the batch is ``batch_size``), a tuple of sizes for
    several inputs, a list of unbatched sizes for a list argument (detection models:
    ``[[(3, 480, 640)]]``) or example tensors (see :mod:`convzoo.analysis.inputs`); models
    built from configs default to their config's input, targets to theirs. ``dtype``
    (floating or complex) casts the model's floating parameters and buffers and the inputs
    (default: the model's own dtype; integer inputs, e.g. a token model's, are given as
    example tensors). The limits hold as on the command line: ``batch_size`` and each size
    at most :data:`~convzoo.limits.MAX_SIZE`, one input at most
    :data:`~convzoo.limits.MAX_INPUT_ELEMENTS` elements, batch included.

    Runs on meta tensors (no arithmetic, any input size costs the same) and falls back to
    real tensors, saying so in ``notes``, when the model cannot run on meta; the fallback
    is refused above ``max_memory`` bytes (default :data:`convzoo.limits.MEMORY_BUDGET`),
    estimated before it starts and checked before each op allocates (real tensors a forward
    makes on the meta path, ``torch.ones(...)``, count too); in float16 on the CPU it is
    refused up front (too slow, kernels missing). Counts are for eval mode unless
    ``train=True``. ``receptive_fields=False`` skips the field propagation.
    ``optimizer`` ("sgd", "sgd-momentum", "adam", "adamw") adds the memory of one training
    step (``report.training`` and each row's ``saved_bytes``, from a second forward in train
    mode, see :mod:`convzoo.analysis.memory`); ``totals.peak_activation_bytes`` is the
    inference peak of live activations by tensor liveness. The model is
    never changed: the forward runs on a private copy, and the global random generator is
    left as it was. Nor does the model's code end the caller's program: ``sys.exit`` or any
    other ``BaseException`` raised in its forward (hooks included) becomes
    :class:`AnalysisError` naming the layer, as an ordinary exception does (no real-tensor
    fallback is tried for it); only ``KeyboardInterrupt`` passes as it is.
    """
    _check_options(
        batch_size,
        dtype,
        max_memory,
        {"meta": meta, "train": train, "receptive_fields": receptive_fields},
    )
    memory.check_optimizer(optimizer)
    if isinstance(model, nn.Module):  # never str(model): a module's repr is its whole tree
        target = getattr(model, "config_name", None) or type(model).__name__
    elif isinstance(model, str):  # any CLI target: the one resolver the CLI uses
        from convzoo.targets import resolve

        one = (tuple(input_size),) if inputs.is_size(input_size) else ()
        found = resolve(model, one, input_needed=False)
        model, target = found.model, found.name
        if input_size is None and found.input_size:
            sizes = found.input_size
            input_size = sizes[0] if len(sizes) == 1 else sizes
    else:  # a config dict or file
        from convzoo.builder import build

        size = tuple(input_size) if inputs.is_size(input_size) else None
        built = build(model, size, meta=True)  # counting needs no weights
        model, target = built, built.config_name
    if input_size is None:
        input_size = getattr(model, "input_size", None) or None  # () for a sliced Model
        if input_size is None:
            raise ConvZooError(
                f"{target} has no default input: analyze needs input_size, e.g. (3, 224, 224)"
            )
    with isolation.gc_paused():
        run = trace(
            model,
            input_size,
            batch_size=batch_size,
            dtype=dtype,
            meta=meta,
            train=train,
            receptive_fields=receptive_fields,
            max_memory=max_memory,
        )
        report = _report(run, target)
        if optimizer is not None:
            try:
                training.attach(report, run.model, run.args, optimizer, run.tracer.guard)
            except Exception as exc:  # e.g. batch norm over one value per channel, sys.exit
                if isinstance(exc, ConvZooError) and not isinstance(exc, UserCodeError):
                    raise  # worded already (a refused budget)
                failure = _failure(exc, run.args)
                raise AnalysisError(f"in train mode (for the training step): {failure}") from None
        del run  # freed by reference counting before the collector runs again
    return report


@dataclass
class Traced:
    """One traced forward: the private copy it ran on, its arguments, the tracer, notes."""

    model: nn.Module
    args: tuple
    tracer: Tracer
    notes: list[str]


def trace(
    model: nn.Module,
    input_size: Any,
    *,
    batch_size: int = 1,
    dtype: torch.dtype | None = None,
    meta: bool = True,
    train: bool = False,
    receptive_fields: bool = True,
    max_memory: int | None = None,
) -> Traced:
    """The forward behind :func:`analyze` (arguments as there, already checked): on meta
    tensors first, then on real tensors within the memory budget (a model held on the meta
    device runs as its real twin, :func:`convzoo.real.materialize`)."""
    make = inputs.spec(input_size, batch_size, dtype or _model_dtype(model))
    budget = limits.MEMORY_BUDGET if max_memory is None else max_memory
    notes: list[str] = []
    if meta:
        with isolation.gc_paused():  # meta tensors: cycles hold no real memory meanwhile
            clone = isolation.private_copy(model, dtype, meta=True)
            args = make("meta", dtype)
        # real tensors the forward makes of its own (torch.ones(...)) are held to the budget
        guard = Guard(budget, "the analysis (the forward makes real tensors of its own)")
        tracer = Tracer(fast=True, fields=receptive_fields, guard=guard)
        try:
            with isolation.gc_paused():
                _trace(clone, args, tracer, train)
            return Traced(clone, args, tracer, notes)
        except ConvZooError as exc:
            raise _failure(exc, args) from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {first_line(exc, 160)}"
            notes.append(f"ran on real tensors: the model cannot run on meta tensors ({reason})")
            # the weights, and the live activations up to where the meta forward stopped
            estimate = isolation.tensor_bytes(model, dtype) + tracer.memory.peak
            what = "the real-tensor fallback (its weights and the meta forward's activations)"
            limits.check_memory(estimate, budget, what)
    with isolation.gc_resumed():  # real tensors: let cycles holding them be collected
        return _real_trace(model, make, dtype, train, receptive_fields, budget, notes)


def _real_trace(
    model: nn.Module,
    make: Callable[..., tuple],
    dtype: torch.dtype | None,
    train: bool,
    receptive_fields: bool,
    budget: int,
    notes: list[str],
) -> Traced:
    """The real-tensor forward of :func:`trace`: every real tensor it makes (the model's
    real twin, :func:`convzoo.real.materialize`, its private copy, the inputs, every op's
    outputs and workspace) is sized and checked against the memory budget before it is
    allocated (:mod:`convzoo.analysis.guard`)."""
    check_precision(_device(model), dtype or _model_dtype(model), "the real-tensor forward")
    guard = Guard(budget, "the real-tensor fallback")
    with guard:
        model = materialize(model)
        clone = isolation.private_copy(model, dtype, meta=False)
        args = make(_device(model), dtype)
    tracer = Tracer(fast=False, fields=receptive_fields, guard=guard)
    try:
        _trace(clone, args, tracer, train)
    except Exception as exc:
        raise _failure(exc, args) from None
    return Traced(clone, args, tracer, notes)


def _failure(exc: Exception, args: tuple) -> AnalysisError:
    """One line: the inputs by shape (never a tensor's values), the layer, the first line."""
    layer = getattr(exc, "convzoo_layer", "")
    first = first_line(exc)
    where = f" in layer '{layer}'" if layer else ""
    return AnalysisError(f"model fails for input {inputs.describe(args)}{where}: {first}")


def _rows(named: owners.Named, tracer: Tracer, input_hw: Any) -> list[LayerStats]:
    """One row per name (:mod:`convzoo.analysis.owners`): an alias's row holds no counts and
    says whose it is; it shows its module's output shape and receptive field (the same
    module's output, not a cost)."""
    owned = owners.subtree_params(named)
    rows = []
    fields: dict[int, ReceptiveField] = {}  # a field shared by several rows: summarised once

    def summary(field: Any) -> ReceptiveField:
        if id(field) not in fields:
            fields[id(field)] = ReceptiveField.of(field, input_hw)  # frozen: safe to share
        return fields[id(field)]

    for name, module in named:
        alias = tracer.aliases.get(name)
        looks = tracer.stats.get(alias if alias is not None else name, ModuleStats())
        stats = ModuleStats() if alias is not None else looks
        rows.append(
            LayerStats(
                name=name,
                type=_type_name(module),
                depth=name.count(".") + 1 if name else 0,
                output_shape=looks.output_shape,
                params=owned.get(name, 0),
                macs=stats.macs,
                self_macs=stats.self_macs,
                elementwise_ops=stats.elementwise,
                receptive_field=None if looks.rf is None else summary(looks.rf),
                activation_bytes=stats.activation_bytes,
                calls=stats.calls,
                alias_of=alias,
            )
        )
    return rows


def _operators(tracer: Tracer, order: list[str]) -> list[OperatorStats]:
    """``tracer.per_op`` as rows, in module order (``named_modules``), then by op name."""
    rank = {name: i for i, name in reversed(list(enumerate(order)))}
    return [
        OperatorStats(module, op, t.kind, t.calls, t.macs, t.elementwise)
        for (module, op), t in sorted(
            tracer.per_op.items(), key=lambda item: (rank.get(item[0][0], len(rank)), item[0])
        )
    ]


def _report(run: Traced, target: str) -> Report:
    model, args, tracer, notes = run.model, run.args, run.tracer, run.notes
    tensors = [t for t in tree_flatten(list(args))[0] if isinstance(t, torch.Tensor)]
    tensors = [t for t in tensors if not t.is_nested]
    input_hw = tuple(tensors[0].shape[2:]) if tensors and 3 <= tensors[0].dim() <= 5 else None
    named = list(model.named_modules(remove_duplicate=False))
    rows = _rows(named, tracer, input_hw)
    params = [p for group in owners.parameter_owners(named).values() for p in group]
    root = tracer.stats.get("", ModuleStats())
    totals = Totals(
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=root.macs,
        elementwise_ops=root.elementwise,
        activation_bytes=root.activation_bytes,  # the leaves' outputs, as every row
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        peak_activation_bytes=tracer.memory.peak,
    )
    uncounted = [
        UncountedOp(op, module or "(model)", calls)
        for (op, module), calls in sorted(tracer.uncounted.items())
    ]
    return Report(
        target=target,
        input_shape=[list(t.shape) for t in tensors],
        totals=totals,
        output_shape=root.output_shape,
        receptive_field=rows[0].receptive_field if rows else None,
        layers=rows,
        operators=_operators(tracer, [row.name for row in rows]),
        uncounted_ops=uncounted,
        notes=notes + list(dict.fromkeys(tracer.notes)),
        fields_computed=tracer.with_fields,
    )
