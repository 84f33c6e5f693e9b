"""Strides of meta outputs as torch computes them, on plain ints (for
:mod:`convzoo.analysis.meta_kernels`): contiguity tests, broadcasting, and the stride order
of element-wise outputs, ported from ``torch._prims_common``
(``compute_elementwise_output_logical_to_physical_perm``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

META = torch.device("meta")


def contiguous(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """``is_contiguous``: fewer than two elements, or nested strides (size-1 dims skipped)."""
    numel = 1
    for n in shape:
        numel *= n
    if numel < 2:
        return True
    expected = expected_max = 1
    for n, s in zip(reversed(shape), reversed(strides), strict=True):
        if n == 1:
            continue
        if s != expected and s != expected_max:
            return False
        expected_max *= max(n, 1)
        expected *= n
    return True


def channels_last(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """``iscontiguous(memory_format=torch.channels_last)`` (4-d only, as torch checks it)."""
    if len(shape) != 4:
        return False
    expected = 1
    for i in (1, 3, 2, 0):
        if shape[i] == 1:
            continue
        if strides[i] != expected:
            return False
        expected *= shape[i]
    return True


def ge(a: int, b: int) -> bool:
    return b == 0 or (a != 0 and (a >= b or a % b == 0))


def perm(shape: Sequence[int], all_strides: list[Sequence[int]]) -> list[int]:
    """The logical-to-physical permutation of an element-wise output whose (broadcast)
    operands have strides ``all_strides``, all of shape ``shape``."""
    ndim = len(shape)
    if ndim < 2:
        return list(range(ndim))
    all_contiguous = all(contiguous(shape, s) for s in all_strides)
    all_channels_last = all(channels_last(shape, s) for s in all_strides)
    if all_contiguous and not all_channels_last:
        return list(range(ndim))
    if all_channels_last and not all_contiguous:
        return [0, *range(2, ndim), 1]

    def should_swap(a: int, b: int) -> int:
        for strides in all_strides:
            sa, sb = strides[a], strides[b]
            if sa == 0 or sb == 0:
                continue
            if sa == sb:
                if ge(shape[b], shape[a]):
                    continue
                return 1
            if ge(sb, sa):
                return -1
            if ge(sa, sb):
                return 1
        return 0

    order = list(reversed(range(ndim)))
    for i in range(1, ndim):
        dim1 = i
        for dim0 in reversed(range(i)):
            swap = should_swap(order[dim0], order[dim1])
            if swap > 0:
                order[dim0], order[dim1] = order[dim1], order[dim0]
                dim1 = dim0
            elif swap < 0:
                break
    return list(reversed(order))


def broadcast(shapes: list[Sequence[int]]) -> list[int] | None:
    """The broadcast shape of ``shapes`` (None when they do not broadcast)."""
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for shape in shapes:
        for i, n in enumerate(shape, ndim - len(shape)):
            if n != 1:
                if out[i] == 1:
                    out[i] = n
                elif out[i] != n:
                    return None
    return out


def expanded(t: torch.Tensor, shape: list[int]) -> list[int]:
    """``t.expand(shape).stride()`` without making the view."""
    lead = len(shape) - t.dim()
    strides = [0] * lead
    for i, (n, s) in enumerate(zip(t.shape, t.stride(), strict=True)):
        strides.append(0 if n == 1 and shape[lead + i] != 1 else s)
    return strides


def elementwise_out(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor | None:
    """The output of an element-wise op over ``tensors`` (broadcast), as the prims' meta
    function makes it: dense, in the operands' stride order."""
    shape = broadcast([t.shape for t in tensors])
    if shape is None:
        return None
    out = torch.empty_permuted(
        shape, perm(shape, [expanded(t, shape) for t in tensors]), dtype=dtype, device=META
    )
    first = tensors[0]
    if all(t.shape == first.shape and t.stride() == first.stride() for t in tensors) and dense(
        first.shape, first.stride()
    ):  # TensorIterator keeps the operands' strides: answer only where both agree
        return out if out.stride() == first.stride() else None
    return out


def standard(t: torch.Tensor) -> bool:
    """Whether ``t`` has exactly the strides ``torch.empty(t.shape)`` gives."""
    expected = 1
    for n, s in zip(reversed(t.shape), reversed(t.stride()), strict=True):
        if s != expected:
            return False
        expected *= max(n, 1)
    return True


def dense(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """``is_non_overlapping_and_dense``: some permutation of the dims is contiguous."""
    expected = 1
    for s, n in sorted((s, n) for n, s in zip(shape, strides, strict=True) if n != 1):
        if s != expected:
            return False
        expected *= n
    return True
