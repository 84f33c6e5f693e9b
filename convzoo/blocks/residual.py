"""Residual blocks: ResNet basic block and bottleneck (He et al. 2016) and the
MobileNetV2 inverted residual (Sandler et al. 2018), built from ``ConvNormAct``."""

from __future__ import annotations

import torch
from torch import nn

from convzoo.blocks.conv_norm_act import ConvNormAct, Factory, check_activation, check_conv_name
from convzoo.errors import LayerArgumentError, require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.basic import Activation
from convzoo.layers.standard import layer_name
from convzoo.registry import create, register


def shortcut(in_channels: int, out_channels: int, stride: G.Ints) -> nn.Module:
    """Identity, or a 1x1 strided conv (no bias) + batch norm when the shape changes; one
    stride per spatial axis (``len(stride)`` is the block's ``dims``)."""
    if all(s == 1 for s in stride) and in_channels == out_channels:
        return create("identity")
    return ConvNormAct(in_channels, out_channels, 1, stride, activation=None, dims=len(stride))


def block_arguments(
    layer: str, stride: int | G.Ints, conv: object, activation: object, dims: object = 2
) -> tuple[G.Ints, Factory, str]:
    """The strides (one per spatial axis), conv factory and (required) activation name of a
    residual block with ``dims`` spatial axes."""
    n = C.dims(dims, layer)
    s = G.ints(stride, n, layer, "stride")  # checked in this order, as before
    name = check_conv_name(conv, layer)
    require(activation is not None, layer, "activation", "must be an activation name")
    checked = check_activation(activation, layer)
    assert checked is not None  # not None in, not None out
    return s, name, checked


def add(layer: str, residual: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out + residual``, or a clear error when the two paths disagree in shape."""
    if residual.shape != out.shape:
        raise LayerArgumentError(
            layer,
            "input",
            f"gives a main path of shape {tuple(out.shape)} but a shortcut of shape "
            f"{tuple(residual.shape)}; the conv layer must keep the spatial size at stride 1",
        )
    return out + residual


@register("residual", category="block")
class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN (ReLU between), plus an identity/projection shortcut.

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *ceil(S / s)]`` with ``dims`` spatial axes ``S``
    (1, 2 or 3): ``act(conv2(conv1(x)) + shortcut(x))``. ``conv1`` carries the stride; both 3x3
    convs use ``conv`` (any registered conv name), ``groups`` and ``dilation`` (padding
    ``dilation``). The shortcut is a 1x1 conv (stride ``s``, no bias) + batch norm when
    ``s != 1`` or ``C_in != C_out``, else the identity. Children are in torchvision's parameter
    order: ``conv1``, ``conv2``, ``shortcut``, ``act``.
    """

    params_formula = "9·C_out·(C_in + C_out)/g + 4·C_out [+ C_in·C_out + 2·C_out]"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int | G.Ints = 1,
        conv: str | Factory = "conv",
        activation: str = "relu",
        groups: int = 1,
        dilation: int | G.Ints = 1,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        C.channels(name, in_channels, out_channels, groups)
        s, conv, activation = block_arguments(name, stride, conv, activation, dims)
        self.dims = len(s)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv1 = ConvNormAct(
            in_channels,
            out_channels,
            3,
            s,
            dilation=dilation,
            groups=groups,
            conv=conv,
            activation=activation,
            dims=self.dims,
        )
        self.conv2 = ConvNormAct(
            out_channels,
            out_channels,
            3,
            dilation=dilation,
            groups=groups,
            conv=conv,
            activation=None,
            dims=self.dims,
        )
        self.shortcut = shortcut(in_channels, out_channels, s)
        self.act = Activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        return self.act(add(name, self.shortcut(x), self.conv2(self.conv1(x))))


@register("bottleneck", category="block")
class Bottleneck(nn.Module):
    """ResNet bottleneck (v1.5): 1x1 reduce, 3x3 with the stride, 1x1 expand, plus a shortcut.

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *ceil(S / s)]`` (``dims`` axes ``S``):
    ``act(conv3(conv2(conv1(x))) + shortcut(x))`` with ``conv1: C_in -> C_mid``
    (1x1), ``conv2: C_mid -> C_mid`` (3x3, stride ``s``, ``groups``, layer ``conv``) and
    ``conv3: C_mid -> C_out`` (1x1, no activation). ``C_mid`` defaults to
    ``C_out // expansion`` (256 -> 64 -> 256). The shortcut is as in ``residual``.
    """

    params_formula = "C_mid·(C_in + 9·C_mid/g + C_out + 4) + 2·C_out [+ C_in·C_out + 2·C_out]"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        expansion: int = 4,
        stride: int | G.Ints = 1,
        groups: int = 1,
        conv: str | Factory = "conv",
        activation: str = "relu",
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        C.channels(name, in_channels, out_channels, 1)
        if mid_channels is None:
            C.positive_int(expansion, name, "expansion")
            require(
                out_channels % expansion == 0,
                name,
                "expansion",
                f"must divide out_channels={out_channels} (or give mid_channels), got {expansion}",
            )
            mid_channels = out_channels // expansion
        C.channels(name, mid_channels, mid_channels, groups)
        s, conv, activation = block_arguments(name, stride, conv, activation, dims)
        n = self.dims = len(s)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.mid_channels = mid_channels
        self.conv1 = ConvNormAct(in_channels, mid_channels, 1, activation=activation, dims=n)
        self.conv2 = ConvNormAct(
            mid_channels, mid_channels, 3, s, groups=groups, conv=conv, activation=activation,
            dims=n,
        )  # fmt: skip
        self.conv3 = ConvNormAct(mid_channels, out_channels, 1, activation=None, dims=n)
        self.shortcut = shortcut(in_channels, out_channels, s)
        self.act = Activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        out = self.conv3(self.conv2(self.conv1(x)))
        return self.act(add(name, self.shortcut(x), out))


@register("inverted_residual", category="block")
class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand, depthwise kxk, linear 1x1 project (+ x).

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *ceil(S / s)]`` (``dims`` axes ``S``) with
    ``C_hid = round(C_in · expand_ratio)``: ``expand`` (1x1 conv-BN-act, absent when
    ``expand_ratio == 1``), ``depthwise`` (k x k depthwise conv-BN-act, stride ``s``),
    ``project`` (1x1 conv-BN, no activation). The input is added back only when
    ``s == 1`` and ``C_in == C_out``.
    """

    params_formula = "[C_in·C_hid + 2·C_hid if t≠1] + C_hid·(k_h·k_w + C_out + 2) + 2·C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int | G.Ints = 1,
        expand_ratio: float = 6,
        kernel_size: int | G.Ints = 3,
        activation: str = "relu6",
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        C.channels(name, in_channels, out_channels, 1)
        n = self.dims = C.dims(dims, name)
        s = G.ints(stride, n, name, "stride")
        k = G.ints(kernel_size, n, name, "kernel_size")
        require(
            all(side % 2 == 1 for side in k),
            name,
            "kernel_size",
            f"must be odd so the depthwise conv keeps the spatial size, got {kernel_size!r}",
        )
        require(
            C.is_number(expand_ratio) and round(in_channels * expand_ratio) >= 1,
            name,
            "expand_ratio",
            f"must be a number with round(in_channels * expand_ratio) >= 1, got {expand_ratio!r}",
        )
        _, _, activation = block_arguments(name, s, "conv", activation, n)
        hidden = int(round(in_channels * expand_ratio))
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden
        self.use_residual = all(side == 1 for side in s) and in_channels == out_channels
        self.expand: ConvNormAct | None = None
        if expand_ratio != 1:
            self.expand = ConvNormAct(in_channels, hidden, 1, activation=activation, dims=n)
        self.depthwise = ConvNormAct(
            hidden, hidden, k, s, conv="depthwise", activation=activation, dims=n
        )
        self.project = ConvNormAct(hidden, out_channels, 1, activation=None, dims=n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(out))
        return add(name, x, out) if self.use_residual else out
