"""Bytes moved and arithmetic intensity (issue 23) against hand counts, one op class each."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.analysis import traffic

F32, F16 = 4, 2


class Call(nn.Module):
    """A module whose forward is one function of its input (``fn(x)``)."""

    def __init__(self, fn: object) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)  # type: ignore[operator]


def ops(model: nn.Module, size: tuple[int, ...], **kwargs: object) -> dict[str, tuple[str, int]]:
    """op name -> (op class, bytes moved) over the whole model (each op once)."""
    report = convzoo.analyze(model, size, **kwargs)  # type: ignore[arg-type]
    found = {o.op: (o.op_class, o.bytes_moved) for o in report.operators}
    assert report.totals.bytes_moved == sum(o.bytes_moved for o in report.operators)
    return found


def test_dense_conv_reads_input_weight_bias_and_writes_output() -> None:
    conv = nn.Conv2d(8, 16, 3, padding=1)
    report = convzoo.analyze(conv, (8, 10, 10), batch_size=2)
    x, w, b, y = 2 * 8 * 10 * 10, 16 * 8 * 9, 16, 2 * 16 * 10 * 10
    expected = (x + w + b + y) * F32
    (op,) = report.operators
    assert (op.op_class, op.bytes_moved) == ("conv", expected)
    assert report.totals.bytes_moved == report.layers[0].bytes_moved == expected
    assert report.totals.intensity == pytest.approx(report.totals.macs / expected)
    assert report.totals.macs == 2 * 16 * 10 * 10 * 8 * 9  # the MACs the intensity divides


def test_depthwise_conv_is_a_class_and_grouped_conv_a_dense_one() -> None:
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    assert ops(depthwise, (8, 6, 6)) == {
        "convolution": ("depthwise_conv", (8 * 36 + 8 * 9 + 8 * 36) * F32)
    }
    multiplier = nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=False)  # 2 outputs per channel
    assert ops(multiplier, (4, 6, 6))["convolution"][0] == "depthwise_conv"
    grouped = nn.Conv2d(8, 4, 1, groups=2, bias=False)  # 4 input channels per group
    assert ops(grouped, (8, 6, 6)) == {"convolution": ("conv", (8 * 36 + 4 * 4 + 4 * 36) * F32)}
    transposed = nn.ConvTranspose2d(4, 4, 2, stride=2, groups=4, bias=False)
    assert ops(transposed, (4, 3, 3))["convolution"][0] == "depthwise_conv"


def test_linear_is_a_matmul_and_its_transposed_weight_a_free_view() -> None:
    found = ops(nn.Linear(32, 10), (32,), batch_size=4)
    assert found["addmm"] == ("matmul", (4 * 32 + 32 * 10 + 10 + 4 * 10) * F32)
    assert found["t"] == ("free", 0)  # the weight's transpose: a view moves nothing
    a = torch.empty(5, 7, device="meta")
    matmul = ops(Call(lambda x: x @ a), (3, 5))  # [1, 3, 5] @ [5, 7]
    assert ("matmul", (15 + 35 + 21) * F32) in matmul.values()


def test_elementwise_reads_each_distinct_input_once_in_the_dtype_used() -> None:
    assert ops(nn.ReLU(), (3, 4, 4), dtype=torch.float16) == {"relu": ("elementwise", 2 * 48 * F16)}
    assert ops(Call(lambda x: x * x), (10,)) == {"mul": ("elementwise", 2 * 10 * F32)}
    # a broadcast operand counts its own values: [1, 3, 4, 4] + [3, 1, 1]
    bias = torch.empty(3, 1, 1, device="meta")
    assert ops(Call(lambda x: x + bias), (3, 4, 4)) == {"add": ("elementwise", (48 + 3 + 48) * F32)}


def test_inplace_reads_and_writes_its_argument() -> None:
    assert ops(nn.ReLU(inplace=True), (3, 4, 4)) == {"relu_": ("elementwise", 2 * 48 * F32)}


def test_expanded_input_counts_distinct_values() -> None:
    t = torch.empty(1, 4, device="meta").expand(6, 4)
    assert traffic.tensor_bytes(t) == 4 * F32
    assert traffic.tensor_bytes(torch.empty(6, 4, device="meta")[:, :2]) == 12 * F32
    assert traffic.tensor_bytes(torch.empty(0, 4, device="meta").expand(0, 4)) == 0


def test_reduction_and_pooling() -> None:
    pool = ops(nn.MaxPool2d(2), (3, 8, 8))
    assert pool == {"max_pool2d_with_indices": ("reduction", (192 + 48 + 48 * 2) * F32)}
    # (input, output values, int64 indices = two float32s each)
    assert ops(nn.AdaptiveAvgPool2d(1), (3, 8, 8)) == {
        "mean": ("reduction", (192 + 3) * F32)  # adaptive pooling to 1x1 is a mean
    }
    assert ops(Call(lambda x: x.sum(dim=1)), (5, 2)) == {"sum": ("reduction", (10 + 2) * F32)}


def test_norms_by_mode() -> None:
    eval_bn = ops(nn.BatchNorm2d(4), (4, 3, 3))
    stats = 4 * 4  # weight, bias, running mean and variance: 4 channels each
    assert eval_bn["native_batch_norm"] == ("elementwise", (36 + stats + 36) * F32)
    train_bn = ops(nn.BatchNorm2d(4), (4, 3, 3), batch_size=2, train=True)
    assert train_bn["native_batch_norm"][0] == "reduction"  # batch statistics
    layer_norm = ops(nn.LayerNorm(6), (6,), batch_size=2)
    cls, moved = layer_norm["native_layer_norm"]  # x, weight, bias; out, mean, rstd
    assert (cls, moved) == ("reduction", (12 + 6 + 6 + 12 + 2 + 2) * F32)


def test_views_move_nothing_and_copies_do() -> None:
    found = ops(Call(lambda x: x.view(-1)), (3, 4))
    assert found == {"view": ("free", 0)}
    copy = ops(Call(lambda x: torch.cat([x, x], 1)), (3, 4))
    assert copy == {"cat": ("data", (12 + 24) * F32)}  # x read once, the result written
    report = convzoo.analyze(Call(lambda x: x.view(-1)), (3, 4))
    assert report.totals.bytes_moved == 0 and report.totals.intensity is None


def test_rows_sum_their_subtree() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.Flatten()))
    report = convzoo.analyze(model, (3, 6, 6))
    conv = (3 * 36 + 4 * 27 + 4 + 4 * 16) * F32
    relu = 2 * 4 * 16 * F32
    assert [r.bytes_moved for r in report.layers] == [conv + relu, conv, relu, relu, 0]
    again = convzoo.Report.from_json(report.to_json())
    assert again.totals.bytes_moved == report.totals.bytes_moved
    assert [r.bytes_moved for r in again.layers] == [r.bytes_moved for r in report.layers]
