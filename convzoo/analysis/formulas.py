"""Pure cost formulas on shapes -> ints. The only place MACs and FLOPs are related.

Conventions
-----------
* 1 MAC = one multiply-add of real numbers. ``FLOPS_PER_MAC = 2``; ``flops(macs)`` is the
  only conversion in convzoo.
* A complex multiply-add is ``COMPLEX_MAC = 3`` real MACs: Gauss's three-product form,
  which is what torch runs for a complex convolution (three real convolutions, seen and
  counted as such); complex matmuls and dot products use the same factor, so the two agree.
* A complex FFT of ``N`` points costs ``2.5 * N * log2(N)`` MACs (the classic radix-2 count
  of ``5 N log2 N`` FLOPs); a real-input or real-output FFT half of that.
* A transposed convolution is counted over its input positions (each input value is
  multiplied by every weight it meets); a convolution over its output positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FLOPS_PER_MAC = 2
COMPLEX_MAC = 3


def flops(macs: int) -> int:
    """FLOPs of ``macs`` multiply-adds: ``FLOPS_PER_MAC * macs``."""
    return FLOPS_PER_MAC * macs


def prod(values: Sequence[int]) -> int:
    return math.prod(int(v) for v in values)


def conv_macs(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    transposed: bool = False,
) -> int:
    """MACs of an N-d convolution.

    ``weight_shape`` is ``[C_out, C_in/g, *k]`` (forward) or ``[C_in, C_out/g, *k]``
    (transposed). Forward: every output value costs ``C_in/g * prod(k)``. Transposed:
    every input value meets ``C_out/g * prod(k)`` weights.
    """
    per_value = prod(weight_shape[1:])
    return prod(input_shape if transposed else output_shape) * per_value


def matmul_macs(a_shape: Sequence[int], b_shape: Sequence[int]) -> int:
    """MACs of ``a @ b`` with broadcast batch dims: ``batch * n * m * p``."""
    if len(a_shape) == 1:
        a_shape = (1, *a_shape)
    if len(b_shape) == 1:
        b_shape = (*b_shape, 1)
    batch = prod(broadcast(a_shape[:-2], b_shape[:-2]))
    return batch * a_shape[-2] * a_shape[-1] * b_shape[-1]


def broadcast(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """Broadcast shape of two batch shapes."""
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + list(a)
    b = [1] * (n - len(b)) + list(b)
    return [max(x, y) for x, y in zip(a, b, strict=True)]


def unsqueezed(shape: Sequence[int], axes: Sequence[int]) -> list[int]:
    """``shape`` with a 1 inserted at each of ``axes`` (in increasing order)."""
    out = list(shape)
    for axis in sorted(axes):
        out.insert(axis, 1)
    return out


def broadcast_all(shapes: Sequence[Sequence[int]]) -> list[int]:
    """Broadcast shape of several shapes."""
    result: list[int] = []
    for s in shapes:
        result = broadcast(result, s)
    return result


def fft_macs(signal_shape: Sequence[int], dims: Sequence[int], real: bool) -> int:
    """MACs of an FFT over ``dims`` of a tensor of ``signal_shape`` (the complex-side size
    for c2r is the real output's). ``2.5 N log2 N`` per transform of ``N`` points, halved
    for real input or output; batched over the other axes."""
    points = prod([signal_shape[d] for d in dims])
    if points <= 1:
        return 0
    batch = prod(signal_shape) // points
    per = 2.5 * points * math.log2(points) / (2 if real else 1)
    return int(round(batch * per))


def deform_conv_macs(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    use_mask: bool,
) -> int:
    """Deformable convolution: the convolution's MACs plus the sampling.

    Every one of the ``B * C_in * k_h * k_w * H_out * W_out`` sampled values is a bilinear
    interpolation of 4 pixels (4 MACs), times the modulation mask (1 more) in v2.
    """
    conv = conv_macs(input_shape, weight_shape, output_shape)
    k = prod(weight_shape[2:])
    samples = input_shape[0] * input_shape[1] * k * prod(output_shape[2:])
    return conv + samples * (5 if use_mask else 4)


def attention_macs(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """Scaled dot-product attention ``softmax(Q K^T) V``: ``batch * L * S * (E + E_v)``."""
    batch = prod(q_shape[:-2])
    return batch * q_shape[-2] * k_shape[-2] * (q_shape[-1] + v_shape[-1])
