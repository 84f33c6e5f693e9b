"""What the check's forward records on the private copy: each layer's output statistics and
each activation operator's stuck units, attributed to the innermost module that ran it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.hooks import RemovableHandle

from convzoo.initcheck.findings import STUCK, Stuck, stuck_units
from convzoo.initcheck.units import traced, units_of


@dataclass(frozen=True)
class Seen:
    """A layer's output at its first call: ``Tensor[B, C, *S]`` -> the average squared
    channel mean and the average channel variance (population variance over B and S)."""

    order: int
    shape: tuple[int, ...]
    sq_mean: float
    variance: float
    finite: bool


def seen(order: int, out: torch.Tensor) -> Seen:
    """:class:`Seen` of ``out`` (on meta tensors, in a rehearsal: NaN statistics)."""
    with torch.no_grad():
        x = out.detach()
        dims = [0, *range(2, x.dim())]
        variance, mean = torch.var_mean(x, dims, correction=0)
        finite = torch.isfinite(x).all()
        if x.is_meta:
            return Seen(order, tuple(out.shape), math.nan, math.nan, True)
        sq_mean = float(mean.double().pow(2).mean())
        return Seen(order, tuple(out.shape), sq_mean, float(variance.double().mean()), bool(finite))


class Recorder(TorchDispatchMode):
    """Records the forward of ``model`` (hooks on its modules, which it removes with
    :meth:`remove`; the model must be the analysis's own copy).

    ``layers``: traced layers (:func:`~convzoo.initcheck.units.traced`) by name, in the
    order of their first call; ``stuck``: ``(order, layer, rule, stuck units, units)`` per
    activation call; ``stack``: the names of the modules running now (``""``: the model).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.layers: dict[str, Seen] = {}
        self.stuck: list[tuple[int, str, Stuck, int, int]] = []
        self.stack = [""]
        self.called: set[str] = set()
        self._order = 0
        self._handles: list[RemovableHandle] = []
        for name, module in model.named_modules():
            try:
                self._handles += [
                    module.register_forward_pre_hook(self._enter(name)),
                    module.register_forward_hook(self._leave(name, traced(module))),
                ]
            except RuntimeError:  # a TorchScript submodule takes no hooks: ops go to its parent
                continue

    def _next(self) -> int:
        self._order += 1
        return self._order

    def _enter(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            self.stack.append(name)
            self.called.add(name)

        return hook

    def _leave(self, name: str, record: bool) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if self.stack[-1] == name:
                self.stack.pop()
            usable = isinstance(out, torch.Tensor) and out.is_floating_point() and out.dim() >= 2
            if record and usable and name not in self.layers:
                self.layers[name] = seen(self._next(), out)

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        schema = getattr(func, "_schema", None)
        rule = STUCK.get(schema.name) if schema is not None else None
        if rule is not None and isinstance(out, torch.Tensor) and not out.is_meta:
            stuck, total = stuck_units(out, args, rule)
            self.stuck.append((self._next(), self.stack[-1], rule, stuck, total))
        return out

    def unchecked(self, modules: dict[str, nn.Module]) -> list[str]:
        """Types of the called modules that hold parameters of their own but have no units
        rule and are no norm: their symmetry is not checked."""
        found = set()
        for name in self.called:
            module = modules[name]
            own = next(iter(module.parameters(recurse=False)), None) is not None
            if own and not traced(module) and units_of(module) is None:
                found.add(type(module).__name__)
        return sorted(found)
