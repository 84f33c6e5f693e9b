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

import torch
from torch import nn

from convzoo.analysis import isolation, recurrent
from convzoo.analysis.counting import Tracer
from convzoo.analysis.guard import Guard
from convzoo.analysis.memory import OPTIMIZER_STATES, SavedBytes, storage_keys, trainable_bytes
from convzoo.analysis.report import Report, TrainingMemory


def saved_tensors(
    model: nn.Module, args: tuple, guard: Guard | None = None
) -> tuple[int, dict[str, int]]:
    """Bytes autograd saves in one train-mode forward of ``model`` (a private copy: its mode
    and batch-norm statistics change), in total and per module first name (subtree sums,
    :mod:`convzoo.analysis.owners`).

    ``args`` are the inputs (meta or real, ``Tensor[B, C, H, W]`` for an image model);
    ``guard`` holds its real tensors to the memory budget (None: unguarded). On meta
    tensors, an LSTM saves what the CPU's fused kernel saves (:mod:`.recurrent`).
    """
    meta = all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])
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


def attach(
    report: Report, model: nn.Module, args: tuple, optimizer: str, guard: Guard | None
) -> None:
    """Fill ``report.training`` and every row's ``saved_bytes`` for one ``optimizer`` step."""
    total, per_name = saved_tensors(model, args, guard)
    report.training = training_memory(model, optimizer, total)
    for row in report.layers:
        row.saved_bytes = per_name.get(row.name, 0)
