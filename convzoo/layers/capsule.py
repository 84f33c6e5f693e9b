"""Capsule layers with dynamic routing (Sabour, Frosst & Hinton 2017, "Dynamic Routing
Between Capsules"): the ``squash`` non-linearity, primary (convolutional) capsules,
fully connected capsules routed by agreement, capsule lengths and the margin loss.

A capsule is a vector whose length (in ``[0, 1)``) is the probability that an entity is
present and whose direction encodes its pose. Capsule tensors are ``Tensor[B, N, D]``:
``N`` capsules of dimension ``D`` per sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import LayerArgumentError, require
from convzoo.layers import geometry as G
from convzoo.layers.checks import boolean, positive_int
from convzoo.layers.checks import dims as check_dims
from convzoo.layers.standard import Conv, layer_name
from convzoo.registry import register


def rescale(s: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(m, t, r)`` with ``s = m·t`` and ``|s| = m·r`` along ``dim`` (all keepdim).

    ``m`` is the detached largest absolute entry (1 where ``s = 0``, for ``t``), so
    ``|t|^2`` lies in ``[1, D]`` for every non-zero vector: squaring neither overflows
    (``1e30``) nor underflows (``1e-30``) in float32. As ``|s| = m·|s/m|`` for every
    constant ``m > 0``, detaching ``m`` keeps gradients exact. ``|t|^2`` is clamped to 1/2
    before ``sqrt``, which never touches a non-zero vector and keeps the gradient finite
    at ``s = 0``, where ``m = 0`` makes the length exactly 0.
    """
    m = s.detach().abs().amax(dim=dim, keepdim=True)
    t = s / torch.where(m > 0, m, torch.ones_like(m))
    r = (t * t).sum(dim=dim, keepdim=True).clamp_min(0.5).sqrt()
    return m, t, r


def safe_norm(s: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """Euclidean length of ``s`` along ``dim``: exact 0 with gradient 0 at ``s = 0``, and no
    overflow, underflow or NaN for tiny or huge entries (see :func:`rescale`)."""
    m, _, r = rescale(s, dim)
    norm = m * r
    return norm if keepdim else norm.squeeze(dim)


def squash(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``v = |s|^2 / (1 + |s|^2) · s / |s|`` along ``dim`` (Eq. 1 of the paper), same shape.

    Numerically safe: the direction ``s / |s| = t / r`` comes from :func:`rescale` (0 at
    ``s = 0``), and the gain ``n^2 / (1 + n^2)`` is computed as written for ``n < 1`` and
    as ``1 / (1 + 1/n^2)`` for ``n >= 1``. So ``s = 0`` gives 0 with its true (zero)
    Jacobian, ``1e-30`` underflows cleanly to 0 and ``1e30`` gives a unit vector, with no
    NaN or inf in value or gradient, and no epsilon biases the result.
    """
    m, t, r = rescale(s, dim)
    n = m * r  # |s|
    small = n.clamp_max(1.0)
    inv = 1 / n.clamp_min(1.0)  # 1/n without forming n^2, so even n = inf is fine
    gain = torch.where(n < 1, small * small / (1 + small * small), 1 / (1 + inv * inv))
    return gain * (t / r)


def check_capsules(x: torch.Tensor, layer: str, count: int | None, dim: int | None) -> None:
    """Require a ``Tensor[B, N, D]`` with ``N == count`` and ``D == dim`` (when given)."""
    if x.dim() != 3:
        raise LayerArgumentError(
            layer, "input", f"must be a 3-D Tensor[B, N, D] of capsules, got shape {tuple(x.shape)}"
        )
    if (count is not None and x.shape[1] != count) or (dim is not None and x.shape[2] != dim):
        raise LayerArgumentError(
            layer,
            "input",
            f"has {x.shape[1]} capsules of dimension {x.shape[2]} but the layer expects "
            f"in_capsules={count} of in_dim={dim} (input shape {tuple(x.shape)})",
        )


MAX_ITERATIONS = 100  # routing converges in a few; a bound keeps configs from hanging


@register("primary_capsules", category="capsule")
class PrimaryCapsules(nn.Module):
    """Primary capsules: a convolution whose channels are grouped into squashed capsule vectors.

    ``Tensor[B, C_in, H, W] -> Tensor[B, T·H_out·W_out, D]`` with ``T = num_types`` and
    ``D = capsule_dim`` (``dims`` 1 or 3: ``T·L_out`` or ``T·D_out·H_out·W_out`` capsules,
    positions row-major as here). The convolution (a convzoo :class:`Conv`, so every padding mode
    works) has ``T·D`` output channels; channel ``type·D + d`` is component ``d`` of the
    capsules of that type. Capsules are ordered type-major: capsule index
    ``type·H_out·W_out + y·W_out + x``. Each vector is then squashed (no ReLU).
    """

    params_formula = "T·D·C_in·k_h·k_w + T·D"

    def __init__(
        self,
        in_channels: int,
        num_types: int = 32,
        capsule_dim: int = 8,
        kernel_size: int | G.Ints = 9,
        stride: int | G.Ints = 2,
        padding: G.PaddingSpec = "valid",
        bias: bool = True,
        *,
        dims: int = 2,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        self.in_channels = positive_int(in_channels, name, "in_channels")
        self.num_types = positive_int(num_types, name, "num_types")
        self.capsule_dim = positive_int(capsule_dim, name, "capsule_dim")
        self.dims = check_dims(dims, name)
        geo = G.Geometry.parse(name, self.dims, kernel_size, stride, padding)
        channels = self.num_types * self.capsule_dim
        self.conv = Conv(
            in_channels, channels, geo.kernel, geo.stride, geo.padding, bias=bias, dims=self.dims
        )

    def output_size(self, size: G.Ints) -> G.Ints:
        """``(T·H_out·W_out, D)``: capsules and their dimension for an input of spatial ``size``."""
        return (self.num_types * math.prod(self.conv.output_size(size)), self.capsule_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, T·H_out·W_out, D]``, lengths in ``[0, 1)``."""
        name = layer_name(self)
        G.check_input(x, name, self.in_channels, self.dims)
        self.conv.geometry.check_fits(G.spatial(x, self.dims), name)
        y = self.conv(x)  # Tensor[B, T·D, *S_out]
        b, out = y.shape[0], y.shape[2:]
        y = y.view(b, self.num_types, self.capsule_dim, *out).movedim(2, -1)
        return squash(y.reshape(b, self.num_types * math.prod(out), self.capsule_dim))

    def extra_repr(self) -> str:
        return f"num_types={self.num_types}, capsule_dim={self.capsule_dim}"


@register("routing_capsules", category="capsule")
class RoutingCapsules(nn.Module):
    """Fully connected capsules with dynamic routing by agreement between capsule layers.

    ``Tensor[B, N_in, D_in] -> Tensor[B, N_out, D_out]``. The weight is
    ``Tensor[N_in, N_out, D_out, D_in]``: one transform ``W_ij`` per (input, output)
    pair, giving predictions ``u_hat[b, i, j] = W_ij u[b, i]`` (no bias, Eq. 2).
    Routing, per sample: ``b_ij = 0``; ``iterations`` times: ``c_ij = softmax_j(b_ij)``,
    ``s_j = sum_i c_ij u_hat_j|i``, ``v_j = squash(s_j)``, ``b_ij += u_hat_j|i · v_j``.

    Gradients: by default they flow through every routing iteration, including the
    coupling coefficients, as in the authors' released code (the paper states no stop).
    ``detach_routing=True`` instead detaches ``u_hat`` in all but the last iteration
    (a common variant): the couplings are then constants for backprop and only the final
    ``s_j = sum_i c_ij u_hat_j|i`` carries gradient. The forward value is the same.
    """

    params_formula = "N_in·N_out·D_out·D_in"

    def __init__(
        self,
        in_capsules: int,
        in_dim: int,
        out_capsules: int,
        out_dim: int,
        iterations: int = 3,
        detach_routing: bool = False,
    ) -> None:
        super().__init__()
        name = layer_name(self)
        self.in_capsules = positive_int(in_capsules, name, "in_capsules")
        self.in_dim = positive_int(in_dim, name, "in_dim")
        self.out_capsules = positive_int(out_capsules, name, "out_capsules")
        self.out_dim = positive_int(out_dim, name, "out_dim")
        self.iterations = positive_int(iterations, name, "iterations")
        require(
            self.iterations <= MAX_ITERATIONS,
            name,
            "iterations",
            f"must be at most {MAX_ITERATIONS} (the paper uses 3), got {iterations}",
        )
        self.detach_routing = boolean(detach_routing, name, "detach_routing")
        self.weight = nn.Parameter(
            torch.empty(self.in_capsules, self.out_capsules, self.out_dim, self.in_dim)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights ~ N(0, 0.01^2), the usual CapsNet initialisation."""
        nn.init.normal_(self.weight, std=0.01)

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """``u_hat``: ``Tensor[B, N_in, D_in] -> Tensor[B, N_in, N_out, D_out]`` (one einsum)."""
        return torch.einsum("ijok,bik->bijo", self.weight, u)

    def route(self, u_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Routing by agreement on ``u_hat: Tensor[B, N_in, N_out, D_out]``.

        Returns ``v: Tensor[B, N_out, D_out]`` and the final couplings
        ``c: Tensor[B, N_in, N_out]`` (softmax over the output capsules).
        """
        logits = u_hat.new_zeros(u_hat.shape[:3])  # b_ij: Tensor[B, N_in, N_out]
        stopped = u_hat.detach() if self.detach_routing else u_hat
        for step in range(self.iterations):
            last = step == self.iterations - 1
            votes = u_hat if last else stopped
            c = F.softmax(logits, dim=2)
            v = squash(torch.einsum("bij,bijo->bjo", c, votes))
            if not last:  # the update after the last iteration would go unused
                logits = logits + torch.einsum("bijo,bjo->bij", votes, v)
        return v, c

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, N_in, D_in] -> Tensor[B, N_out, D_out]``, lengths in ``[0, 1)``."""
        check_capsules(u, layer_name(self), self.in_capsules, self.in_dim)
        return self.route(self.predictions(u))[0]

    def extra_repr(self) -> str:
        return (
            f"in_capsules={self.in_capsules}, in_dim={self.in_dim}, "
            f"out_capsules={self.out_capsules}, out_dim={self.out_dim}, "
            f"iterations={self.iterations}, detach_routing={self.detach_routing}"
        )


@register("capsule_lengths", category="capsule")
class CapsuleLengths(nn.Module):
    """Capsule lengths as class scores: ``Tensor[B, N, D] -> Tensor[B, N]`` (0 at 0, no NaN)."""

    params_formula = "0"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, N, D] -> Tensor[B, N]``: the Euclidean length of each capsule."""
        check_capsules(x, layer_name(self), None, None)
        return safe_norm(x, dim=-1)


def margin_loss(
    lengths: torch.Tensor,
    targets: torch.Tensor,
    m_plus: float = 0.9,
    m_minus: float = 0.1,
    lam: float = 0.5,
) -> torch.Tensor:
    """Margin loss (Eq. 4), a scalar: summed over classes, averaged over the batch.

    ``L_k = T_k max(0, m+ - |v_k|)^2 + lam (1 - T_k) max(0, |v_k| - m-)^2`` with
    ``lengths: Tensor[B, K]`` (the ``|v_k|``) and ``targets`` either class indices
    ``LongTensor[B]`` or one-hot (or multi-hot) ``Tensor[B, K]``.
    """
    name = "margin_loss"
    require(
        lengths.dim() == 2,
        name,
        "lengths",
        f"must be a 2-D Tensor[B, K], got shape {tuple(lengths.shape)}",
    )
    b, k = lengths.shape
    if targets.dim() == 1:
        require(
            not targets.is_floating_point() and not targets.is_complex(),
            name,
            "targets",
            f"as a 1-D tensor must hold integer class indices, got dtype {targets.dtype}",
        )
        require(
            targets.shape[0] == b,
            name,
            "targets",
            f"has {targets.shape[0]} entries but lengths has batch size {b}",
        )
        require(
            b == 0 or bool(((targets >= 0) & (targets < k)).all()),
            name,
            "targets",
            f"class indices must be in [0, {k}), got {targets.tolist()}",
        )
        onehot = F.one_hot(targets.long(), k).to(lengths.dtype)
    else:
        require(
            tuple(targets.shape) == (b, k),
            name,
            "targets",
            f"must be LongTensor[B] indices or one-hot Tensor[B, K] of shape {(b, k)}, "
            f"got shape {tuple(targets.shape)}",
        )
        onehot = targets.to(lengths.dtype)
    present = onehot * F.relu(m_plus - lengths).square()
    absent = lam * (1 - onehot) * F.relu(lengths - m_minus).square()
    return (present + absent).sum(dim=1).mean()
