"""Operands a real kernel requires to share one dtype, checked before a meta kernel runs.

Meta kernels are more permissive than the CPU's: ``addmm`` of a float16 input and a
float64 weight gives a float64 result on meta tensors, where the CPU kernel refuses the call
("mat1 and mat2 must have the same dtype"). A model whose float16 convolution feeds a
float64 ``Linear`` would then be analysed although no real input runs through it.
:data:`SAME_DTYPE` names, per op, the tensor arguments that must share a dtype (each entry
is proven refused by the real CPU kernel in ``tests/test_dtype_conflicts.py``);
:func:`check` raises :class:`DtypeConflict`, a one-line ConvZooError that the analyzer
reports as the model failing for its input, in the layer where it happened. Ops that
promote (``add``, ``mul``) are not listed: a real forward runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from convzoo.errors import ConvZooError

SAME_DTYPE: dict[str, tuple[str, ...]] = {
    "aten::mm": ("self", "mat2"),
    "aten::bmm": ("self", "mat2"),
    "aten::addmm": ("self", "mat1", "mat2"),
    "aten::_addmm_activation": ("self", "mat1", "mat2"),
    "aten::baddbmm": ("self", "batch1", "batch2"),
    "aten::addbmm": ("self", "batch1", "batch2"),
    "aten::addmv": ("self", "mat", "vec"),
    "aten::mv": ("self", "vec"),
    "aten::dot": ("self", "tensor"),
    "aten::convolution": ("input", "weight"),  # a bias of another dtype runs
    "aten::_convolution": ("input", "weight"),
    "torchvision::deform_conv2d": ("input", "weight", "offset", "mask"),
}
"""By op packet (every overload): the arguments a real CPU kernel requires to share a dtype
(absent optional ones, such as a missing mask, are skipped). ``addr`` and a convolution's
bias promote, so they are not listed."""


class DtypeConflict(ConvZooError):
    """An op's operands have dtypes its real kernel refuses to mix."""


@dataclass(frozen=True)
class Operands:
    """The positions and names in one overload's schema of the arguments that must share a
    dtype (empty: the op is not in :data:`SAME_DTYPE`)."""

    positions: tuple[tuple[int, str], ...] = ()

    @classmethod
    def of(cls, func: Any) -> Operands:
        names = SAME_DTYPE.get(str(func.overloadpacket._qualified_op_name), ())
        schema = getattr(func, "_schema", None)
        if not names or schema is None:
            return cls()
        found = [(i, a.name) for i, a in enumerate(schema.arguments) if a.name in names]
        return cls(tuple(found))

    def check(self, func: Any, args: tuple, kwargs: dict) -> None:
        """Raise :class:`DtypeConflict` when the tensors among these arguments of one call
        of ``func`` do not share a dtype."""
        dtypes: dict[str, torch.dtype] = {}
        for i, name in self.positions:
            value = args[i] if i < len(args) else kwargs.get(name)
            if isinstance(value, torch.Tensor):
                dtypes[name] = value.dtype
        if len(set(dtypes.values())) > 1:
            shown = ", ".join(
                f"{name} {str(d).replace('torch.', '')}" for name, d in dtypes.items()
            )
            op = func.overloadpacket.__name__
            raise DtypeConflict(
                f"{op} mixes dtypes ({shown}), which a real forward refuses: "
                "cast the model (or its inputs) to one dtype"
            )
