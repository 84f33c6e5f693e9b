"""The plain building blocks models are composed with: pooling and batch norm (1-D, 2-D or
3-D), dropout, activations by name, flatten, linear, upsampling and identity."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.pooling import (
    _AdaptiveAvgPoolNd,
    _AdaptiveMaxPoolNd,
    _AvgPoolNd,
    _MaxPoolNd,
)

from convzoo.errors import LayerArgumentError
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.ranked import Ranked
from convzoo.layers.standard import layer_name
from convzoo.registry import close_matches, register

POOL_MODES = ("valid", "same")


class _Pool(G.Windowed, Ranked, nn.Module):
    """Valid/same/explicit padding for pooling, with ``fill`` outside the input.

    ``Tensor[B, C, *S] -> Tensor[B, C, *S_out]``; the stride defaults to the kernel size.
    """

    fill = 0.0
    ops: dict[int, Callable[..., torch.Tensor]] = {}
    params_formula = "0"

    def __init__(
        self,
        kernel_size: int | G.Ints = 2,
        stride: int | G.Ints | None = None,
        padding: G.PaddingSpec = "valid",
        *,
        dims: int = 2,
    ) -> None:
        name = layer_name(self)
        if padding == "full":
            raise LayerArgumentError(name, "padding", "'full' is not defined for pooling")
        step = kernel_size if stride is None else stride
        geo = G.Geometry.parse(name, self.dims, kernel_size, step, padding, 1, POOL_MODES)
        self.geometry = geo
        nn.Module.__init__(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, *S] -> Tensor[B, C, *S_out]``."""
        name = layer_name(self)
        G.check_input(x, name, None, self.dims)
        pads = self.geometry.check_fits(G.spatial(x, self.dims), name)
        x = G.zero_pad(x, pads, self.fill)
        return self.ops[self.dims](x, self.geometry.kernel, self.geometry.stride)

    def extra_repr(self) -> str:
        g = self.geometry
        return f"kernel_size={g.kernel}, stride={g.stride}, padding={g.padding!r}"


@register("max_pool", category="basic")
class MaxPool(_Pool, _MaxPoolNd):
    """Max pooling over k x k windows; padding pixels are -inf (never selected)."""

    fill = float("-inf")
    torch_bases = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
    ops = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


@register("avg_pool", category="basic")
class AvgPool(_Pool, _AvgPoolNd):
    """Average pooling over k x k windows; padding pixels count as zeros."""

    torch_bases = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
    ops = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


class _GlobalPool(Ranked, nn.Module):
    """Global pooling: ``Tensor[B, C, *S] -> Tensor[B, C, 1, ...]``."""

    params_formula = "0"

    def __init__(self, *, dims: int = 2) -> None:
        super(Ranked, self).__init__((1,) * self.dims)  # torch's adaptive pool of this rank


@register("global_avg_pool", category="basic")
class GlobalAvgPool(_GlobalPool, _AdaptiveAvgPoolNd):
    """Global average pooling: ``Tensor[B, C, *S] -> Tensor[B, C, 1, ...]``."""

    torch_bases = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


@register("global_max_pool", category="basic")
class GlobalMaxPool(_GlobalPool, _AdaptiveMaxPoolNd):
    """Global max pooling: ``Tensor[B, C, *S] -> Tensor[B, C, 1, ...]``."""

    torch_bases = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}


@register("batch_norm", category="basic")
class BatchNorm(Ranked, _BatchNorm):
    """Batch normalisation per channel (learned scale and shift, running statistics).

    ``Tensor[B, C, *S] -> Tensor[B, C, *S]`` with ``dims`` spatial axes.
    """

    params_formula = "2·C"
    torch_bases = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}

    def __init__(
        self,
        in_channels: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        name = layer_name(self)
        c = C.positive_int(in_channels, name, "in_channels")
        C.positive_number(eps, name, "eps")
        C.number_in(momentum, 0, 1, name, "momentum", closed=True)
        _BatchNorm.__init__(self, c, eps, momentum, C.boolean(affine, name, "affine"))

    def _check_input_dim(self, input: torch.Tensor) -> None:
        G.check_input(input, layer_name(self), self.num_features, self.dims)


@register("dropout", category="basic")
class Dropout(nn.Dropout):
    """Dropout: zero each activation with probability ``p`` while training, scale by 1/(1-p)."""

    params_formula = "0"

    def __init__(self, p: float = 0.5) -> None:
        if not C.is_number(p) or not 0 <= p < 1:
            raise LayerArgumentError(
                "dropout", "p", f"is the probability of dropping and must be in [0, 1), got {p!r}"
            )
        super().__init__(float(p))


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "mish": F.mish,
    "hardswish": F.hardswish,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": lambda x: x,
}


@register("activation", category="basic")
class Activation(nn.Module):
    """Element-wise activation chosen by name: ``fn`` is relu, gelu, silu, tanh, ...

    (The keyword is ``fn`` because ``name`` names the module in configs.)
    """

    params_formula = "0"

    def __init__(self, fn: str = "relu") -> None:
        super().__init__()
        if fn not in ACTIVATIONS:
            hints = close_matches(str(fn), sorted(ACTIVATIONS))
            raise LayerArgumentError(
                "activation",
                "fn",
                f"{fn!r} is unknown; choose from {', '.join(sorted(ACTIVATIONS))}"
                + (f" (did you mean {hints[0]!r}?)" if hints else ""),
            )
        self.name = fn
        self.fn = ACTIVATIONS[fn]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape in and out."""
        return self.fn(x)

    def extra_repr(self) -> str:
        return repr(self.name)


@register("flatten", category="basic")
class Flatten(nn.Flatten):
    """``Tensor[B, C, *S] -> Tensor[B, C·prod(S)]``."""

    params_formula = "0"

    def __init__(self) -> None:
        super().__init__(1)


@register("linear", category="basic")
class Linear(nn.Linear):
    """Fully connected layer: ``Tensor[B, in_features] -> Tensor[B, out_features]``."""

    params_formula = "F_out·F_in + F_out"

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        f_in = C.positive_int(in_features, "linear", "in_features")
        f_out = C.positive_int(out_features, "linear", "out_features")
        super().__init__(f_in, f_out, C.boolean(bias, "linear", "bias"))


LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
"""torch's name of linear interpolation along every axis, per number of spatial axes."""


@register("upsample", category="basic")
class Upsample(nn.Upsample):
    """Upsampling by ``scale_factor`` (nearest or bilinear): ``H, W -> s·H, s·W``.

    ``Tensor[B, C, *S] -> Tensor[B, C, *(s·S)]`` with ``dims`` spatial axes ``S``; ``mode``
    is ``"nearest"`` or ``"linear"`` (linear along every axis: torch's linear, bilinear or
    trilinear), or the rank's own name of it (``"bilinear"`` for images).
    """

    params_formula = "0"

    def __init__(self, scale_factor: int = 2, mode: str = "nearest", *, dims: int = 2) -> None:
        n = C.dims(dims, "upsample")
        linear = LINEAR_MODES[n]
        C.choice(mode, tuple(dict.fromkeys(("nearest", "linear", linear))), "upsample", "mode")
        factor = C.positive_int(scale_factor, "upsample", "scale_factor")
        super().__init__(scale_factor=factor, mode=linear if mode == "linear" else mode)
        self.dims = n

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, *S] -> Tensor[B, C, *(s·S)]``."""
        G.check_input(input, "upsample", None, self.dims)
        return super().forward(input)


@register("identity", category="basic")
class Identity(nn.Identity):
    """Returns its input unchanged."""

    params_formula = "0"
