"""Channel attention computed from the whole input: squeeze-and-excitation and selective
kernel. Their output at a pixel depends on every input pixel (through global pooling), so
their receptive field is global."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.basic import BatchNorm
from convzoo.layers.standard import Conv, Pointwise, layer_name
from convzoo.registry import register


def reduced(channels: int, ratio: float, divisor: int = 8) -> int:
    """``channels·ratio`` rounded to a multiple of ``divisor`` (at least ``divisor``), no less
    than 90% of it, as timm's ``make_divisible`` does."""
    value = channels * ratio
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


@register("squeeze_excite", category="attention")
class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: rescale channels by ``sigmoid(fc2(relu(fc1(GAP(x)))))``.

    Hu, Shen & Sun 2018, "Squeeze-and-Excitation Networks". ``Tensor[B, C, *S] ->
    Tensor[B, C, *S]``; ``fc1`` (``C -> C_r``) and ``fc2`` (``C_r -> C``) are 1x1 convs,
    ``C_r = reduced(C, 1/reduction)`` unless ``reduced_channels`` is given.
    """

    params_formula = "2·C·C_r + C_r + C"

    def __init__(
        self,
        in_channels: int,
        reduction: int = 16,
        reduced_channels: int | None = None,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        c = C.positive_int(in_channels, name, "in_channels")
        r = C.optional_positive_int(reduced_channels, name, "reduced_channels")
        r = r or reduced(c, 1 / C.positive_int(reduction, name, "reduction"))
        self.in_channels, self.dims = c, C.dims(dims, name)
        self.fc1 = Pointwise(c, r, dims=dims)
        self.fc2 = Pointwise(r, c, dims=dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, *S] -> Tensor[B, C, *S]``."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        s = x.mean(tuple(range(2, x.dim())), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


@register("selective_kernel", category="attention")
class SelectiveKernel(nn.Module):
    """Selective kernel: branches with different fields, mixed per channel by a softmax.

    Li, Wang, Hu & Yang 2019, "Selective Kernel Networks". ``Tensor[B, C_in, *S] ->
    Tensor[B, C_out, *S_out]`` with ``dims`` spatial axes ``S`` (1, 2 or 3; "3x3" is 3 per
    axis). Branch ``i`` is a 3x3 conv-BN-ReLU with dilation
    ``(k_i - 1) / 2`` (the field of a ``k_i x k_i``), on its slice of the input channels
    (``split_input``, as in timm) or on all of them. The attention sums the branches,
    pools globally, reduces (1x1 conv-BN-ReLU to ``C_a``) and selects (1x1 to
    ``paths·C_out``), softmax over the paths per channel.
    """

    params_formula = "paths·(9·C_in'·C_out/g + 2·C_out) + C_out·C_a + 2·C_a + C_a·paths·C_out"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (3, 5),
        stride: int = 1,
        groups: int = 1,
        reduction: int = 16,
        attention_channels: int | None = None,
        split_input: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        n = self.dims = C.dims(dims, name)
        paths = len(kernel_sizes) if isinstance(kernel_sizes, (list, tuple)) else 0
        require(
            paths >= 2 and all(C.is_int(k) and k >= 3 and k % 2 for k in kernel_sizes),
            name,
            "kernel_sizes",
            f"must list two or more odd sizes >= 3, got {kernel_sizes!r}",
        )
        self.split_input = C.boolean(split_input, name, "split_input")
        c_in = C.positive_int(in_channels, name, "in_channels")
        if self.split_input:
            C.divides(paths, c_in, name, "kernel_sizes", "in_channels (one slice per path)")
        branch_in = c_in // paths if self.split_input else c_in
        self.in_channels, self.out_channels, self.paths = c_in, out_channels, paths
        for i, k in enumerate(kernel_sizes):
            d = (k - 1) // 2
            branch = nn.Sequential(
                Conv(branch_in, out_channels, 3, stride, d, d, groups, bias=False, dims=n),
                BatchNorm(out_channels, dims=n),
                nn.ReLU(),
            )
            self.add_module(f"path{i}", branch)
        c_a = C.optional_positive_int(attention_channels, name, "attention_channels")
        c_a = c_a or reduced(out_channels, 1 / C.positive_int(reduction, name, "reduction"))
        self.reduce = nn.Sequential(
            Pointwise(out_channels, c_a, bias=False, dims=n), BatchNorm(c_a, dims=n)
        )
        self.select = Pointwise(c_a, out_channels * paths, bias=False, dims=n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        G.check_input(x, layer_name(self), self.in_channels, self.dims)
        branches = [getattr(self, f"path{i}") for i in range(self.paths)]
        inputs = torch.chunk(x, self.paths, 1) if self.split_input else [x] * self.paths
        ys = torch.stack([f(part) for f, part in zip(branches, inputs, strict=True)], 1)
        ones = (1,) * self.dims
        s = ys.sum(1).mean(tuple(range(2, 2 + self.dims)), keepdim=True)
        a = self.select(F.relu(self.reduce(s)))  # [B, paths·C_out, *ones]
        a = F.softmax(a.view(x.shape[0], self.paths, self.out_channels, *ones), dim=1)
        return (ys * a).sum(1)
