"""Blocks composed of zoo layers; importing this package registers them in ``convzoo.LAYERS``."""

from convzoo.blocks import (  # noqa: F401  (imported for registration)
    conv_norm_act,
    convnext,
    repvgg,
    residual,
)
