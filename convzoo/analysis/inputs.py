"""What ``analyze`` feeds the model: sizes or example tensors -> positional arguments.

Accepted forms of ``input_size``:

* ``(C, H, W)`` (any rank): one tensor ``Tensor[batch, C, H, W]``;
* a tuple of sizes ``((3, 224, 224), (1, 224, 224))``: one tensor per positional argument;
* a list of sizes inside that tuple, ``[[(3, 480, 640), (3, 512, 512)]]``: one positional
  argument that is a list of unbatched tensors (torchvision detection models take a list
  of ``Tensor[C, H, W]`` images);
* example tensors: a tensor, or a tuple/list of positional arguments, each a tensor or a
  (nested) list/tuple/dict of tensors. Their values are used on the real-tensor fallback;
  on meta tensors only their shapes and dtypes count.

Nothing here renders a tensor's values into a message: inputs are described by shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

from convzoo import limits
from convzoo.errors import ConvZooError, render

MAX_RANK = 8


def is_size(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and 0 < len(value) <= MAX_RANK
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )


def _check_size(size: Any, batch: int = 1) -> tuple[int, ...]:
    """A size of positive ints within :func:`~convzoo.limits.check_input` for ``batch``."""
    if not all(v > 0 for v in size):
        raise ConvZooError(f"input sizes must be positive ints, got {describe_size(size)}")
    return limits.check_input(tuple(size), batch)


def describe_size(value: Any) -> str:
    """A short text for a size-like value: tensors by shape, anything else bounded."""
    return f"tensor {shape_text(value)}" if isinstance(value, torch.Tensor) else render(value)


def shape_text(t: torch.Tensor) -> str:
    dtype = "" if t.dtype == torch.float32 else f" {str(t.dtype).removeprefix('torch.')}"
    nested = " nested" if t.is_nested else ""
    shape = "x".join(str(v) for v in t.shape) if not t.is_nested else "?"
    return f"{shape or 'scalar'}{dtype}{nested}"


def describe(args: tuple) -> str:
    """``(Tensor[1,3,224,224], [Tensor[3,480,640]]) -> '1x3x224x224, [3x480x640]'``."""

    def one(a: Any) -> str:
        if isinstance(a, torch.Tensor):
            return shape_text(a)
        if isinstance(a, (list, tuple)):
            inner = ", ".join(one(v) for v in a[:4]) + (", ..." if len(a) > 4 else "")
            return f"[{inner}]"
        if isinstance(a, dict):
            return "{" + ", ".join(f"{k}: {one(v)}" for k, v in list(a.items())[:4]) + "}"
        return type(a).__name__

    return ", ".join(one(a) for a in args)


Maker = Callable[[torch.device | str, torch.dtype | None], tuple]


def spec(input_size: Any, batch: int, default_dtype: torch.dtype) -> Maker:
    """Check ``input_size`` once (sizes within :func:`~convzoo.limits.check_input`, the
    batch included); return ``make(device, cast)`` -> positional arguments.

    ``make`` builds zeros of the given sizes (``batch`` prepended to batched sizes) in
    ``cast`` or else ``default_dtype``, or moves the example tensors (floating ones cast to
    ``cast`` when it is not None; on real devices always a copy).
    """
    if isinstance(input_size, torch.Tensor):
        input_size = (input_size,)
    if is_size(input_size):
        size = _check_size(input_size, batch)
        return lambda device, cast: (
            torch.zeros((batch, *size), dtype=cast or default_dtype, device=device),
        )
    if not isinstance(input_size, (tuple, list)) or not input_size:
        raise ConvZooError(
            "input_size must be (C, H, W), a tuple of sizes or example tensors, got "
            + describe_size(input_size)
        )
    leaves = tree_flatten(list(input_size))[0]
    if leaves and all(isinstance(t, torch.Tensor) for t in leaves):
        return _examples(tuple(input_size))
    args: list[Any] = []
    for i, item in enumerate(input_size):
        if is_size(item):
            args.append(("batched", _check_size(item, batch)))
        elif isinstance(item, list) and item and all(is_size(s) for s in item):
            args.append(("list", [_check_size(s) for s in item]))
        else:
            raise ConvZooError(
                f"input {i} must be a size like (3, 224, 224), a list of such sizes or a "
                f"tensor, got {describe_size(item)}"
            )

    def make(device: torch.device | str, cast: torch.dtype | None) -> tuple:
        dtype = cast or default_dtype
        out: list[Any] = []
        for kind, size in args:
            if kind == "batched":
                out.append(torch.zeros((batch, *size), dtype=dtype, device=device))
            else:
                out.append([torch.zeros(s, dtype=dtype, device=device) for s in size])
        return tuple(out)

    return make


def _examples(args: tuple) -> Maker:
    def make(device: torch.device | str, dtype: torch.dtype | None) -> tuple:
        def move(t: torch.Tensor) -> torch.Tensor:
            cast = dtype if dtype is not None and t.is_floating_point() else t.dtype
            if str(device) == "meta":
                if t.is_nested:
                    return t.to(device="meta", dtype=cast)
                return torch.empty(t.shape, dtype=cast, device="meta")
            return t.to(dtype=cast, copy=True)  # the forward may write into its input

        return tuple(tree_map(move, list(args)))

    return make


def nbytes(args: tuple) -> int:
    """Bytes of all tensors in ``args`` (what the real-tensor fallback allocates for them)."""
    return sum(
        t.numel() * t.element_size()
        for t in tree_flatten(list(args))[0]
        if isinstance(t, torch.Tensor) and not t.is_nested
    )
