"""Every fast shape rule gives exactly what the real meta kernel gives, or None.

Random cases (seeded) over shapes, layouts (contiguous, channels-last, permuted, expanded,
strided slices, broadcasting) and dtypes; a case where the real kernel raises must get None.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from convzoo.analysis import meta_kernels as mk
from convzoo.analysis.ops.table import is_inplace
from convzoo.analysis.setup_rules import RULES  # meta_kernels.RULES, the setup rules in it

aten = torch.ops.aten
DTYPES = [torch.float32, torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64]
Case = tuple[Any, tuple, dict]


def tensor(rng: random.Random, shape: list[int], dtype: torch.dtype | None = None) -> torch.Tensor:
    """A meta tensor of ``shape`` in a random layout."""
    dtype = dtype or rng.choice(DTYPES)
    layout = rng.choice(
        ["contiguous", "contiguous", "channels_last", "permuted", "expanded", "sliced"]
    )
    if layout == "channels_last" and len(shape) == 4:
        return torch.empty(shape, dtype=dtype, device="meta").to(memory_format=torch.channels_last)
    if layout == "permuted" and shape:
        order = list(range(len(shape)))
        rng.shuffle(order)
        base = torch.empty([shape[i] for i in order], dtype=dtype, device="meta")
        return base.permute([order.index(i) for i in range(len(shape))])
    if layout == "expanded" and shape:
        small = [1 if rng.random() < 0.4 else n for n in shape]
        return torch.empty(small, dtype=dtype, device="meta").expand(shape)
    if layout == "sliced" and shape:
        d = rng.randrange(len(shape))
        big = list(shape)
        big[d] *= 2
        return torch.empty(big, dtype=dtype, device="meta").narrow(d, 0, shape[d] * 2)[
            (slice(None),) * d + (slice(None, None, 2),)
        ]
    return torch.empty(shape, dtype=dtype, device="meta")


def shape(rng: random.Random, lo: int = 0, hi: int = 5) -> list[int]:
    return [rng.choice([1, 1, 2, 3, 4, 7]) for _ in range(rng.randint(lo, hi))]


def broadcastable(rng: random.Random, full: list[int]) -> list[int]:
    """A shape that broadcasts to ``full`` (some dims 1, some leading dims dropped)."""
    cut = rng.randint(0, len(full))
    return [1 if rng.random() < 0.4 else n for n in full[cut:]]


def same(rng: random.Random, x: torch.Tensor) -> torch.Tensor:
    return tensor(rng, list(x.shape), x.dtype)


def unary(rng: random.Random) -> Iterator[Case]:
    for _ in range(400):
        func = rng.choice(mk.UNARY)
        x = tensor(rng, shape(rng))
        extra: tuple = ()
        kwargs: dict = {}
        if func is aten.gelu.default and rng.random() < 0.5:
            kwargs = {"approximate": "tanh"}
        if func is aten.leaky_relu.default and rng.random() < 0.5:
            extra = (0.2,)
        if func is aten.hardtanh.default and rng.random() < 0.5:
            extra = (0.0, 6.0)
        yield func, (x, *extra), kwargs


def other_operand(rng: random.Random, x: torch.Tensor, scalar_ok: bool) -> Any:
    roll = rng.random()
    if scalar_ok and roll < 0.2:
        return rng.choice([2, 0.5, True, 1j])
    dtype = x.dtype if rng.random() < 0.8 else rng.choice(DTYPES)
    if roll < 0.3:
        return tensor(rng, [], dtype)  # a 0-dim tensor
    if roll < 0.4:
        return tensor(rng, shape(rng), dtype)  # may not broadcast
    return tensor(rng, broadcastable(rng, list(x.shape)), dtype)


def binary(rng: random.Random) -> Iterator[Case]:
    for _ in range(800):
        func = rng.choice(mk.BINARY)
        x = tensor(rng, shape(rng))
        scalar = func._overloadname == "Scalar"
        other = rng.choice([2, 0.5, 3.0]) if scalar else other_operand(rng, x, True)
        if rng.random() < 0.5:  # broadcast the other way round
            x, other = (other, x) if isinstance(other, torch.Tensor) else (x, other)
        kwargs = (
            {"alpha": rng.choice([1, 2])}
            if func.overloadpacket in (aten.add, aten.sub) and rng.random() < 0.3
            else {}
        )
        yield func, (x, other), kwargs


def inplace(rng: random.Random) -> Iterator[Case]:
    for _ in range(400):
        func = rng.choice(mk.INPLACE)
        x = tensor(rng, shape(rng))
        if x.stride() and 0 in x.stride():
            continue  # real in-place ops refuse expanded outputs
        n = len(func._schema.arguments)
        if func._overloadname == "Scalar":
            yield func, (x, rng.choice([2, 0.5])), {}
        elif n >= 2 and func._schema.arguments[1].name == "other":
            yield func, (x, other_operand(rng, x, True)), {}
        else:
            yield func, (x,), {}


def matmuls(rng: random.Random) -> Iterator[Case]:
    dims = [1, 2, 3, 5]
    for _ in range(300):
        n, k, m, b = (rng.choice(dims) for _ in range(4))
        dtype = rng.choice(DTYPES)
        k2 = k if rng.random() < 0.9 else k + 1
        roll = rng.random()
        if roll < 0.33:
            yield aten.mm.default, (tensor(rng, [n, k], dtype), tensor(rng, [k2, m], dtype)), {}
        elif roll < 0.66:
            a, w = tensor(rng, [b, n, k], dtype), tensor(rng, [b, k2, m], dtype)
            yield aten.bmm.default, (a, w), {}
        else:
            bias = tensor(rng, rng.choice([[m], [n, m], [1, m], [m + 1], []]), dtype)
            kwargs = {"beta": 0.5} if rng.random() < 0.2 else {}
            yield (
                aten.addmm.default,
                (bias, tensor(rng, [n, k], dtype), tensor(rng, [k2, m], dtype)),
                kwargs,
            )


def norms(rng: random.Random) -> Iterator[Case]:
    for _ in range(300):
        x = tensor(rng, shape(rng, 1, 4))
        k = rng.randint(1, x.dim())
        normalized = list(x.shape[x.dim() - k :])
        if rng.random() < 0.1:
            normalized[-1] += 1
        params = [
            tensor(rng, normalized, x.dtype) if rng.random() < 0.8 else None for _ in range(2)
        ]
        yield aten.native_layer_norm.default, (x, normalized, *params, 1e-5), {}
    for _ in range(300):
        x = tensor(rng, shape(rng, 2, 5))
        c = x.shape[1]
        stats = [tensor(rng, [c], x.dtype) for _ in range(4)]
        if rng.random() < 0.3:
            stats[0] = None
        training = rng.random() < 0.5
        func = rng.choice([aten.native_batch_norm.default, aten._native_batch_norm_legit.default])
        yield func, (x, *stats, training, 0.1, 1e-5), {}
        yield aten._native_batch_norm_legit_no_training.default, (x, *stats, 0.1, 1e-5), {}


def softmaxes(rng: random.Random) -> Iterator[Case]:
    for _ in range(300):
        x = tensor(rng, shape(rng))
        dim = rng.randint(-max(x.dim(), 1), max(x.dim(), 1))
        func = rng.choice(
            [aten._softmax.default, aten._log_softmax.default, aten._safe_softmax.default]
        )
        if func is aten._safe_softmax.default:
            yield func, (x, dim), ({"dtype": torch.float32} if rng.random() < 0.2 else {})
        else:
            yield func, (x, dim, rng.random() < 0.2), {}


def reductions(rng: random.Random) -> Iterator[Case]:
    for _ in range(300):
        x = tensor(rng, shape(rng))
        n = max(x.dim(), 1)
        dims = [rng.randint(-n, n) for _ in range(rng.randint(0, 3))]
        func = rng.choice([aten.mean.dim, aten.sum.dim_IntList])
        yield func, (x, dims, rng.random() < 0.5), {}


def convolutions(rng: random.Random) -> Iterator[Case]:
    for _ in range(300):
        nd = rng.randint(1, 3)
        groups = rng.choice([1, 1, 2, 3])
        cin, cout = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
        transposed = rng.random() < 0.3
        dtype = rng.choice(DTYPES[:5])
        x = tensor(rng, [rng.randint(1, 2), cin, *(rng.randint(1, 9) for _ in range(nd))], dtype)
        kernel = [rng.randint(1, 4) for _ in range(nd)]
        w_shape = [cin, cout // groups, *kernel] if transposed else [cout, cin // groups, *kernel]
        w = tensor(rng, w_shape, dtype)
        bias = tensor(rng, [cout], dtype) if rng.random() < 0.5 else None
        stride, padding, dilation = ([rng.randint(lo, 3) for _ in range(nd)] for lo in (1, 0, 1))
        output_padding = [0] * nd
        yield (
            aten.convolution.default,
            (x, w, bias, stride, padding, dilation, transposed, output_padding, groups),
            {},
        )


def clones(rng: random.Random) -> Iterator[Case]:
    for _ in range(200):
        x = tensor(rng, shape(rng))
        layout = rng.choice([torch.contiguous_format, torch.preserve_format, None])
        yield aten.clone.default, (x,), ({} if layout is None else {"memory_format": layout})


def pools(rng: random.Random) -> Iterator[Case]:
    """Max pooling with every argument form (one or two ints, stride omitted or empty),
    ceil mode, pads past half the kernel, too-small inputs and other ranks and layouts."""

    def ints(lo: int, hi: int, lengths: list[int]) -> list[int]:
        return [rng.randint(lo, hi) for _ in range(rng.choice(lengths))]

    for _ in range(400):
        plain = rng.random() < 0.6  # contiguous 4-D float32, arguments mostly valid
        n = [1, 2] if plain else [1, 2, 2, 3]
        dims = 4 if plain else rng.choice([4, 4, 3, 5])
        size = [rng.choice([0, 1, 2, 3]) if i == 0 else rng.randint(1, 9) for i in range(dims)]
        x = torch.empty(size, device="meta") if plain else tensor(rng, size)
        kernel = ints(1, 3, n) if plain else ints(0, 4, n)
        stride = rng.choice([[], ints(1, 3, n)]) if plain else ints(-1, 3, n)
        padding = ints(0, 1, n) if plain else ints(-1, 2, n)
        extra = [kernel] + [
            v for v in (stride, padding, ints(int(plain), 2, n)) if rng.random() < 0.8
        ]
        if len(extra) == 4 and rng.random() < 0.6:
            extra.append(rng.random() < 0.5)
        yield aten.max_pool2d_with_indices.default, (x, *extra), {}


def setups(rng: random.Random) -> Iterator[Case]:
    """The setup rules (:mod:`convzoo.analysis.setup_rules`): ``remainder`` by a scalar,
    ``arange`` on meta, ``stack`` and ``cat`` in every layout, rank and dtype."""
    for _ in range(600):
        roll = rng.random()
        if roll < 0.25:
            x = tensor(rng, shape(rng), rng.choice([torch.int64, torch.int64, *DTYPES]))
            yield aten.remainder.Scalar, (x, rng.choice([3, 7, 0, -2, 2.5, True])), {}
        elif roll < 0.45:
            kwargs: dict = {"device": rng.choice(["meta", "meta", "cpu"])}
            if rng.random() < 0.7:
                kwargs["dtype"] = rng.choice([torch.int64, torch.int64, torch.float32])
            if rng.random() < 0.3:
                kwargs["pin_memory"] = False
            yield aten.arange.default, (rng.choice([0, 1, 5, 17, -3]),), kwargs
        else:
            op = rng.choice([aten.stack.default, aten.cat.default])
            base = shape(rng, 1, 5)
            dtype = rng.choice([torch.float32, torch.float32, torch.float64, *DTYPES])
            dim = rng.randint(-len(base) - 1, len(base))
            parts = []
            for _ in range(rng.randint(1, 3)):
                size = list(base)
                if op is aten.cat.default and size and rng.random() < 0.5:
                    size[dim % len(size)] = rng.randint(1, 4)
                parts.append(tensor(rng, size, dtype if rng.random() < 0.9 else torch.float64))
            yield op, (parts, dim) if rng.random() < 0.8 else (parts,), {}


def spectra(rng: random.Random) -> Iterator[Case]:
    """``complex`` and the real FFTs over trailing and other axes, in every layout."""
    floats = [torch.float32, torch.float64, torch.float16]
    for _ in range(600):
        roll = rng.random()
        if roll < 0.3:
            real = tensor(rng, shape(rng), rng.choice(floats))
            imag = tensor(
                rng, broadcastable(rng, list(real.shape)), rng.choice([real.dtype, *floats])
            )
            yield aten.complex.default, (real, imag), {}
            continue
        size = shape(rng, 1, 5)
        n = len(size)
        k = rng.randint(1, min(n, 3))
        dim = list(range(n - k, n)) if rng.random() < 0.7 else sorted(rng.sample(range(n), k))
        norm = rng.randint(0, 2)
        if roll < 0.65:
            x = tensor(rng, size, rng.choice(floats))
            yield aten._fft_r2c.default, (x, dim, norm, rng.random() < 0.7), {}
        else:
            x = tensor(rng, size, rng.choice([torch.complex64, torch.complex128]))
            yield aten._fft_c2r.default, (x, dim, norm, rng.randint(1, 9)), {}


FAMILIES: dict[str, Callable[[random.Random], Iterator[Case]]] = {
    "unary": unary,
    "binary": binary,
    "inplace": inplace,
    "matmuls": matmuls,
    "norms": norms,
    "softmaxes": softmaxes,
    "reductions": reductions,
    "convolutions": convolutions,
    "clones": clones,
    "pools": pools,
    "setups": setups,
    "spectra": spectra,
}


def describe(out: Any) -> list[tuple]:
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [(tuple(t.shape), t.stride(), t.dtype, t.device) for t in outs]


EVAL_BATCH_NORM = {aten._native_batch_norm_legit_no_training.default}
TRAINING_FLAG = {aten.native_batch_norm.default, aten._native_batch_norm_legit.default}


def _as_on_cpu(func: Any, args: tuple, real: Any) -> Any:
    """Eval-mode batch norm: the meta kernel returns ``(C,)`` statistics, the CPU kernel
    empty ones; the table follows the CPU kernel (memory as on a real device): take the
    statistics' shapes from a CPU run of the same call."""
    if not (func in EVAL_BATCH_NORM or (func in TRAINING_FLAG and not args[5])):
        return real
    cpu = [
        torch.empty_strided(a.shape, a.stride(), dtype=a.dtype).zero_()
        if isinstance(a, torch.Tensor)
        else a
        for a in args
    ]
    stats = func(*cpu)[1:]
    assert all(t.shape == (0,) for t in stats)  # the divergence is the documented one
    return (real[0], *[torch.empty(t.shape, dtype=t.dtype, device="meta") for t in stats])


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_rules_match_the_meta_kernels(family: str) -> None:
    rng = random.Random(family)
    answered = 0
    for func, args, kwargs in FAMILIES[family](rng):
        fast = RULES[func](args, kwargs)
        try:
            real = func(*args, **kwargs)
        except Exception:
            assert fast is None, (func, [getattr(a, "shape", a) for a in args], kwargs)
            continue
        if fast is None:
            continue
        real = _as_on_cpu(func, args, real)
        answered += 1
        context = (
            func,
            [
                (tuple(a.shape), a.stride(), a.dtype) if isinstance(a, torch.Tensor) else a
                for a in args
            ],
            kwargs,
        )
        assert describe(fast) == describe(real), context
        if is_inplace(func):
            assert fast is args[0]
    assert answered >= 30  # the rules do answer


def test_a_rule_is_registered_once() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        mk.shape_rule(aten.relu.default)(lambda args, kwargs: None)
