"""Memory of one training step: a second forward of the traced copy, in train mode with
gradients on, counting what autograd saves for backward (definitions in
:mod:`convzoo.analysis.memory`).

It runs only when ``analyze(..., optimizer=...)`` asks for it, on the same private copy and
inputs as the first pass (meta tensors unless the model needed the real-tensor fallback, in
which case the same memory budget guards it). Train mode is always used here, whatever
``train=`` says for the MAC counts: batch norm then saves batch statistics and dropout its
masks, as in a real step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

import torch
from torch import nn

from convzoo.analysis import isolation, recurrent
from convzoo.analysis.backward import StepTracer
from convzoo.analysis.counting import Tracer
from convzoo.analysis.guard import Guard
from convzoo.analysis.memory import (
    OPTIMIZER_OPS,
    OPTIMIZER_STATES,
    SavedBytes,
    storage_keys,
    trainable_bytes,
)
from convzoo.analysis.report import CheckpointCost, Report, TrainingMemory
from convzoo.errors import ConvZooError, first_line


def saved_tensors(
    model: nn.Module, args: tuple, guard: Guard | None = None, tracer: Tracer | None = None
) -> tuple[int, dict[str, int]]:
    """Bytes autograd saves in one train-mode forward of ``model`` (a private copy: its mode
    and batch-norm statistics change), in total and per module first name (subtree sums,
    :mod:`convzoo.analysis.owners`).

    ``args`` are the inputs (meta or real, ``Tensor[B, C, H, W]`` for an image model);
    ``guard`` holds its real tensors to the memory budget (None: unguarded). On meta
    tensors, an LSTM saves what the CPU's fused kernel saves (:mod:`.recurrent`);
    ``tracer`` runs the forward (default: a new :class:`Tracer`, without fields).
    """
    meta = on_meta(model)
    if tracer is None:
        tracer = Tracer(fast=meta, fields=False, guard=guard)
    own = storage_keys([*model.parameters(), *model.buffers()])
    saved = SavedBytes(own, tracer.owner_names)
    model.train(True)
    kernels = recurrent.cpu_kernel_saves(model) if meta else contextlib.nullcontext()
    with torch.enable_grad(), isolation.rng_kept(), kernels, saved:
        try:
            tracer.run(model, args)
        except Exception as exc:
            exc.convzoo_layer = tracer.failed_in  # type: ignore[attr-defined]
            raise
    return saved.total, dict(saved.by_name)


def on_meta(model: nn.Module) -> bool:
    """Whether all of ``model``'s parameters and buffers are meta tensors."""
    return all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])


def training_memory(model: nn.Module, optimizer: str, saved: int) -> TrainingMemory:
    """Parameters, gradients and ``optimizer`` state of ``model``, plus ``saved`` bytes."""
    params, trainable = trainable_bytes(model)
    return TrainingMemory(
        optimizer=optimizer,
        param_bytes=params,
        gradient_bytes=trainable,
        optimizer_bytes=OPTIMIZER_STATES[optimizer] * trainable,
        saved_bytes=saved,
    )


def optimizer_ops(model: nn.Module, optimizer: str) -> int:
    """Element-wise ops of one ``optimizer`` step over ``model``'s trainable parameters
    (each shared tensor once), :data:`~convzoo.analysis.memory.OPTIMIZER_OPS`."""
    per_value, per_tensor = OPTIMIZER_OPS[optimizer]
    trainable = {id(p): p for p in model.parameters() if p.requires_grad}.values()
    return per_value * sum(p.numel() for p in trainable) + per_tensor * len(trainable)


def step(
    model: nn.Module,
    args: tuple,
    guard: Guard | None,
    checkpoint: Collection[str] = (),
    input_grad: bool = False,
) -> tuple[int, dict[str, int], StepTracer]:
    """One training step's forward and backward on ``model`` (the private copy):
    (saved bytes, saved bytes per module name, the tracer with the counts), the modules
    named in ``checkpoint`` run under activation checkpointing; with ``input_grad`` the
    floating inputs need gradients (as a layer's inside a network)."""
    if input_grad:
        args = tuple(
            a.detach().requires_grad_()
            if isinstance(a, torch.Tensor) and a.is_floating_point()
            else a
            for a in args
        )
    tracer = StepTracer(fast=on_meta(model), guard=guard, checkpoint=checkpoint)
    total, per_name = saved_tensors(model, args, guard, tracer)
    with torch.enable_grad(), isolation.rng_kept():
        try:
            tracer.backward(model)
        except ConvZooError:
            raise  # a refused budget
        except Exception as exc:  # the memory figures stand; the backward's are missing
            tracer.grad.failure = f"{type(exc).__name__}: {first_line(exc, 160)}"
    return total, per_name, tracer


def attach(
    report: Report,
    model: nn.Module,
    args: tuple,
    optimizer: str,
    guard: Guard | None,
    checkpoint: Collection[str] = (),
    input_grad: bool = False,
) -> None:
    """Fill ``report.training`` and every row's ``saved_bytes`` and ``backward_macs`` for
    one ``optimizer`` step: a train-mode forward and autograd's backward
    (:class:`~convzoo.analysis.backward.StepTracer`) on the private copy; with the modules
    named in ``checkpoint`` checkpointed, after a plain step for the comparison."""
    total, per_name, tracer = step(model, args, guard, (), input_grad)
    plain = per_name
    if checkpoint:
        total, per_name, tracer = step(model, args, guard, checkpoint, input_grad)
    grad, root = tracer.grad, tracer.stats[""]
    cost = training_memory(model, optimizer, total)
    cost.forward_macs, cost.forward_elementwise_ops = root.macs, root.elementwise
    cost.backward_macs, cost.backward_elementwise_ops = grad.macs[""], grad.elementwise[""]
    cost.recompute_macs = grad.recompute_macs
    cost.optimizer_ops = optimizer_ops(model, optimizer)
    cost.operators = grad.operators([row.name for row in report.layers])
    cost.checkpoints = [
        CheckpointCost(
            name,
            plain.get(name, 0),
            per_name.get(name, 0) + tracer.kept[name],
            grad.recompute[name],
        )
        for name in checkpoint
    ]
    report.training = cost
    for row in report.layers:
        row.saved_bytes = per_name.get(row.name, 0)
        row.backward_macs = grad.macs[row.name]
    for name in sorted(set(checkpoint) - tracer.wrapped):
        report.notes.append(
            f"checkpoint: {name} ran without a checkpoint (a module with forward hooks of its "
            "own, or TorchScript, is not wrapped)"
        )
    if grad.failure:
        report.notes.append(f"backward: could not run, its MACs are not counted ({grad.failure})")
    for (op, module), calls in sorted(grad.uncounted.items()):
        report.notes.append(f"backward: {op} in {module or '(model)'} not counted ({calls} calls)")
