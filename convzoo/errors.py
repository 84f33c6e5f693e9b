"""Exception types raised by convzoo, all subclasses of ``ValueError``."""

from __future__ import annotations


class ConvZooError(ValueError):
    """Base class for every error convzoo raises on purpose."""


class LayerArgumentError(ConvZooError):
    """A layer was given an argument it cannot work with.

    The message always starts with the registered layer name and the argument,
    e.g. ``conv: kernel_size must be positive, got (0, 3)``.
    """

    def __init__(self, layer: str, argument: str, message: str) -> None:
        self.layer = layer
        self.argument = argument
        super().__init__(f"{layer}: {argument} {message}")


def require(condition: bool, layer: str, argument: str, message: str) -> None:
    """Raise :class:`LayerArgumentError` unless ``condition`` holds."""
    if not condition:
        raise LayerArgumentError(layer, argument, message)
