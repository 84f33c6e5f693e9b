"""Backward MACs of one training step (``analyze(..., optimizer=...)``, autograd on meta
tensors) against ``torch.utils.flop_counter.FlopCounterMode`` on a real CPU step (real
tensors, train mode, a gradient of ones from the output, the input without grad).

Where FlopCounterMode counts differently, the reference is corrected by hand, and says so:

- a grouped convolution's weight gradient: its formula swaps batch and channels and so
  counts ``groups`` times the multiply-adds (``x[i] * grad_y[o]`` terms) the kernel runs;
  :func:`conv_backward_flop` is its formula with that term divided by ``groups``;
- attention: CPU runs ``_scaled_dot_product_flash_attention_for_cpu`` (and its backward),
  which FlopCounterMode does not count; the reference step runs the math backend (the
  products convzoo counts on meta tensors), whose ``bmm`` it counts;
- ops FlopCounterMode has no formula for (FFTs, torchvision's deformable convolution) are
  compared on the ops it counts, the others listed by name (:data:`UNCOUNTED_BY_FLOP_COUNTER`).

The optimizer's element-wise work is counted op by op on a real ``torch.optim`` step.
"""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, flop_registry

import convzoo
from convzoo.analysis.counting import ModuleStats, Tracer
from convzoo.analysis.formulas import COMPLEX_MAC
from convzoo.analysis.memory import OPTIMIZER_OPS

aten = torch.ops.aten
SLOW = pytest.mark.slow
UNCOUNTED_BY_FLOP_COUNTER = {"_fft_r2c", "_fft_c2r", "_fft_c2c"}
"""MAC ops of a backward that FlopCounterMode has no formula for (compared apart)."""
UNCOUNTED = {"_deform_conv2d_backward"}
"""Backward ops convzoo has no rule for either (torchvision's deformable convolution): the
report lists them (``notes``), so its totals say they are incomplete."""


def conv_backward_flop(grad_out_shape, x_shape, w_shape, *args, out_shape=None, **kw) -> int:
    """FlopCounterMode's ``convolution_backward`` formula with the weight gradient of a
    grouped convolution divided by ``groups`` (it counts every input channel against every
    output channel)."""
    transposed, groups, mask = args[4], args[6], args[7]
    flops = 0
    if mask[0]:
        flops += conv_flop_count(grad_out_shape, w_shape, list(out_shape[0]), not transposed)
    if mask[1]:

        def t(shape):
            return [shape[1], shape[0], *shape[2:]]

        pair = (grad_out_shape, x_shape) if transposed else (x_shape, grad_out_shape)
        weight = list(out_shape[1])
        flops += conv_flop_count(t(pair[0]), t(pair[1]), t(weight)) // groups
    return flops


MAPPING = {aten.convolution_backward: conv_backward_flop}  # FlopCounterMode passes shapes


def reference(model: nn.Module, *inputs: torch.Tensor) -> tuple[int, Counter]:
    """(backward MACs, backward MACs per op packet name) that FlopCounterMode counts on a
    real train-mode step of a copy of ``model``: a gradient of ones for each output tensor
    with a node (GoogLeNet's auxiliary outputs too), as convzoo's step."""
    model = copy.deepcopy(model).train()
    with sdpa_kernel(SDPBackend.MATH):
        out = model(*inputs)
        roots = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.grad_fn]
        if not roots:  # nothing to train: no backward runs
            return 0, Counter()
        with FlopCounterMode(display=False, custom_mapping=MAPPING) as counter:
            torch.autograd.backward(roots, [torch.ones_like(t) for t in roots])
    per_op = Counter(
        {op.__name__: n // 2 for op, n in counter.get_flop_counts().get("Global", {}).items()}
    )
    return counter.get_total_flops() // 2, per_op


def ours(model: nn.Module, size, optimizer: str = "sgd", batch: int = 1) -> convzoo.Report:
    report = convzoo.analyze(
        model, size, batch_size=batch, receptive_fields=False, optimizer=optimizer
    )
    assert report.training is not None
    return report


def backward_by_op(report: convzoo.Report) -> Counter:
    """Our backward MACs per op name, over the whole model."""
    found: Counter = Counter()
    for o in report.training.operators:
        found[o.op] += o.macs
    return +found


def assert_backward_matches(
    model: nn.Module, shape: tuple[int, ...], batch: int = 2, complex_ops: tuple[str, ...] = ()
) -> None:
    """Our backward MACs per op equal FlopCounterMode's on the ops it counts; ``complex_ops``
    run on complex tensors, where FlopCounterMode counts one real MAC per complex product
    and convzoo ``COMPLEX_MAC`` (:mod:`convzoo.analysis.formulas`)."""
    report = ours(model, shape, batch=batch)
    step = report.training
    total, per_op = reference(model, torch.randn(batch, *shape))
    mine = backward_by_op(report)
    counted = {op for op in mine if getattr(aten, op) in flop_registry}
    assert set(mine) - counted <= UNCOUNTED_BY_FLOP_COUNTER, set(mine) - counted
    for op in complex_ops:
        per_op[op] *= COMPLEX_MAC
        total += (COMPLEX_MAC - 1) * per_op[op] // COMPLEX_MAC
    assert {op: mine[op] for op in counted} == dict(per_op)
    assert sum(mine.values()) == step.backward_macs
    missing = {n.split()[1] for n in report.notes if n.startswith("backward:")}
    assert missing <= UNCOUNTED, report.notes
    if counted == set(mine):
        assert step.backward_macs == total


@pytest.mark.parametrize(
    ("name", "kwargs", "dims"),
    [
        ("conv", {"out_channels": 6, "kernel_size": 3}, 2),
        ("depthwise_separable", {"out_channels": 6}, 1),  # grouped: the by-hand weight term
        ("transposed", {"out_channels": 3, "kernel_size": 3, "stride": 2}, 3),
        ("inverted_residual", {"out_channels": 4, "expand_ratio": 2}, 2),
    ],
)
def test_zoo_layers_backward_equals_flop_counter(name, kwargs, dims) -> None:
    torch.manual_seed(0)
    layer = convzoo.create(name, in_channels=4, dims=dims, **kwargs)
    assert_backward_matches(layer, (4, *(6,) * dims))


def test_frozen_parameters_and_input_without_grad_change_the_count_as_autograd() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten())
    forward = [8 * 3 * 9 * 6 * 6, 8 * 8 * 9 * 4 * 4]  # per conv, batch 1, input 8x8
    rows = {r.name: r.backward_macs for r in ours(model, (3, 8, 8)).layers}
    # the first conv: its weight's gradient only (the input has no grad); the second: both
    assert rows["0"] == forward[0] and rows["2"] == 2 * forward[1]
    model[0].requires_grad_(False)  # frozen first layer: the second's input needs no grad
    rows = {r.name: r.backward_macs for r in ours(model, (3, 8, 8)).layers}
    assert rows["0"] == 0 and rows["2"] == forward[1]
    model[2].weight.requires_grad_(False)  # frozen weight, trainable bias: no weight grad
    model[0].requires_grad_(True)
    report = ours(model, (3, 8, 8))
    rows = {r.name: r.backward_macs for r in report.layers}
    assert rows["0"] == forward[0] and rows["2"] == forward[1]
    assert report.training.backward_macs == reference(model, torch.randn(1, 3, 8, 8))[0]


def test_rows_and_operators_add_up_and_each_layer_costs_its_gradients() -> None:
    """Per row, by hand: a convolution or linear layer costs its forward once per gradient
    it computes (its weight's; its input's unless the input is the model's, without grad);
    FlopCounterMode's per-module split of the backward is not used: its module tracker
    charges a residual block's shortcut with the other branch's backward."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        convzoo.create("residual", in_channels=4, out_channels=8, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    report = ours(model, (3, 10, 10), batch=2)
    step = report.training
    assert step.step_macs == step.forward_macs + step.backward_macs
    assert report.layers[0].backward_macs == step.backward_macs
    assert sum(o.macs for o in step.operators) == step.backward_macs
    names = [r.name for r in report.layers]
    leaves = [r for r in report.layers[1:] if not any(n.startswith(f"{r.name}.") for n in names)]
    weighted = [r for r in leaves if r.macs]
    assert len(weighted) == 5  # stem, the block's two convs and its projection, the head
    for row in leaves:
        assert row.backward_macs == (1 if row.name == "0" else 2) * row.macs, row.name
    assert step.backward_macs == reference(model, torch.randn(2, 3, 10, 10))[0]


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_OPS))
def test_optimizer_ops_equal_torch_optim_counted_op_by_op(optimizer) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3, bias=False))
    model[0].bias.requires_grad_(False)  # frozen: not stepped
    make = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
        "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        "adam": lambda p: torch.optim.Adam(p),
        "adamw": lambda p: torch.optim.AdamW(p),
    }[optimizer]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make(params)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()  # the first step makes the state: count a later one
    tracer = Tracer(fast=False, fields=False)
    tracer.stats[""] = ModuleStats()
    tracer.stack.append("")
    with tracer:
        opt.step()
    assert tracer.stats[""].macs == 0
    assert ours(model, (5,), optimizer).training.optimizer_ops == tracer.stats[""].elementwise


class Unbackwardable(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor) -> torch.Tensor:
        return a * 2

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no backward here")


def test_a_backward_that_fails_leaves_the_memory_and_says_so() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    model.register_forward_hook(lambda m, i, out: Unbackwardable.apply(out))
    report = ours(model, (3, 8, 8))
    assert report.training.saved_bytes == 3 * 8 * 8 * 4  # the conv's input
    assert report.training.backward_macs == 0
    assert report.notes == [
        "backward: could not run, its MACs are not counted (RuntimeError: no backward here)"
    ]


def test_training_json_round_trips_with_backward_operators() -> None:
    report = ours(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)), (3, 6, 6))
    back = convzoo.Report.from_json(report.to_json())
    assert back.training == report.training
    assert back.to_json() == report.to_json()
    data = report.to_dict()["training"]
    assert data["step_macs"] == data["forward_macs"] + data["backward_macs"]


# -- the sweeps (slow tier) -------------------------------------------------------------------
ZOO = [
    (name, dims)
    for name, _ in convzoo.list_layers()
    for dims in (1, 2, 3)
    if name not in {"linear", "flatten", "capsule_lengths", "routing_capsules", "identity"}
]


LAYER_ARGS = {
    "locally_connected": {"input_size": 8},
    "tiled": {"tile_size": 2},
    "primary_capsules": {"kernel_size": 3},
}


@SLOW
@pytest.mark.parametrize(("name", "dims"), ZOO, ids=[f"{n}-{d}d" for n, d in ZOO])
def test_every_zoo_layer_backward_equals_flop_counter(name, dims) -> None:
    torch.manual_seed(0)
    layer = None
    sized = {"in_channels": 4, "out_channels": 4, "kernel_size": 3}
    for extra in ({"in_channels": 4}, sized, {"in_channels": 4, "out_channels": 4}, {}):
        try:
            layer = convzoo.create(name, dims=dims, **extra, **LAYER_ARGS.get(name, {}))
            break
        except Exception as exc:
            reason = str(exc)
    if layer is None:
        pytest.skip(f"{name} has no {dims}-D form with these arguments: {reason}")
    # fft_conv's 1-D and 3-D forms multiply complex spectra (einsum -> complex bmm); the
    # 2-D form multiplies real and imaginary planes apart (real bmm)
    complex_ops = ("bmm",) if name == "fft_conv" and dims != 2 else ()
    assert_backward_matches(layer, (4, *(8,) * dims), complex_ops=complex_ops)


@SLOW
@pytest.mark.parametrize(
    "name",
    ["resnet18", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "densenet121",
     "regnet_y_400mf", "shufflenet_v2_x1_0", "squeezenet1_0", "vgg11", "alexnet",
     "googlenet", "mnasnet0_5", "resnext50_32x4d", "vit_b_16", "swin_t", "maxvit_t"],
)  # fmt: skip
def test_torchvision_backward_equals_flop_counter(name) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=10)
    size = 224 if name in {"vit_b_16", "swin_t", "maxvit_t"} else 64
    assert_backward_matches(model, (3, size, size))


@SLOW
@pytest.mark.parametrize(
    "config", ["resnet18", "mobilenet_v1", "vgg16", "encoder_decoder", "every_conv"]
)
def test_shipped_configs_backward_equals_flop_counter(config) -> None:
    model = convzoo.build(config)
    assert_backward_matches(model, tuple(model.input_size))


@SLOW
@pytest.mark.parametrize(
    "name", ["resnet18", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224"]
)
def test_timm_backward_equals_flop_counter(name) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10)
    size = 224 if "vit" in name else 64
    assert_backward_matches(model, (3, size, size))
