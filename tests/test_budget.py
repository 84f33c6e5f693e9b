"""One memory budget, checked before anything is allocated (issue 19).

Fast tests: the guard sizes every real op (factory, forward, backward) on meta tensors and
refuses it before it runs; rehearsals on meta tensors give the peak a real run reaches; each
real-tensor path (the analyzer's fallback and meta path, compare, rf, fvcore) refuses early.
Slow tests: the peak RSS of each path, in a subprocess, against the same command on a tiny
case: never above that baseline + the budget + ``MEMORY_SLACK``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import convzoo
from convzoo import measure
from convzoo.analysis import guard as budget_guard
from convzoo.analysis.analyzer import trace
from convzoo.analysis.guard import Guard, check_forward, rehearse
from convzoo.compare import make_design, on_meta
from convzoo.errors import ConvZooError, MemoryBudgetError
from convzoo.limits import MEMORY_SLACK, MiB, parse_bytes
from convzoo.plots import check_effective_field
from tests.conftest import FIGURES
from tests.sacred import fingerprint

ROOT = Path(__file__).resolve().parents[1]
HUGE = 2**40  # elements: 4 TiB of float32 (an allocator error if anything tried)


class Ran(TorchDispatchMode):
    """Records the ops that ran on real tensors (entered before a guard, it sees what got
    past it; the guard's own sizing on meta tensors is left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not (isinstance(out, torch.Tensor) and out.is_meta):
            self.ops.append(func._schema.name)
        return out


def test_factory_ops_are_sized_before_they_allocate() -> None:
    guard = Guard(MiB, "the test")
    for make in (torch.ones, torch.empty, torch.zeros, torch.randn):
        refused = pytest.raises(
            MemoryBudgetError, match=r"^the test at aten::\w+ needs about 4\.0 TiB"
        )
        with refused, guard:
            make(HUGE)
    with guard:
        x = torch.ones(1000, dtype=torch.float64)
        y = x * 2
    assert guard.live == 2 * 8000 and guard.peak == 2 * 8000
    del x, y
    assert guard.live == 0


def test_a_refused_op_never_runs() -> None:
    ran = Ran()
    x = torch.ones(1000)
    with ran, Guard(10 * MiB, "w"):
        x.expand(1000, 1000).contiguous()  # 4 MB: fits
        with pytest.raises(MemoryBudgetError):
            x.expand(10_000, 1000).contiguous()  # 40 MB: refused
    assert ran.ops == ["aten::expand", "aten::clone", "aten::expand"]


def test_backward_ops_and_gradients_count() -> None:
    w = torch.randn(64, 64, 3, 3, requires_grad=True)
    x = torch.randn(1, 64, 32, 32)
    guard = Guard(None, "w")
    ran = Ran()
    with ran, guard:
        nn.functional.conv2d(x, w, padding=1).sum().backward()
    assert "aten::convolution_backward" in ran.ops
    assert guard.live == w.numel() * 4  # the weight's gradient is alive; the rest is freed
    big = Guard(guard.peak - 1, "w")
    with pytest.raises(MemoryBudgetError, match="at aten::convolution"), ran, big:
        nn.functional.conv2d(x, w, padding=1).sum().backward()


def test_workspaces_of_slow_convolutions_fft_and_deformable() -> None:
    """The sizing adds what the kernels allocate for themselves (measured in the slow test
    below): float64 convolutions unfold their input, c2r FFTs copy it, deformable
    convolutions fill a column buffer."""
    b, c, n, k = 2, 8, 32, 3
    x = torch.empty(b, c, n, n, dtype=torch.float64, device="meta")
    w = torch.empty(16, c, k, k, dtype=torch.float64, device="meta")
    op = torch.ops.aten.convolution.default
    args = (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    out = 16 * b * n * n * 8
    columns = b * c * k * k * n * n * 8
    assert budget_guard.size(op, budget_guard.facts_of(op), args, {}) == out + columns
    spectrum = torch.empty(b, c, n, n // 2 + 1, dtype=torch.complex64, device="meta")
    op = torch.ops.aten._fft_c2r.default
    args = (spectrum, [2, 3], 0, n)
    c2r = budget_guard.size(op, budget_guard.facts_of(op), args, {})
    assert c2r == b * c * n * n * 4 + 2 * spectrum.numel() * 8


def test_ops_without_meta_kernels_are_bounded() -> None:
    mask = torch.ones(100, 100, dtype=torch.bool)
    op = torch.ops.aten.nonzero.default
    assert budget_guard.size(op, budget_guard.facts_of(op), (mask,), {}) == 100 * 100 * 2 * 8
    with pytest.raises(MemoryBudgetError, match="at aten::nonzero"), Guard(100_000, "w"):
        mask.nonzero()


def test_a_rehearsal_on_meta_matches_the_guarded_real_run() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 3))
    x = torch.randn(2, 3, 24, 24, requires_grad=True)
    guard = Guard(None, "w")
    with guard:
        model(x).sum().backward()
    meta = convzoo.analysis.isolation.private_copy(model, meta=True)
    xm = torch.empty(2, 3, 24, 24, device="meta", requires_grad=True)

    def step() -> None:
        meta(xm).sum().backward()

    assert rehearse(step, None, "w") == guard.peak
    assert rehearse(step, None, "w", unguarded=True) == guard.peak + guard.peak // 8
    with pytest.raises(MemoryBudgetError, match=r"^w needs about"):
        rehearse(step, guard.peak - 1, "w")


class MakesOnes(nn.Module):
    """Runs on meta tensors, but makes a real tensor of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * torch.ones(HUGE)[0]


class BranchesThenOnes(MakesOnes):
    """Cannot run on meta tensors (a branch on values), then makes a real tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2 if x.sum() > 0 else x
        return super().forward(x)


class BranchesLate(nn.Module):
    """A large activation, then a branch on values: the meta forward reaches the former."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * 2 if y.sum() > 0 else y


def test_real_tensors_a_forward_makes_count_on_the_meta_path_and_the_fallback() -> None:
    for model, where in (
        (MakesOnes(), "the analysis"),
        (BranchesThenOnes(), "the real-tensor fallback"),
    ):
        before = fingerprint(model)
        with pytest.raises(ConvZooError, match=f"{where}.* at aten::ones needs about 4.0 TiB"):
            convzoo.analyze(model, (3, 8, 8))
        assert fingerprint(model) == before


def test_the_fallback_is_refused_from_the_meta_forward_it_reached() -> None:
    """64 channels at 512x512 are 64 MiB: refused before any real tensor is made."""
    ran = Ran()
    with ran, pytest.raises(ConvZooError, match="meta forward's activations"):
        convzoo.analyze(BranchesLate(), (3, 512, 512), max_memory=60 * MiB)
    assert all(not op.startswith("aten::convolution") for op in ran.ops)
    run = trace(BranchesLate(), (3, 64, 64), max_memory=60 * MiB)
    assert run.tracer.guard is not None and run.tracer.guard.peak < 60 * MiB


def test_float16_fallback_on_the_cpu_is_refused_up_front() -> None:
    with pytest.raises(ConvZooError, match="float16 on the CPU.* analyse in float32") as info:
        convzoo.analyze(BranchesLate(), (3, 8, 8), dtype=torch.float16)
    assert "\n" not in str(info.value)
    assert convzoo.analyze(BranchesLate(), (3, 8, 8), dtype=torch.bfloat16).totals.macs > 0
    assert convzoo.analyze(nn.Conv2d(3, 4, 3), (3, 8, 8), dtype=torch.float16).totals.macs > 0


def designs(names: list[str]) -> Any:
    def build() -> dict[str, nn.Module]:
        return {n: make_design(n, 7, 64, 64, padding="same", bias=True) for n in names}

    return build


def test_compare_rehearses_the_whole_benchmark_before_any_real_tensor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The FFT spectra, deformable columns and backward of every design are in the estimate,
    which refuses before a real design is built or timed."""

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no real design may be built or timed")

    monkeypatch.setattr(measure, "measure_ms", never)
    for names, train in ((["conv", "fft_conv"], False), (["conv", "deformable"], True)):
        modules = on_meta(designs(names))
        needed = measure.rehearse_bench(modules, (64, 512, 512), 1, train, 2**40)
        assert needed is not None and needed > 1024 * MiB
        with pytest.raises(MemoryBudgetError, match="benchmarking at batch 1 needs"):
            measure.measure(modules, (64, 512, 512), 1, True, train, real=never, max_memory=2**30)


def test_the_effective_field_and_fvcore_check_are_rehearsed() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3))
    needed = check_effective_field(model, (3, 64, 64), "2")
    with pytest.raises(MemoryBudgetError, match="effective field"):
        check_effective_field(model, (3, 64, 64), "2", needed - 1)
    needed = check_forward(model, (1, 3, 64, 64), None, "fvcore")
    assert needed is not None
    with pytest.raises(MemoryBudgetError, match="^fvcore needs"):
        check_forward(model, (1, 3, 64, 64), needed - 1, "fvcore")
    ran = Ran()
    with ran, pytest.raises(MemoryBudgetError, match=r"^fvcore at aten::\w+ needs"):
        check_forward(BranchesThenOnes(), (1, 3, 8, 8), 2**30, "fvcore")  # guarded real run
    assert "aten::ones" not in ran.ops


# -- peak RSS, in a subprocess --------------------------------------------------------------
WORKSPACES = """
import json, re, torch, torchvision
from convzoo.analysis import guard, resident

def rss():
    status = open("/proc/self/status").read()
    return [int(re.search(k + r":\\s+(\\d+)", status).group(1)) * 1024 for k in ("VmRSS", "VmHWM")]

class Measured(guard.Guard):
    rows = []

    def run(self, func, args, kwargs):
        facts = guard.facts_of(func)
        predicted = guard.size(func, facts, args, kwargs) if not facts.aliases else 0
        resident.give_back()
        open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
        before = rss()[0]
        out = func(*args, **kwargs)
        self.rows.append((facts.name, predicted, rss()[1] - before))
        return out

def conv(dtype, n):
    x = torch.randn(1, 32, n, n, dtype=dtype, requires_grad=True)
    w = torch.randn(32, 32, 3, 3, dtype=dtype, requires_grad=True)
    return lambda: torch.nn.functional.conv2d(x, w, padding=1).sum().backward()

def deform(n):
    x = torch.randn(4, 32, n, n, requires_grad=True)
    offset = torch.randn(4, 18, n, n, requires_grad=True)
    w = torch.randn(32, 32, 3, 3, requires_grad=True)
    return lambda: torchvision.ops.deform_conv2d(x, offset, w, padding=1).sum().backward()

def fft(n):
    x = torch.randn(4, 32, n, n)
    return lambda: torch.fft.irfft2(torch.fft.rfft2(x) * 2)

for step in (conv(torch.float32, 1024), conv(torch.float64, 512), deform(256), fft(512)):
    with torch.enable_grad(), Measured(None, "w"):
        step()
print(json.dumps(Measured.rows))
"""


@pytest.mark.slow  # one subprocess, single ops of 100-600 MiB
def test_workspace_rules_cover_what_the_kernels_take() -> None:
    """Per op, the rise of peak RSS while it runs (``VmHWM`` reset before it) is at most the
    guard's size of it (outputs + workspace) + 8 MiB."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak RSS")
    done = subprocess.run(
        [sys.executable, "-c", WORKSPACES], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout.splitlines()[-1])
    names = {name for name, _, _ in rows}
    assert {"aten::convolution_backward", "aten::_fft_c2r", "torchvision::deform_conv2d"} <= names
    worst = max(rows, key=lambda row: row[2] - row[1])
    FIGURES["workspace rules: worst op (measured - predicted)"] = (
        f"{worst[0]}: {(worst[2] - worst[1]) / MiB:+.1f} MiB"
    )
    for name, predicted, measured in rows:
        assert measured <= predicted + 8 * MiB, (name, predicted / MiB, measured / MiB)


PROBE = """
import json, re, resource, sys
from convzoo.cli import main

def status(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

tiny, big = json.loads(sys.argv[1])
codes = [main(tiny)]  # imports and first calls: the process's own memory
try:  # reset the peak to the resident set now (Linux), so the peak is the big case's own
    open("/proc/self/clear_refs", "w").write("5")
    base, peak = status("VmRSS"), lambda: status("VmHWM")
except Exception:  # the peak of the tiny case is the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
codes.append(main(big))
print(json.dumps([codes, base, peak()]))
"""

USER_MODELS = '''
import torch
from torch import nn


class Branchy(nn.Module):
    """Cannot run on meta tensors: a branch on values first."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1)

    def forward(self, x):
        if x.sum() > 0:
            x = x * 2
        return self.conv2(self.conv(x).relu())


class Ones(nn.Module):
    """Makes a 1 GiB tensor of its own; with BRANCH, on the real-tensor fallback."""

    BRANCH = False

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        if self.BRANCH and x.sum() > 0:
            x = x * 2
        return self.conv(x) * torch.ones(2**28)[0]


class BranchyOnes(Ones):
    BRANCH = True


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.conv(x).relu())
'''


def peak_rss(tiny: list[str], big: list[str], cwd: Path) -> tuple[list[int], int, str]:
    """``(exit codes, peak RSS of `big` above the process's, stderr)``: both run by
    ``convzoo.cli.main`` in one fresh process, `tiny` first (its imports and first calls
    are the process's own); the peak is reset before `big` where Linux allows it, so the
    difference is from the resident set when `big` starts, else from `tiny`'s peak."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([tiny, big])],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    codes, base, peak = json.loads(done.stdout.splitlines()[-1])
    return codes, peak - base, done.stderr


def rounded(needed: int) -> str:
    return f"{math.ceil(needed / MiB)}MiB"


@pytest.mark.slow  # nine subprocesses that import torch; real forwards of up to 1 GiB
def test_peak_rss_stays_within_the_budget_on_every_path(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text(USER_MODELS)
    sys.path.insert(0, str(tmp_path))
    try:
        import models  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    fallback_need = trace(models.Branchy(), (3, 512, 512)).tracer.guard.peak
    compare_need = {}
    for names, train in ((["conv", "fft_conv", "deformable"], False), (["conv", "fft_conv"], True)):
        needed = measure.rehearse_bench(on_meta(designs(names)), (64, 128, 128), 1, train, None)
        assert needed is not None
        compare_need[train] = rounded(needed)
    field_need = rounded(check_effective_field(models.Plain(), (3, 256, 256), "conv2"))
    fvcore_need = check_forward(models.Plain(), (1, 3, 512, 512), None, "fvcore")
    assert fvcore_need is not None

    def report(name: str, size: str, budget: str, *extra: str) -> list[str]:
        return ["report", f"models.py:{name}", "--input", size, *extra, "--max-memory", budget]

    def compare(flag: str, names: str, size: str, budget: str) -> list[str]:
        return ["compare", flag, "--designs", names, "--size", size, "--max-memory", budget]

    def rf(size: str, budget: str) -> list[str]:
        plot = ["--layer", "conv2", "--plot", f"{size}.png", "--force", "--samples", "3"]
        return ["rf", "models.py:Plain", "--input", size, *plot, "--max-memory", budget]

    fallback, fvcore = rounded(fallback_need), rounded(fvcore_need)
    designs3, bench, train = "conv,fft_conv,deformable", compare_need[False], compare_need[True]
    cases = [  # (the tiny case, the case, its exit status); the budget is the last argument
        (report("Branchy", "3x16x16", "100MiB"), report("Branchy", "3x2048x2048", "100MiB"), 2),
        (report("Branchy", "3x16x16", fallback), report("Branchy", "3x512x512", fallback), 0),
        (report("Plain", "3x8x8", "64MiB"), report("Ones", "3x8x8", "64MiB"), 2),
        # tiny on the fallback path too: the first meta kernel written in Python (the branch's
        # comparison) imports torch._dynamo (~160 MiB of code, the process's own, issue 25)
        (report("Branchy", "3x8x8", "64MiB"), report("BranchyOnes", "3x8x8", "64MiB"), 2),
        (compare("--bench", designs3, "8", bench), compare("--bench", designs3, "128", bench), 0),
        (
            compare("--bench", "conv,fft_conv", "8", "1GiB"),
            compare("--bench", "conv,fft_conv", "512", "1GiB"),
            2,
        ),
        (
            compare("--train", "conv,fft_conv", "8", train),
            compare("--train", "conv,fft_conv", "128", train),
            0,
        ),
        (rf("3x16x16", field_need), rf("3x256x256", field_need), 0),
        (
            report("Plain", "3x16x16", fvcore, "--check-fvcore"),
            report("Plain", "3x512x512", fvcore, "--check-fvcore"),
            0,
        ),
    ]
    shown = []
    for tiny, big, expected in cases:
        codes, above, err = peak_rss(tiny, big, tmp_path)
        assert codes == [0, expected], (big, err[-500:])
        budget = parse_bytes(big[-1])
        shown.append(f"{above / MiB:.0f}/{budget / MiB:.0f}")
        assert above <= budget + MEMORY_SLACK, (big, above / MiB, budget / MiB)
    FIGURES["peak RSS above the process's own / budget, MiB"] = ", ".join(shown)
