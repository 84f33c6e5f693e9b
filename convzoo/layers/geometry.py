"""The one place window arguments are parsed: kernel, stride, dilation and padding per axis.

:class:`Geometry` holds them for any number of spatial axes (1-D sequences, 2-D images,
3-D volumes) and answers the questions every windowed layer asks: the padding for an input
size, the output size, whether the kernel fits. Conventions (see docs/zoo.md, "Padding modes"),
per axis with ``k_eff = dilation * (k - 1) + 1``:

* ``"valid"``: no padding, output ``floor((n - k_eff) / s) + 1``.
* ``"same"``: output ``ceil(n / s)``; the total padding
  ``max((ceil(n / s) - 1) * s + k_eff - n, 0)`` is split with the odd pixel after
  (bottom/right/back), as TensorFlow does. With ``s > 1`` it depends on ``n``.
* ``"full"``: ``k_eff - 1`` on each side, output ``n + k_eff - 1`` at stride 1.
* an int or one int per axis: that many zeros on both sides of each axis.

>>> g = Geometry.parse("conv", 2, kernel_size=3, stride=2, padding="same")
>>> g.output_size((7, 8)), g.pads((7, 8))
((4, 4), ((1, 1), (0, 1)))
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from convzoo.errors import LayerArgumentError, require
from convzoo.layers.checks import is_int

Ints = tuple[int, ...]
AxisPad = tuple[int, int]  # (before, after)
Pads = tuple[AxisPad, ...]
PaddingSpec = str | int | tuple[int, ...]
MODES = ("valid", "same", "full")
AXES = {1: "L", 2: "H, W", 3: "D, H, W"}
SHAPES = {1: "an int", 2: "an int or (h, w) pair", 3: "an int or (d, h, w) triple"}


def ints(value: object, n: int, layer: str, argument: str, minimum: int = 1) -> Ints:
    """``value`` (an int, or ``n`` ints) as ``n`` ints ``>= minimum``, or a clear error."""
    shape = SHAPES.get(n, f"an int or {n} ints")
    if is_int(value):
        value = (value,) * n
    if not isinstance(value, (tuple, list)) or len(value) != n or not all(is_int(v) for v in value):
        raise LayerArgumentError(layer, argument, f"must be {shape}, got {value!r}")
    word = "positive" if minimum == 1 else f">= {minimum}"
    require(all(v >= minimum for v in value), layer, argument, f"must be {word}, got {value!r}")
    return tuple(int(v) for v in value)


def check_padding(spec: object, n: int, layer: str, modes: tuple[str, ...] = MODES) -> PaddingSpec:
    """A padding spec: a mode name, or non-negative ints (one, or one per axis)."""
    if isinstance(spec, str):
        require(spec in modes, layer, "padding", f"must be one of {modes} or ints, got {spec!r}")
        return spec
    return ints(spec, n, layer, "padding", minimum=0)


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel in input pixels: ``dilation * (kernel - 1) + 1``."""
    return dilation * (kernel - 1) + 1


def axis_padding(
    spec: PaddingSpec, size: int, kernel: int, stride: int, dilation: int, axis: int = 0
) -> AxisPad:
    """``(before, after)`` zeros along spatial ``axis`` for an input of ``size``."""
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


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, pad: AxisPad) -> int:
    """``floor((size + before + after - k_eff) / stride) + 1`` (may be < 1: caller checks)."""
    return (size + pad[0] + pad[1] - effective_kernel(kernel, dilation)) // stride + 1


def split_symmetric(pads: Pads) -> tuple[Ints, Pads]:
    """Split padding into the symmetric part a conv op takes and the asymmetric rest."""
    sym = tuple(min(p) for p in pads)
    return sym, tuple((p[0] - s, p[1] - s) for p, s in zip(pads, sym, strict=True))


@dataclass(frozen=True)
class Geometry:
    """Kernel, stride, dilation (one int per spatial axis) and a padding spec.

    Built by :meth:`parse`, which checks every argument once; ``dims`` is the number of
    spatial axes. All sizes are spatial (no batch or channel axis).
    """

    kernel: Ints
    stride: Ints
    dilation: Ints
    padding: PaddingSpec

    @classmethod
    def parse(
        cls,
        layer: str,
        dims: int,
        kernel_size: object,
        stride: object = 1,
        padding: object = "valid",
        dilation: object = 1,
        modes: tuple[str, ...] = MODES,
    ) -> Geometry:
        """Check and normalise the window arguments of ``layer`` for ``dims`` spatial axes."""
        return cls(
            ints(kernel_size, dims, layer, "kernel_size"),
            ints(stride, dims, layer, "stride"),
            ints(dilation, dims, layer, "dilation"),
            check_padding(padding, dims, layer, modes),
        )

    @property
    def dims(self) -> int:
        return len(self.kernel)

    @property
    def span(self) -> Ints:
        """Effective (dilated) kernel size per axis."""
        return tuple(
            effective_kernel(k, d) for k, d in zip(self.kernel, self.dilation, strict=True)
        )

    @property
    def is_static(self) -> bool:
        """Whether the padding is the same for every input size."""
        return self.padding != "same" or all(s == 1 for s in self.stride)

    def pads(self, size: Ints) -> Pads:
        """``(before, after)`` zeros per axis for an input of spatial ``size``."""
        return tuple(
            axis_padding(self.padding, size[a], self.kernel[a], self.stride[a], self.dilation[a], a)
            for a in range(self.dims)
        )

    def static_padding(self) -> Ints:
        """The symmetric padding a torch conv module stores (0 where it depends on the input)."""
        if not self.is_static:
            return (0,) * self.dims
        return split_symmetric(self.pads((0,) * self.dims))[0]

    def output_size(self, size: Ints) -> Ints:
        """Spatial output size for an input of spatial ``size`` (may be < 1: see ``check_fits``)."""
        pads = self.pads(size)
        return tuple(
            conv_output_size(size[a], self.kernel[a], self.stride[a], self.dilation[a], pads[a])
            for a in range(self.dims)
        )

    def check_fits(self, size: Ints, layer: str) -> Pads:
        """The padding for ``size``; raise unless the dilated kernel fits the padded input."""
        pads = self.pads(size)
        padded = tuple(n + sum(p) for n, p in zip(size, pads, strict=True))
        if any(p < k for p, k in zip(padded, self.span, strict=True)):
            raise LayerArgumentError(
                layer,
                "kernel_size",
                f"{self.kernel} with dilation {self.dilation} spans "
                f"{'x'.join(map(str, self.span))} pixels but the padded input is only "
                f"{'x'.join(map(str, padded))} (input {tuple(size)}, padding {pads})",
            )
        return pads

    def along(self, axis: int) -> Geometry:
        """This geometry acting along ``axis`` only (kernel, stride and dilation 1 elsewhere)."""

        def keep(values: Ints, other: int = 1) -> Ints:
            return tuple(v if a == axis else other for a, v in enumerate(values))

        padding = self.padding
        pad = padding if isinstance(padding, str) else keep(ints(padding, self.dims, "", "", 0), 0)
        return Geometry(keep(self.kernel), keep(self.stride), keep(self.dilation), pad)

    def describe(self) -> str:
        """``kernel_size=(3, 3), stride=(1, 1), padding='same', dilation=(1, 1)``."""
        return (
            f"kernel_size={self.kernel}, stride={self.stride}, padding={self.padding!r}, "
            f"dilation={self.dilation}"
        )


def check_input(x: torch.Tensor, layer: str, in_channels: int | None, dims: int = 2) -> None:
    """Require a ``Tensor[B, C, *spatial]`` with ``dims`` spatial axes and the channel count."""
    if x.dim() != dims + 2:
        raise LayerArgumentError(
            layer,
            "input",
            f"must be a {dims + 2}-D Tensor[B, C, {AXES[dims]}], got shape {tuple(x.shape)}",
        )
    if in_channels is not None and x.shape[1] != in_channels:
        raise LayerArgumentError(
            layer,
            "input",
            f"has {x.shape[1]} channels but in_channels={in_channels} "
            f"(input shape {tuple(x.shape)})",
        )


def spatial(x: torch.Tensor, dims: int) -> Ints:
    """The last ``dims`` sizes of ``x``."""
    return tuple(int(n) for n in x.shape[x.dim() - dims :])


def last_axes(slices: Iterable[slice]) -> tuple[Any, ...]:
    """An index applying ``slices`` to the last axes: ``x[last_axes(s)]`` is ``x[..., *s]``."""
    index: tuple[Any, ...] = (Ellipsis, *slices)
    return index


def crop(x: torch.Tensor, start: Ints, size: Ints) -> torch.Tensor:
    """``x[..., start_a : start_a + size_a, ...]`` over the last ``len(size)`` axes."""
    return x[last_axes(slice(b, b + n) for b, n in zip(start, size, strict=True))]


def zero_pad(x: torch.Tensor, pads: Pads, value: float = 0.0) -> torch.Tensor:
    """Pad the last ``len(pads)`` axes (first axis first) with ``value``."""
    if not any(b or a for b, a in pads):
        return x
    flat = [n for before_after in reversed(pads) for n in before_after]
    return F.pad(x, flat, value=value)


class Windowed:
    """Mixin for layers holding a :class:`Geometry` as ``self.geometry``: the one spelling
    of the padding spec, the padding and the output size for an input size."""

    geometry: Geometry

    @property
    def pad_spec(self) -> PaddingSpec:
        """The padding spec as given (``"same"``, ints per axis, ...)."""
        return self.geometry.padding

    def resolve_padding(self, size: Ints) -> Pads:
        """``(before, after)`` zeros per axis for an input of spatial ``size``."""
        return self.geometry.pads(size)

    def output_size(self, size: Ints) -> Ints:
        """Spatial output size for an input of spatial ``size``."""
        return self.geometry.output_size(size)
