"""Receptive-field rules for zoo modules whose internals are not plain convolutions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from convzoo.analysis.receptive.field import Field, Place
from convzoo.analysis.receptive.spatial import conv_span, spread
from convzoo.layers.capsule import PrimaryCapsules, RoutingCapsules
from convzoo.layers.deformable import Deformable
from convzoo.layers.fft import FFTConv
from convzoo.layers.local import LocallyConnected, Tiled
from convzoo.layers.subpixel import SubPixel

# -- module rules -------------------------------------------------------------------------

ModuleRule = Callable[[Any, Field | None, tuple[int, ...], tuple[int, ...]], Field | None]
MODULE_RULES: dict[type, ModuleRule] = {}


def module_rule(*classes: type) -> Callable[[ModuleRule], ModuleRule]:
    """Register a rule for modules of ``classes`` (and their subclasses)."""

    def decorator(fn: ModuleRule) -> ModuleRule:
        for cls in classes:
            MODULE_RULES[cls] = fn
        return fn

    return decorator


def module_field(
    module: Any, in_field: Field | None, input_shape: Sequence[int], output_shape: Sequence[int]
) -> Field | None:
    """The field of ``module``'s output from that of its input, for zoo layers whose ops do
    not show their geometry (FFT, unshared and tiled convolution, deformable, capsules);
    ``NotImplemented`` for every other module (its ops propagate the field)."""
    for cls in type(module).__mro__:
        if cls in MODULE_RULES:
            return MODULE_RULES[cls](module, in_field, tuple(input_shape), tuple(output_shape))
    return NotImplemented


@module_rule(FFTConv, LocallyConnected, Tiled, Deformable)
def conv_like(
    module: Any, in_field: Field | None, input_shape: tuple[int, ...], output_shape: Any
) -> Field | None:
    """A convolution with the module's kernel, stride, dilation and padding spec (resolved
    for this input size); for ``deformable`` the nominal field, see ``DEFORMABLE_NOTE``."""
    if in_field is None or in_field.is_global or not in_field.known:
        return in_field
    n = len(in_field.axes)  # spatial axes: the last n of [N, C, *spatial]
    k, s, d = module.kernel_size, module.stride, module.dilation
    if in_field.layout is not None or len(k) != n or len(input_shape) < n + 1:
        return Field.unknown(f"{type(module).__name__}: input axes not in the standard layout")
    pads = module.geometry.pads(tuple(input_shape[-n:]))
    out = output_shape[-n:]
    axes = [
        None if a is None else conv_span(a, out[i], k[i], s[i], pads[i][0], d[i])
        for i, a in enumerate(in_field.axes)
    ]
    return Field(tuple(axes))


@module_rule(SubPixel)
def sub_pixel(
    module: Any, in_field: Field | None, input_shape: tuple[int, ...], output_shape: Any
) -> Field | None:
    """The conv's field, then the pixel shuffle: output unit ``o`` of each axis reads unit
    ``o // r`` of the conv's (a 1-D or 3-D shuffle is a reshape and a permute, whose
    repeated units the op rules keep inside a merged dim; this spreads them, as torch's
    2-D ``pixel_shuffle`` rule does)."""
    r = module.scale
    grid = conv_like(module, in_field, input_shape, tuple(n // r for n in output_shape))
    if grid is None or grid.is_global or not grid.known or grid.layout is not None:
        return grid
    return Field(tuple(None if a is None else spread(a, r) for a in grid.axes))


@module_rule(PrimaryCapsules)
def primary_capsules(
    module: Any, in_field: Field | None, input_shape: tuple[int, ...], output_shape: Any
) -> Field | None:
    """The conv's field; capsules ``type·H·W + y·W + x`` carry h and w in dim -2 (any
    number of axes, row-major: each axis' place value is the product of the later sides)."""
    out = module.conv.output_size(tuple(input_shape[-module.dims :]))
    grid = conv_like(module.conv, in_field, input_shape, out)
    if grid is None or grid.is_global or not grid.known:
        return grid
    places = tuple(Place(-2, math.prod(out[a + 1 :]), n) for a, n in enumerate(out))
    return grid.with_axes(grid.axes, places, output_shape)


@module_rule(RoutingCapsules)
def routing_capsules(
    module: Any, in_field: Field | None, input_shape: Any, output_shape: Any
) -> Field | None:
    """Routing by agreement sums over every input capsule: global."""
    return None if in_field is None else Field.global_field()
