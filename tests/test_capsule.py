"""Capsule layers checked against independent references: naive formulas, explicit loops
over (i, j) pairs, F.conv2d, hand-computed numbers and the paper's MNIST CapsNet sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.errors import LayerArgumentError
from convzoo.layers.basic import Activation
from convzoo.layers.capsule import (
    CapsuleLengths,
    PrimaryCapsules,
    RoutingCapsules,
    margin_loss,
    safe_norm,
    squash,
)
from convzoo.layers.standard import Conv

DTYPES = [torch.float32, torch.float64]


def tol(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-9}


def naive_squash(s: torch.Tensor) -> torch.Tensor:
    """Eq. 1 written literally, for one non-zero vector ``s``."""
    norm2 = (s * s).sum()
    return norm2 / (1 + norm2) * s / torch.sqrt(norm2)


# --------------------------------------------------------------------------- squash


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [0.05, 0.7, 1.0, 3.0, 50.0])
def test_squash_properties(dtype: torch.dtype, scale: float) -> None:
    torch.manual_seed(0)
    s = torch.randn(4, 5, 6, dtype=dtype) * scale
    v = squash(s)
    assert v.shape == s.shape and v.dtype == dtype
    s64 = s.double()
    n = torch.linalg.vector_norm(s64, dim=-1)
    lengths = torch.linalg.vector_norm(v.double(), dim=-1)
    assert (lengths < 1).all()
    torch.testing.assert_close(lengths, n**2 / (1 + n**2), **tol(dtype))
    # same direction: v = alpha·s with alpha > 0 (cosine 1)
    cos = (v.double() * s64).sum(-1) / (lengths * n)
    torch.testing.assert_close(cos, torch.ones_like(cos), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_squash_matches_literal_formula_and_dim(dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    s = torch.randn(3, 4, 5, dtype=dtype) * 2
    want = torch.stack([torch.stack([naive_squash(s[a, b]) for b in range(4)]) for a in range(3)])
    torch.testing.assert_close(squash(s), want, **tol(dtype))
    # along another dim: capsule vectors are s[a, :, c]
    want1 = torch.stack(
        [torch.stack([naive_squash(s[a, :, c]) for c in range(5)], -1) for a in range(3)]
    )
    torch.testing.assert_close(squash(s, dim=1), want1, **tol(dtype))


def test_squash_stable_float32() -> None:
    d = 8
    for value in (0.0, 1e-30, 1e-38, 1e30, 1e37):
        s = torch.full((2, 3, d), value, requires_grad=True)
        v = squash(s)
        assert torch.isfinite(v).all(), value
        (v * torch.linspace(-1, 1, d)).sum().backward()
        assert torch.isfinite(s.grad).all(), value
    # exact zero: zero output and the true (zero) Jacobian
    s = torch.zeros(2, 4, requires_grad=True)
    v = squash(s)
    assert (v == 0).all()
    v.sum().backward()
    assert (s.grad == 0).all()
    # huge: a unit vector along s; tiny: v = |s|·s to first order (|s|^2 would be ~1e-29)
    huge = torch.tensor([[3e30, -4e30]])
    torch.testing.assert_close(squash(huge), torch.tensor([[0.6, -0.8]]))
    tiny = torch.tensor([[3e-15, 4e-15]])  # v = |s|·s: 1.5e-29, 2e-29
    torch.testing.assert_close(squash(tiny), torch.tensor([[1.5e-29, 2e-29]]), atol=0, rtol=1e-5)


def test_squash_gradcheck() -> None:
    torch.manual_seed(2)
    s = (
        torch.randn(3, 4, dtype=torch.float64) * torch.tensor([[0.3], [1.0], [5.0]])
    ).requires_grad_()
    assert torch.autograd.gradcheck(squash, (s,))


# --------------------------------------------------------------------------- lengths


@pytest.mark.parametrize("dtype", DTYPES)
def test_capsule_lengths(dtype: torch.dtype) -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 7, 5, dtype=dtype, requires_grad=True)
    layer = convzoo.create("capsule_lengths")
    got = layer(x)
    assert got.shape == (2, 7)
    want = torch.sqrt((x.detach().double() ** 2).sum(-1)).to(dtype)
    torch.testing.assert_close(got, want, **tol(dtype))
    g = torch.randn(2, 7, dtype=dtype)
    (got * g).sum().backward()
    torch.testing.assert_close(x.grad, g[..., None] * x.detach() / want[..., None], **tol(dtype))


def test_lengths_stable() -> None:
    x = torch.zeros(1, 2, 3, requires_grad=True)
    y = CapsuleLengths()(x)
    assert (y == 0).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    big = torch.full((1, 1, 4), 1e30)
    torch.testing.assert_close(safe_norm(big), torch.tensor([[2e30]]))
    small = torch.full((1, 1, 4), 1e-30)
    torch.testing.assert_close(safe_norm(small), torch.tensor([[2e-30]]))
    with pytest.raises(LayerArgumentError, match=r"^capsule_lengths: input"):
        CapsuleLengths()(torch.zeros(2, 3))


# --------------------------------------------------------------------------- routing


def loop_routing(u: torch.Tensor, weight: torch.Tensor, iterations: int) -> torch.Tensor:
    """Algorithm 1 of the paper, one sample and one (i, j) pair at a time."""
    batch, n_in, _ = u.shape
    n_out = weight.shape[1]
    outputs = []
    for b in range(batch):
        u_hat = [[weight[i, j] @ u[b, i] for j in range(n_out)] for i in range(n_in)]
        logits = [[u.new_zeros(()) for _ in range(n_out)] for _ in range(n_in)]
        v: list[torch.Tensor] = []
        for _ in range(iterations):
            c = []
            for i in range(n_in):
                exps = [torch.exp(logits[i][j]) for j in range(n_out)]
                total = sum(exps)
                c.append([e / total for e in exps])
            v = []
            for j in range(n_out):
                s_j = sum(c[i][j] * u_hat[i][j] for i in range(n_in))
                v.append(naive_squash(s_j))
            for i in range(n_in):
                for j in range(n_out):
                    logits[i][j] = logits[i][j] + (u_hat[i][j] * v[j]).sum()
        outputs.append(torch.stack(v))
    return torch.stack(outputs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("iterations", [1, 2, 3])
@pytest.mark.parametrize("sizes", [(3, 2, 2, 3), (4, 3, 3, 2)])
def test_routing_matches_loop(dtype: torch.dtype, iterations: int, sizes: tuple[int, ...]) -> None:
    n_in, d_in, n_out, d_out = sizes
    torch.manual_seed(10 + iterations)
    layer = RoutingCapsules(n_in, d_in, n_out, d_out, iterations=iterations).to(dtype)
    with torch.no_grad():
        layer.weight.normal_(0, 1.0)  # large enough that routing changes the couplings
    u = torch.randn(2, n_in, d_in, dtype=dtype, requires_grad=True)
    got = layer(u)
    assert got.shape == (2, n_out, d_out) and got.dtype == dtype
    w_ref = layer.weight.detach().clone().requires_grad_()
    u_ref = u.detach().clone().requires_grad_()
    want = loop_routing(u_ref, w_ref, iterations)
    torch.testing.assert_close(got, want, **tol(dtype))
    g = torch.randn_like(got)
    (got * g).sum().backward()
    (want * g).sum().backward()
    torch.testing.assert_close(u.grad, u_ref.grad, **tol(dtype))
    torch.testing.assert_close(layer.weight.grad, w_ref.grad, **tol(dtype))


def test_routing_iterations_matter() -> None:
    torch.manual_seed(4)
    u = torch.randn(2, 5, 3)
    outs = []
    for it in (1, 3):
        torch.manual_seed(5)
        layer = RoutingCapsules(5, 3, 4, 2, iterations=it)
        with torch.no_grad():
            layer.weight.normal_()
        outs.append(layer(u))
    assert not torch.allclose(outs[0], outs[1])


def test_detach_routing_gradients() -> None:
    """detach_routing: same forward; gradients as if the final couplings were constants."""
    torch.manual_seed(6)
    full = RoutingCapsules(4, 3, 3, 2, iterations=3).double()
    with torch.no_grad():
        full.weight.normal_()
    stop = RoutingCapsules(4, 3, 3, 2, iterations=3, detach_routing=True).double()
    stop.load_state_dict(full.state_dict())
    u = torch.randn(2, 4, 3, dtype=torch.float64)
    g = torch.randn(2, 3, 2, dtype=torch.float64)
    grads = []
    for layer in (full, stop):
        x = u.clone().requires_grad_()
        out = layer(x)
        (out * g).sum().backward()
        grads.append((out.detach(), x.grad, layer.weight.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    # reference for the detached variant: couplings from the last iteration, held fixed
    with torch.no_grad():
        _, c = full.route(full.predictions(u))
    w = full.weight.detach().clone().requires_grad_()
    x = u.clone().requires_grad_()
    u_hat = torch.einsum("ijok,bik->bijo", w, x)
    want = squash((c[..., None] * u_hat).sum(1))
    torch.testing.assert_close(want.detach(), grads[1][0])
    (want * g).sum().backward()
    torch.testing.assert_close(grads[1][1], x.grad)
    torch.testing.assert_close(grads[1][2], w.grad)
    # and the default really differs (gradient flows through the couplings)
    assert not torch.allclose(grads[0][1], grads[1][1])


@pytest.mark.parametrize("detach", [False, True])
def test_routing_deterministic(detach: bool) -> None:
    torch.manual_seed(7)
    layer = RoutingCapsules(6, 4, 3, 5, iterations=3, detach_routing=detach)
    u = torch.randn(3, 6, 4)
    runs = []
    for _ in range(2):
        layer.zero_grad()
        x = u.clone().requires_grad_()
        out = layer(x)
        out.square().sum().backward()
        runs.append((out.detach(), x.grad.clone(), layer.weight.grad.clone()))
    for a, b in zip(runs[0], runs[1], strict=True):
        assert torch.equal(a, b)


def test_routing_gradcheck() -> None:
    torch.manual_seed(8)
    layer = RoutingCapsules(3, 2, 2, 3, iterations=3).double()
    with torch.no_grad():
        layer.weight.normal_()
    u = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)

    def fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return layer.route(torch.einsum("ijok,bik->bijo", w, x))[0]

    w = layer.weight.detach().clone().requires_grad_()
    torch.testing.assert_close(fn(u, w), layer(u))
    assert torch.autograd.gradcheck(fn, (u, w))


def test_routing_errors() -> None:
    layer = convzoo.create("routing_capsules", in_capsules=6, in_dim=4, out_capsules=3, out_dim=5)
    assert layer.weight.shape == (6, 3, 5, 4)
    with pytest.raises(
        LayerArgumentError,
        match=r"^routing_capsules: input has 5 capsules of dimension 4.*in_capsules=6 of in_dim=4",
    ):
        layer(torch.zeros(2, 5, 4))
    with pytest.raises(
        LayerArgumentError, match=r"^routing_capsules: input has 6 capsules of dimension 3"
    ):
        layer(torch.zeros(2, 6, 3))
    with pytest.raises(LayerArgumentError, match=r"^routing_capsules: input must be a 3-D"):
        layer(torch.zeros(6, 4))
    with pytest.raises(
        LayerArgumentError, match=r"^routing_capsules: iterations must be a positive int, got 0"
    ):
        RoutingCapsules(6, 4, 3, 5, iterations=0)
    with pytest.raises(LayerArgumentError, match=r"^routing_capsules: out_dim"):
        RoutingCapsules(6, 4, 3, 2.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- primary capsules


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "out_hw"),
    [
        ((9, 8), 3, 2, "valid", (4, 3)),
        ((7, 7), 3, 1, 1, (7, 7)),
        ((6, 5), (3, 2), 1, "valid", (4, 4)),
        ((7, 6), 3, 2, "same", (4, 3)),
    ],
)
def test_primary_capsules_ordering(
    dtype: torch.dtype,
    size: tuple[int, int],
    kernel: int | tuple[int, int],
    stride: int,
    padding: str | int,
    out_hw: tuple[int, int],
) -> None:
    torch.manual_seed(9)
    types, dim = 3, 4
    layer = PrimaryCapsules(
        2, num_types=types, capsule_dim=dim, kernel_size=kernel, stride=stride, padding=padding
    )
    layer = layer.to(dtype)
    x = torch.randn(2, 2, *size, dtype=dtype, requires_grad=True)
    got = layer(x)
    h, w = out_hw
    assert got.shape == (2, types * h * w, dim)
    assert layer.output_size(size) == (types * h * w, layer.capsule_dim)
    # independent conv: F.conv2d with explicit padding (same: 7x6, k3, s2 -> total pad 2/1)
    xp = x
    if padding == "same":
        xp = F.pad(x, (0, 1, 1, 1))  # w: total 1 -> (0, 1); h: total 2 -> (1, 1)
    elif isinstance(padding, int):
        xp = F.pad(x, (padding,) * 4)
    y = F.conv2d(xp, layer.conv.weight, layer.conv.bias, stride)
    assert y.shape[-2:] == out_hw
    for t in range(types):
        for yy in range(h):
            for xx in range(w):
                want = naive_squash(y[1, t * dim : (t + 1) * dim, yy, xx])
                torch.testing.assert_close(got[1, t * h * w + yy * w + xx], want, **tol(dtype))
    got.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_primary_capsules_errors() -> None:
    layer = PrimaryCapsules(3, num_types=2, capsule_dim=4, kernel_size=5, stride=1)
    with pytest.raises(LayerArgumentError, match=r"^primary_capsules: input has 2 channels"):
        layer(torch.zeros(1, 2, 8, 8))
    with pytest.raises(LayerArgumentError, match=r"^primary_capsules: kernel_size"):
        layer(torch.zeros(1, 3, 4, 8))
    with pytest.raises(
        LayerArgumentError, match=r"^primary_capsules: capsule_dim must be a positive int, got 0"
    ):
        PrimaryCapsules(3, capsule_dim=0)
    with pytest.raises(LayerArgumentError, match=r"^primary_capsules: padding"):
        PrimaryCapsules(3, padding="circular")


# --------------------------------------------------------------------------- margin loss


def test_margin_loss_by_hand() -> None:
    lengths = torch.tensor([[0.95, 0.3], [0.2, 0.05]], dtype=torch.float64, requires_grad=True)
    # sample 0, target 0: class 0 above 0.9 -> 0; class 1: 0.5·(0.3-0.1)^2 = 0.02
    # sample 1, target 1: class 0: 0.5·(0.2-0.1)^2 = 0.005; class 1: (0.9-0.05)^2 = 0.7225
    # mean over the batch: (0.02 + 0.7275) / 2 = 0.37375
    loss = margin_loss(lengths, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(0.37375, abs=1e-12)
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert margin_loss(lengths, onehot).item() == pytest.approx(0.37375, abs=1e-12)
    # d/dl: absent 0.5·2·(l-0.1)/2, present -2·(0.9-l)/2
    loss.backward()
    want = torch.tensor([[0.0, 0.1], [0.05, -0.85]], dtype=torch.float64)
    torch.testing.assert_close(lengths.grad, want)
    # other margins, m+=0.8, m-=0.2, lam=1: s0: class 1 (0.3-0.2)^2 = 0.01;
    # s1: class 0 max(0, 0.2-0.2) = 0, class 1 (0.8-0.05)^2 = 0.5625 -> mean 0.28625
    other = margin_loss(lengths, torch.tensor([0, 1]), m_plus=0.8, m_minus=0.2, lam=1.0)
    assert other.item() == pytest.approx(0.28625, abs=1e-12)


def test_margin_loss_float32_and_errors() -> None:
    lengths = torch.tensor([[0.5, 0.5, 0.0]])
    # target 2: present (0.9-0)^2 = 0.81, absent 2·0.5·0.4^2 = 0.16
    assert margin_loss(lengths, torch.tensor([2])).item() == pytest.approx(0.97, abs=1e-6)
    with pytest.raises(LayerArgumentError, match=r"^margin_loss: targets class indices"):
        margin_loss(lengths, torch.tensor([3]))
    with pytest.raises(LayerArgumentError, match=r"^margin_loss: targets has 2 entries"):
        margin_loss(lengths, torch.tensor([0, 1]))
    with pytest.raises(LayerArgumentError, match=r"^margin_loss: targets must be"):
        margin_loss(lengths, torch.zeros(1, 2))
    with pytest.raises(LayerArgumentError, match=r"^margin_loss: targets as a 1-D"):
        margin_loss(lengths, torch.tensor([1.0]))
    with pytest.raises(LayerArgumentError, match=r"^margin_loss: lengths"):
        margin_loss(torch.zeros(3), torch.tensor([0]))


# --------------------------------------------------------------------------- MNIST CapsNet


def test_mnist_capsnet_sizes() -> None:
    torch.manual_seed(11)
    conv1 = Conv(1, 256, 9)
    primary = PrimaryCapsules(256, num_types=32, capsule_dim=8, kernel_size=9, stride=2)
    digits = RoutingCapsules(1152, 8, 10, 16, iterations=3)
    net = nn.Sequential(conv1, Activation("relu"), primary, digits)

    def count(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(conv1) == 256 * 81 + 256
    assert count(primary) == 256 * 256 * 81 + 256
    assert count(digits) == 1152 * 10 * 16 * 8
    assert count(net) == 256 * 81 + 256 + 256 * 256 * 81 + 256 + 1152 * 10 * 16 * 8
    assert primary.output_size((20, 20))[0] == 6 * 6 * 32 == 1152
    x = torch.rand(2, 1, 28, 28)
    caps = primary(torch.relu(conv1(x)))
    assert caps.shape == (2, 1152, 8)
    out = digits(caps)
    assert out.shape == (2, 10, 16)
    scores = CapsuleLengths()(out)
    assert scores.shape == (2, 10) and (scores < 1).all() and (scores >= 0).all()
    margin_loss(scores, torch.tensor([3, 7])).backward()
    for p in net.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_registry() -> None:
    names = [n for n, _ in convzoo.list_layers(category="capsule")]
    assert names == ["capsule_lengths", "primary_capsules", "routing_capsules"]
    layer = convzoo.create(
        "primary_capsules", in_channels=4, num_types=2, capsule_dim=3, kernel_size=3
    )
    assert layer(torch.randn(1, 4, 9, 9)).shape == (1, 2 * 4 * 4, 3)
    assert not math.isnan(float(squash(torch.zeros(3)).sum()))
