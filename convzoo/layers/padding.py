"""2-D spellings of :mod:`convzoo.layers.geometry` (kept for code written against them).

Every function here delegates to the geometry module, which holds the arithmetic for any
number of spatial axes; nothing is parsed or computed twice.
"""

from __future__ import annotations

from convzoo.layers import geometry as G
from convzoo.layers.geometry import (  # noqa: F401  (re-exported)
    MODES,
    AxisPad,
    PaddingSpec,
    axis_padding,
    check_input,
    conv_output_size,
    effective_kernel,
    split_symmetric,
    zero_pad,
)

Pair = tuple[int, int]


def pair(value: object, layer: str, argument: str, minimum: int = 1) -> Pair:
    """``value`` as an ``(h, w)`` pair of ints ``>= minimum``, or a clear error."""
    return G.ints(value, 2, layer, argument, minimum)  # type: ignore[return-value]


def check_padding(spec: object, layer: str) -> PaddingSpec:
    """Validate a 2-D padding spec: a mode name, a non-negative int or (h, w) pair."""
    return G.check_padding(spec, 2, layer)


def resolve(
    spec: PaddingSpec, size: Pair, kernel: Pair, stride: Pair, dilation: Pair
) -> tuple[AxisPad, AxisPad]:
    """Per-axis ``((top, bottom), (left, right))`` padding for an input of ``size``."""
    return G.Geometry(kernel, stride, dilation, spec).pads(size)  # type: ignore[return-value]


def output_size(spec: PaddingSpec, size: Pair, kernel: Pair, stride: Pair, dilation: Pair) -> Pair:
    """Spatial output size of a convolution with this padding spec."""
    return G.Geometry(kernel, stride, dilation, spec).output_size(size)  # type: ignore[return-value]
