"""Named initialisations (``init_check(init=...)``, ``--init``, a config's ``init:``).

Each re-initialises the weights of every layer with a units rule (:mod:`.units`: convs,
linear layers, routing capsules) and sets their biases to zero; norm layers keep scale 1 and
shift 0. Random ones draw from torch's generator (callers seed it).

========  ==========================================================================
zeros     every weight 0 (seed 001, Q1: every unit of a layer the same)
ones      every weight 1 (seed 004, DL0002: symmetric, and sigmoid/tanh saturate)
normal    N(0, 0.01^2): small mean-zero random weights (seed 001, Q2), too small
          for deep nets without normalisation (the signal shrinks layer by layer)
xavier    Glorot and Bengio 2010, uniform: variance 2 / (fan_in + fan_out)
kaiming   He et al. 2015, normal, fan in, ReLU gain: variance 2 / fan_in
========  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from convzoo.errors import ConvZooError
from convzoo.initcheck.units import units_of
from convzoo.registry import close_matches

INITS: dict[str, Callable[[torch.Tensor], object]] = {
    "zeros": nn.init.zeros_,
    "ones": nn.init.ones_,
    "normal": lambda w: nn.init.normal_(w, std=0.01),
    "xavier": nn.init.xavier_uniform_,
    "kaiming": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
}
"""Initialisation name (:data:`convzoo.config.INITS`, in this order) -> what it does to a
weight tensor in place."""


def check_init(name: object) -> str:
    """``name`` if it is in :data:`INITS`, else a one-line error with the closest names."""
    if isinstance(name, str) and name in INITS:
        return name
    hints = close_matches(str(name), list(INITS))
    hint = f" (did you mean {hints[0]!r}?)" if hints else ""
    raise ConvZooError(f"unknown init {name!r}; choose from {', '.join(INITS)}{hint}")


def reinitialise(model: nn.Module, name: str) -> nn.Module:
    """Re-initialise, in place, every layer of ``model`` that has a units rule with
    ``INITS[name]`` (biases to zero); returns ``model``."""
    fill = INITS[check_init(name)]
    with torch.no_grad():
        for module in model.modules():
            if units_of(module) is None:
                continue
            weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
            if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
                fill(weight)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)
    return model
