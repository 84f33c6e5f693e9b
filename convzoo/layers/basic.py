"""The plain building blocks models are composed with: pooling, batch norm, dropout,
activations by name, flatten, linear, upsampling and identity."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import LayerArgumentError, require
from convzoo.layers import padding as P
from convzoo.layers.standard import layer_name
from convzoo.registry import close_matches, register


class _Pool:
    """Mixin: valid/same/explicit padding for pooling, with ``fill`` outside the input."""

    fill = 0.0
    pad_spec: P.PaddingSpec
    kernel: P.Pair
    step: P.Pair

    def setup(
        self, kernel_size: int | P.Pair, stride: int | P.Pair | None, padding: P.PaddingSpec
    ) -> tuple[P.Pair, P.Pair]:
        name = layer_name(self)  # type: ignore[arg-type]
        self.kernel = P.pair(kernel_size, name, "kernel_size")
        self.step = self.kernel if stride is None else P.pair(stride, name, "stride")
        self.pad_spec = P.check_padding(padding, name)
        require(self.pad_spec != "full", name, "padding", "'full' is not defined for pooling")
        return self.kernel, self.step

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        name = layer_name(self)  # type: ignore[arg-type]
        P.check_input(x, name, None)
        size = (x.shape[-2], x.shape[-1])
        pads = P.resolve(self.pad_spec, size, self.kernel, self.step, (1, 1))
        P.check_fits(size, pads, self.kernel, (1, 1), name)
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=self.fill)
        return x


@register("max_pool", category="basic")
class MaxPool(_Pool, nn.MaxPool2d):
    """Max pooling over k x k windows; padding pixels are -inf (never selected)."""

    params_formula = "0"
    fill = float("-inf")

    def __init__(
        self,
        kernel_size: int | P.Pair = 2,
        stride: int | P.Pair | None = None,
        padding: P.PaddingSpec = "valid",
    ) -> None:
        k, s = self.setup(kernel_size, stride, padding)
        nn.MaxPool2d.__init__(self, k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, C, H_out, W_out]``."""
        return F.max_pool2d(self.padded(x), self.kernel, self.step)


@register("avg_pool", category="basic")
class AvgPool(_Pool, nn.AvgPool2d):
    """Average pooling over k x k windows; padding pixels count as zeros."""

    params_formula = "0"

    def __init__(
        self,
        kernel_size: int | P.Pair = 2,
        stride: int | P.Pair | None = None,
        padding: P.PaddingSpec = "valid",
    ) -> None:
        k, s = self.setup(kernel_size, stride, padding)
        nn.AvgPool2d.__init__(self, k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, C, H_out, W_out]``."""
        return F.avg_pool2d(self.padded(x), self.kernel, self.step)


@register("global_avg_pool", category="basic")
class GlobalAvgPool(nn.AdaptiveAvgPool2d):
    """Global average pooling: ``Tensor[B, C, H, W] -> Tensor[B, C, 1, 1]``."""

    params_formula = "0"

    def __init__(self) -> None:
        super().__init__(1)


@register("global_max_pool", category="basic")
class GlobalMaxPool(nn.AdaptiveMaxPool2d):
    """Global max pooling: ``Tensor[B, C, H, W] -> Tensor[B, C, 1, 1]``."""

    params_formula = "0"

    def __init__(self) -> None:
        super().__init__(1)


@register("batch_norm", category="basic")
class BatchNorm(nn.BatchNorm2d):
    """Batch normalisation per channel (learned scale and shift, running statistics)."""

    params_formula = "2·C"

    def __init__(
        self, in_channels: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
    ) -> None:
        require(
            isinstance(in_channels, int) and in_channels > 0,
            "batch_norm",
            "in_channels",
            f"must be a positive int, got {in_channels!r}",
        )
        super().__init__(in_channels, eps, momentum, affine)


@register("dropout", category="basic")
class Dropout(nn.Dropout):
    """Dropout: zero each activation with probability ``p`` while training, scale by 1/(1-p)."""

    params_formula = "0"

    def __init__(self, p: float = 0.5) -> None:
        require(
            isinstance(p, (int, float)) and 0 <= p < 1,
            "dropout",
            "p",
            f"is the probability of dropping and must be in [0, 1), got {p!r}",
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
    """``Tensor[B, C, H, W] -> Tensor[B, C·H·W]``."""

    params_formula = "0"

    def __init__(self) -> None:
        super().__init__(1)


@register("linear", category="basic")
class Linear(nn.Linear):
    """Fully connected layer: ``Tensor[B, in_features] -> Tensor[B, out_features]``."""

    params_formula = "F_out·F_in + F_out"

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        for arg, value in (("in_features", in_features), ("out_features", out_features)):
            require(
                isinstance(value, int) and value > 0,
                "linear",
                arg,
                f"must be a positive int, got {value!r}",
            )
        super().__init__(in_features, out_features, bias)


@register("upsample", category="basic")
class Upsample(nn.Upsample):
    """Upsampling by ``scale_factor`` (nearest or bilinear): ``H, W -> s·H, s·W``."""

    params_formula = "0"

    def __init__(self, scale_factor: int = 2, mode: str = "nearest") -> None:
        require(
            mode in ("nearest", "bilinear"),
            "upsample",
            "mode",
            f"must be 'nearest' or 'bilinear', got {mode!r}",
        )
        require(
            isinstance(scale_factor, int) and scale_factor > 0,
            "upsample",
            "scale_factor",
            f"must be a positive int, got {scale_factor!r}",
        )
        super().__init__(scale_factor=scale_factor, mode=mode)


@register("identity", category="basic")
class Identity(nn.Identity):
    """Returns its input unchanged."""

    params_formula = "0"
