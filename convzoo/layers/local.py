"""Convolutions whose weights are not shared across all positions (Goodfellow et al.,
*Deep Learning*, section 9.5): locally connected (unshared) and tiled convolution."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.ranked import Ranked
from convzoo.layers.standard import CONV_OPS, layer_name
from convzoo.registry import register


def uniform_init(tensors: list[torch.Tensor | None], fan_in: int) -> None:
    """``nn.Conv2d``'s default init: every tensor ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        for tensor in tensors:
            if tensor is not None:
                tensor.uniform_(-bound, bound)


class Patches(torch.autograd.Function):
    """Padded ``Tensor[B, C, H_p, W_p]`` -> all patches ``Tensor[L, B, K]``, ``K = C·k_h·k_w``
    in ``(c, u, v)`` order, ``L = H_out·W_out`` row-major: ``F.unfold`` in another layout.

    Forward is one copy from a ``Tensor[C, H_p, W_p, B]`` view, contiguous over ``W_out·B``
    at stride 1 (measured ~4x faster than ``F.unfold``); backward is one
    ``F.fold`` (col2im), far faster than autograd through ``Tensor.unfold``.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        kernel: G.Ints,
        stride: G.Ints,
        dilation: G.Ints,
    ) -> torch.Tensor:
        ctx.size = (x.shape[-2], x.shape[-1])  # type: ignore[attr-defined]
        ctx.args = (kernel, stride, dilation)  # type: ignore[attr-defined]
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        xt = x.permute(1, 2, 3, 0).contiguous()  # [C, H_p, W_p, B]
        cols = xt.unfold(1, G.effective_kernel(kh, dh), sh)[..., ::dh]  # [C, H_o, W_p, B, kh]
        cols = cols.unfold(2, G.effective_kernel(kw, dw), sw)[..., ::dw]  # [C,H_o,W_o,B,kh,kw]
        cols = cols.permute(0, 4, 5, 1, 2, 3)  # [C, kh, kw, H_out, W_out, B]
        return cols.reshape(x.shape[1] * kh * kw, -1, x.shape[0]).permute(1, 2, 0)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        kernel, stride, dilation = ctx.args  # type: ignore[attr-defined]
        size = ctx.size  # type: ignore[attr-defined]
        cols = grad.permute(1, 2, 0)  # [B, K, L], as F.fold wants
        return F.fold(cols, size, kernel, dilation, 0, stride), None, None, None


def patches(x: torch.Tensor, geometry: G.Geometry) -> torch.Tensor:
    """Padded ``Tensor[B, C, *S_p]`` -> ``Tensor[L, B, K]`` for any number of spatial axes,
    ``K = C·prod(k)`` in ``(c, *k)`` order, ``L = prod(S_out)`` row-major (the 2-D case
    uses the faster :class:`Patches`)."""
    n = geometry.dims
    if n == 2:
        return Patches.apply(x, geometry.kernel, geometry.stride, geometry.dilation)
    for a, (span, s, d) in enumerate(
        zip(geometry.span, geometry.stride, geometry.dilation, strict=True)
    ):
        x = x.unfold(2 + a, span, s)[..., ::d]  # [B, C, *S_out, *k] once all axes are done
    b, c = x.shape[:2]
    out = x.shape[2 : 2 + n]
    order = [*range(2, 2 + n), 0, 1, *range(2 + n, 2 + 2 * n)]
    return x.permute(order).reshape(math.prod(out), b, -1)


class PositionsLast(torch.autograd.Function):
    """``Tensor[L, B, C]`` -> contiguous ``Tensor[B, C, L]``, and a contiguous ``[L, B, C]``
    gradient back, so the batched matmuls of the backward pass see unit strides (a
    strided gradient makes ``bmm`` fall back to one ``mm`` per position, measured 3-4x
    slower)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, y: torch.Tensor) -> torch.Tensor:
        return y.permute(1, 2, 0).contiguous()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        return grad.permute(2, 0, 1).contiguous()


class _Unshared(G.Windowed, Ranked, nn.Module):
    """Shared constructor part of the convolutions with more than one kernel: channels,
    geometry, and a weight initialised like ``nn.Conv2d``'s."""

    params_formula = ""

    def setup(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints,
        stride: int | G.Ints,
        padding: G.PaddingSpec,
        dilation: int | G.Ints,
    ) -> None:
        nn.Module.__init__(self)
        name = layer_name(self)
        C.channels(name, in_channels, out_channels, 1)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.geometry = G.Geometry.parse(name, self.dims, kernel_size, stride, padding, dilation)
        self.kernel_size = self.geometry.kernel
        self.stride = self.geometry.stride
        self.dilation = self.geometry.dilation

    def make_weights(
        self, weight_shape: tuple[int, ...], bias_shape: tuple[int, ...], bias: bool
    ) -> None:
        """``weight`` and ``bias`` ~ ``U(-1/sqrt(K), 1/sqrt(K))``, ``K = C_in·prod(k)``."""
        self.weight = nn.Parameter(torch.empty(weight_shape))
        has_bias = C.boolean(bias, layer_name(self), "bias")
        self.bias = nn.Parameter(torch.empty(bias_shape)) if has_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Same distribution as ``nn.Conv2d``: ``U(-1/sqrt(K), 1/sqrt(K))``, K = C_in·prod(k)."""
        uniform_init([self.weight, self.bias], self.in_channels * math.prod(self.kernel_size))

    def describe(self, extra: str) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, {extra}{self.geometry.describe()}, "
            f"bias={self.bias is not None}"
        )


@register("locally_connected", category="conv")
class LocallyConnected(_Unshared):
    """Unshared convolution: a different k x k x C_in kernel and bias at every output position.

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]`` for the one input size
    ``S = input_size`` it is built for (the weights are sized by the output grid);
    1-D, 2-D or 3-D (``dims``).

    Weight layout: ``weight`` is ``Tensor[*S_out, C_in, *k, C_out]`` (2-D:
    ``[H_out, W_out, C_in, k_h, k_w, C_out]``), so ``weight[i, j].permute(3, 0, 1, 2)`` is
    the ``Tensor[C_out, C_in, k_h, k_w]`` conv kernel used at output position ``(i, j)``
    (see :meth:`kernels`). ``C_out`` is innermost so the per-position product
    ``patches[B, K] @ weight[K, C_out]`` (``K = C_in·prod(k)``, in ``(c, *k)`` order like a
    flattened conv kernel) reads the weight row-major, which measured faster than ``C_out``
    first. ``bias`` is ``Tensor[C_out, *S_out]``.

    Forward is one gather of all patches (:func:`patches`) and one batched matmul over
    the ``prod(S_out)`` positions; no Python loop over positions.
    """

    params_formula = "H_out·W_out·C_out·(C_in·k_h·k_w + 1)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints,
        input_size: int | G.Ints,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        dilation: int | G.Ints = 1,
        bias: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        self.setup(in_channels, out_channels, kernel_size, stride, padding, dilation)
        name = layer_name(self)
        self.input_size = G.ints(input_size, self.dims, name, "input_size")
        self.pads = self.geometry.check_fits(self.input_size, name)
        out = self.output_size()
        self.make_weights(
            (*out, in_channels, *self.kernel_size, out_channels), (out_channels, *out), bias
        )

    def output_size(self, size: G.Ints | None = None) -> G.Ints:
        """Spatial output size for ``size`` (default: the ``input_size`` it was built for)."""
        return self.geometry.output_size(self.input_size if size is None else size)

    def kernels(self) -> torch.Tensor:
        """View of the weight as ``Tensor[*S_out, C_out, C_in, *k]``."""
        n = self.dims
        return self.weight.permute(*range(n), 2 * n + 1, *range(n, 2 * n + 1))

    def from_conv_weight(
        self, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> LocallyConnected:
        """Copy one shared conv kernel ``Tensor[C_out, C_in, *k]`` (and bias
        ``Tensor[C_out]``, else zeros) to every position; the layer then equals that conv."""
        name = layer_name(self)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        require(
            tuple(weight.shape) == shape,
            name,
            "weight",
            f"must have shape {shape}, got {tuple(weight.shape)}",
        )
        require(
            bias is None or self.bias is not None,
            name,
            "bias",
            "was given but the layer was built with bias=False",
        )
        require(
            bias is None or tuple(bias.shape) == (self.out_channels,),
            name,
            "bias",
            f"must have shape ({self.out_channels},), got "
            f"{None if bias is None else tuple(bias.shape)}",
        )
        with torch.no_grad():
            self.kernels().copy_(weight)
            if self.bias is not None:
                if bias is None:
                    self.bias.zero_()
                else:
                    self.bias.copy_(bias.view(-1, *(1,) * self.dims))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``, ``S = input_size``."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        size = G.spatial(x, self.dims)
        require(
            size == self.input_size,
            name,
            "input",
            f"has spatial size {size} but the layer was built for input_size="
            f"{self.input_size} (its weights are per output position)",
        )
        out = self.output_size()
        positions = math.prod(out)
        x = G.zero_pad(x, self.pads)
        cols = patches(x, self.geometry)  # [L, B, K]
        weight = self.weight.view(positions, -1, self.out_channels)  # [L, K, C_out]
        if self.bias is None:
            y = torch.bmm(cols, weight)  # [L, B, C_out]
        else:
            bias = self.bias.view(self.out_channels, positions).t().unsqueeze(1)  # [L, 1, C_out]
            y = torch.baddbmm(bias, cols, weight)
        y = PositionsLast.apply(y)  # [B, C_out, L]
        return y.view(x.shape[0], self.out_channels, *out)

    def extra_repr(self) -> str:
        return self.describe(f"input_size={self.input_size}, ")


@register("tiled", category="conv")
class Tiled(_Unshared):
    """Tiled convolution: t x t kernels rotate over the output; (i, j) uses (i mod t, j mod t).

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``, any input size, 1-D, 2-D or 3-D;
    same output size and MACs as ``conv`` with the same arguments.

    Weight layout: ``weight`` is ``Tensor[t^n·C_out, C_in, *k]`` and ``bias``
    ``Tensor[t^n·C_out]`` for ``n = dims``; in 2-D rows ``(a·t + b)·C_out ...`` hold kernel
    ``(a, b)``, i.e. ``weight.view(t, t, C_out, C_in, k_h, k_w)[a, b]`` (see :meth:`kernels`).
    With ``t = 1`` the state_dict is exactly ``conv``'s (same keys and shapes), so either
    loads the other.

    Forward: one strided conv per kernel offset ``(a, b)`` (stride ``t·s``, on the input
    shifted by ``(a·s_h, b·s_w)``) written into the output's ``[a::t, b::t]`` sub-grid; the
    2-D convs run in channels-last layout, which measured fastest on CPU.
    """

    params_formula = "t²·(C_out·C_in·k_h·k_w + C_out)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints,
        tile_size: int = 2,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        dilation: int | G.Ints = 1,
        bias: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        self.setup(in_channels, out_channels, kernel_size, stride, padding, dilation)
        self.tile_size = C.positive_int(tile_size, layer_name(self), "tile_size")
        n = tile_size**self.dims * out_channels
        self.make_weights((n, in_channels, *self.kernel_size), (n,), bias)

    def kernels(self) -> torch.Tensor:
        """View of the weight as ``Tensor[t, ..., t, C_out, C_in, *k]`` (``dims`` t's)."""
        t = (self.tile_size,) * self.dims
        return self.weight.view(*t, self.out_channels, *self.weight.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        name, n = layer_name(self), self.dims
        G.check_input(x, name, self.in_channels, n)
        size = G.spatial(x, n)
        pads = self.geometry.check_fits(size, name)
        out_size = self.output_size(size)
        out = x.new_empty(x.shape[0], self.out_channels, *out_size)
        if n == 2:
            x = x.contiguous(memory_format=torch.channels_last)
        x = G.zero_pad(x, pads)
        t, s = self.tile_size, self.stride
        weight = self.kernels()
        bias = None if self.bias is None else self.bias.view(*(t,) * n, self.out_channels)
        step = tuple(t * si for si in s)
        for offset in itertools.product(*(range(min(t, o)) for o in out_size)):
            shifted = x[G.last_axes(slice(a * si, None) for a, si in zip(offset, s, strict=True))]
            out[G.last_axes(slice(a, None, t) for a in offset)] = CONV_OPS[n](
                shifted,
                weight[offset],
                None if bias is None else bias[offset],
                step,
                0,
                self.dilation,
            )
        return out

    def extra_repr(self) -> str:
        return self.describe(f"tile_size={self.tile_size}, ")
