"""fft_conv against F.conv2d, its FFT-size rule, and its operation count against a hand count."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.errors import LayerArgumentError
from convzoo.layers.fft import FFTConv, fast_fft_size, fft_conv_cost
from convzoo.layers.standard import Conv
from tests.helpers import DTYPES, reference_conv


def smooth_numbers(limit: int) -> list[int]:
    """All 2^a 3^b 5^c <= limit, enumerated from the exponents (not by trial division)."""
    out = []
    for a in range(12):
        for b in range(8):
            for c in range(6):
                v = 2**a * 3**b * 5**c
                if v <= limit:
                    out.append(v)
    return sorted(out)


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    """Max abs difference relative to the reference's max abs value."""
    return ((y - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def limit(dtype: torch.dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 1e-10


def test_fast_fft_size_is_the_next_smooth_number() -> None:
    smooth = smooth_numbers(3000)
    for n in range(0, 2000):
        assert fast_fft_size(n) == min(v for v in smooth if v >= max(n, 1))
        assert fast_fft_size(n, even=True) == min(v for v in smooth if v >= n and v % 2 == 0)


def test_registered_as_conv_subclass_with_conv_state_dict() -> None:
    assert "fft_conv" in convzoo.LAYERS
    kw = {"in_channels": 6, "out_channels": 4, "kernel_size": (3, 5), "groups": 2}
    fft, conv = convzoo.create("fft_conv", **kw), convzoo.create("conv", **kw)
    assert isinstance(fft, Conv) and isinstance(fft, FFTConv)
    assert {k: v.shape for k, v in fft.state_dict().items()} == {
        k: v.shape for k, v in conv.state_dict().items()
    }
    assert fft.weight.shape == (4, 3, 3, 5)
    fft.load_state_dict(conv.state_dict())  # strict, both ways
    conv.load_state_dict(fft.state_dict())


CASES = [
    # kernel, stride, padding, dilation, groups, input (h, w)
    (3, 1, "valid", 1, 1, (9, 11)),
    (3, 1, "same", 1, 1, (9, 11)),
    (3, 1, "full", 1, 1, (9, 11)),
    (4, 1, "same", 1, 1, (8, 9)),  # even kernel: odd pixel after
    ((2, 5), 1, "same", 1, 2, (7, 10)),
    ((4, 3), (2, 1), "same", 1, 1, (11, 9)),
    (3, 2, "same", 1, 1, (10, 13)),
    (5, 3, "valid", 1, 2, (17, 16)),
    (3, 2, "full", 2, 1, (9, 8)),
    (3, 1, 2, 1, 1, (6, 7)),
    ((3, 2), (1, 3), (1, 2), (2, 1), 4, (8, 12)),
    (1, 2, "valid", 1, 1, (7, 6)),
    (1, 1, 1, 1, 1, (9, 11)),
    (6, (3, 2), "same", (1, 2), 1, (13, 15)),
    (3, 1, "same", 3, 4, (5, 5)),  # dilated kernel larger than the input, depthwise
    (31, 1, "same", 1, 1, (40, 37)),  # the regime it is built for
    (9, 4, "full", 1, 1, (12, 23)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("k", "s", "mode", "d", "g", "size"), CASES)
def test_matches_conv2d_forward_and_backward(dtype, k, s, mode, d, g, size) -> None:
    kw = {
        "in_channels": 4,
        "out_channels": 8,
        "kernel_size": k,
        "stride": s,
        "padding": mode,
        "dilation": d,
        "groups": g,
    }
    conv = convzoo.create("conv", **kw).to(dtype)
    fft = convzoo.create("fft_conv", **kw).to(dtype)
    fft.load_state_dict(conv.state_dict())
    x = torch.randn(3, 4, *size, dtype=dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = fft(x)
    y_ref = reference_conv(x_ref, conv.weight, conv.bias, s, mode, d, g)
    assert y.shape == y_ref.shape and y.dtype == dtype and y.is_contiguous()
    assert rel_err(y, y_ref) < limit(dtype)
    assert rel_err(y, conv(x.detach())) < limit(dtype)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    assert rel_err(x.grad, x_ref.grad) < limit(dtype)
    assert rel_err(fft.weight.grad, conv.weight.grad) < limit(dtype)
    assert rel_err(fft.bias.grad, conv.bias.grad) < limit(dtype)


@pytest.mark.parametrize(
    ("k", "s", "mode", "d", "g", "bias"),
    [
        (3, 1, "same", 1, 1, True),
        ((2, 3), 2, "same", 1, 2, True),  # folds both axes, asymmetric padding
        (2, (1, 3), "full", (2, 1), 1, False),
        (3, (2, 1), 1, 1, 2, True),
    ],
)
def test_gradcheck_float64(k, s, mode, d, g, bias) -> None:
    fft = convzoo.create(
        "fft_conv",
        in_channels=2,
        out_channels=4,
        kernel_size=k,
        stride=s,
        padding=mode,
        dilation=d,
        groups=g,
        bias=bias,
    ).double()
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in fft.named_parameters()}
    names = list(params)

    def run(x, *values):
        return torch.func.functional_call(fft, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(run, (x, *params.values()), fast_mode=True)


def test_gradcheck_float64_full_jacobian() -> None:
    fft = FFTConv(2, 2, (2, 3), 2, "same", dilation=(1, 2)).double()
    x = torch.randn(1, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    w = fft.weight.detach().clone().requires_grad_(True)
    b = fft.bias.detach().clone().requires_grad_(True)

    def run(x, w, b):
        return torch.func.functional_call(fft, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(run, (x, w, b))


def test_no_stale_state_after_weights_change() -> None:
    conv = convzoo.create("conv", in_channels=3, out_channels=5, kernel_size=7, padding="same")
    fft = convzoo.create("fft_conv", in_channels=3, out_channels=5, kernel_size=7, padding="same")
    x = torch.randn(2, 3, 20, 20)
    for _ in range(2):
        fft.load_state_dict(conv.state_dict())
        assert rel_err(fft(x), conv(x)) < 1e-4
        with torch.no_grad():
            conv.weight.mul_(-2).add_(0.1)
            conv.bias.add_(1.0)
    with torch.no_grad():  # in-place update of the fft layer's own weight
        fft.weight.add_(0.5)
        conv.weight.copy_(fft.weight)
        conv.bias.copy_(fft.bias)
    assert rel_err(fft(x), conv(x)) < 1e-4


def test_non_contiguous_input_and_empty_batch() -> None:
    conv = convzoo.create("conv", in_channels=2, out_channels=3, kernel_size=1)
    fft = convzoo.create("fft_conv", in_channels=2, out_channels=3, kernel_size=1)
    fft.load_state_dict(conv.state_dict())
    x = torch.randn(3, 2, 8, 8).to(memory_format=torch.channels_last)
    assert rel_err(fft(x), conv(x)) < 1e-4
    xt = torch.randn(3, 2, 9, 6).transpose(-1, -2)
    assert rel_err(fft(xt), conv(xt)) < 1e-4
    assert fft(torch.randn(0, 2, 5, 5)).shape == (0, 3, 5, 5)


@pytest.mark.parametrize(
    ("k", "s", "mode", "size", "expected"),
    [
        (31, 1, "same", (128, 128), (144, 144)),  # needs 128 + 15 = 143
        (3, 1, "valid", (128, 128), (128, 128)),
        (3, 1, "valid", (125, 125), (125, 128)),  # the rfft axis is made even (126 = 2·7·9)
        (5, 1, "full", (20, 30), (24, 36)),  # needs 20 + 4 and 30 + 4
        # h: pad (0, 1), the last output reads index 10 -> 11 -> 2·6; w: pad (1, 1), 14 -> 2·8
        (3, 2, "same", (10, 13), (12, 16)),
    ],
)
def test_fft_size_is_the_smallest_safe_frame(k, s, mode, size, expected) -> None:
    fft = FFTConv(1, 1, k, s, mode)
    assert fft.fft_size(size) == expected
    for n in expected:
        assert n % s == 0 and n // s in smooth_numbers(n)


def test_cost_matches_hand_count() -> None:
    # C_in 4, C_out 6, g 2, B 3, FFT 10 x 12 -> W' = 7, 70 bins
    cost = fft_conv_cost(4, 6, 2, 3, 10, 12, kernel_size=(3, 5), stride=(2, 3))
    assert cost["freq_bins"] == 70
    assert cost["forward_transforms"] == 12 and cost["inverse_transforms"] == 18
    assert (cost["inverse_h"], cost["inverse_w"]) == (5, 4)
    assert cost["product_cmacs"] == 70 * 3 * (4 // 2) * 6  # each output sees C_in/g inputs
    taps = 6 * 2
    assert cost["kernel_dft_macs"] == taps * (2 * 3 * 5 * 7 + 4 * 3 * 10 * 7)
    flops = 12 * 2.5 * 120 * math.log2(120) + 18 * 2.5 * 20 * math.log2(20)
    assert cost["transform_flops"] == pytest.approx(flops)
    assert "kernel_dft_macs" not in fft_conv_cost(1, 1, 1, 1, 8, 8)


@pytest.mark.parametrize(("k", "g", "s"), [(5, 1, 1), ((3, 7), 2, 2)])
def test_cost_counts_the_matmuls_actually_run(k, g, s) -> None:
    """The documented MACs are exactly the matmul work torch's FLOP counter sees."""
    fft = FFTConv(4, 6, k, s, "same", groups=g)
    x = torch.randn(3, 4, 19, 23)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fft(x)
    cost = fft.cost((19, 23), batch=3)
    # 1 complex MAC = 4 real MACs = 8 flops; 1 real MAC = 2 flops
    assert counter.get_total_flops() == 8 * cost["product_cmacs"] + 2 * cost["kernel_dft_macs"]
    assert (cost["fft_h"], cost["fft_w"]) == fft.fft_size((19, 23))


def test_bad_arguments_and_inputs_name_the_layer() -> None:
    with pytest.raises(LayerArgumentError, match=r"^fft_conv: kernel_size"):
        convzoo.create("fft_conv", in_channels=1, out_channels=1, kernel_size=0)
    fft = convzoo.create("fft_conv", in_channels=2, out_channels=2, kernel_size=5)
    with pytest.raises(LayerArgumentError, match=r"^fft_conv: input has 3 channels"):
        fft(torch.randn(1, 3, 8, 8))
    with pytest.raises(LayerArgumentError, match=r"^fft_conv: input must be a 4-D"):
        fft(torch.randn(2, 8, 8))
    with pytest.raises(LayerArgumentError, match=r"^fft_conv: kernel_size"):
        fft(torch.randn(1, 2, 4, 8))
    with pytest.raises(LayerArgumentError, match=r"^fft_conv: input dtype must be float32"):
        fft(torch.randn(1, 2, 8, 8).half())
    with pytest.raises(LayerArgumentError, match=r"^fft_conv: input dtype torch.float64"):
        fft(torch.randn(1, 2, 8, 8, dtype=torch.float64))
