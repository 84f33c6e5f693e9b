"""Real models for real-tensor work: the one place a model gets real, initialised weights.

Counting runs on meta tensors and needs no weights, so configs are built on the meta device
(:func:`convzoo.builder.build` with ``meta=True``). The few things that run real arithmetic
(``rf --plot`` and :func:`convzoo.effective_field`, ``report --check-fvcore``, the
analyzer's real-tensor fallback, ``compare --bench/--train``) ask :func:`materialize` for the
real twin of what they were given, and build it only then.

Every real model convzoo builds is built under :func:`seeded`: the weights are the same on
every run (so plots and checks are byte-deterministic) and the caller's global random
generator is left as it was.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
from torch import nn

from convzoo.errors import ConvZooError

SEED = 0
"""The seed of every real model convzoo builds for real-tensor work."""

T = TypeVar("T")
M = TypeVar("M", bound=nn.Module)


@contextlib.contextmanager
def seeded_rng(seed: int = SEED) -> Iterator[None]:
    """Run the body with torch's CPU generator seeded to ``seed``; restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seeded(make: Callable[[], T], seed: int = SEED) -> T:
    """``make()`` with torch's CPU generator seeded to ``seed`` and restored afterwards:
    the same weights on every call, the caller's random state untouched."""
    with seeded_rng(seed):
        return make()


def on_meta(model: nn.Module) -> bool:
    """Whether any parameter or buffer of ``model`` is on the meta device (no data)."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    return any(t.device.type == "meta" for t in tensors)


Rebuild = Callable[[], nn.Module]
_REBUILD = "_convzoo_rebuild"


def remember(model: M, rebuild: Rebuild) -> M:
    """Record on a meta ``model`` how to build its real twin (used by :func:`materialize`)."""
    object.__setattr__(model, _REBUILD, rebuild)  # a plain attribute, not a submodule
    return model


def materialize(model: nn.Module) -> nn.Module:
    """``model`` itself when its tensors are real, else its real twin with seeded weights.

    A model built on meta from a config (``build(..., meta=True)``, the CLI's configs) is
    built again from its config with real weights, and must still have the structure it
    was built with. Any other module holding meta tensors cannot be given weights it never
    had: a one-line :class:`~convzoo.ConvZooError`.
    """
    if not on_meta(model):
        return model
    rebuild: Rebuild | None = getattr(model, _REBUILD, None)
    if rebuild is None:
        raise ConvZooError(
            f"this {type(model).__name__} holds meta tensors (shapes without data), so it "
            "cannot run on real tensors; build it with real weights (convzoo.build(config) "
            "without meta=True)"
        )
    twin = seeded(rebuild)
    if structure(twin) != structure(model):
        raise ConvZooError(
            f"this {type(model).__name__} was changed after it was built on meta, so its "
            "config no longer describes it; build it with real weights (convzoo.build(config) "
            "without meta=True) before changing it"
        )
    return twin


def structure(model: nn.Module) -> list[tuple[str, str]]:
    """Every submodule's name and type, and every parameter's and buffer's name and shape."""
    modules = [(name, type(m).__qualname__) for name, m in model.named_modules()]
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    return modules + [(name, str(tuple(t.shape))) for name, t in tensors]
