"""``init_check(model, input_size)``: how a model trains at initialisation.

One forward and one backward of a seeded random batch (``Tensor[B, *input_size]``, standard
normal) through a private copy of the model (the user's model is never changed, not even
its batch-norm statistics), then: which units of a layer are symmetric, which activations
are dead or saturated, and the signal through depth (:mod:`.findings` defines each).

The backward is that of the loss ``sum(output * G)``, ``G`` a seeded standard normal tensor
of the output's shape: the gradient a random regression target gives, whatever the scale
of the output (even an all-zero one). Real tensors are held to the memory budget: the step
is rehearsed on meta tensors first, then every real op is checked before it allocates
(:mod:`convzoo.analysis.guard`). The same model, input and seed give the same report.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map_only

from convzoo.analysis import inputs
from convzoo.analysis.guard import Guard, rehearse
from convzoo.analysis.isolation import private_copy
from convzoo.errors import ConvZooError, first_line, user_code
from convzoo.initcheck import findings as F
from convzoo.initcheck.inits import check_init, reinitialise
from convzoo.initcheck.record import Recorder
from convzoo.initcheck.report import InitReport, LayerSignal
from convzoo.initcheck.units import units_of
from convzoo.limits import check_size
from convzoo.real import SEED, materialize, seeded_rng

BATCH = 8
"""The default batch: enough samples for a unit to be dead "for the whole batch" to mean
something, small enough to be quick."""
MAX_BATCH = 4096
WORK = "init-check (one forward and backward on real tensors)"


def init_check(
    model: nn.Module,
    input_size: Any = None,
    *,
    batch_size: int = BATCH,
    init: str | None = None,
    train: bool = True,
    seed: int = SEED,
    max_memory: int | None = None,
    name: str | None = None,
) -> InitReport:
    """Check ``model`` at initialisation on a random batch (see the module docstring).

    ``input_size``: ``(C, H, W)`` or a tuple of sizes (one per input), as for
    :func:`convzoo.analyze`; default: the model's ``input_size`` (a config's). ``init``: one
    of :data:`~convzoo.initcheck.inits.INITS` applied to the copy first (None: the model's
    own weights). ``train``: train mode (batch norm on batch statistics, dropout on) or
    eval mode. A model on the meta device (a config built with ``meta=True``) runs as its
    real twin with seeded weights (:func:`convzoo.real.materialize`).

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    >>> report = init_check(net, (3, 8, 8), init="zeros")
    >>> [(f.kind, f.layer, f.units) for f in report.findings]
    [('symmetric', '0', 4), ('dead', '1', 4), ('separated', '2', 2)]
    """
    check_size(batch_size, "batch_size", MAX_BATCH)
    init = None if init is None else check_init(init)
    if input_size is None:
        input_size = getattr(model, "input_size", None)
        if input_size is None:
            raise ConvZooError("init_check needs input_size, e.g. (3, 224, 224)")
    floating = (p.dtype for p in model.parameters() if p.is_floating_point())
    make = inputs.spec(input_size, batch_size, next(floating, torch.float32))  # the weights'
    rehearsed = _rehearse(model, make, train, max_memory)
    guard = Guard(max_memory, WORK)
    with seeded_rng(seed):
        with guard:
            real = materialize(model)
            clone = private_copy(real, meta=False)
            if init is not None:
                reinitialise(clone, init)
            clone.train(train)
            args = tree_map_only(torch.Tensor, _random, make(_device(real), None))
        recorder = Recorder(clone)
        with guard if rehearsed is None else contextlib.nullcontext():  # fast when rehearsed
            _step(clone, args, recorder)
    report = InitReport(
        name or getattr(model, "config_name", None) or type(model).__name__,
        [tuple(t.shape) for t in tree_flatten(list(args))[0] if isinstance(t, torch.Tensor)],
        "train" if train else "eval",
        init,
        seed,
    )
    with guard:  # the gradients made unguarded count from here on
        guard.watch([p.grad for p in clone.parameters() if p.grad is not None])
        _fill(report, clone, recorder)
    return report


def _device(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _normal(like: torch.Tensor) -> torch.Tensor:
    """``Tensor[like.shape]`` from N(0, 1), drawn on the CPU generator (on meta: no draw)."""
    if like.is_meta:
        return torch.empty(like.shape, dtype=like.dtype, device="meta")
    return torch.randn(like.shape, dtype=like.dtype).to(like.device)


def _random(t: torch.Tensor) -> torch.Tensor:
    """A floating input drawn from N(0, 1); others as made (zeros: valid ids and masks)."""
    return _normal(t) if t.is_floating_point() else t


def _outputs(out: Any) -> list[torch.Tensor]:
    """The floating tensors of a model's output that carry a gradient."""
    leaves = tree_flatten(out)[0]
    return [
        t
        for t in leaves
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad
    ]


def _backward(out: Any) -> None:
    """``sum(output * G)`` backward, ``G`` standard normal (the CPU generator)."""
    found = _outputs(out)
    if not found:
        raise ConvZooError("the model's output does not depend on its parameters: no gradient")
    loss = sum((t * _normal(t)).sum() for t in found)
    assert isinstance(loss, torch.Tensor)
    loss.backward()


def _rehearse(model: nn.Module, make: Any, train: bool, max_memory: int | None) -> int | None:
    """Refuse, before any real tensor exists, a step over the budget (rehearsed on a meta
    copy: its weights, the batch, the recorded forward, gradients and the backward, plus
    the allocator's margin of an unguarded run); the bytes needed, or None when the model
    cannot run on meta tensors (the real step is then guarded op by op)."""
    meta = private_copy(model, meta=True).train(train)
    args = make("meta", None)
    recorder = Recorder(meta)

    def step() -> None:
        _step(meta, args, recorder)

    tensors = [[*meta.parameters(), *meta.buffers()], args]
    return rehearse(step, max_memory, WORK, tensors, unguarded=True)


def _step(clone: nn.Module, args: tuple, recorder: Recorder) -> None:
    """The forward (recorded) and the backward, failures in one line."""
    try:
        with user_code("the model's forward and backward (init-check)"):
            with recorder:
                out = clone(*args)
            recorder.remove()
            _backward(out)
    except ConvZooError:
        raise
    except Exception as exc:
        where = f" in layer '{recorder.stack[-1]}'" if recorder.stack[-1] else ""
        raise ConvZooError(
            f"model fails for input {inputs.describe(args)}{where}: {first_line(exc)}"
        ) from None
    finally:
        recorder.remove()


def _grad_norm(module: nn.Module) -> float | None:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.grad is None:
        return None
    return float(weight.grad.detach().double().norm())


def _fill(report: InitReport, clone: nn.Module, recorder: Recorder) -> None:
    """The report's rows and findings from the recorded step, in forward order."""
    modules = dict(clone.named_modules())
    ordered: list[tuple[int, F.Finding]] = []
    for layer, seen in recorder.layers.items():
        module = modules[layer]
        grad = _grad_norm(module)
        report.layers.append(
            LayerSignal(layer, type(module).__name__, seen.shape, seen.sq_mean, seen.variance, grad)
        )
        finite = seen.finite and (grad is None or grad == grad and grad != float("inf"))
        if not finite:
            ordered.append((seen.order, F.finding("not finite", layer, 0, 0, "output or gradient")))
        units = units_of(module)
        if units is None:
            continue
        with torch.no_grad():
            groups = F.identical_groups(units.rows(lambda p: p.detach()), units.groups)
            if groups:
                grads = units.rows(lambda p: p.grad if p.grad is not None else torch.zeros_like(p))
                symmetric = F.symmetry_findings(layer, units.word, units.count, groups, grads)
                ordered += [(seen.order, f) for f in symmetric]
    for order, layer, rule, stuck, total in recorder.stuck:
        found = F.stuck_finding(layer, rule, stuck, total)
        if found is not None:
            ordered.append((order, found))
    report.findings = [f for _, f in sorted(ordered, key=lambda pair: pair[0])]
    graded = [row for row in report.layers if row.grad_norm is not None]
    if len(graded) > 1 and graded[-1].grad_norm:
        first, last = graded[0], graded[-1]
        assert first.grad_norm is not None and last.grad_norm is not None
        report.grad_ratio = first.grad_norm / last.grad_norm
        report.grad_layers = (first.name, last.name)
        gradient = F.gradient_finding(first.name, last.name, report.grad_ratio)
        if gradient is not None:
            report.findings.append(gradient)
    report.unchecked = recorder.unchecked(modules)
