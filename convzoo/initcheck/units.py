"""A layer's output units, for the symmetry check and ``--init``: one rule per layer class.

A rule says, for a module of its class, what one output unit is (a conv's output channel,
a linear layer's neuron, a routing-capsule layer's output capsule), the weights that make
each unit (``Tensor[U, P]``: one row per unit, its bias appended) and which units read the
same inputs (a grouped convolution's groups: only units of one group can compute the same
function). Rules are looked up along the module's class hierarchy, so the zoo's own
``Conv``, ``Linear`` and ``Transposed`` (subclasses of PyTorch's) use PyTorch's rules.

Norm layers (batch, group, layer, instance norm) scale and shift each channel on its own:
they have no units that could be symmetric, and ``--init`` leaves them as they are (scale 1,
shift 0); their outputs still count for signal propagation (:data:`NORMS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

from convzoo.layers.capsule import RoutingCapsules


@dataclass(frozen=True)
class Units:
    """A layer's output units: ``rows(weights_or_grads)`` -> ``Tensor[U, P]``, one row
    per unit; ``groups``: the units reading the same inputs, as index ranges ``(lo, hi)``."""

    word: str  # "channels", "neurons", "capsules"
    count: int
    groups: tuple[tuple[int, int], ...]
    rows: Callable[[Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]


Rule = Callable[[nn.Module], "Units | None"]
RULES: dict[type, Rule] = {}


def rule(*classes: type) -> Callable[[Rule], Rule]:
    """Register ``fn`` as the rule of ``classes`` (refusing a second rule for one)."""

    def decorator(fn: Rule) -> Rule:
        for cls in classes:
            if cls in RULES:
                raise ValueError(f"{cls.__name__} already has a units rule")
            RULES[cls] = fn
        return fn

    return decorator


def units_of(module: nn.Module) -> Units | None:
    """``module``'s :class:`Units` by the first class in its MRO with a rule (None: none,
    or its tensors do not have the layout of that class: a subclass that reshaped them)."""
    for cls in type(module).__mro__:
        found = RULES.get(cls)
        if found is not None:
            return found(module)
    return None


Read = Callable[[torch.Tensor], torch.Tensor]
"""What to read of a parameter: its value, or its gradient."""


def _with_bias(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``Tensor[U, P]`` rows and ``Tensor[U]`` biases -> ``Tensor[U, P + 1]``."""
    return weight if bias is None else torch.cat([weight, bias.reshape(-1, 1)], dim=1)


def _shaped(module: nn.Module, weight: tuple[int, ...], bias: int) -> bool:
    """Whether ``module.weight`` has shape ``weight`` and its bias (if any) ``bias`` items."""
    w, b = getattr(module, "weight", None), getattr(module, "bias", None)
    return (
        isinstance(w, torch.Tensor)
        and tuple(w.shape[: len(weight)]) == weight
        and (b is None or (isinstance(b, torch.Tensor) and b.numel() == bias))
    )


def _split(count: int, groups: int) -> tuple[tuple[int, int], ...]:
    size = count // groups
    return tuple((g * size, (g + 1) * size) for g in range(groups))


@rule(nn.Linear)
def _linear(m: nn.Module) -> Units | None:
    """``weight: Tensor[F_out, F_in]``, ``bias: Tensor[F_out]``: one neuron per row."""
    assert isinstance(m, nn.Linear)
    if not _shaped(m, (m.out_features, m.in_features), m.out_features):
        return None

    def rows(read: Read) -> torch.Tensor:
        return _with_bias(read(m.weight), None if m.bias is None else read(m.bias))

    return Units("neurons", m.out_features, ((0, m.out_features),), rows)


@rule(_ConvNd)
def _conv(m: nn.Module) -> Units | None:
    """``weight: Tensor[C_out, C_in/g, *k]`` (transposed: ``Tensor[C_in, C_out/g, *k]``),
    ``bias: Tensor[C_out]``; the output channels of one group read the same inputs."""
    assert isinstance(m, _ConvNd)
    g, out, cin = m.groups, m.out_channels, m.in_channels
    layout = (cin, out // g) if m.transposed else (out, cin // g)
    if not _shaped(m, (*layout, *m.kernel_size), out):
        return None

    def rows(read: Read) -> torch.Tensor:
        w = read(m.weight)
        if m.transposed:  # [C_in, C_out/g, *k] -> [C_out, C_in/g * prod(k)], group by group
            w = w.reshape(g, w.shape[0] // g, w.shape[1], -1).transpose(1, 2)
        w = w.reshape(out, -1)
        return _with_bias(w, None if m.bias is None else read(m.bias))

    return Units("channels", out, _split(out, g), rows)


@rule(RoutingCapsules)
def _capsules(m: nn.Module) -> Units | None:
    """``weight: Tensor[N_in, N_out, D_out, D_in]``: an output capsule's transforms."""
    assert isinstance(m, RoutingCapsules)
    if not _shaped(m, (m.in_capsules, m.out_capsules, m.out_dim, m.in_dim), 0):
        return None

    def rows(read: Read) -> torch.Tensor:
        return read(m.weight).transpose(0, 1).reshape(m.out_capsules, -1)

    return Units("capsules", m.out_capsules, ((0, m.out_capsules),), rows)


NORMS: tuple[type, ...] = (_NormBase, nn.GroupNorm, nn.LayerNorm)
"""Layers whose output is recorded for signal propagation but that have no units to check."""


def traced(module: nn.Module) -> bool:
    """Whether ``module``'s output and gradient are recorded (a rule's layer or a norm)."""
    return units_of(module) is not None or isinstance(module, NORMS)
