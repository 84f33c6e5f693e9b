"""Memory figures against independent references.

- the inference peak of live activations (meta tensors) against the CPU allocator's own
  events (``torch.profiler`` with ``profile_memory=True``) on a plain real forward, and
  against hand-computed liveness;
- the bytes autograd saves for backward (meta tensors) against ``saved_tensors_hooks`` on a
  real CPU forward, for zoo configs and torchvision models;
- parameters, gradients and optimizer state against ``torch.optim`` after a real step.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

from convzoo.analysis import isolation
from convzoo.analysis.analyzer import analyze, trace
from convzoo.analysis.counting import Tracer
from convzoo.analysis.memory import OPTIMIZER_STATES, measured_saved_bytes
from convzoo.analysis.receptive import Field
from convzoo.builder import build
from convzoo.cli_parser import OPTIMIZERS
from convzoo.errors import ConvZooError
from tests.sacred import fingerprint

CONFIGS = Path(__file__).resolve().parents[1] / "convzoo" / "configs"
F32 = 4


def nbytes(*shape: int, size: int = F32) -> int:
    n = 1
    for s in shape:
        n *= s
    return n * size


def profiler_peak(model: nn.Module, x: torch.Tensor) -> int:
    """Peak of live bytes on a plain real forward (no mode, no hooks), from the CPU
    allocator's events, read at the end of every top-level op (so that a kernel's own
    scratch buffers, freed before it returns, are not in it), plus the input."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    events = prof.profiler.kineto_results.events()  # type: ignore[union-attr]
    memory = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    spans = sorted(
        (e.start_ns(), e.start_ns() + e.duration_ns()) for e in events if e.name() != "[memory]"
    )
    live = peak = i = 0
    last_end = -1
    for start, end in spans:
        if start < last_end:
            continue  # nested in the previous top-level op
        last_end = end
        while i < len(memory) and memory[i][0] <= end:
            live += memory[i][1]
            i += 1
        peak = max(peak, live)
    return x.untyped_storage().nbytes() + peak


class Skip(nn.Module):
    """y = a(x); z = b(relu(y)); out = y + z: ``y`` stays alive across ``b``."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        z = self.b(torch.relu(y))
        return y + z


@functools.cache
def _resnet18() -> nn.Module:
    """One resnet18 for the fast tests (its random init is the slow part); never changed
    but for its mode."""
    return torchvision.models.resnet18()


def _zoo(name: str, size: tuple[int, ...]) -> nn.Module:
    return build(CONFIGS / f"{name}.yaml", size)


PEAK_CASES = {
    "resnet18": lambda: (_resnet18(), (3, 32, 32)),
    "skip": lambda: (Skip(), (3, 16, 16)),
    "encoder_decoder": lambda: (_zoo("encoder_decoder", (3, 32, 32)), (3, 32, 32)),
}
SLOW_PEAK_CASES = {
    "mobilenet_v3_small": lambda: (torchvision.models.mobilenet_v3_small(), (3, 64, 64)),
    "efficientnet_b0": lambda: (torchvision.models.efficientnet_b0(), (3, 64, 64)),
}


@pytest.mark.parametrize("case", sorted(PEAK_CASES))
def test_peak_matches_the_allocator(case: str) -> None:
    _check_peak(*PEAK_CASES[case]())


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SLOW_PEAK_CASES))
def test_peak_matches_the_allocator_slow(case: str) -> None:
    _check_peak(*SLOW_PEAK_CASES[case]())


def _check_peak(model: nn.Module, size: tuple[int, ...]) -> None:
    model.eval()
    x = torch.randn(2, *size)
    meta = analyze(model, size, batch_size=2).totals.peak_activation_bytes
    real = analyze(model, size, batch_size=2, meta=False).totals.peak_activation_bytes
    assert meta == real == profiler_peak(model, x)


def test_peak_sees_pool_indices_inside_max_pool2d() -> None:
    """The one explained difference: ``max_pool2d`` allocates its int64 indices and frees
    them before it returns; the allocator read at op ends misses them, liveness does not."""
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    peak = analyze(model, (3, 32, 32), batch_size=2).totals.peak_activation_bytes
    indices = nbytes(2, 16, 16, 16, size=8)
    assert peak == nbytes(2, 3, 32, 32) + nbytes(2, 16, 32, 32) + nbytes(2, 16, 16, 16) + indices
    assert peak - profiler_peak(model, x) == indices


def test_peak_by_hand_skip_views_and_in_place() -> None:
    class Views(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x * 2  # new
            v = y.view(-1).detach()  # aliases of y: nothing new
            v.relu_()  # in place: nothing new
            return torch.cat([y, y])  # new; y alive

    shape = (2, 3, 8, 8)
    got = analyze(Views(), shape[1:], batch_size=2).totals.peak_activation_bytes
    assert got == nbytes(*shape) * 4  # input + y + cat(y, y)
    got = analyze(Skip(), (3, 16, 16), batch_size=2).totals.peak_activation_bytes
    act = nbytes(2, 8, 16, 16)
    # inside b: x, y, relu(y), z; relu(y) dies when b returns, before y + z (x, y, z, sum)
    assert got == nbytes(2, 3, 16, 16) + 3 * act


_REPEATED = """
import json, sys
from torch import nn
import convzoo
from tests.data.some_model import Net

def seq():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

def bn():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3),
                         nn.ReLU(), nn.Conv2d(8, 8, 3))

fresh = "torch._dynamo" not in sys.modules
peaks = {
    name: [convzoo.analyze(make(), (3, 32, 32)).totals.peak_activation_bytes for _ in range(3)]
    for name, make in (("net", lambda: Net(3)), ("seq", seq))
}
still = "torch._dynamo" not in sys.modules
amp = [convzoo.analyze(bn(), (3, 32, 32), amp="bf16").totals.peak_activation_bytes
       for _ in range(3)]
imported = "torch._dynamo" in sys.modules
print(json.dumps({"fresh": fresh, **peaks, "amp": amp, "imported": still and imported}))
"""


def test_peak_is_the_same_in_a_fresh_process_and_on_every_call() -> None:
    """Issue 20: the first analysis in a process (torch's first dispatch through the tracer
    imported ``torch._dynamo``; issue 25: it no longer does) found more bytes live than the
    next ones. Run in a process
    that has not imported torchvision (which imports ``torch._dynamo`` itself), each model
    three times; every peak is the hand count of live tensors."""
    env = {**os.environ, "PYTHONPATH": str(CONFIGS.parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", _REPEATED],
        cwd=CONFIGS.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    x, conv = nbytes(1, 3, 32, 32), nbytes(1, 8, 30, 30)
    # Net: at relu, the input, the conv's output and relu's (the pool's 8 floats come later)
    assert got["net"] == [x + conv + conv] * 3
    # Sequential: at the pool, the input, the conv's output and the pool's; then conv dies
    assert got["seq"] == [x + conv + nbytes(1, 8, 1, 1)] * 3
    assert got["fresh"]  # the case of the issue: nothing had imported torch._dynamo before
    # Under amp, batch norm's bfloat16 meta kernel (a Python decomposition) imports
    # torch._dynamo inside the first forward; its reference cycles held activations
    # (issue 22 x 25): the first peak was higher than the next ones
    assert got["imported"] and len(set(got["amp"])) == 1, got


def test_tracer_holds_no_tensor() -> None:
    """After the forward, only the inputs are live: the tracer (fields included) keeps
    nothing alive."""
    model = torchvision.models.resnet18()
    x = torch.empty(1, 3, 32, 32, device="meta")
    clone = copy.deepcopy(model).to("meta").eval()
    tracer = Tracer()
    tracer.set_field(x, Field.identity((32, 32)))
    with torch.no_grad():
        out = tracer.run(clone, (x,))
    assert tracer.memory.live == nbytes(1, 3, 32, 32) + nbytes(*out.shape)
    assert len(tracer.fields) >= 2
    del out
    assert tracer.memory.live == nbytes(1, 3, 32, 32)
    assert len(tracer.fields) == 1  # the input's


def _check_saved(model: nn.Module, size: tuple[int, ...], batch: int = 2) -> int:
    got = analyze(model, size, batch_size=batch, optimizer="sgd").training
    assert got is not None
    x = torch.randn(batch, *size)
    assert got.saved_bytes == measured_saved_bytes(copy.deepcopy(model), (x,))
    return got.saved_bytes


FAST_CONFIGS = ["capsnet_mnist", "encoder_decoder", "seed_64x64_5x5", "seed_7x7_alternatives"]
SLOW_CONFIGS = [
    "every_conv",
    "mobilenet_v1",
    "resnet18",
    "resnet50",
    "vgg16",
    "seed_init_zero",
    "seed_init_ones",
    "seed_deep_plain",
    "seed_deep_residual",
]


def _config_case(name: str) -> None:
    c, *hw = build(CONFIGS / f"{name}.yaml", meta=True).input_size
    size = (c, *[min(s, 64) for s in hw])
    assert _check_saved(_zoo(name, size), size) > 0


@pytest.mark.parametrize("name", FAST_CONFIGS)
def test_saved_bytes_match_autograd_zoo(name: str) -> None:
    _config_case(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CONFIGS)
def test_saved_bytes_match_autograd_zoo_slow(name: str) -> None:
    _config_case(name)


def test_all_configs_are_covered() -> None:
    assert sorted(FAST_CONFIGS + SLOW_CONFIGS) == sorted(p.stem for p in CONFIGS.glob("*.yaml"))


TORCHVISION = {
    "resnet18": ((3, 32, 32), _resnet18),
    "encoder_layer": ((10, 64), lambda: nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)),
}
SLOW_TORCHVISION = {
    "mobilenet_v3_small": ((3, 64, 64), torchvision.models.mobilenet_v3_small),
    "efficientnet_b0": ((3, 64, 64), torchvision.models.efficientnet_b0),
    "vit_b_16": ((3, 32, 32), lambda: torchvision.models.vit_b_16(image_size=32, dropout=0.1)),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_saved_bytes_match_autograd_torchvision(name: str) -> None:
    size, make = TORCHVISION[name]
    _check_saved(make(), size)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_TORCHVISION))
def test_saved_bytes_match_autograd_torchvision_slow(name: str) -> None:
    size, make = SLOW_TORCHVISION[name]
    with sdpa_kernel(SDPBackend.MATH):  # the path meta tensors take (see the attention test)
        _check_saved(make(), size)


def test_attention_saves_what_the_math_kernel_saves() -> None:
    """On meta tensors scaled_dot_product_attention takes its math path; the CPU flash
    kernel saves (q, k, v, out, logsumexp) instead of the softmax matrix. With the math
    backend forced the real forward agrees exactly; with flash it differs."""
    model = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
    x = torch.randn(2, 10, 64)
    got = analyze(model, ((10, 64),), batch_size=2, optimizer="sgd").training
    assert got is not None
    with sdpa_kernel(SDPBackend.MATH):
        assert got.saved_bytes == measured_saved_bytes(copy.deepcopy(model), (x,))
    flash = measured_saved_bytes(copy.deepcopy(model), (x,))
    assert flash != got.saved_bytes


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam", "adamw"])
def test_optimizer_state_matches_torch_optim(optimizer: str) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.LazyLinear(4))
    model(torch.randn(2, 3, 8, 8))
    model[0].weight.requires_grad_(False)  # frozen: no gradient, no state
    got = analyze(model, (3, 8, 8), optimizer=optimizer).training
    assert got is not None
    trainable = [p for p in model.parameters() if p.requires_grad]
    make = {
        "sgd": lambda: torch.optim.SGD(trainable, lr=0.1),
        "sgd-momentum": lambda: torch.optim.SGD(trainable, lr=0.1, momentum=0.9),
        "adam": lambda: torch.optim.Adam(trainable),
        "adamw": lambda: torch.optim.AdamW(trainable),
    }[optimizer]
    opt = make()
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    state = sum(
        v.numel() * v.element_size()
        for s in opt.state.values()
        for k, v in s.items()
        if isinstance(v, torch.Tensor) and k != "step"
    )
    assert got.optimizer_bytes == state
    assert got.gradient_bytes == sum(p.grad.numel() * 4 for p in trainable if p.grad is not None)
    assert got.param_bytes == sum(p.numel() * 4 for p in model.parameters())
    assert got.total_bytes == sum(
        [got.param_bytes, got.gradient_bytes, got.optimizer_bytes, got.saved_bytes]
    )


def test_saved_bytes_per_layer() -> None:
    shared = nn.Conv2d(8, 8, 3, padding=1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), shared, nn.ReLU(), shared)
    report = analyze(model, (3, 8, 8), batch_size=2, optimizer="adam")
    assert report.training is not None
    rows = {row.name: row.saved_bytes for row in report.layers}
    assert rows[""] == report.training.saved_bytes
    act = nbytes(2, 8, 8, 8)
    # conv0 saves the input; relu1 its output; conv2 that output (again: counted once);
    # relu3 its output; conv4 (the shared conv's second call) that output again
    assert rows["0"] == nbytes(2, 3, 8, 8)
    assert rows["1"] == act and rows["3"] == act
    assert rows["2"] == rows["4"] == 0
    assert rows[""] == sum(rows[str(i)] for i in range(5))


def test_default_has_no_training_and_bad_optimizer() -> None:
    report = analyze(nn.Conv2d(3, 4, 3), (3, 8, 8))
    assert report.training is None
    assert all(row.saved_bytes is None for row in report.layers)
    for bad in ["SGD", "rmsprop", 3]:
        with pytest.raises(ConvZooError, match="optimizer must be one of") as err:
            analyze(nn.Conv2d(3, 4, 3), (3, 8, 8), optimizer=bad)  # type: ignore[arg-type]
        assert "\n" not in str(err.value)
    assert list(OPTIMIZERS) == list(OPTIMIZER_STATES)


def test_training_analysis_never_changes_the_model() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Dropout(0.5))
    model.eval()
    before = fingerprint(model)
    state = torch.random.get_rng_state()
    analyze(model, (3, 8, 8), batch_size=2, optimizer="adam")
    analyze(model, (3, 8, 8), batch_size=2, optimizer="adam", meta=False)
    assert fingerprint(model) == before
    assert torch.equal(torch.random.get_rng_state(), state)


def test_real_fallback_counts_the_same_and_keeps_the_budget() -> None:
    model = nn.Sequential(Skip(), nn.BatchNorm2d(8), nn.Dropout(0.2), nn.Conv2d(8, 4, 1))
    meta = analyze(model, (3, 16, 16), batch_size=2, optimizer="sgd")
    real = analyze(model, (3, 16, 16), batch_size=2, optimizer="sgd", meta=False)
    assert meta.training == real.training
    assert meta.totals.peak_activation_bytes == real.totals.peak_activation_bytes
    # the guard's peak: the weights, the live activations and one op's outputs + workspace
    peak = trace(model, (3, 16, 16), batch_size=2, meta=False).tracer.guard.peak
    fixed = isolation.tensor_bytes(model)  # parameters and buffers
    assert peak > fixed + meta.totals.peak_activation_bytes  # workspaces come on top
    analyze(model, (3, 16, 16), batch_size=2, meta=False, max_memory=peak)
    with pytest.raises(ConvZooError, match="memory budget"):
        analyze(model, (3, 16, 16), batch_size=2, meta=False, max_memory=peak - 1)


def test_train_mode_failure_is_one_line_naming_the_layer() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4))
    analyze(model, (3, 8, 8))  # eval mode: fine
    with pytest.raises(ConvZooError, match=r"^in train mode .* in layer '2': Expected more"):
        analyze(model, (3, 8, 8), optimizer="sgd")


def test_cli_optimizer(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from convzoo.cli import main

    assert main(["report", "seed_64x64_5x5", "--optimizer", "adam", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    x, out, params = nbytes(1, 3, 64, 64), nbytes(1, 2, 60, 60), (2 * 3 * 25 + 2) * F32
    assert data["totals"]["peak_activation_bytes"] == x + out
    macs = 2 * 3 * 25 * 60 * 60
    step = data["training"]
    assert [o["op"] for o in step.pop("operators") if o["kind"] != "free"] == [
        "convolution_backward"
    ]
    assert step == {
        "optimizer": "adam",
        "param_bytes": params,
        "gradient_bytes": params,
        "optimizer_bytes": 2 * params,
        "saved_bytes": x,  # the convolution keeps its input for the weight gradient
        "forward_macs": macs,
        "backward_macs": macs,  # the weight's gradient only: the input has no grad
        "forward_elementwise_ops": 0,
        "backward_elementwise_ops": 2 * 60 * 60,  # the bias's gradient: a sum
        "recompute_macs": 0,
        "optimizer_ops": 7 * params // F32 + 2,  # Adam: 7 per value, 1 per tensor
        "checkpoints": [],
        "total_bytes": 4 * params + x,
        "step_macs": 2 * macs,
    }
