"""Config spec -> ``nn.Module``: threads channels and spatial size through the layers.

``in_channels``, ``in_features``, ``input_size``, ``in_capsules`` and ``in_dim`` are
filled in from the previous layer's output shape, found by running each layer on meta
tensors as it is built. Every error is a :class:`~convzoo.config.ConfigError` that says
where in the config it is.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convzoo.blocks.branches import Parallel, Residual
from convzoo.config import (
    MODEL_NAME,
    ConfigError,
    check_mapping,
    check_name,
    child,
    describe,
    load_config,
)
from convzoo.errors import ConvZooError, LayerArgumentError, first_line, render
from convzoo.layers.basic import Activation, BatchNorm
from convzoo.layers.standard import Conv
from convzoo.limits import MAX_DEPTH, MAX_LAYERS, MAX_NAME_CHARS, MAX_REPEAT, check_params
from convzoo.real import remember
from convzoo.registry import LAYERS, close_matches
from convzoo.shapes import output_shape
from convzoo.values import input_shape, layer_keywords

Shape = tuple[int, ...]
KINDS = ("type", "block", "sequential", "residual", "parallel")
COMMON = ("name", "repeat")
EXTRA = {"residual": ("shortcut", "activation"), "parallel": ("merge",)}


class Model(nn.Sequential):
    """A model built from a config; remembers its name and the input size it was built for."""

    def __init__(
        self,
        children: OrderedDict[str, nn.Module],
        name: str = "model",
        input_size: Shape = (),  # defaults: slicing a Model builds one from children alone
    ) -> None:
        super().__init__(children)
        self.config_name = name
        self.input_size = input_size


class Builder:
    """Builds one config; holds the named blocks, the running layer and parameter counts.

    Build on the meta device first (``torch.device("meta")`` around :meth:`sequence`):
    every module, projection shortcuts included, is counted against
    :data:`~convzoo.limits.MAX_PARAMS` before anything real is allocated.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        blocks = config.get("blocks", {}) or {}
        if not isinstance(blocks, dict):
            raise ConfigError(
                f"expected a mapping of block name -> list of layer specs, found "
                f"{describe(blocks)}",
                "blocks",
            )
        for ref in blocks:
            check_name(ref, child("blocks", ref) if isinstance(ref, str) else "blocks")
        self.blocks: dict[str, Any] = blocks
        self.count = 0
        self.params = 0

    def counted(self, module: nn.Module, label: str, where: str) -> nn.Module:
        """``module`` after adding its parameters to the running count (refused past the
        limit; on meta, so before anything real exists)."""
        self.params += sum(p.numel() for p in module.parameters())
        try:
            check_params(self.params, f"{label} brings the model to")
        except ConvZooError as exc:
            raise ConfigError(str(exc), where) from None
        return module

    # -- sequences ---------------------------------------------------------------------------
    def sequence(
        self, specs: Any, shape: Shape, where: str, depth: int, expanding: tuple[str, ...]
    ) -> tuple[nn.Sequential, Shape]:
        if depth > MAX_DEPTH:
            raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels", where)
        if not isinstance(specs, list) or not specs:
            raise ConfigError(
                f"expected a non-empty list of layer specs, found {describe(specs)}", where
            )
        children: OrderedDict[str, nn.Module] = OrderedDict()
        counters: dict[str, int] = {}
        for i, spec in enumerate(specs):
            built = list(self.spec(spec, shape, child(where, i), depth, expanding))
            shape = built[-1][2]
            for name, module, _ in built:
                if name is None:
                    kind = self.default_name(spec)
                    counters[kind] = counters.get(kind, 0) + 1
                    name = f"{kind}{counters[kind]}"
                if name in children:
                    raise ConfigError(
                        f"duplicate layer name {name!r} in this list",
                        child(child(where, i), "name"),
                    )
                children[name] = module
        return nn.Sequential(children), shape

    @staticmethod
    def default_name(spec: dict[str, Any]) -> str:
        kind = next(k for k in KINDS if k in spec)
        return str(spec[kind]) if kind in ("type", "block") else kind

    # -- one spec ----------------------------------------------------------------------------
    def spec(self, spec: Any, shape: Shape, where: str, depth: int, expanding: tuple[str, ...]):
        """Yield ``(name or None, module, output shape)`` for each repeat of ``spec``: a
        named spec repeated n times gives ``NAME_1`` ... ``NAME_n`` (``res2_1``, never the
        ambiguous ``res21``); an unnamed one the next default names (``conv1``, ``conv2``)."""
        if not isinstance(spec, dict):
            raise ConfigError(
                f"expected a layer spec mapping like {{type: conv, ...}}, found {describe(spec)}",
                where,
            )
        kinds = [k for k in KINDS if k in spec]
        if len(kinds) != 1:
            found = f"found {', '.join(kinds)}" if kinds else "found none"
            raise ConfigError(
                f"a layer spec needs exactly one of {', '.join(KINDS)}; {found}", where
            )
        kind = kinds[0]
        if kind != "type":
            allowed = (kind, *COMMON, *EXTRA.get(kind, ()))
            for key in spec:
                if key not in allowed:
                    hint = close_matches(key, list(allowed), n=1) if isinstance(key, str) else []
                    raise ConfigError(
                        f"unknown key {render(key)} for a {kind} spec; expected "
                        f"{', '.join(allowed)}" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                        child(where, key),
                    )
        name = spec.get("name")
        if name is not None:
            check_name(name, child(where, "name"))
        repeat = spec.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
            raise ConfigError(
                f"expected an int from 1 to {MAX_REPEAT}, found {describe(repeat)}",
                child(where, "repeat"),
            )
        for r in range(repeat):
            module, shape = getattr(self, kind)(spec, shape, where, depth + 1, expanding)
            label = name if repeat == 1 or name is None else f"{name}_{r + 1}"  # res2_1
            yield label, module, shape

    def type(
        self, spec: dict[str, Any], shape: Shape, where: str, depth: int, expanding: tuple[str, ...]
    ) -> tuple[nn.Module, Shape]:
        self.count += 1
        if self.count > MAX_LAYERS:
            raise ConfigError(f"config expands to more than {MAX_LAYERS} layers", where)
        type_name = spec["type"]
        if not isinstance(type_name, str) or type_name not in LAYERS:
            hints = close_matches(type_name, LAYERS.names()) if isinstance(type_name, str) else []
            raise ConfigError(
                f"unknown layer type {render(type_name)}"
                + (f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else "")
                + " (convzoo list shows them all)",
                child(where, "type"),
            )
        entry = LAYERS.get(type_name)
        given = {k: v for k, v in spec.items() if k not in ("type", *COMMON)}
        kwargs = layer_keywords(entry, given, shape, where)
        module = self.counted(self.construct(entry.cls, kwargs, where), type_name, where)
        return module, self.infer(module, shape, where, type_name)

    # builtins.type: inside this class body `type` is the method Builder.type above
    @staticmethod
    def construct(cls: builtins.type[nn.Module], kwargs: dict[str, Any], where: str) -> nn.Module:
        """``cls(**kwargs)`` with located errors."""
        try:
            return cls(**kwargs)
        except LayerArgumentError as exc:
            at = child(where, exc.argument) if exc.argument in kwargs else where
            raise ConfigError(str(exc), at) from None
        except (ConvZooError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
            name = getattr(cls, "registry_name", cls.__name__)
            raise ConfigError(f"cannot build {name}: {first_line(exc)}", where) from None

    @staticmethod
    def infer(module: nn.Module, shape: Shape, where: str, label: str) -> Shape:
        try:
            out = output_shape(module, shape)
        except ConvZooError as exc:
            raise ConfigError(f"{first_line(exc)} (input shape {shape})", where) from None
        except (RuntimeError, ValueError, TypeError, IndexError, OverflowError) as exc:
            raise ConfigError(
                f"{label} fails on input shape {shape}: {first_line(exc)}", where
            ) from None
        if any(n < 1 for n in out):
            raise ConfigError(f"{label} shrinks the input {shape} to {out}: a size below 1", where)
        return out

    def block(
        self, spec: dict[str, Any], shape: Shape, where: str, depth: int, expanding: tuple[str, ...]
    ) -> tuple[nn.Module, Shape]:
        ref = spec["block"]
        if not isinstance(ref, str) or ref not in self.blocks:
            hints = close_matches(ref, sorted(self.blocks)) if isinstance(ref, str) else []
            raise ConfigError(
                f"undefined block {render(ref)}"
                + (f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else "")
                + (
                    f" (defined: {', '.join(sorted(self.blocks))})"
                    if self.blocks
                    else " (the config has no 'blocks' section)"
                ),
                child(where, "block"),
            )
        if ref in expanding:
            cycle = " -> ".join((*expanding[expanding.index(ref) :], ref))
            raise ConfigError(f"block cycle: {cycle}", child(where, "block"))
        return self.sequence(self.blocks[ref], shape, f"blocks.{ref}", depth, (*expanding, ref))

    def sequential(
        self, spec: dict[str, Any], shape: Shape, where: str, depth: int, expanding: tuple[str, ...]
    ) -> tuple[nn.Module, Shape]:
        return self.sequence(
            spec["sequential"], shape, child(where, "sequential"), depth, expanding
        )

    def residual(
        self, spec: dict[str, Any], shape: Shape, where: str, depth: int, expanding: tuple[str, ...]
    ) -> tuple[nn.Module, Shape]:
        body, out = self.sequence(
            spec["residual"], shape, child(where, "residual"), depth, expanding
        )
        mode = spec.get("shortcut", "auto")
        if mode not in ("auto", "identity", "projection"):
            raise ConfigError(
                f"expected 'auto', 'identity' or 'projection', found {describe(mode)}",
                child(where, "shortcut"),
            )
        shortcut = None
        if mode == "projection" or (mode == "auto" and out != shape):
            at = child(where, "shortcut")
            shortcut = self.counted(projection(shape, out, at), "the projection shortcut", at)
        elif out != shape:
            raise ConfigError(
                f"identity shortcut needs the body to keep the shape, but it maps {shape} to {out}",
                child(where, "shortcut"),
            )
        act = spec.get("activation")
        if act is not None and not isinstance(act, str):
            raise ConfigError(
                f"expected an activation name, found {describe(act)}", child(where, "activation")
            )
        try:
            act_module = None if act is None else Activation(act)
        except LayerArgumentError as exc:
            raise ConfigError(str(exc), child(where, "activation")) from None
        return Residual(body, shortcut, act_module), out

    def parallel(
        self, spec: dict[str, Any], shape: Shape, where: str, depth: int, expanding: tuple[str, ...]
    ) -> tuple[nn.Module, Shape]:
        branches, shapes = [], []
        specs = spec["parallel"]
        if not isinstance(specs, list) or len(specs) < 2:
            raise ConfigError(
                f"expected a list of at least two branches (each a list of layer "
                f"specs), found {describe(specs)}",
                child(where, "parallel"),
            )
        for i, branch in enumerate(specs):
            module, out = self.sequence(
                branch, shape, child(child(where, "parallel"), i), depth, expanding
            )
            branches.append(module)
            shapes.append(out)
        merge = spec.get("merge", "concat")
        if merge not in ("concat", "sum"):
            raise ConfigError(
                f"expected 'concat' or 'sum', found {describe(merge)}", child(where, "merge")
            )
        rest = {s[1:] for s in shapes} if merge == "concat" else set(shapes)
        if len(rest) != 1 or any(len(s) != 3 for s in shapes):
            raise ConfigError(
                f"cannot {merge} branches with output shapes {', '.join(map(str, shapes))}",
                child(where, "merge"),
            )
        merged = (sum(s[0] for s in shapes), *shapes[0][1:]) if merge == "concat" else shapes[0]
        return Parallel(branches, merge), merged


def projection(shape: Shape, out: Shape, where: str) -> nn.Module:
    """1x1 conv (stride = size ratio) + batch norm mapping ``shape`` to ``out``."""
    if len(shape) != 3 or len(out) != 3:
        raise ConfigError(
            f"a projection shortcut needs (C, H, W) shapes, found {shape} -> {out}", where
        )
    strides = [max(1, round(a / b)) for a, b in zip(shape[1:], out[1:], strict=True)]
    if any(math.ceil(a / s) != b for a, s, b in zip(shape[1:], strides, out[1:], strict=True)):
        raise ConfigError(f"no strided 1x1 projection maps {shape} to {out}", where)
    return nn.Sequential(
        OrderedDict(
            [
                ("conv", Conv(shape[0], out[0], 1, (strides[0], strides[1]), bias=False)),
                ("norm", BatchNorm(out[0])),
            ]
        )
    )


def _assemble(config: dict[str, Any], shape: Shape, name: str, meta: bool) -> Model:
    """The model of ``config`` on ``shape``, on the meta device or real."""
    with torch.device("meta") if meta else contextlib.nullcontext():
        body, _ = Builder(config).sequence(config["layers"], shape, "layers", 0, ())
    model = Model(OrderedDict(body.named_children()), name, shape)
    try:  # every parameter of every module, whatever made it
        check_params(sum(p.numel() for p in model.parameters()), "the model has")
    except ConvZooError as exc:
        raise ConfigError(str(exc)) from None
    return model


def build(
    config: dict[str, Any] | str | Path,
    input_size: tuple[int, ...] | None = None,
    *,
    meta: bool = False,
) -> Model:
    """Build the model a config describes: a dict, a YAML file path, or a packaged
    config's name (``"resnet18"``); other target strings (``"torchvision:resnet18"``) are
    refused in one line (:func:`convzoo.analyze` takes them).

    ``input_size`` ``(C, H, W)`` overrides the config's ``input``; one of them is needed.
    Only the sizes after the channels may differ from the config's.
    The model is always built on the meta device first, where every parameter is counted
    against :data:`~convzoo.limits.MAX_PARAMS`; ``meta=True`` returns that model (enough
    for :func:`convzoo.analyze`, no memory; :func:`convzoo.real.materialize` builds its
    real twin when real-tensor work needs it), otherwise it is built again with real
    weights.
    """
    source = None
    if isinstance(config, str):
        from convzoo.targets import config_file

        config = config_file(config)
    if isinstance(config, Path):
        source = str(config)
        config = load_config(config)
    try:
        config = check_mapping(config)
        if "layers" not in config:
            raise ConfigError(
                "missing the 'layers' list ('compare:' configs are for convzoo compare)", ""
            )
        if input_size is None and "input" not in config:
            raise ConfigError("missing 'input: [C, H, W]' (or pass input_size=)", "input")
        shape = input_shape(input_size if input_size is not None else config["input"])
        stem = Path(source).stem if source else ""
        plain = len(stem) <= MAX_NAME_CHARS and MODEL_NAME.fullmatch(stem)
        name = config.get("name") or (stem if plain else "model")
        if input_size is not None and "input" in config:
            _same_channels(name, input_shape(config["input"]), shape)
        model = _assemble(config, shape, name, meta=True)
        if meta:  # its real twin is built only if real-tensor work needs it
            remember(model, functools.partial(_real, config, shape, name))
            return model
        return _real(config, shape, name)
    except ConfigError as exc:
        raise exc.located(source) from None


def _real(config: dict[str, Any], shape: Shape, name: str) -> Model:
    """The model with real weights, re-initialised as the config's ``init:`` says."""
    model = _assemble(config, shape, name, meta=False)
    if "init" in config:
        from convzoo.initcheck.inits import reinitialise

        reinitialise(model, config["init"])
    return model


def _same_channels(name: str, declared: Shape, given: Shape) -> None:
    """Refuse an input whose channels (features for a 1-D input) differ from the config's:
    the first layer would be built for them, a different model under the same name."""
    if given[0] == declared[0]:
        return
    what = "channels" if len(declared) > 1 else "features"
    rest = " (only the sizes after the channels may change)" if len(declared) > 1 else ""
    raise ConvZooError(
        f"{name} takes {declared[0]} input {what} (its config's input: {list(declared)}); "
        f"input {'x'.join(map(str, given))} has {given[0]}{rest}"
    )
