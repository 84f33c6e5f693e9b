"""Bytes moved by one op, and the class of op it is (for the latency model).

**Bytes moved** (a lower bound, the traffic of an ideal cache): an op reads each distinct
tensor among its arguments once (weights and biases included: they are arguments of the op)
and writes each of its outputs once, in the dtype used; ``x * x`` reads ``x`` once. A tensor
counts its distinct elements: a broadcast view (a stride of 0, ``expand``) counts the values
behind it, not its logical size. Conventions:

- views (outputs that alias an input: ``view``, ``transpose``, ``select``, ...) and
  uninitialised allocations (``empty``) move nothing: class ``"free"``;
- an in-place op (``relu_``, ``add_``) reads its argument and writes it back: counted twice,
  as a read and a write, like the same op out of place;
- copies, concatenation, padding and indexing (free of arithmetic) still move their bytes:
  class ``"data"``; so do ops without a cost rule (uncounted).

**Op classes** (:data:`OP_CLASSES`), what a machine profile gives a throughput for:
``conv`` (dense, and grouped with several channels per group), ``depthwise_conv`` (one
input channel per group),
``matmul`` (every other MAC op: linear layers, matrix products, attention), ``elementwise``,
``reduction`` (pooling, reductions, softmax and normalisations that reduce), ``data`` and
``free``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import torch

from convzoo.analysis.ops.table import is_view

aten = torch.ops.aten

OP_CLASSES: Final = (
    "conv",
    "depthwise_conv",
    "matmul",
    "elementwise",
    "reduction",
    "data",
    "free",
)
"""Every op class, in the order tables list them."""

CONVOLUTIONS: Final = frozenset({aten.convolution, aten._convolution})
REDUCTIONS: Final = frozenset(
    {
        aten._adaptive_avg_pool2d, aten._adaptive_avg_pool3d, aten.adaptive_max_pool1d,
        aten.adaptive_max_pool2d, aten.adaptive_max_pool3d, aten.max_pool1d_with_indices,
        aten.max_pool1d, aten.avg_pool1d, aten.max_pool2d_with_indices, aten.avg_pool2d,
        aten.max_pool3d_with_indices, aten.avg_pool3d, aten.mean, aten.sum, aten.amax,
        aten.amin, aten.var, aten.std, aten.linalg_vector_norm, aten.norm, aten.max,
        aten.min, aten.var_mean, aten.prod, aten.cumsum, aten.logsumexp, aten.argmax,
        aten.argmin, aten.any, aten.all, aten._softmax, aten._log_softmax, aten._safe_softmax,
        aten.native_layer_norm, aten.native_group_norm, aten.native_batch_norm,
        aten._native_batch_norm_legit,
    }
)  # fmt: skip
"""Element-wise ops (by packet) that reduce over an axis: a class of their own."""
UNINITIALISED: Final = frozenset(
    {aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided}
)
"""Allocations that write nothing: class ``"free"``, no bytes."""

FIRST_OUTPUT: Final = frozenset(
    {aten.native_batch_norm, aten._native_batch_norm_legit,
     aten._native_batch_norm_legit_no_training}
)  # fmt: skip
"""Ops whose first output alone counts as written: batch norm's saved statistics are a few
values per channel, sized differently by its meta and CPU kernels in eval mode."""

ClassRule = Callable[[tuple, dict], str]
"""Decides an op's class per call from its arguments (a convolution's ``groups``)."""


def static_class(func: Any, kind: str) -> str:
    """The class of op overload ``func`` of ``kind`` ("macs", "elementwise", "free",
    "uncounted"), where no :func:`refine` rule decides it per call."""
    packet = func.overloadpacket
    if kind == "macs":
        return "conv" if packet in CONVOLUTIONS else "matmul"
    if kind == "elementwise":
        return "reduction" if packet in REDUCTIONS else "elementwise"
    if kind == "free" and (packet in UNINITIALISED or is_view(func)):
        return "free"
    return "data"


def conv_class(args: tuple, kwargs: dict) -> str:
    """``convolution(input, weight, bias, stride, padding, dilation, transposed,
    output_padding, groups)``: ``depthwise_conv`` when each group convolves one input channel
    (``Tensor[C_out, 1, ...]`` weights, groups > 1), else ``conv`` (a grouped convolution
    with several channels per group runs as dense ones, group by group)."""
    groups = args[8] if len(args) > 8 else kwargs.get("groups", 1)
    weight = args[1] if len(args) > 1 else kwargs.get("weight")
    transposed = args[6] if len(args) > 6 else kwargs.get("transposed", False)
    if not isinstance(weight, torch.Tensor) or groups == 1:
        return "conv"
    per_group = weight.shape[0] // groups if transposed else weight.shape[1]  # inputs per group
    return "depthwise_conv" if per_group == 1 else "conv"


def batch_norm_class(args: tuple, kwargs: dict) -> str:
    """``native_batch_norm(input, weight, bias, [running_mean, running_var,] training, ...)``:
    a reduction in training (batch statistics), element-wise in eval (running ones)."""
    training = next((a for a in args[3:] if isinstance(a, bool)), kwargs.get("training", True))
    return "reduction" if training else "elementwise"


REFINE: Final[dict[Any, ClassRule]] = {
    aten.convolution: conv_class,
    aten._convolution: conv_class,
    aten.native_batch_norm: batch_norm_class,
    aten._native_batch_norm_legit: batch_norm_class,
}
"""Ops (by packet) whose class depends on the call's arguments."""


def refine(func: Any, kind: str) -> ClassRule | None:
    """The rule that decides ``func``'s class per call, or None when
    :func:`static_class` is final (an op with a user's MAC rule keeps its own class)."""
    return REFINE.get(func.overloadpacket) if kind in ("macs", "elementwise") else None


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct values ``t`` shows (``Tensor[C, 1, 1].expand(C, H, W)``: C
    values); its storage may hold more (a slice), never fewer."""
    if t.is_contiguous():
        return t.numel() * t.element_size()
    distinct = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if stride:
            distinct *= size
    return distinct * t.element_size() if t.numel() else 0


def first_output(func: Any) -> bool:
    """Whether only ``func``'s first output counts as written (:data:`FIRST_OUTPUT`)."""
    return func.overloadpacket in FIRST_OUTPUT


def _tensors(values: Any) -> list[torch.Tensor]:
    """The strided tensors among an op's arguments or outputs: top-level ones and those in
    top-level lists and tuples (``cat``'s list), as the aten schemas take them."""
    found: list[torch.Tensor] = []
    for v in values:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], torch.Tensor):
            found.extend(t for t in v if isinstance(t, torch.Tensor))
    return [t for t in found if t.layout is torch.strided and not t.is_nested]


def moved(args: tuple, kwargs: dict, out: Any, first: bool = False) -> int:
    """Bytes one call reads and writes: each distinct argument tensor once, each output
    once (only the first with ``first``; the module docstring has the conventions; the
    caller skips ``"free"`` ops)."""
    read = _tensors(args)
    if kwargs:
        read += _tensors(kwargs.values())
    if len(read) > 1:
        read = list({id(t): t for t in read}.values())
    written: Sequence[Any]
    if isinstance(out, torch.Tensor):
        written = [out]
    elif first and isinstance(out, (tuple, list)) and out:
        written = [out[0]]
    else:
        written = out if isinstance(out, (tuple, list)) else ()
    return sum(tensor_bytes(t) for t in read) + sum(tensor_bytes(t) for t in _tensors(written))
