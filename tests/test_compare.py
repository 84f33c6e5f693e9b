"""compare(): the numbers against hand formulas; plots produce readable PNGs."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from convzoo.compare import DEFAULT, compare, compare_config
from convzoo.errors import ConvZooError


def test_seven_by_seven_against_hand_formulas() -> None:
    c, n, k = 64, 56, 7
    rows = {r.design: r for r in compare(kernel=k, in_channels=c, out_channels=c, size=n)}
    assert list(rows) == DEFAULT
    assert rows["conv"].params == k * k * c * c + c
    assert rows["conv"].macs == n * n * c * c * k * k  # 'same' padding: n x n outputs
    stack = 3 * (9 * c * c + c)  # three 3x3 with bias
    assert rows["conv_stack"].params == stack
    assert rows["conv_stack"].macs == 3 * n * n * c * c * 9
    assert rows["factorized"].params == c * c * k + c * c * k + c
    assert rows["factorized"].macs == 2 * n * n * c * c * k
    dw_sep = n * n * c * k * k + n * n * c * c
    assert rows["depthwise_separable"].macs == dw_sep
    assert rows["depthwise_separable"].macs_ratio == pytest.approx(1 / c + 1 / k**2)
    assert rows["dilated"].macs == n * n * c * c * 9
    assert rows["grouped"].macs == n * n * c * c * k * k // 4
    assert rows["conv"].macs_ratio == 1.0 and rows["conv"].params_ratio == 1.0


def test_benchmark_fills_latency_and_efficiency() -> None:
    rows = compare(
        kernel=3,
        in_channels=4,
        out_channels=4,
        size=12,
        designs=["conv", "depthwise_separable"],
        bench=True,
        train=True,
        min_run_time=0.01,
    )
    assert rows[0].speedup == 1.0 and rows[0].efficiency == pytest.approx(1.0)
    for row in rows:
        assert row.forward_ms > 0 and row.train_ms > 0
        assert row.efficiency == pytest.approx(row.speedup * row.macs_ratio)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(designs=["conv", "factorised"]), "unknown design 'factorised'; did you mean"),
        (dict(kernel=4), "--kernel must be an odd size"),
    ],
)
def test_errors(kwargs, match) -> None:
    with pytest.raises(ConvZooError, match=match):
        compare(size=8, in_channels=2, out_channels=2, **kwargs)


def test_compare_config(tmp_path: Path) -> None:
    path = tmp_path / "designs.yaml"
    path.write_text(
        "input: [8, 16, 16]\ncompare:\n"
        "  full: [{type: conv, out_channels: 8, kernel_size: 5, padding: same}]\n"
        "  stack: [{type: conv_stack, out_channels: 8, kernel_size: 5, "
        "padding: same}]\n"
    )
    rows = compare_config(path)
    assert [r.design for r in rows] == ["full", "stack"]
    assert rows[1].macs == 2 * 16 * 16 * 8 * 8 * 9
    path.write_text(
        "input: [8, 16, 16]\ncompare:\n  a: [{type: conv, out_channels: 8, "
        "kernel_size: 5}]\n  b: [{type: conv, out_channels: 8, kernel_size: 3}]\n"
    )
    with pytest.raises(ConvZooError, match="same output shape"):
        compare_config(path)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plots_are_png_of_the_right_size(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import convzoo
    from convzoo.plots import plot_comparison, plot_receptive_field

    rows = compare(kernel=5, in_channels=4, out_channels=4, size=16, bench=True, min_run_time=0.01)
    out = plot_comparison(rows, tmp_path / "cmp.png", "test")
    assert png_size(out) == (int(15 * 110), int(4.5 * 110))
    model = convzoo.build("configs/encoder_decoder.yaml")
    out = plot_receptive_field(model, (3, 32, 32), tmp_path / "rf.png", layer="encoder", samples=2)
    assert png_size(out.path) == (int(6 * 110), int(5.5 * 110))


def test_train_rows_carry_the_timed_steps_theory() -> None:
    """``--train`` times ``m(x).sum().backward()`` with ``x`` needing grad: the rows' MACs
    are that step's forward + backward (FlopCounterMode on a real one; the grouped
    convolution's weight gradient, which it counts ``groups`` times, is not in these
    designs) and its memory is params + gradients + saved tensors (saved_tensors_hooks)."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convzoo.analysis.memory import measured_saved_bytes
    from convzoo.compare import make_design

    rows = compare(
        kernel=3, in_channels=4, out_channels=6, size=8, designs=["conv", "factorized"], train=True
    )
    for row in rows:
        torch.manual_seed(0)
        design = make_design(row.design, 3, 4, 6, padding="same", bias=True)
        x = torch.randn(1, 4, 8, 8, requires_grad=True)
        real = copy.deepcopy(design).train()
        with FlopCounterMode(display=False) as counter:
            real(x).sum().backward()
        assert row.train_macs == counter.get_total_flops() // 2
        params = sum(p.numel() for p in design.parameters()) * 4
        assert row.step_bytes == 2 * params + measured_saved_bytes(copy.deepcopy(design), (x,))
