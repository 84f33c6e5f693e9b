"""Deformable convolution v1 (Dai et al., 2017) and v2 (Zhu et al., 2019).

Each kernel tap ``k`` of each output pixel ``p`` samples the input at
``p * stride - pad + k * dilation + Δp_k`` by bilinear interpolation (zero outside
the image), with learned offsets ``Δp`` predicted per output pixel by a conv on the
same input; v2 also multiplies each sample by a predicted modulation ``mask``.
The sampling itself is ``torchvision.ops.deform_conv2d``, which exists for images only:
the layer takes ``dims=2`` alone and refuses 1 and 3 in one line that says so.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from convzoo.errors import ConvZooError, require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


def deform_conv2d_op() -> Callable[..., torch.Tensor]:
    """``torchvision.ops.deform_conv2d``, imported on first use, or a clear error."""
    try:
        from torchvision.ops import deform_conv2d
    except Exception as exc:  # ImportError, or a torchvision built against another torch
        raise ConvZooError(
            "deformable: needs torchvision.ops.deform_conv2d, which could not be imported "
            f"({type(exc).__name__}: {exc}); install a torchvision matching torch"
        ) from exc
    return deform_conv2d


def zero_conv(in_channels: int, out_channels: int, like: Conv) -> Conv:
    """A ``conv`` with ``like``'s kernel, stride, padding and dilation, all-zero weight and bias."""
    g = like.geometry
    conv = Conv(in_channels, out_channels, g.kernel, g.stride, g.padding, g.dilation)
    assert conv.bias is not None  # built with the default bias=True
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


@register("deformable", category="conv")
class Deformable(Conv):
    """Deformable convolution v1/v2: kernel taps sample at learned offsets (v2: and a mask).

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]`` with the output size
    of a standard conv. ``weight`` is ``Tensor[C_out, C_in / groups, k_h, k_w]`` and
    ``bias`` ``Tensor[C_out]``, as in ``conv``. ``offset_conv`` predicts
    ``Tensor[B, 2·G·k_h·k_w, H_out, W_out]`` offsets, ``(dy, dx)`` per tap in row-major
    tap order, for ``G = offset_groups`` slices of the input channels; for
    ``version=2`` ``mask_conv`` predicts ``Tensor[B, G·k_h·k_w, H_out, W_out]`` logits.

    Both predictors start at zero, so a fresh layer is exactly a standard conv with
    ``weight``. The mask is ``2·sigmoid(logits)`` rather than the paper's
    ``sigmoid(logits)``: with zero logits the paper's mask is 0.5 and a fresh layer
    would compute half a conv, whereas here it is 1 and the layer can replace a
    (pretrained) conv without changing its output; the range (0, 2) still lets a tap
    be switched off or amplified.
    """

    params_formula = (
        "C_out·C_in·k_h·k_w/g + C_out + (2 or 3)·G·k_h·k_w·(C_in·k_h·k_w + 1) [v1 or v2]"
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints = 3,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec = "valid",
        dilation: int | G.Ints = 1,
        groups: int = 1,
        bias: bool = True,
        version: int = 2,
        offset_groups: int = 1,
        *,
        dims: int = 2,
    ) -> None:
        require(
            dims == 2,
            layer_name(self),
            "dims",
            f"must be 2: its sampling is torchvision.ops.deform_conv2d, which is 2-D only; "
            f"got {dims!r}",
        )
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )
        name = layer_name(self)
        require(version in (1, 2), name, "version", f"must be 1 or 2, got {version!r}")
        require(
            C.is_int(offset_groups) and offset_groups > 0 and in_channels % offset_groups == 0,
            name,
            "offset_groups",
            f"must be a positive int dividing in_channels={in_channels}, got {offset_groups!r}",
        )
        self.version = version
        self.offset_groups = offset_groups
        taps = offset_groups * self.kernel_size[0] * self.kernel_size[1]
        self.offset_conv = zero_conv(in_channels, 2 * taps, self)
        self.mask_conv = zero_conv(in_channels, taps, self) if version == 2 else None

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Offsets ``Tensor[B, 2·G·k_h·k_w, H_out, W_out]`` and mask (v2) for input ``x``.

        The predictors are convs with this layer's padding spec, so they see the
        same zero-padded input as the deformable sampling.
        """
        offset = self.offset_conv(x)
        mask = None if self.mask_conv is None else 2 * torch.sigmoid(self.mask_conv(x))
        return offset, mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``."""
        deform_conv2d = deform_conv2d_op()
        padded, sym = self.prepare_input(x)
        offset, mask = self.predict(x)
        return deform_conv2d(
            padded,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=sym,
            dilation=self.dilation,
            mask=mask,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, version={self.version}, offset_groups={self.offset_groups}"
