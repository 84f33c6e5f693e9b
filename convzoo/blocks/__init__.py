"""Blocks composed of zoo layers; importing this package registers them in ``convzoo.LAYERS``."""

from convzoo.blocks import conv_norm_act, residual  # noqa: F401  (imported for registration)
