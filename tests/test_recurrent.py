"""Training memory of recurrent layers against what the real CPU kernel saves (issue 21).

The reference is :func:`~convzoo.analysis.memory.measured_saved_bytes`: a real CPU forward
under ``saved_tensors_hooks``. The LSTM's fused oneDNN kernel saves a workspace whose size
:func:`~convzoo.analysis.recurrent.workspace_bytes` models; it is checked here on its own
against the workspace the kernel returns, on configurations drawn apart from the ones it was
derived from, and through whole analyses (shared storages with the layers around included).
MACs stay the unfused decomposition's, checked against ``FlopCounterMode``.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convzoo.analysis.analyzer import analyze
from convzoo.analysis.memory import measured_saved_bytes
from convzoo.analysis.recurrent import takes_onednn, workspace_bytes


class Head(nn.Module):
    """A recurrent layer and a ``Linear`` on its output (which saves the same storage)."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn
        width = rnn.hidden_size if rnn.proj_size == 0 else rnn.proj_size
        self.fc = nn.Linear(width * (2 if rnn.bidirectional else 1), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0])


def _check(model: nn.Module, size: tuple[int, int], batch: int = 2, dtype=torch.float32) -> int:
    torch.manual_seed(0)
    model = model.to(dtype)
    got = analyze(model, (size,), batch_size=batch, optimizer="sgd").training
    assert got is not None
    x = torch.randn(batch, *size, dtype=dtype)
    assert got.saved_bytes == measured_saved_bytes(copy.deepcopy(model), (x,))
    return got.saved_bytes


def test_issue_case_bidirectional_lstm() -> None:
    """The issue's 2-layer bidirectional LSTM 16->32 (the meta decomposition saved 0.3x)."""
    assert _check(nn.LSTM(16, 32, num_layers=2, bidirectional=True), (5, 16)) == 174_208


@pytest.mark.parametrize(
    "make",
    [
        lambda: Head(nn.LSTM(8, 12, num_layers=2, batch_first=True, bias=False, dropout=0.5)),
        lambda: Head(nn.GRU(8, 12, num_layers=2, bidirectional=True, batch_first=True)),
        pytest.param(lambda: Head(nn.LSTM(8, 12, bidirectional=True)), marks=pytest.mark.slow),
        pytest.param(  # unfused on the CPU too
            lambda: Head(nn.LSTM(8, 12, num_layers=2, proj_size=4)), marks=pytest.mark.slow
        ),
        pytest.param(
            lambda: Head(nn.RNN(8, 12, nonlinearity="relu", bias=False)), marks=pytest.mark.slow
        ),
    ],
    ids=["lstm-bf-nobias-dropout", "gru-bi-bf", "lstm-bi", "lstm-proj", "rnn-relu"],
)
def test_saved_bytes_match_the_cpu_kernel(make) -> None:
    _check(make(), (4, 8))


def test_the_kernel_by_dtype_and_projection() -> None:
    x = torch.empty(2, 3, 4)
    assert takes_onednn(x, (torch.empty(1, 3, 5), torch.empty(1, 3, 5)))
    assert not takes_onednn(x.double(), (torch.empty(1, 3, 5), torch.empty(1, 3, 5)))
    assert not takes_onednn(x, (torch.empty(1, 3, 2), torch.empty(1, 3, 5)))  # proj_size


@pytest.mark.slow
def test_float64_lstm_takes_the_unfused_path() -> None:
    _check(nn.LSTM(8, 12, num_layers=2), (4, 8), dtype=torch.float64)


def _kernel_workspace(seq: int, batch: int, inputs: int, hidden: int, dtype) -> list[int]:
    """The workspaces one real CPU forward of a 1-layer LSTM saves (uint8 tensors)."""
    model = nn.LSTM(inputs, hidden).to(dtype)
    found: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.dtype == torch.uint8:
            found.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(seq, batch, inputs, dtype=dtype))
    return found


def _random_shapes(seed: int, count: int) -> list[tuple[int, int, int, int]]:
    rng = random.Random(seed)
    return [
        (rng.randint(1, 12), rng.randint(1, 12), rng.randint(1, 400), rng.randint(1, 300))
        for _ in range(count)
    ]


def test_workspace_formula_by_hand() -> None:
    """One layer, 2 steps of 5 rows, 16 -> 32 in float32: seven page-aligned regions, two
    of them two pages (gates 2·5·128·4 = 5,120 B; the states and their gradients at a
    leading dimension of 32)."""
    assert workspace_bytes(2, 5, 16, 32, 4) == 8 * 4096
    assert _kernel_workspace(2, 5, 16, 32, torch.float32) == [8 * 4096]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_workspace_formula_on_fresh_shapes(dtype) -> None:
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU runs bfloat16 LSTMs unfused")
    size = torch.empty(0, dtype=dtype).element_size()
    for seq, batch, inputs, hidden in _random_shapes(2112, 40):  # not the derivation's seed
        expected = workspace_bytes(seq, batch, inputs, hidden, size)
        assert _kernel_workspace(seq, batch, inputs, hidden, dtype) == [expected]


@pytest.mark.slow
def test_saved_bytes_sweep() -> None:
    rng = random.Random(21)
    kinds = [nn.LSTM, nn.LSTM, nn.GRU, nn.RNN]
    for _ in range(30):
        kind = rng.choice(kinds)
        extra = {"proj_size": rng.choice([0, 0, 3])} if kind is nn.LSTM else {}
        layers = rng.randint(1, 3)
        rnn = kind(
            rng.randint(1, 40),
            rng.randint(4, 40),
            num_layers=layers,
            bias=rng.random() < 0.7,
            batch_first=rng.random() < 0.5,
            bidirectional=rng.random() < 0.5,
            dropout=0.3 if layers > 1 and rng.random() < 0.5 else 0.0,
            **extra,
        )
        if rng.random() < 0.2:
            rnn.requires_grad_(False)  # frozen: the kernels save less (the input's gradient)
        model = Head(rnn) if rng.random() < 0.5 else rnn
        _check(model, (rng.randint(1, 9), rnn.input_size), batch=rng.randint(1, 5))


@pytest.mark.slow
def test_bfloat16_lstm() -> None:
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU runs bfloat16 LSTMs unfused")
    _check(nn.LSTM(8, 12, num_layers=2), (4, 8), dtype=torch.bfloat16)


@pytest.mark.parametrize(
    "kind",
    [
        nn.LSTM,
        pytest.param(nn.GRU, marks=pytest.mark.slow),
        pytest.param(nn.RNN, marks=pytest.mark.slow),
    ],
)
def test_macs_are_the_matrix_products(kind) -> None:
    """MACs are those of the cells' matrix products: by hand, and as FlopCounterMode counts
    a real CPU forward of a GRU or RNN. It counts nothing on a real LSTM (the fused kernel
    has no FLOP formula), so there it counts the unfused forward, on meta tensors."""
    rnn = kind(6, 10, num_layers=2, bidirectional=True)
    report = analyze(rnn, ((7, 6),), batch_size=3)
    gates = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}[kind]
    by_hand = 2 * 3 * 7 * gates * 10 * ((6 + 10) + (20 + 10))  # 2 directions, 2 layers
    with FlopCounterMode(display=False) as real:
        rnn(torch.randn(3, 7, 6))
    if kind is nn.LSTM:
        assert real.get_total_flops() == 0
        with FlopCounterMode(display=False) as real:
            rnn.to("meta")(torch.empty(3, 7, 6, device="meta"))
    assert report.totals.macs == real.get_total_flops() // 2 == by_hand
