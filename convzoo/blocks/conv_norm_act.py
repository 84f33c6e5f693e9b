"""Conv -> norm -> activation, with the conv chosen by its registered name."""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from convzoo.errors import LayerArgumentError, require
from convzoo.layers import padding as P
from convzoo.layers.basic import ACTIVATIONS, Activation
from convzoo.registry import LAYERS, close_matches, create, register

NAME = "conv_norm_act"

# Arguments ConvNormAct sets itself; ``conv_args`` may not repeat them.
OWN_ARGUMENTS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation")


def check_conv_name(conv: object, layer: str) -> str:
    """``conv`` if it names a registered layer of category ``"conv"``, else a clear error."""
    convs = LAYERS.list(category="conv")
    names = [name for name, _ in convs]
    if not isinstance(conv, str) or conv not in names:
        hints = close_matches(str(conv), names)
        raise LayerArgumentError(
            layer,
            "conv",
            f"must name a registered conv layer, got {conv!r}"
            + (f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else "")
            + f"; choose from {', '.join(names)}",
        )
    return conv


def check_activation(activation: object, layer: str) -> str | None:
    """``activation`` if it is ``None`` or a name in ``ACTIVATIONS``, else a clear error."""
    if activation is None or (isinstance(activation, str) and activation in ACTIVATIONS):
        return activation
    hints = close_matches(str(activation), sorted(ACTIVATIONS))
    raise LayerArgumentError(
        layer,
        "activation",
        f"must be None or one of {', '.join(sorted(ACTIVATIONS))}, got {activation!r}"
        + (f" (did you mean {hints[0]!r}?)" if hints else ""),
    )


def default_of(name: str, keyword: str) -> Any:
    """The default value of ``keyword`` in the constructor registered as ``name``."""
    param = inspect.signature(LAYERS.get(name).cls.__init__).parameters[keyword]
    return None if param.default is param.empty else param.default


@register(NAME, category="block")
class ConvNormAct(nn.Sequential):
    """Any registered conv, then batch norm, then an activation (each optional but the conv).

    ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``. The children are
    named ``conv``, ``norm`` and ``act``; ``norm``/``act`` are absent when ``None``.

    * ``conv``: any registered conv layer name, built with ``convzoo.create`` with the
      keywords it accepts; ``conv_args`` adds extra ones (e.g. ``{"depth_multiplier": 2}``)
      or overrides ``bias``.
    * ``padding=None``: ``dilation * (k - 1) // 2`` on each side (torchvision's
      convention); otherwise any padding spec ("valid", "same", "full", ints).
    * ``dilation=None`` / ``groups=None``: the conv layer's own default (so ``"dilated"``
      dilates by 2 and ``"grouped"`` uses 2 groups); 1 for ``"conv"``.
    * ``bias`` is off when a norm follows, on otherwise.
    * A keyword the conv layer does not take must keep its neutral value (stride 1,
      padding/dilation/groups ``None``), else a ``LayerArgumentError``; layers with a
      fixed kernel (``"pointwise"``) ignore ``kernel_size``.
    """

    params_formula = "conv + 2·C_out (norm)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair = 3,
        stride: int | P.Pair = 1,
        padding: P.PaddingSpec | None = None,
        dilation: int | P.Pair | None = None,
        groups: int | None = None,
        conv: str = "conv",
        norm: str | None = "batch_norm",
        activation: str | None = "relu",
        conv_args: dict[str, Any] | None = None,
    ) -> None:
        conv = check_conv_name(conv, NAME)
        activation = check_activation(activation, NAME)
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            require(
                isinstance(value, int) and not isinstance(value, bool) and value > 0,
                NAME,
                arg,
                f"must be a positive int, got {value!r}",
            )
        require(
            norm is None or (norm in LAYERS and "in_channels" in LAYERS.get(norm).keywords()),
            NAME,
            "norm",
            f"must be None or a registered norm layer such as 'batch_norm', got {norm!r}",
        )
        kwargs = self.conv_keywords(
            conv, in_channels, out_channels, kernel_size, stride, padding, dilation, groups
        )
        kwargs["bias"] = norm is None
        extra = dict(conv_args or {})
        clash = [k for k in extra if k in OWN_ARGUMENTS or k == "groups"]
        require(
            not clash,
            NAME,
            "conv_args",
            f"must not repeat {', '.join(clash)}: pass them to {NAME} directly",
        )
        accepted = LAYERS.get(conv).keywords()
        unknown = [k for k in extra if k not in accepted]
        require(
            not unknown,
            NAME,
            "conv_args",
            f"has {', '.join(map(repr, unknown))} which {conv!r} does not accept; "
            f"it accepts {', '.join(accepted)}",
        )
        kwargs.update(extra)
        if "bias" not in accepted:
            del kwargs["bias"]
        children: OrderedDict[str, nn.Module] = OrderedDict(conv=create(conv, **kwargs))
        if norm is not None:
            children["norm"] = create(norm, in_channels=out_channels)
        if activation is not None:
            children["act"] = Activation(activation)
        super().__init__(children)
        self.in_channels = in_channels
        self.out_channels = out_channels

    @staticmethod
    def conv_keywords(
        conv: str,
        in_channels: int,
        out_channels: int,
        kernel_size: int | P.Pair,
        stride: int | P.Pair,
        padding: P.PaddingSpec | None,
        dilation: int | P.Pair | None,
        groups: int | None,
    ) -> dict[str, Any]:
        """The keywords for the conv layer ``conv``, checked against what it accepts."""
        accepted = LAYERS.get(conv).keywords()
        require(
            "in_channels" in accepted and "out_channels" in accepted,
            NAME,
            "conv",
            f"{conv!r} does not take in_channels and out_channels, so it cannot be used here",
        )
        k = P.pair(kernel_size, NAME, "kernel_size")
        s = P.pair(stride, NAME, "stride")
        if dilation is None:
            dilation = default_of(conv, "dilation") if "dilation" in accepted else 1
        d = P.pair(dilation, NAME, "dilation")
        if groups is None and "groups" in accepted:
            groups = default_of(conv, "groups")
        if padding is None:
            spec: P.PaddingSpec = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        else:
            spec = P.check_padding(padding, NAME)
        wanted: dict[str, Any] = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "kernel_size": k,
            "stride": s,
            "padding": spec,
            "dilation": d,
            "groups": groups,
        }
        neutral = {"stride": s == (1, 1), "padding": padding is None, "dilation": d == (1, 1)}
        neutral["groups"] = groups is None or groups == 1
        for arg, ok in neutral.items():
            require(
                arg in accepted or ok,
                NAME,
                arg,
                f"{wanted[arg]!r} cannot be used: conv {conv!r} does not take {arg}",
            )
        return {k_: v for k_, v in wanted.items() if k_ in accepted and v is not None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H_out, W_out]``."""
        P.check_input(x, NAME, self.in_channels)
        return super().forward(x)
