"""Ops without arithmetic, grouped by the reason they cost nothing. Views (outputs that
alias an input) need no entry: the table declares them free by their schema."""

from __future__ import annotations

import torch

from convzoo.analysis.ops.table import TABLE

aten = torch.ops.aten

FREE: dict[str, tuple[object, ...]] = {
    "allocation (a new tensor filled with a constant, a range or uninitialised)": (
        aten.empty, aten.empty_like, aten.empty_strided, aten.zeros, aten.zeros_like,
        aten.ones, aten.ones_like, aten.full, aten.full_like, aten.new_empty, aten.new_zeros,
        aten.new_ones, aten.new_full, aten.new_empty_strided, aten.arange, aten.scalar_tensor,
        aten.eye, aten.linspace, aten.fill_, aten.zero_, aten.fill, aten.resize_, aten.set_,
    ),
    "random numbers drawn without arithmetic on the input": (
        aten.rand, aten.randn, aten.randint, aten.rand_like, aten.randn_like, aten.randperm,
    ),
    "copy or layout change (values moved, not computed)": (
        aten.clone, aten.copy_, aten._to_copy, aten.copy, aten.contiguous, aten.detach,
        aten.detach_, aten.alias, aten._unsafe_view, aten.lift_fresh, aten.lift_fresh_copy,
        aten.repeat, aten.flip, aten.roll, aten.unfold, aten.im2col, aten.as_strided_,
        aten.complex, aten.view_as_real, aten.view_as_complex,
        aten.pixel_shuffle, aten.pixel_unshuffle, aten.channel_shuffle,
    ),
    "concatenation or splitting": (
        aten.cat, aten.stack, aten.unsafe_split, aten.unsafe_split_with_sizes,
        aten.unsafe_chunk, aten.split_with_sizes, aten.split_with_sizes_copy,
    ),
    "padding": (
        aten.constant_pad_nd, aten.reflection_pad1d, aten.reflection_pad2d,
        aten.reflection_pad3d, aten.replication_pad1d, aten.replication_pad2d,
        aten.replication_pad3d, aten.pad, aten._pad_enum,
    ),
    "indexing or gathering (values picked or written by position)": (
        aten.embedding, aten.index, aten.index_put, aten.index_put_, aten.index_copy,
        aten.index_fill, aten.index_fill_, aten.index_select, aten.gather, aten.scatter,
        aten.select_scatter, aten.slice_scatter, aten.nonzero,
    ),
    "masking (values kept or replaced by a mask)": (
        aten.masked_fill, aten.masked_fill_, aten.masked_scatter, aten.masked_select,
        aten.tril, aten.triu,
    ),
    "sorting or selection (comparisons, not counted as arithmetic)": (
        aten.sort, aten.topk, aten._unique2, aten.unique_dim, aten.unique_consecutive,
    ),
    "a check or a scalar read": (
        aten._linalg_check_errors, aten._local_scalar_dense, aten.is_nonzero, aten.equal,
        aten.item,
    ),
}  # fmt: skip

for _reason, _ops in FREE.items():
    for _op in _ops:
        TABLE.register(_op, free=_reason)
