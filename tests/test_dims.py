"""Every variant in 1-D and 3-D (``dims=1|3``) against torch's functional ops of that rank."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import convzoo
from tests.helpers import reference_padding

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TRANSPOSED = {1: F.conv_transpose1d, 3: F.conv_transpose3d}
SIZES = {1: (11,), 3: (6, 7, 5)}
TOL = {"rtol": 1e-9, "atol": 1e-9}
DIMS = [1, 3]


def pad(x: torch.Tensor, mode, k: int, s: int, d: int, value: float = 0.0) -> torch.Tensor:
    """Pad every spatial axis of ``x`` by the docs' definition of ``mode``."""
    n = x.dim() - 2
    pads = [reference_padding(mode, x.shape[2 + a], d * (k - 1) + 1, s) for a in range(n)]
    return F.pad(x, [p for pair in reversed(pads) for p in pair], value=value)


def ref_conv(x, weight, bias, mode="valid", s=1, d=1, groups=1) -> torch.Tensor:
    k = weight.shape[-1]
    return CONV[x.dim() - 2](pad(x, mode, k, s, d), weight, bias, s, 0, d, groups)


def make(name: str, dims: int, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return convzoo.create(name, dims=dims, **kwargs).double()


def data(dims: int, channels: int = 4) -> torch.Tensor:
    return torch.randn(2, channels, *SIZES[dims], dtype=torch.float64)


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("mode", ["valid", "same", "full", 1])
@pytest.mark.parametrize(("s", "d"), [(1, 1), (2, 1), (1, 2)])
def test_conv_modes(dims, mode, s, d) -> None:
    conv = make("conv", dims, in_channels=4, out_channels=3, kernel_size=3, stride=s,
                padding=mode, dilation=d)  # fmt: skip
    x = data(dims)
    torch.testing.assert_close(conv(x), ref_conv(x, conv.weight, conv.bias, mode, s, d), **TOL)


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize(
    ("name", "kwargs", "groups"),
    [
        ("pointwise", {"out_channels": 6}, 1),
        ("depthwise", {"kernel_size": 3, "padding": "same", "depth_multiplier": 2}, 4),
        ("grouped", {"out_channels": 6, "groups": 2, "padding": "same"}, 2),
        ("dilated", {"out_channels": 6, "dilation": 2, "padding": "same"}, 1),
        ("fft_conv", {"out_channels": 6, "kernel_size": 3, "padding": "same", "stride": 2}, 1),
        ("fft_conv", {"out_channels": 6, "kernel_size": 2, "groups": 2, "dilation": 2}, 2),
    ],
)
def test_same_op_variants(dims, name, kwargs, groups) -> None:
    layer = make(name, dims, in_channels=4, **kwargs)
    x = data(dims)
    mode, s, d = kwargs.get("padding", "valid"), kwargs.get("stride", 1), kwargs.get("dilation", 1)
    ref = ref_conv(x, layer.weight, layer.bias, mode, s, d, groups)
    torch.testing.assert_close(layer(x), ref, **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_depthwise_separable(dims) -> None:
    layer = make("depthwise_separable", dims, in_channels=4, out_channels=5, padding="same",
                 stride=2, norm="batch_norm", activation="relu").eval()  # fmt: skip
    x = data(dims)
    dw, bn, pw = layer.depthwise, layer.norm, layer.pointwise
    mid = ref_conv(x, dw.weight, dw.bias, "same", 2, 1, 4)
    mid = F.relu(F.batch_norm(mid, bn.running_mean, bn.running_var, bn.weight, bn.bias))
    torch.testing.assert_close(layer(x), ref_conv(mid, pw.weight, pw.bias), **TOL)


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("mode", ["valid", "same", "full"])
def test_factorized_is_one_1d_kernel_per_axis(dims, mode) -> None:
    layer = make("factorized", dims, in_channels=3, out_channels=4, kernel_size=3, stride=2,
                 padding=mode, mid_channels=2)  # fmt: skip
    convs = list(layer.children())  # last axis first
    assert len(convs) == dims and all(c.weight.shape[2:].numel() == 3 for c in convs)
    assert all(c.bias is None for c in convs[:-1]) and convs[-1].bias is not None
    vectors = [c.weight.flatten(2) for c in convs]  # [out, in, 3] each, axis -1, -2, ...
    letters = "zyx"[3 - dims :]
    terms = [f"{chr(97 + i + 1)}{chr(97 + i)}{letters[-1 - i]}" for i in range(dims)]
    spec = ",".join(terms) + f"->{chr(97 + dims)}a{letters}"
    full = torch.einsum(spec, *vectors)  # W[o, i, *k] = prod of the 1-D kernels
    x = data(dims, 3)
    torch.testing.assert_close(layer(x), ref_conv(x, full, convs[-1].bias, mode, 2), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_conv_stack(dims) -> None:
    layer = make("conv_stack", dims, in_channels=3, out_channels=2, kernel_size=5,
                 padding="same", activation="tanh")  # fmt: skip
    x = data(dims, 3)
    y = torch.tanh(ref_conv(x, layer.conv1.weight, layer.conv1.bias, "same"))
    torch.testing.assert_close(layer(x), ref_conv(y, layer.conv2.weight, layer.conv2.bias, "same"))


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize(("s", "p"), [(1, 0), (2, 1), (3, "valid")])
def test_transposed_matches_torch(dims, s, p) -> None:
    layer = make("transposed", dims, in_channels=4, out_channels=3, kernel_size=3, stride=s,
                 padding=p)  # fmt: skip
    x = data(dims)
    ref = TRANSPOSED[dims](x, layer.weight, layer.bias, s, 0 if p == "valid" else p)
    torch.testing.assert_close(layer(x), ref, **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_transposed_same_is_the_adjoint_of_conv_same(dims) -> None:
    t = make("transposed", dims, in_channels=3, out_channels=4, kernel_size=4, stride=2,
             padding="same", bias=False)  # fmt: skip
    x = data(dims)  # conv input (4 channels)
    y = ref_conv(x, t.weight, None, "same", 2)  # the forward conv with the same weight
    g = torch.randn_like(y)
    back = t(g, output_size=x.shape)  # "same" reaches n from ceil(n / s)
    assert back.shape == x.shape
    torch.testing.assert_close((y * g).sum(), (x * back).sum(), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_locally_connected_by_explicit_loop(dims) -> None:
    size = SIZES[dims]
    layer = make("locally_connected", dims, in_channels=2, out_channels=3, kernel_size=2,
                 input_size=size, stride=2, padding="same")  # fmt: skip
    x = data(dims, 2)
    xp = pad(x, "same", 2, 2, 1)
    out = layer.output_size()
    ref = torch.empty(2, 3, *out, dtype=torch.float64)
    kernels = layer.kernels()  # [*S_out, C_out, C_in, *k]
    for pos in itertools.product(*(range(n) for n in out)):
        patch = xp[(..., *(slice(2 * i, 2 * i + 2) for i in pos))]  # [B, C_in, *k]
        value = torch.einsum("bc...,oc...->bo", patch, kernels[pos])
        ref[(..., *pos)] = value + layer.bias[(..., *pos)]
    torch.testing.assert_close(layer(x), ref, **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_tiled_picks_kernel_by_position_mod_t(dims) -> None:
    layer = make("tiled", dims, in_channels=2, out_channels=3, kernel_size=2, tile_size=2,
                 padding="same")  # fmt: skip
    x = data(dims, 2)
    kernels = layer.kernels()  # [t]*dims + [C_out, C_in, *k]
    biases = layer.bias.view(*(2,) * dims, 3)
    y = layer(x)
    for offset in itertools.product(range(2), repeat=dims):
        full = ref_conv(x, kernels[offset], biases[offset], "same")
        grid = (..., *(slice(a, None, 2) for a in offset))
        torch.testing.assert_close(y[grid], full[grid], **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_pooling_and_batch_norm(dims) -> None:
    x = data(dims)
    pool = {1: F.max_pool1d, 3: F.max_pool3d}[dims]
    mp = convzoo.create("max_pool", kernel_size=3, stride=2, padding="same", dims=dims)
    torch.testing.assert_close(mp(x), pool(pad(x, "same", 3, 2, 1, float("-inf")), 3, 2))
    avg = {1: F.avg_pool1d, 3: F.avg_pool3d}[dims]
    ap = convzoo.create("avg_pool", kernel_size=2, dims=dims)
    torch.testing.assert_close(ap(x), avg(x, 2))
    axes = tuple(range(2, 2 + dims))
    gmax = convzoo.create("global_max_pool", dims=dims)(x)
    torch.testing.assert_close(gmax, x.amax(axes, keepdim=True))
    gavg = convzoo.create("global_avg_pool", dims=dims)(x)
    torch.testing.assert_close(gavg, x.mean(axes, keepdim=True))
    bn = convzoo.create("batch_norm", in_channels=4, dims=dims).double().train()
    mean, var = x.mean((0, *axes), keepdim=True), x.var((0, *axes), unbiased=False, keepdim=True)
    torch.testing.assert_close(bn(x), (x - mean) / torch.sqrt(var + bn.eps), **TOL)


@pytest.mark.parametrize("dims", DIMS)
def test_conv_norm_act_and_configs_pick_the_rank(dims) -> None:
    block = convzoo.create("conv_norm_act", in_channels=4, out_channels=2, dims=dims).eval()
    x = data(dims).float()
    assert block(x).shape == (2, 2, *SIZES[dims])
    shape = [4, *SIZES[dims]]
    config = {
        "input": shape,
        "layers": [
            {"type": "conv", "out_channels": 3, "kernel_size": 3, "padding": "same"},
            {"type": "batch_norm"},
            {"type": "factorized", "out_channels": 3, "padding": "same"},
            {"type": "max_pool", "kernel_size": 2},
            {"type": "global_avg_pool"},
            {"type": "flatten"},
            {"type": "linear", "out_features": 2},
        ],
    }
    model = convzoo.build(config)
    assert model[0].dims == dims and model[1].dims == dims
    assert model(torch.randn(2, *shape)).shape == (2, 2)


@pytest.mark.parametrize("dims", DIMS)
def test_modern_variants_in_other_ranks(dims) -> None:
    x = data(dims)
    cond = make("cond_conv", dims, in_channels=4, out_channels=3, experts=2)
    r = torch.sigmoid(cond.route(x.mean(tuple(range(2, 2 + dims)))))
    for b in range(2):
        w = r[b, 0] * cond.weight[0] + r[b, 1] * cond.weight[1]
        bias = r[b, 0] * cond.bias[0] + r[b, 1] * cond.bias[1]
        torch.testing.assert_close(cond(x)[b : b + 1], ref_conv(x[b : b + 1], w, bias, "same"))
    gated = make("gated_conv", dims, in_channels=4, out_channels=3)
    z = ref_conv(x, gated.weight, gated.bias, "same")
    torch.testing.assert_close(gated(x), F.elu(z[:, :3]) * torch.sigmoid(z[:, 3:]), **TOL)
    partial = make("partial_conv", dims, in_channels=4, out_channels=3, bias=False)
    ones = torch.ones(1, 1, *x.shape[2:], dtype=torch.float64)
    count = ref_conv(ones, torch.ones(1, 1, *(3,) * dims, dtype=torch.float64), None, "same")
    ref = ref_conv(x, partial.weight, None, "same") * 3**dims / count
    torch.testing.assert_close(partial(x), ref, **TOL)
