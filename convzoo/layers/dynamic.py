"""Convolutions whose kernel is a per-sample mixture of ``E`` expert kernels.

* ``cond_conv``: CondConv (Yang, Bender, Le & Ngiam 2019, "CondConv: Conditionally
  Parameterized Convolutions for Efficient Inference"): routing weights
  ``r = sigmoid(FC(GAP(x)))``, independent per expert.
* ``dynamic_conv``: dynamic convolution (Chen, Dai, Liu, Chen, Yuan & Liu 2020, "Dynamic
  Convolution: Attention over Convolution Kernels"): ``r = softmax(FC(relu(FC(GAP(x)))) / T)``,
  summing to 1 (temperature ``T``, 30 in the paper's early training).

Both then convolve sample ``b`` with ``sum_e r[b, e] W_e`` (and bias ``sum_e r[b, e] b_e``),
run as one grouped convolution over the batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.ranked import defaults, extends
from convzoo.layers.standard import CONV_OPS, Conv, layer_name
from convzoo.registry import register


def per_sample_conv(
    conv: Conv, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Convolve sample ``b`` of ``x`` with ``weight[b]`` (``Tensor[B, C_out, C_in/g, *k]``)
    and ``bias[b]`` using ``conv``'s geometry: one grouped conv with ``B·g`` groups."""
    b = x.shape[0]
    padded, sym = conv.prepare_input(x)
    flat = padded.reshape(1, -1, *padded.shape[2:])
    out = CONV_OPS[conv.dims](
        flat,
        weight.reshape(-1, *weight.shape[2:]),
        None if bias is None else bias.reshape(-1),
        conv.stride,
        sym,
        conv.dilation,
        conv.groups * b,
    )
    return out.view(b, conv.out_channels, *out.shape[2:])


@defaults(kernel_size=3, padding="same")
@extends
class _ExpertConv(Conv):
    """A ``conv`` whose ``weight``/``bias`` hold ``E`` experts: ``Tensor[E, C_out, C_in/g, *k]``
    and ``Tensor[E, C_out]``; subclasses give the routing ``Tensor[B, C_in] -> Tensor[B, E]``.
    Padding defaults to ``"same"``."""

    def __init__(self, *args: Any, experts: int = 4, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        out_channels = self.out_channels
        self.experts = C.positive_int(experts, layer_name(self), "experts")
        one = self.weight.detach()
        weight = torch.empty(self.experts, *one.shape, dtype=one.dtype, device=one.device)
        fan_in = one[0].numel()
        for e in range(self.experts):  # each expert initialised like nn.Conv2d
            nn.init.kaiming_uniform_(weight[e], a=math.sqrt(5))
        self.weight = nn.Parameter(weight)
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in)
            self.bias = nn.Parameter(
                torch.empty(self.experts, out_channels).uniform_(-bound, bound)
            )
        self.build_router()

    def build_router(self) -> None:
        """Create the routing modules (``self.experts`` and the channels are set)."""
        raise NotImplementedError

    def routing(self, pooled: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in] -> Tensor[B, E]``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        r = self.routing(x.mean(tuple(range(2, x.dim()))))  # [B, E]
        weight = torch.einsum("be,e...->b...", r, self.weight)
        bias = None if self.bias is None else r @ self.bias
        return per_sample_conv(self, x, weight, bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, experts={self.experts}"


@register("cond_conv", category="conv")
class CondConv(_ExpertConv):
    """CondConv: per-sample kernel ``sum_e sigmoid(FC(GAP(x)))_e W_e`` (Yang et al. 2019).

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``; ``route`` is the
    ``Linear(C_in, E)`` of the routing function.
    """

    params_formula = "E·(C_out·C_in·k_h·k_w/g + C_out) + E·(C_in + 1)"

    def build_router(self) -> None:
        self.route = nn.Linear(self.in_channels, self.experts)

    def routing(self, pooled: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in] -> Tensor[B, E]``, each in (0, 1)."""
        return torch.sigmoid(self.route(pooled))


@register("dynamic_conv", category="conv")
@extends
class DynamicConv(_ExpertConv):
    """Dynamic convolution: kernel ``sum_e softmax(FC(relu(FC(GAP(x)))) / T)_e W_e``.

    Chen et al. 2020. ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``;
    ``reduce`` (``C_in -> max(C_in // reduction, 4)``) and ``select`` (``-> E``) form the
    attention, ``temperature`` ``T`` flattens it.
    """

    params_formula = "E·(C_out·C_in·k_h·k_w/g + C_out) + C_in·r + r + r·E + E"

    def __init__(
        self, *args: Any, reduction: int = 4, temperature: float = 30.0, **kwargs: Any
    ) -> None:
        self.reduction, self.temperature = reduction, temperature
        super().__init__(*args, **kwargs)

    def build_router(self) -> None:
        name = layer_name(self)
        hidden = max(self.in_channels // C.positive_int(self.reduction, name, "reduction"), 4)
        self.temperature = C.positive_number(self.temperature, name, "temperature")
        self.reduce = nn.Linear(self.in_channels, hidden)
        self.select = nn.Linear(hidden, self.experts)

    def routing(self, pooled: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in] -> Tensor[B, E]``, summing to 1."""
        return F.softmax(self.select(F.relu(self.reduce(pooled))) / self.temperature, dim=1)
