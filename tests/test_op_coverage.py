"""Every op is costed by one convention on both paths (meta and real tensors), checked
against hand formulas and torch's FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.analysis import formulas


def fcm_macs(model: nn.Module, *args: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*args)
    return counter.get_total_flops() // 2


def both_paths(model: nn.Module, size, **kwargs) -> tuple[convzoo.Report, convzoo.Report]:
    return (
        convzoo.analyze(model, size, **kwargs),
        convzoo.analyze(model, size, meta=False, **kwargs),
    )


RNNS = [
    (nn.LSTM(8, 16, num_layers=2), 4),
    (nn.LSTM(8, 16, bidirectional=True, batch_first=True), 4),
    (nn.GRU(8, 16, num_layers=2), 3),
    (nn.RNN(8, 16), 1),
]


@pytest.mark.parametrize(("rnn", "gates"), RNNS, ids=["lstm2", "bilstm", "gru2", "rnn"])
def test_recurrent_layers_count_the_same_on_both_paths(rnn: nn.Module, gates: int) -> None:
    """Hand formula: every step of every sequence multiplies the input by W_ih [gH, in]
    and the hidden state by W_hh [gH, H] (per layer and direction)."""
    steps, batch = 5, 3
    meta, real = both_paths(rnn, (batch, 8), batch_size=steps)  # [seq, batch, in]
    hidden = rnn.hidden_size
    directions = 2 if rnn.bidirectional else 1
    expected = 0
    for layer in range(rnn.num_layers):
        width = 8 if layer == 0 else hidden * directions
        expected += directions * steps * batch * gates * hidden * (width + hidden)
    assert meta.totals.macs == real.totals.macs == expected
    assert meta.complete and real.complete


class Pair(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fn(a, b)


def test_bilinear_cdist_vdot_hand_formulas() -> None:
    bil = nn.Bilinear(4, 5, 6)
    for report in both_paths(bil, ((4,), (5,)), batch_size=3):
        assert report.totals.macs == 3 * 6 * 4 * 5 and report.complete
    cdist = Pair(torch.cdist)
    for report in both_paths(cdist, ((7, 3), (9, 3)), batch_size=2):
        assert report.totals.macs == 2 * 7 * 9 * 3 and report.complete
    vdot = Pair(lambda a, b: torch.vdot(a[0], b[0]))
    for report in both_paths(vdot, ((7,), (7,))):
        assert report.totals.macs == 7 and report.complete


def test_complex_multiply_adds_are_three_real_macs_for_conv_and_matmul() -> None:
    conv = nn.Conv2d(2, 3, 3, bias=False)
    real = convzoo.analyze(conv, (2, 6, 6)).totals.macs
    cconv = nn.Conv2d(2, 3, 3, bias=False).to(torch.complex64)
    assert convzoo.analyze(cconv, (2, 6, 6)).totals.macs == formulas.COMPLEX_MAC * real
    mm = Pair(torch.matmul)
    real_mm = convzoo.analyze(mm, ((4, 5), (5, 6))).totals.macs
    complex_mm = convzoo.analyze(mm, ((4, 5), (5, 6)), dtype=torch.complex64).totals.macs
    assert real_mm == 4 * 5 * 6 and complex_mm == formulas.COMPLEX_MAC * real_mm == 3 * real_mm


class NoArithmetic(nn.Module):
    """Ops that move or view data: never uncounted."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch._VF.unsafe_split(x, 2, 1)  # as nn.GRU's cells do
        c = a.clone().transpose_(2, 3)
        d = F.pad(b.flatten(2), (1, 1), mode="reflect")  # reflection_pad1d
        e = F.pad(b, (1, 1, 1, 1, 1, 1), mode="replicate")  # replication_pad3d (5-D view)
        z = torch.complex(a, b)
        idx = torch.zeros(2, dtype=torch.long, device=x.device)
        return c.sum() + d.sum() + e.sum() + z.real.sum() + self.emb(idx).sum()


def test_ops_without_arithmetic_keep_counts_complete() -> None:
    for report in both_paths(NoArithmetic(), (4, 5, 5)):
        assert report.complete, report.uncounted_ops


def test_fft_conv_and_every_conv_are_complete() -> None:
    fft = convzoo.create("fft_conv", in_channels=3, out_channels=4, kernel_size=5)
    assert convzoo.analyze(fft, (3, 16, 16)).complete
    assert convzoo.analyze("configs/every_conv.yaml").complete


UPSAMPLES = [
    (lambda x: F.interpolate(x, scale_factor=2, mode="bicubic"), (3, 5, 6)),
    (lambda x: F.interpolate(x, scale_factor=2, mode="bicubic", antialias=True), (3, 5, 6)),
    (lambda x: F.interpolate(x, scale_factor=2, mode="linear"), (3, 7)),
    (lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), (3, 7)),
    (lambda x: F.interpolate(x, scale_factor=2, mode="trilinear"), (3, 4, 5, 6)),
    (lambda x: F.interpolate(x, scale_factor=2, mode="nearest-exact"), (3, 4, 5, 6)),
]


@pytest.mark.parametrize(("fn", "size"), UPSAMPLES)
def test_upsampling_in_every_rank_is_one_op_per_output(fn, size) -> None:
    class Up(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return fn(x)

    report = convzoo.analyze(Up(), size)
    assert report.complete
    out = 1
    for v in report.output_shape:
        out *= v
    assert report.totals.elementwise_ops == out


POOLS = [
    (nn.MaxPool3d(2), (2, 4, 6, 8), 8),
    (nn.AvgPool3d((1, 2, 3)), (2, 4, 6, 9), 6),
    (nn.MaxPool1d(3), (2, 9), 3),
    (nn.AvgPool1d(2), (2, 8), 2),
]


@pytest.mark.parametrize(("pool", "size", "window"), POOLS)
def test_pooling_in_every_rank_reads_its_window(pool: nn.Module, size, window: int) -> None:
    for report in both_paths(pool, size):
        out = 1
        for v in report.output_shape:
            out *= v
        assert report.complete and report.totals.elementwise_ops == out * window


def test_adaptive_3d_pooling_reads_every_value() -> None:
    report = convzoo.analyze(nn.AdaptiveAvgPool3d(1), (2, 4, 6, 8))
    assert report.complete and report.totals.elementwise_ops == 2 * 4 * 6 * 8


def test_self_macs_add_up_to_the_total() -> None:
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.vit_b_16()
    report = convzoo.analyze(model, (3, 224, 224), receptive_fields=False)
    assert sum(r.self_macs for r in report.layers) == report.totals.macs
    attention = report.layer("encoder.layers.encoder_layer_0.self_attention")
    assert attention.self_macs > 0  # attention products run in the non-leaf module itself
    assert (
        attention.self_macs
        == attention.macs
        - report.layer("encoder.layers.encoder_layer_0.self_attention.out_proj").macs
    )


class Attention(nn.Module):
    def __init__(self, **options) -> None:
        super().__init__()
        self.options = options

    def forward(self, q, k, v, mask=None) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **self.options)


QKV = ((2, 5, 8), (2, 7, 8), (2, 7, 8))
PARITY = [
    pytest.param(Attention(), QKV, {}, id="sdpa"),
    pytest.param(Attention(is_causal=True), QKV, {}, id="sdpa-causal"),
    pytest.param(Attention(), (*QKV, (5, 7)), {}, id="sdpa-mask"),
    pytest.param(nn.LSTM(8, 16, 2, bidirectional=True), (3, 8), {"batch_size": 5}, id="bilstm"),
    pytest.param(
        nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2).eval(),
        (5, 16),
        {"batch_size": 2},
        id="encoder",
    ),
]


@pytest.mark.parametrize(("model", "size", "kwargs"), PARITY)
def test_fused_kernels_on_real_tensors_count_what_meta_counts(model, size, kwargs) -> None:
    """CPU runs fused kernels (flash attention, mkldnn LSTM layers) where meta tensors run
    their decompositions: both MACs and element-wise ops agree."""
    meta, real = both_paths(model, size, **kwargs)
    assert meta.totals.macs == real.totals.macs > 0
    assert meta.totals.elementwise_ops == real.totals.elementwise_ops > 0


class SelfAttention(nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mha(x, x, x, key_padding_mask=mask, need_weights=self.need_weights)[0]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
def test_fused_multi_head_attention_counts_what_meta_counts(need_weights, masked) -> None:
    model = SelfAttention(need_weights).eval()
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[1, 3:] = True
    inputs = [torch.randn(2, 5, 16), mask] if masked else [torch.randn(2, 5, 16)]
    meta, real = both_paths(model, inputs)
    assert meta.totals.macs == real.totals.macs > 0
    assert meta.totals.elementwise_ops == real.totals.elementwise_ops > 0
