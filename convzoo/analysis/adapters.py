"""Adjustments to the analyzer's private copy so data-dependent fast paths run dense.

Meta tensors carry shapes, not values, so a path chosen by the values of an input (which
tokens a padding mask hides) cannot be followed; the copy takes the dense path instead,
which is what the module computes without the optimisation, and the report says so. Each
adapter is keyed by module class and returns its note, or None when nothing changed. Only
the private copy is adjusted, never the user's model.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

Adapter = Callable[[nn.Module], "str | None"]
ADAPTERS: dict[type[nn.Module], Adapter] = {}


def adapter(cls: type[nn.Module]) -> Callable[[Adapter], Adapter]:
    """Register the adapter for instances of ``cls`` (and its subclasses)."""

    def decorator(fn: Adapter) -> Adapter:
        if cls in ADAPTERS:
            raise ValueError(f"an adapter for {cls.__name__} is registered already")
        ADAPTERS[cls] = fn
        return fn

    return decorator


@adapter(nn.TransformerEncoder)
def _dense_encoder(module: nn.Module) -> str | None:
    """``src_key_padding_mask`` in eval mode would pack the tokens into a nested tensor
    and skip the padded ones; counted dense instead (padded positions included)."""
    if not getattr(module, "use_nested_tensor", False):
        return None
    module.use_nested_tensor = False  # type: ignore[assignment]
    return (
        "counted dense: the nested-tensor fast path that skips padded tokens depends on "
        "the values of src_key_padding_mask, so padded positions are counted too"
    )


def adapt(model: nn.Module) -> list[str]:
    """Apply every registered adapter to the modules of ``model`` (a private copy); the
    notes, each prefixed with the module's name."""
    notes = []
    for name, module in model.named_modules():
        for cls in type(module).__mro__:
            fn = ADAPTERS.get(cls)
            if fn is not None:
                note = fn(module)
                if note:
                    notes.append(f"{name or '(model)'}: {note}")
                break
    return notes
