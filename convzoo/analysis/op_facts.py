"""What the tracer (:mod:`convzoo.analysis.counting`) needs to know of one op overload,
looked up once per analysis (:class:`OpFacts`), and :func:`imports_running`, which tells
an import's work inside a forward from the model's."""

from __future__ import annotations

import importlib._bootstrap
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

from convzoo.analysis import meta_kernels, ops, traffic
from convzoo.analysis.dtype_conflicts import Operands
from convzoo.analysis.field_flow import FieldFacts
from convzoo.analysis.ops.table import takes_tensors


@dataclass(frozen=True)
class OpFacts:
    """What the tracer needs to know of one op overload, looked up once per analysis:
    its class (:func:`ops.classify`), packet name, fast shape rule, cost rule, fused rule,
    what :mod:`convzoo.analysis.field_flow` needs of its field rule, whether a call may be
    an import's work rather than the model's (``outside``: a factory or query, which takes
    no tensor, or an op convzoo cannot count; see :func:`imports_running`), and the
    operands its real kernel requires to share a dtype (:mod:`.dtype_conflicts`),
    and its op class for the latency model (:mod:`convzoo.analysis.traffic`; ``refine``
    decides it per call)."""

    kind: str
    name: str
    shape_rule: Any
    cost: Any
    fused: Any
    field: FieldFacts
    outside: bool
    operands: Operands
    op_class: str
    refine: traffic.ClassRule | None
    first_output: bool

    @classmethod
    def of(cls, func: Any) -> OpFacts:
        entry = ops.TABLE.resolve(func)
        op_class = traffic.static_class(func, entry.kind)
        return cls(
            entry.kind,
            str(func.overloadpacket.__name__),
            meta_kernels.RULES.get(func),
            entry.cost,
            ops.fused(func),
            FieldFacts.of(func),
            entry.kind == "uncounted" or not takes_tensors(func),
            Operands.of(func),
            op_class,
            traffic.refine(func, entry.kind),
            traffic.first_output(func),
        )


_IMPORT_FRAME = importlib._bootstrap._call_with_frames_removed.__code__  # type: ignore[attr-defined]


def imports_running() -> int:
    """How many Python imports this thread is running, one inside another (the frames
    through which importlib executes a module's code). An op called while more run than
    when the forward began (torchvision, imported on a forward's first call, asks
    ``torchvision::_cuda_version``) is the import's work, not the model's."""
    count = 0
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        count += frame.f_code is _IMPORT_FRAME
        frame = frame.f_back
    return count
