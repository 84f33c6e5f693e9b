"""Every layer module; importing this package registers them all in ``convzoo.LAYERS``."""

from convzoo.layers import (  # noqa: F401  (imported for registration)
    attention,
    basic,
    capsule,
    coord,
    deformable,
    dynamic,
    factorized,
    fft,
    ghost,
    involution,
    local,
    masked,
    mixed,
    octave,
    separable,
    stack,
    standard,
    subpixel,
    transposed,
)
