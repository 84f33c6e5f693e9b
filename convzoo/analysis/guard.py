"""One memory budget for real tensors, enforced before they are allocated.

:class:`Guard` is a ``TorchDispatchMode`` (the analyzer's
:class:`~convzoo.analysis.counting.Tracer`, itself one, calls :meth:`Guard.run` instead).
Before an op runs on real tensors it sizes the op's outputs on meta copies of the
arguments, adds the workspace the kernel takes for itself
(:mod:`convzoo.analysis.workspaces`), and raises a one-line
:class:`~convzoo.errors.MemoryBudgetError` when the real tensors alive plus these would
cross the budget, so the op never runs. Factory ops (``torch.ones``, ``empty``, ``randn``),
backward ops and whatever a user's forward allocates itself go through the same check.
The guard counts storages, each once, from the op that allocates them until they die
(:class:`~convzoo.analysis.memory.LiveBytes`); tensors made before it was entered (weights,
inputs) count once :meth:`Guard.watch` is given them.

In a rehearsal (:func:`rehearse`) meta tensors stand for real ones: a forward (and
backward) on a meta copy of the model gives, in milliseconds and before any real tensor
exists, the peak that the real run will reach. ``compare --bench/--train`` and
``report --check-fvcore`` rehearse and then run unguarded, so that no dispatch mode skews
a timing or hides the model from ``torch.jit.trace``; the real-tensor fallback and
``rf --plot`` run guarded throughout.

Outside the budget, as :data:`convzoo.limits.MEMORY_SLACK` documents: the process before
the work (Python, torch, the user's model), memory the allocator keeps after a tensor dies,
and kernel workspaces without a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map_only

from convzoo import limits
from convzoo.analysis import isolation, meta_kernels, workspaces
from convzoo.analysis.memory import LiveBytes, strided_tensors
from convzoo.analysis.modes import PlainMode
from convzoo.analysis.resident import RETAINED, give_back, resident_bytes
from convzoo.errors import ConvZooError, MemoryBudgetError

META = torch.device("meta")


@dataclass(frozen=True)
class OpFacts:
    """What the guard needs to know of one op overload (looked up once, from its schema)."""

    name: str  # "aten::convolution"
    aliases: bool  # returns an alias of an argument (views, in-place, out=): allocates nothing
    factory: bool  # takes no tensor: allocates on its ``device`` argument
    allocates: bool  # returns a tensor that is not a view of an argument
    workspace: workspaces.Rule | None
    bound: workspaces.Bound

    @classmethod
    def of(cls, func: Any) -> OpFacts:
        schema = getattr(func, "_schema", None)
        name = schema.name if schema is not None else str(func)
        arguments = schema.arguments if schema is not None else []
        returns = schema.returns if schema is not None else []
        return cls(
            name,
            any(r.alias_info is not None for r in returns),
            schema is not None and not any("Tensor" in str(a.type) for a in arguments),
            (schema is None or any("Tensor" in str(r.type) for r in returns))
            and name not in workspaces.VIEWS,
            workspaces.WORKSPACES.get(name),
            workspaces.BOUNDS.get(name, workspaces.default_bound),
        )


_FACTS: dict[Any, OpFacts] = {}


def facts_of(func: Any) -> OpFacts:
    """:class:`OpFacts` of op overload ``func`` (cached)."""
    facts = _FACTS.get(func)
    if facts is None:
        facts = _FACTS[func] = OpFacts.of(func)
    return facts


def _is_real(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and not value.is_meta


def touches_real(facts: OpFacts, args: tuple, kwargs: dict) -> bool:
    """Whether the op reads or makes real tensors: a real argument, or a factory (or a
    copy) onto a device other than meta."""
    device = kwargs.get("device")
    if device is not None:
        if torch.device(device).type != "meta":
            return True
    elif facts.factory:
        return True  # the default device
    for value in (*args, *kwargs.values()):
        if _is_real(value):
            return True
        if isinstance(value, (list, tuple)) and any(_is_real(v) for v in value):
            return True
    return False


def _meta_like(t: torch.Tensor) -> torch.Tensor:
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=META)


def _storage_bytes(out: Any) -> int:
    """Bytes of the distinct storages behind the strided tensors in ``out`` (the tensors
    :class:`~convzoo.analysis.memory.LiveBytes` counts while they live)."""
    seen: dict[int, int] = {}
    for t in strided_tensors(out):
        storage = t.untyped_storage()
        seen[storage._cdata] = storage.nbytes()
    return sum(seen.values())


def size(func: Any, facts: OpFacts, args: tuple, kwargs: dict) -> int:
    """Bytes op ``func`` would allocate on ``args``: its outputs, sized on meta copies of the
    arguments (nothing real is allocated), plus its workspace; an op without a meta kernel
    is bounded by :data:`~convzoo.analysis.workspaces.BOUNDS` or its arguments' bytes."""
    if not facts.allocates:
        return 0
    try:
        margs = tree_map_only(torch.Tensor, _meta_like, args)
        mkwargs = tree_map_only(torch.Tensor, _meta_like, kwargs)
        if "device" in mkwargs:
            mkwargs["device"] = META
        if mkwargs.get("pin_memory"):
            mkwargs["pin_memory"] = False
        rule = meta_kernels.RULES.get(func)
        out = rule(margs, mkwargs) if rule is not None else None
        if out is None:
            out = func(*margs, **mkwargs)
    except Exception:  # no meta kernel (data-dependent outputs, some custom ops)
        return facts.bound(args, kwargs)
    extra = facts.workspace(margs, mkwargs, out) if facts.workspace is not None else 0
    return _storage_bytes(out) + extra


class Guard(PlainMode):
    """Real tensors within ``budget`` bytes, each op checked before it runs.

    ``what`` names the work in the refusal ("the real-tensor fallback"); ``rehearse``: meta
    tensors stand for real ones (only tracked: :func:`rehearse` checks the peak at the
    end; real ops are still refused before they run). ``live`` and ``peak`` are bytes.
    """

    def __init__(self, budget: int | None, what: str, rehearse: bool = False) -> None:
        super().__init__()
        self.budget = limits.MEMORY_BUDGET if budget is None else budget
        self.what = what
        self.rehearse = rehearse
        self.memory = LiveBytes()
        self.peak = 0
        self._watched = 0  # bytes of watched tensors, resident before they were counted
        self._resident = resident_bytes()  # the process when the counting started

    @property
    def live(self) -> int:
        return self.memory.live

    def watch(self, tensors: Any) -> None:
        """Count ``tensors`` made outside the guard (weights, inputs) while they live;
        refused at once if they alone cross the budget."""
        before = self.memory.live
        self.memory.add(tensors)
        self._watched += self.memory.live - before
        self._check(0, "", hard=True)

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        return self.run(func, args, kwargs or {})

    def run(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """``func(*args, **kwargs)`` once the memory it allocates fits the budget."""
        facts = facts_of(func)
        if facts.aliases:
            return func(*args, **kwargs)
        if touches_real(facts, args, kwargs):
            self._check(size(func, facts, args, kwargs), facts.name, hard=True)
            self._hand_back()
            out = func(*args, **kwargs)
        elif self.rehearse:  # on meta, running the op is its own estimate
            out = func(*args, **kwargs)
            new = self.memory.fresh(out)
            if facts.workspace is not None:
                new += facts.workspace(args, kwargs, out)
            self._check(new, facts.name, hard=False)
        else:
            return func(*args, **kwargs)
        self.memory.op(func, out)
        return out

    def _hand_back(self) -> None:
        """Before a real op: when the process holds more than :data:`RETAINED` bytes
        beyond the counted tensors (memory the allocator kept after tensors died, which it
        may not reuse for the next sizes), give it back, so the budget bounds the peak."""
        if self._resident is None:
            return
        counted = self.memory.live - self._watched
        now = resident_bytes()
        if now is not None and now - self._resident - counted > RETAINED:
            give_back()
            after = resident_bytes()
            self._resident = (after if after is not None else now) - counted

    def _check(self, new: int, name: str, hard: bool) -> None:
        need = self.memory.live + new
        if hard and need > self.budget:
            where = f" at {name}" if name else ""
            limits.check_memory(need, self.budget, self.what + where)
        self.peak = max(self.peak, need)  # of what ran (or, rehearsing, would run)


UNGUARDED_MARGIN = 8
"""A run repeated without the guard (``compare``'s timed runs, fvcore's trace) is estimated
at its rehearsed peak plus 1/8: glibc's allocator keeps some freed memory between tensors,
which the guard hands back between ops but nothing can while a timed loop runs (measured:
4-10% of the peak)."""


def rehearse(
    step: Callable[[], Any],
    budget: int | None,
    what: str,
    watch: Any = (),
    unguarded: bool = False,
) -> int | None:
    """Run ``step()`` on meta tensors that stand for real ones (``watch``: those that exist
    before it, e.g. a meta copy's weights and the input) and refuse, with a one-line
    :class:`~convzoo.errors.MemoryBudgetError`, if its peak crosses ``budget`` (plus
    1/:data:`UNGUARDED_MARGIN` when the real run will be ``unguarded``).

    Returns the bytes needed (that peak, margin included), or None when ``step`` cannot run
    on meta tensors (the real run must then be guarded); the peak it reached before failing
    is checked all the same.
    """
    guard = Guard(budget, what, rehearse=True)
    guard.watch(watch)
    ran = True
    try:
        with guard:
            step()
    except MemoryBudgetError:
        raise
    except Exception:
        ran = False
    needed = guard.peak + (guard.peak // UNGUARDED_MARGIN if unguarded else 0)
    limits.check_memory(needed, guard.budget, what)
    return needed if ran else None


def check_forward(
    model: nn.Module, input_shape: tuple[int, ...], budget: int | None, what: str
) -> int | None:
    """Refuse an eval-mode forward of a private copy of ``model`` on one real float32
    ``Tensor[input_shape]`` under ``torch.no_grad`` (what ``report --check-fvcore`` has
    fvcore trace) whose real tensors would cross ``budget``: rehearsed on a meta copy
    (returns the bytes needed); a model that cannot run on meta tensors runs once on real
    ones, guarded op by op (returns None)."""
    meta = isolation.private_copy(model, meta=True).eval()
    x = torch.empty(input_shape, device=META)

    def forward() -> None:
        with torch.no_grad():
            meta(x)

    tensors = [[*meta.parameters(), *meta.buffers()], x]
    needed = rehearse(forward, budget, what, tensors, unguarded=True)
    if needed is None:
        with Guard(budget, what), torch.no_grad():
            isolation.private_copy(model, meta=False).eval()(torch.randn(input_shape))
    return needed


SLOW: dict[tuple[str, torch.dtype], str] = {
    ("cpu", torch.float16): (
        "PyTorch emulates it (a convolution runs about 100x slower than in float32) and "
        "some kernels have none (torchvision's nms)"
    ),
}
"""(device type, dtype) pairs that real-tensor work refuses up front, with the reason."""


def check_precision(device: torch.device, dtype: torch.dtype, what: str) -> None:
    """Refuse real-tensor work in ``dtype`` on ``device`` when :data:`SLOW` lists them."""
    reason = SLOW.get((device.type, dtype))
    if reason is not None:
        raise ConvZooError(
            f"{what} would compute in {str(dtype).removeprefix('torch.')} on the "
            f"{device.type.upper()}, where {reason}: analyse in float32 instead (the byte "
            "counts scale with the element size)"
        )
