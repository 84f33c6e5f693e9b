"""Conv -> norm -> activation; the conv and the norm are given as factories (or names)."""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from convzoo.errors import LayerArgumentError, require
from convzoo.layers import checks as C
from convzoo.layers import geometry as G
from convzoo.layers.basic import ACTIVATIONS, Activation
from convzoo.registry import LAYERS, close_matches, register

NAME = "conv_norm_act"
Factory = Callable[..., nn.Module]
# Arguments ConvNormAct sets itself; ``conv_args`` may not repeat them.
OWN_ARGUMENTS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation")


def check_conv_name(conv: object, layer: str) -> Factory:
    """The factory ``conv`` names (a registered layer of category ``"conv"``) or is."""
    return LAYERS.resolve(conv, layer, "conv", "conv")


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


def signature(factory: Factory) -> dict[str, Any]:
    """``keyword -> default`` (``None`` when required) of a layer factory (a class's is
    read once: ``inspect.signature`` costs a tenth of a config's build)."""
    if isinstance(factory, type):
        return dict(_class_signature(factory))
    return _keywords(factory)


@functools.cache
def _class_signature(cls: type) -> tuple[tuple[str, Any], ...]:
    return tuple(_keywords(cls.__init__).items())  # type: ignore[misc]


def _keywords(target: Callable[..., Any]) -> dict[str, Any]:
    params = inspect.signature(target).parameters.values()
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {
        p.name: None if p.default is p.empty else p.default
        for p in params
        if p.name != "self" and p.kind not in skip
    }


@register(NAME, category="block")
class ConvNormAct(nn.Sequential):
    """A conv layer, then a norm, then an activation (each optional but the conv).

    ``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``; children ``conv``, ``norm``, ``act``.
    ``conv``/``norm`` are factories (classes or callables) or registered names; the conv is
    called with the keywords it accepts (``conv_args`` adds or overrides some); a keyword it
    lacks must keep its neutral value. ``padding=None`` is ``dilation·(k-1)//2`` per side
    (torchvision's convention); ``dilation``/``groups`` ``None`` take the conv's own
    default; ``bias`` is on only without a norm (like torchvision's Conv2dNormActivation).
    """

    params_formula = "conv + 2·C_out (norm)"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | G.Ints = 3,
        stride: int | G.Ints = 1,
        padding: G.PaddingSpec | None = None,
        dilation: int | G.Ints | None = None,
        groups: int | None = None,
        conv: str | Factory = "conv",
        norm: str | Factory | None = "batch_norm",
        activation: str | None = "relu",
        conv_args: dict[str, Any] | None = None,
        *,
        dims: int = 2,
    ) -> None:
        conv_f = check_conv_name(conv, NAME)
        activation = check_activation(activation, NAME)
        self.dims = C.dims(dims, NAME)
        self.in_channels = C.positive_int(in_channels, NAME, "in_channels")
        self.out_channels = C.positive_int(out_channels, NAME, "out_channels")
        norm_f = None if norm is None else LAYERS.resolve(norm, NAME, "norm")
        require(
            norm_f is None or "in_channels" in signature(norm_f),
            NAME,
            "norm",
            f"must be None or a norm layer taking in_channels such as 'batch_norm', got {norm!r}",
        )
        accepted = signature(conv_f)
        extra = dict(conv_args or {})
        clash = [k for k in extra if k in (*OWN_ARGUMENTS, "groups")]
        require(not clash, NAME, "conv_args", f"must not repeat {', '.join(clash)}: pass them "
                f"to {NAME} directly")  # fmt: skip
        unknown = [k for k in extra if k not in accepted]
        require(not unknown, NAME, "conv_args", f"has {', '.join(map(repr, unknown))} which "
                f"{conv!r} does not accept; it accepts {', '.join(accepted)}")  # fmt: skip
        if dilation is None:
            dilation = accepted.get("dilation") or 1
        spec = "valid" if padding is None else padding
        geo = G.Geometry.parse(NAME, self.dims, kernel_size, stride, spec, dilation)
        if padding is None:  # torchvision's convention
            spec = tuple(d * (k - 1) // 2 for k, d in zip(geo.kernel, geo.dilation, strict=True))
        wanted: dict[str, Any] = {
            "in_channels": in_channels, "out_channels": out_channels, "kernel_size": geo.kernel,
            "stride": geo.stride, "padding": spec, "dilation": geo.dilation,
            "groups": groups if groups is not None else accepted.get("groups"),
            "bias": norm is None, "dims": dims,
        }  # fmt: skip
        neutral = {"stride": all(s == 1 for s in geo.stride), "padding": padding is None,
                   "dilation": all(d == 1 for d in geo.dilation), "groups": groups in (None, 1),
                   "dims": self.dims == 2}  # fmt: skip
        for arg, ok in neutral.items():
            if arg not in accepted and not ok:
                raise LayerArgumentError(
                    NAME, arg, f"{wanted[arg]!r} cannot be used: conv {conv!r} does not take {arg}"
                )
        kwargs = {k: v for k, v in wanted.items() if k in accepted and v is not None}
        children: OrderedDict[str, nn.Module] = OrderedDict(conv=conv_f(**(kwargs | extra)))
        if norm_f is not None:
            dims_kw = {"dims": dims} if "dims" in signature(norm_f) else {}
            children["norm"] = norm_f(in_channels=out_channels, **dims_kw)
        if activation is not None:
            children["act"] = Activation(activation)
        super().__init__(children)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C_in, *S] -> Tensor[B, C_out, *S_out]``."""
        G.check_input(x, NAME, self.in_channels, self.dims)
        return super().forward(x)
