"""Transposed convolution (a.k.a. fractionally strided convolution, "deconvolution").

A transposed convolution is the adjoint of a forward convolution: if ``conv`` maps
``Tensor[B, C, n, .]`` to ``Tensor[B, C', m, .]`` with weight ``W``, the transposed
layer with the same ``W`` maps ``Tensor[B, C', m, .]`` back to ``Tensor[B, C, n, .]``
and ``<conv(x), y> = <x, transposed(y)>``. The padding spec is that of the forward
convolution it is the adjoint of, per axis with ``k_eff = dilation * (k - 1) + 1``
and ``L = (m - 1) * s + k_eff`` (the un-cropped "full" transposed output):

* ``"valid"``: nothing cropped, output ``L + output_padding``.
* ``"same"``: output ``m * s``; the ``k_eff - s`` surplus is cropped with the odd
  pixel after (as ``"same"`` pads the odd pixel after), and when ``k_eff < s`` the
  missing ``s - k_eff`` zeros are added at the end.
* ``"full"``: ``k_eff - 1`` cropped on each side, output ``L - 2 (k_eff - 1)``.
* ints: ``nn.ConvTranspose2d``'s ``padding``, output ``L - 2 p + output_padding``.

``output_size`` picks any size ``n`` the forward convolution maps to ``m`` (for
``"same"`` with ``s > 1``: ``(m - 1) s < n <= m s``, with that input's crop).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import require
from convzoo.layers import padding as P
from convzoo.layers.standard import check_channels, layer_name
from convzoo.registry import register

AxisPlan = tuple[int, int, int, int]  # (size n, torch padding, torch output_padding, crop start)


@register("transposed", category="conv")
class Transposed(nn.ConvTranspose2d):
    """Transposed convolution: the adjoint of a conv, upsampling by the stride.

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``; the weight is
    ``Tensor[C_in, C_out / groups, k_h, k_w]`` exactly as in ``nn.ConvTranspose2d``
    (it is one), i.e. the weight of the forward ``conv`` from ``C_out`` to ``C_in``
    channels that this layer is the adjoint of.
    """

    params_formula = "C_in·C_out·k_h·k_w/g + C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        output_padding: int | P.Pair = 0,
        dilation: int | P.Pair = 1,
        groups: int = 1,
        bias: bool = True,
        output_size: int | P.Pair | None = None,
    ) -> None:
        name = layer_name(self)
        check_channels(name, in_channels, out_channels, groups)
        k = P.pair(kernel_size, name, "kernel_size")
        s = P.pair(stride, name, "stride")
        d = P.pair(dilation, name, "dilation")
        spec = P.check_padding(padding, name)
        op = P.pair(output_padding, name, "output_padding", minimum=0)
        for a in (0, 1):
            require(
                op[a] < max(s[a], d[a]),
                name,
                "output_padding",
                f"must be smaller than stride or dilation, got output_padding={op}, "
                f"stride={s}, dilation={d}",
            )
        require(
            spec != "same" or op == (0, 0),
            name,
            "output_padding",
            f"must be 0 with padding='same' (output = input * stride; pass output_size "
            f"for a smaller size), got {op}",
        )
        target = None if output_size is None else P.pair(output_size, name, "output_size")
        require(
            target is None or op == (0, 0),
            name,
            "output_size",
            f"and output_padding={op} cannot both be given (output_size picks it)",
        )
        static = spec if isinstance(spec, tuple) else (0, 0)
        super().__init__(
            in_channels,
            out_channels,
            k,
            stride=s,
            padding=static,
            output_padding=op,
            groups=groups,
            bias=bias,
            dilation=d,
        )
        self.pad_spec = spec
        self.target_size = target

    def axis_plan(self, m: int, axis: int, target: int | None) -> AxisPlan:
        """How to produce one axis from an input of size ``m``: see :meth:`plan`."""
        name = layer_name(self)
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        full = (m - 1) * s + P.effective_kernel(k, d)
        if self.pad_spec == "same":
            lo, hi = (m - 1) * s + 1, m * s
        else:
            before, after = P.axis_padding(self.pad_spec, m, k, s, d, axis)
            lo = full - before - after
            hi = lo + s - 1
        if target is None:
            n = (m * s if self.pad_spec == "same" else lo) + self.output_padding[axis]
            require(
                n >= 1,
                name,
                "input",
                f"size {m} along axis {axis + 2} is too small for padding={self.pad_spec!r}: "
                f"the output would have size {n}",
            )
        else:
            n = target
            require(
                max(lo, 1) <= n <= hi,
                name,
                "output_size",
                f"{n} along axis {axis + 2} is unreachable from input size {m}: "
                f"padding={self.pad_spec!r}, kernel_size={self.kernel_size}, stride={self.stride}"
                f", dilation={self.dilation} reach sizes {max(lo, 1)}..{hi}",
            )
        start = P.axis_padding(self.pad_spec, min(n, hi), k, s, d, axis)[0]
        tail = full - start - n  # < 0: zeros to add at the end
        sym = min(start, max(tail, 0))
        return n, sym, max(-tail, 0), start - sym

    def plan(
        self, size: P.Pair, output_size: P.Pair | None = None
    ) -> tuple[P.Pair, P.Pair, P.Pair, P.Pair]:
        """``(out_size, padding, output_padding, crop_start)`` for an input of spatial ``size``.

        ``F.conv_transpose2d`` runs with the symmetric ``padding`` and ``output_padding``;
        ``out_size`` rows/columns from ``crop_start`` are kept.
        """
        target = self.target_size if output_size is None else output_size
        h, w = (self.axis_plan(size[a], a, None if target is None else target[a]) for a in (0, 1))
        return (h[0], w[0]), (h[1], w[1]), (h[2], w[2]), (h[3], w[3])

    def check_output_size(self, output_size: object) -> P.Pair | None:
        """``output_size`` as an ``(h, w)`` pair (the last two of a 4-D shape), or None."""
        if output_size is None:
            return None
        if isinstance(output_size, Sequence) and len(output_size) == 4:
            output_size = tuple(output_size[-2:])
        elif isinstance(output_size, list):
            output_size = tuple(output_size)
        return P.pair(output_size, layer_name(self), "output_size")

    def output_size_for(self, size: P.Pair, output_size: P.Pair | None = None) -> P.Pair:
        """Spatial output size for an input of spatial ``size`` (``(h, w)``)."""
        return self.plan((size[0], size[1]), self.check_output_size(output_size))[0]

    def forward(
        self, x: torch.Tensor, output_size: int | Sequence[int] | None = None
    ) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``.

        ``output_size`` (``(h, w)``, or a full shape whose last two entries are used)
        overrides the constructor's ``output_size`` / ``output_padding`` for this call.
        """
        name = layer_name(self)
        P.check_input(x, name, self.in_channels)
        target = self.check_output_size(output_size)
        out, sym, extra, start = self.plan((x.shape[-2], x.shape[-1]), target)
        y = F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, sym, extra, self.groups, self.dilation
        )
        if start != (0, 0) or (y.shape[-2], y.shape[-1]) != out:
            y = y[..., start[0] : start[0] + out[0], start[1] : start[1] + out[1]]
        return y

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.pad_spec!r}"
        )
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.target_size is not None:
            text += f", output_size={self.target_size}"
        return text
