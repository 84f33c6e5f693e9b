"""Every layer module; importing this package registers them all in ``convzoo.LAYERS``."""

from convzoo.layers import (  # noqa: F401  (imported for registration)
    basic,
    capsule,
    deformable,
    factorized,
    fft,
    local,
    separable,
    stack,
    standard,
    transposed,
)
