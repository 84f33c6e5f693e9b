"""Convolutions whose weights are not shared across all positions (Goodfellow et al.,
*Deep Learning*, section 9.5): locally connected (unshared) and tiled convolution."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import require
from convzoo.layers import padding as P
from convzoo.layers.standard import check_channels, layer_name
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
        kernel: P.Pair,
        stride: P.Pair,
        dilation: P.Pair,
    ) -> torch.Tensor:
        ctx.size = (x.shape[-2], x.shape[-1])  # type: ignore[attr-defined]
        ctx.args = (kernel, stride, dilation)  # type: ignore[attr-defined]
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        xt = x.permute(1, 2, 3, 0).contiguous()  # [C, H_p, W_p, B]
        cols = xt.unfold(1, P.effective_kernel(kh, dh), sh)[..., ::dh]  # [C, H_o, W_p, B, kh]
        cols = cols.unfold(2, P.effective_kernel(kw, dw), sw)[..., ::dw]  # [C,H_o,W_o,B,kh,kw]
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


@register("locally_connected", category="conv")
class LocallyConnected(nn.Module):
    """Unshared convolution: a different k x k x C_in kernel and bias at every output position.

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]`` for the one input size
    ``(H, W) = input_size`` it is built for (the weights are sized by the output grid).

    Weight layout: ``weight`` is ``Tensor[H_out, W_out, C_in, k_h, k_w, C_out]``, so
    ``weight[i, j].permute(3, 0, 1, 2)`` is the ``Tensor[C_out, C_in, k_h, k_w]`` conv kernel
    used at output position ``(i, j)`` (see :meth:`kernels`). ``C_out`` is innermost so the
    per-position product ``patches[B, K] @ weight[K, C_out]`` (``K = C_in·k_h·k_w``, in
    ``(c, u, v)`` order like a flattened conv kernel) reads the weight row-major, which
    measured faster than ``C_out`` first. ``bias`` is ``Tensor[C_out, H_out, W_out]``.

    Forward is one gather of all patches (:class:`Patches`) and one batched matmul over
    the ``H_out·W_out`` positions; no Python loop over positions.
    """

    params_formula = "H_out·W_out·C_out·(C_in·k_h·k_w + 1)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair,
        input_size: int | P.Pair,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        check_channels(name, in_channels, out_channels, 1)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = P.pair(kernel_size, name, "kernel_size")
        self.input_size = P.pair(input_size, name, "input_size")
        self.stride = P.pair(stride, name, "stride")
        self.dilation = P.pair(dilation, name, "dilation")
        self.pad_spec = P.check_padding(padding, name)
        self.pads = P.resolve(
            self.pad_spec, self.input_size, self.kernel_size, self.stride, self.dilation
        )
        P.check_fits(self.input_size, self.pads, self.kernel_size, self.dilation, name)
        h_out, w_out = self.output_size
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(h_out, w_out, in_channels, kh, kw, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels, h_out, w_out)) if bias else None
        self.reset_parameters()

    @property
    def output_size(self) -> P.Pair:
        """Spatial output size ``(H_out, W_out)`` for the ``input_size`` it was built for."""
        return P.output_size(
            self.pad_spec, self.input_size, self.kernel_size, self.stride, self.dilation
        )

    def reset_parameters(self) -> None:
        """Same distribution as ``nn.Conv2d``: ``U(-1/sqrt(K), 1/sqrt(K))``, K = C_in·k_h·k_w."""
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        uniform_init([self.weight, self.bias], fan_in)

    def kernels(self) -> torch.Tensor:
        """View of the weight as ``Tensor[H_out, W_out, C_out, C_in, k_h, k_w]``."""
        return self.weight.permute(0, 1, 5, 2, 3, 4)

    def from_conv_weight(
        self, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> LocallyConnected:
        """Copy one shared conv kernel ``Tensor[C_out, C_in, k_h, k_w]`` (and bias
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
                    self.bias.copy_(bias.view(-1, 1, 1))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``, ``(H, W) = input_size``."""
        name = layer_name(self)
        P.check_input(x, name, self.in_channels)
        size = (x.shape[-2], x.shape[-1])
        require(
            size == self.input_size,
            name,
            "input",
            f"has spatial size {size} but the layer was built for input_size="
            f"{self.input_size} (its weights are per output position)",
        )
        h_out, w_out = self.output_size
        positions = h_out * w_out
        x = P.zero_pad(x, self.pads)
        cols = Patches.apply(x, self.kernel_size, self.stride, self.dilation)  # [L, B, K]
        weight = self.weight.view(positions, -1, self.out_channels)  # [L, K, C_out]
        if self.bias is None:
            y = torch.bmm(cols, weight)  # [L, B, C_out]
        else:
            bias = self.bias.view(self.out_channels, positions).t().unsqueeze(1)  # [L, 1, C_out]
            y = torch.baddbmm(bias, cols, weight)
        y = PositionsLast.apply(y)  # [B, C_out, L]
        return y.view(x.shape[0], self.out_channels, h_out, w_out)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"input_size={self.input_size}, stride={self.stride}, padding={self.pad_spec!r}, "
            f"dilation={self.dilation}, bias={self.bias is not None}"
        )


@register("tiled", category="conv")
class Tiled(nn.Module):
    """Tiled convolution: t x t kernels rotate over the output; (i, j) uses (i mod t, j mod t).

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``, any input size; same
    output size and MACs as ``conv`` with the same arguments.

    Weight layout: ``weight`` is ``Tensor[t·t·C_out, C_in, k_h, k_w]`` and ``bias``
    ``Tensor[t·t·C_out]``; rows ``(a·t + b)·C_out ...`` hold kernel ``(a, b)``, i.e.
    ``weight.view(t, t, C_out, C_in, k_h, k_w)[a, b]`` (see :meth:`kernels`). With ``t = 1``
    the state_dict is exactly ``conv``'s (same keys and shapes), so either loads the other.

    Forward: one strided conv per kernel ``(a, b)`` (stride ``t·s``, on the input shifted by
    ``(a·s_h, b·s_w)``) written into the output's ``[a::t, b::t]`` sub-grid; the convs run in
    channels-last layout, which measured fastest on CPU.
    """

    params_formula = "t²·(C_out·C_in·k_h·k_w + C_out)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair,
        tile_size: int = 2,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec = "valid",
        dilation: int | P.Pair = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        check_channels(name, in_channels, out_channels, 1)
        require(
            isinstance(tile_size, int) and not isinstance(tile_size, bool) and tile_size >= 1,
            name,
            "tile_size",
            f"must be a positive int, got {tile_size!r}",
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.tile_size = tile_size
        self.kernel_size = P.pair(kernel_size, name, "kernel_size")
        self.stride = P.pair(stride, name, "stride")
        self.dilation = P.pair(dilation, name, "dilation")
        self.pad_spec = P.check_padding(padding, name)
        kh, kw = self.kernel_size
        n = tile_size * tile_size * out_channels
        self.weight = nn.Parameter(torch.empty(n, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(n)) if bias else None
        uniform_init([self.weight, self.bias], in_channels * kh * kw)

    def kernels(self) -> torch.Tensor:
        """View of the weight as ``Tensor[t, t, C_out, C_in, k_h, k_w]``."""
        t = self.tile_size
        return self.weight.view(t, t, self.out_channels, *self.weight.shape[1:])

    def resolve_padding(self, size: P.Pair) -> tuple[P.AxisPad, P.AxisPad]:
        """``((top, bottom), (left, right))`` zeros for an input of spatial ``size``."""
        return P.resolve(self.pad_spec, size, self.kernel_size, self.stride, self.dilation)

    def output_size(self, size: P.Pair) -> P.Pair:
        """Spatial output size for an input of spatial ``size``."""
        return P.output_size(self.pad_spec, size, self.kernel_size, self.stride, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``."""
        name = layer_name(self)
        P.check_input(x, name, self.in_channels)
        size = (x.shape[-2], x.shape[-1])
        pads = self.resolve_padding(size)
        P.check_fits(size, pads, self.kernel_size, self.dilation, name)
        h_out, w_out = self.output_size(size)
        out = x.new_empty(x.shape[0], self.out_channels, h_out, w_out)
        x = P.zero_pad(x.contiguous(memory_format=torch.channels_last), pads)
        t, (sh, sw) = self.tile_size, self.stride
        weight = self.kernels()
        bias = None if self.bias is None else self.bias.view(t, t, self.out_channels)
        for a in range(min(t, h_out)):
            for b in range(min(t, w_out)):
                out[:, :, a::t, b::t] = F.conv2d(
                    x[:, :, a * sh :, b * sw :],
                    weight[a, b],
                    None if bias is None else bias[a, b],
                    (t * sh, t * sw),
                    0,
                    self.dilation,
                )
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"tile_size={self.tile_size}, stride={self.stride}, padding={self.pad_spec!r}, "
            f"dilation={self.dilation}, bias={self.bias is not None}"
        )
