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
from torch.nn.modules.conv import _ConvTransposeNd

from convzoo.errors import require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.ranked import Ranked
from convzoo.layers.standard import layer_name
from convzoo.registry import register

AxisPlan = tuple[int, int, int, int]  # (size n, torch padding, torch output_padding, crop start)
Plan = tuple[G.Ints, G.Ints, G.Ints, G.Ints]
TRANSPOSED_OPS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@register("transposed", category="conv")
class Transposed(G.Windowed, Ranked, _ConvTransposeNd):
    """Transposed convolution: the adjoint of a conv, upsampling by the stride (1-D/2-D/3-D).

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``; the weight is
    ``Tensor[C_in, C_out / groups, *k]`` exactly as in ``nn.ConvTranspose2d``
    (it is one, or ``nn.ConvTranspose1d/3d``), i.e. the weight of the forward ``conv``
    from ``C_out`` to ``C_in`` channels that this layer is the adjoint of.
    """

    params_formula = "C_in·C_out·k_h·k_w/g + C_out"
    torch_bases = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        output_padding: int | G.Ints = 0,
        dilation: int | G.Ints = 1,
        groups: int = 1,
        bias: bool = True,
        output_size: int | G.Ints | None = None,
        *,
        dims: int = 2,
    ) -> None:
        name, n = layer_name(self), self.dims
        C.channels(name, in_channels, out_channels, groups)
        geo = G.Geometry.parse(name, n, kernel_size, stride, padding, dilation)
        s, d = geo.stride, geo.dilation
        op = G.ints(output_padding, n, name, "output_padding", minimum=0)
        require(
            all(op[a] < max(s[a], d[a]) for a in range(n)),
            name,
            "output_padding",
            f"must be smaller than stride or dilation, got output_padding={op}, "
            f"stride={s}, dilation={d}",
        )
        require(
            geo.padding != "same" or not any(op),
            name,
            "output_padding",
            f"must be 0 with padding='same' (output = input * stride; pass output_size "
            f"for a smaller size), got {op}",
        )
        target = None if output_size is None else G.ints(output_size, n, name, "output_size")
        require(
            target is None or not any(op),
            name,
            "output_size",
            f"and output_padding={op} cannot both be given (output_size picks it)",
        )
        static = geo.padding if isinstance(geo.padding, tuple) else (0,) * n
        _ConvTransposeNd.__init__(
            self, in_channels, out_channels, geo.kernel, s, static, d, True, op, groups,
            C.boolean(bias, name, "bias"), "zeros",
        )  # fmt: skip
        self.geometry = geo
        self.target_size = target

    def axis_plan(self, m: int, axis: int, target: int | None) -> AxisPlan:
        """How to produce one axis from an input of size ``m``: see :meth:`plan`."""
        name = layer_name(self)
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        full = (m - 1) * s + G.effective_kernel(k, d)
        if self.pad_spec == "same":
            lo, hi = (m - 1) * s + 1, m * s
        else:
            before, after = G.axis_padding(self.pad_spec, m, k, s, d, axis)
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
        start = G.axis_padding(self.pad_spec, min(n, hi), k, s, d, axis)[0]
        tail = full - start - n  # < 0: zeros to add at the end
        sym = min(start, max(tail, 0))
        return n, sym, max(-tail, 0), start - sym

    def plan(self, size: G.Ints, output_size: G.Ints | None = None) -> Plan:
        """``(out_size, padding, output_padding, crop_start)`` for an input of spatial ``size``.

        ``F.conv_transpose{1,2,3}d`` runs with the symmetric ``padding`` and
        ``output_padding``; ``out_size`` entries from ``crop_start`` are kept per axis.
        """
        target = self.target_size if output_size is None else output_size
        axes = [
            self.axis_plan(size[a], a, None if target is None else target[a])
            for a in range(self.dims)
        ]
        out, sym, extra, start = (tuple(p[i] for p in axes) for i in range(4))
        return out, sym, extra, start

    def check_output_size(self, output_size: object) -> G.Ints | None:
        """``output_size`` as spatial sizes (the last ``dims`` of a full shape), or None."""
        if output_size is None:
            return None
        n = self.dims
        if isinstance(output_size, Sequence) and len(output_size) == n + 2:
            output_size = tuple(output_size[-n:])
        elif isinstance(output_size, list):
            output_size = tuple(output_size)
        return G.ints(output_size, n, layer_name(self), "output_size")

    def output_size(self, size: G.Ints, output_size: G.Ints | None = None) -> G.Ints:
        """Spatial output size for an input of spatial ``size``."""
        return self.plan(tuple(size), self.check_output_size(output_size))[0]

    def forward(
        self, x: torch.Tensor, output_size: int | Sequence[int] | None = None
    ) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``.

        ``output_size`` (spatial sizes, or a full shape whose last ``dims`` entries are
        used) overrides the constructor's ``output_size`` / ``output_padding`` for this call.
        """
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        target = self.check_output_size(output_size)
        out, sym, extra, start = self.plan(G.spatial(x, self.dims), target)
        op = TRANSPOSED_OPS[self.dims]
        y = op(x, self.weight, self.bias, self.stride, sym, extra, self.groups, self.dilation)
        if any(start) or G.spatial(y, self.dims) != out:
            y = G.crop(y, start, out)
        return y

    def extra_repr(self) -> str:
        zero, one = (0,) * self.dims, (1,) * self.dims
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.pad_spec!r}"
        )
        if self.output_padding != zero:
            text += f", output_padding={self.output_padding}"
        if self.dilation != one:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.target_size is not None:
            text += f", output_size={self.target_size}"
        return text
