"""Pure padding and output-size arithmetic, per axis, shared by every layer.

Conventions (see README, "Padding modes"), with ``k_eff = dilation * (k - 1) + 1``:

* ``"valid"``: no padding, output ``floor((n - k_eff) / s) + 1``.
* ``"same"``: output ``ceil(n / s)``; the total padding
  ``max((ceil(n / s) - 1) * s + k_eff - n, 0)`` is split with the odd pixel after
  (bottom/right), as TensorFlow does. With ``s > 1`` it depends on ``n``.
* ``"full"``: ``k_eff - 1`` on each side, output ``n + k_eff - 1`` at stride 1.
* an int or an ``(h, w)`` pair: that many zeros on both sides of each axis.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convzoo.errors import LayerArgumentError, require

Pair = tuple[int, int]
AxisPad = tuple[int, int]  # (before, after)
PaddingSpec = str | int | tuple[int, int]
MODES = ("valid", "same", "full")


def pair(value: object, layer: str, argument: str, minimum: int = 1) -> Pair:
    """``value`` as an ``(h, w)`` pair of ints ``>= minimum``, or a clear error."""
    if isinstance(value, bool):
        raise LayerArgumentError(layer, argument, f"must be an int or (h, w) pair, got {value!r}")
    if isinstance(value, int):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise LayerArgumentError(layer, argument, f"must be an int or (h, w) pair, got {value!r}")
    word = "positive" if minimum == 1 else f">= {minimum}"
    require(all(v >= minimum for v in value), layer, argument, f"must be {word}, got {value!r}")
    return (int(value[0]), int(value[1]))


def check_padding(spec: object, layer: str) -> PaddingSpec:
    """Validate a padding spec: a mode name, a non-negative int or (h, w) pair."""
    if isinstance(spec, str):
        require(spec in MODES, layer, "padding", f"must be one of {MODES} or ints, got {spec!r}")
        return spec
    return pair(spec, layer, "padding", minimum=0)


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel in input pixels: ``dilation * (kernel - 1) + 1``."""
    return dilation * (kernel - 1) + 1


def axis_padding(
    spec: PaddingSpec, size: int, kernel: int, stride: int, dilation: int, axis: int = 0
) -> AxisPad:
    """``(before, after)`` zeros along one axis (``axis`` 0 = h, 1 = w) for an input of ``size``."""
    k_eff = effective_kernel(kernel, dilation)
    if spec == "valid":
        return (0, 0)
    if spec == "full":
        return (k_eff - 1, k_eff - 1)
    if spec == "same":
        total = max((math.ceil(size / stride) - 1) * stride + k_eff - size, 0)
        return (total // 2, total - total // 2)
    p = spec[axis] if isinstance(spec, tuple) else int(spec)
    return (p, p)


def is_static(spec: PaddingSpec, stride: Pair) -> bool:
    """Whether the padding is the same for every input size."""
    return spec != "same" or stride == (1, 1)


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, pad: AxisPad) -> int:
    """``floor((size + before + after - k_eff) / stride) + 1`` (may be < 1: caller checks)."""
    return (size + pad[0] + pad[1] - effective_kernel(kernel, dilation)) // stride + 1


def resolve(
    spec: PaddingSpec, size: Pair, kernel: Pair, stride: Pair, dilation: Pair
) -> tuple[AxisPad, AxisPad]:
    """Per-axis ``((top, bottom), (left, right))`` padding for an input of ``size``."""
    return (
        axis_padding(spec, size[0], kernel[0], stride[0], dilation[0], 0),
        axis_padding(spec, size[1], kernel[1], stride[1], dilation[1], 1),
    )


def output_size(spec: PaddingSpec, size: Pair, kernel: Pair, stride: Pair, dilation: Pair) -> Pair:
    """Spatial output size of a convolution with this padding spec."""
    pads = resolve(spec, size, kernel, stride, dilation)
    return (
        conv_output_size(size[0], kernel[0], stride[0], dilation[0], pads[0]),
        conv_output_size(size[1], kernel[1], stride[1], dilation[1], pads[1]),
    )


def check_input(x: torch.Tensor, layer: str, in_channels: int | None) -> None:
    """Require a ``Tensor[B, C, H, W]`` with the expected channel count."""
    if x.dim() != 4:
        raise LayerArgumentError(
            layer, "input", f"must be a 4-D Tensor[B, C, H, W], got shape {tuple(x.shape)}"
        )
    if in_channels is not None and x.shape[1] != in_channels:
        raise LayerArgumentError(
            layer,
            "input",
            f"has {x.shape[1]} channels but in_channels="
            f"{in_channels} (input shape {tuple(x.shape)})",
        )


def check_fits(
    size: Pair, pads: tuple[AxisPad, AxisPad], kernel: Pair, dilation: Pair, layer: str
) -> None:
    """Raise unless the dilated kernel fits inside the padded ``size``."""
    padded = (size[0] + sum(pads[0]), size[1] + sum(pads[1]))
    k_eff = (effective_kernel(kernel[0], dilation[0]), effective_kernel(kernel[1], dilation[1]))
    if padded[0] < k_eff[0] or padded[1] < k_eff[1]:
        raise LayerArgumentError(
            layer,
            "kernel_size",
            f"{kernel} with dilation {dilation} spans {k_eff[0]}x{k_eff[1]} pixels but the "
            f"padded input is only {padded[0]}x{padded[1]} (input {tuple(size)}, padding "
            f"{pads})",
        )


def zero_pad(x: torch.Tensor, pads: tuple[AxisPad, AxisPad]) -> torch.Tensor:
    """``Tensor[B, C, H, W]`` -> ``Tensor[B, C, H + top + bottom, W + left + right]``."""
    (top, bottom), (left, right) = pads
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom))
    return x


def split_symmetric(pads: tuple[AxisPad, AxisPad]) -> tuple[Pair, tuple[AxisPad, AxisPad]]:
    """Split padding into the symmetric part a conv op takes and the asymmetric rest."""
    sym = (min(pads[0]), min(pads[1]))
    (top, bottom), (left, right) = pads
    rest = ((top - sym[0], bottom - sym[0]), (left - sym[1], right - sym[1]))
    return sym, rest
