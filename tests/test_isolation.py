"""The user's model is sacred: analyze() never changes it, whatever happens inside, and is
safe to call from several threads while other threads run the same model."""

from __future__ import annotations

import gc
import threading

import pytest
import torch
import torchvision
from torch import nn

import convzoo
from convzoo.analysis.isolation import gc_paused
from tests.sacred import fingerprint


class Stateful(nn.Module):
    """Everything a forward can touch: a buffer updated in place, a plain-attribute tensor
    moved to the input's device, a cache, a counter, the global random generator."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.register_buffer("center", torch.ones(4))
        self.anchors = [torch.arange(4.0)]  # like torchvision's AnchorGenerator
        self.cache: dict[str, torch.Tensor] = {}
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.anchors = [a.to(x.device) for a in self.anchors]
        self.cache["last"] = x
        self.center.mul_(0.9)
        y = self.conv(x) * self.center.view(1, -1, 1, 1)
        return y + torch.randn_like(y) + nn.functional.dropout(y, 0.5, training=True)


class DataDependent(Stateful):
    """The same, plus a branch on a value: meta tensors cannot run it (real fallback)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y * 2 if y.sum() > 0 else y


@pytest.mark.parametrize("cls", [Stateful, DataDependent])
@pytest.mark.parametrize("train", [False, True])
def test_nothing_changes_on_either_path(cls: type[nn.Module], train: bool) -> None:
    model = cls()
    model.conv.register_forward_hook(lambda m, i, o: None)
    before = fingerprint(model)
    report = convzoo.analyze(model, (3, 8, 8), train=train)
    assert report.totals.macs == 4 * 3 * 9 * 36
    assert any("real tensors" in n for n in report.notes) == (cls is DataDependent)
    assert fingerprint(model) == before


class Interrupts(nn.Module):
    def __init__(self, exc: BaseException, meta_only: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.exc, self.meta_only = exc, meta_only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if not self.meta_only or y.device.type == "meta":
            raise self.exc
        return y


@pytest.mark.parametrize(
    ("exc", "meta_only", "expected"),
    [
        (KeyboardInterrupt(), False, KeyboardInterrupt),
        (RuntimeError("boom"), False, convzoo.AnalysisError),
        (RuntimeError("meta only"), True, None),  # falls back and succeeds
    ],
)
def test_nothing_changes_when_the_forward_raises(exc, meta_only, expected) -> None:
    model = Interrupts(exc, meta_only)
    before = fingerprint(model)
    if expected is None:
        assert convzoo.analyze(model, (3, 4, 4)).totals.macs == 9 * 16
    else:
        with pytest.raises(expected):
            convzoo.analyze(model, (3, 4, 4))
    assert fingerprint(model) == before


def test_lazy_modules_stay_lazy_and_are_sized_by_the_input() -> None:
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.Flatten(), nn.LazyLinear(5))
    before = fingerprint(model)
    report = convzoo.analyze(model, (3, 8, 8))
    assert report.totals.params == (4 * 27 + 4) + 2 * 4 + (4 * 36 * 5 + 5)
    assert report.totals.macs == 4 * 27 * 36 + 4 * 36 * 5
    assert fingerprint(model) == before
    assert isinstance(model[0].weight, nn.UninitializedParameter)


class SharedTwice(nn.Module):
    """One module registered under two parents (as timm's coat_lite does)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
        self.b = nn.Sequential(self.a[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_a_module_under_two_names_runs_on_meta_and_has_both_rows() -> None:
    model = SharedTwice()
    report = convzoo.analyze(model, (3, 512, 512))
    one = 3 * 27 * 512 * 512
    assert not report.notes  # no fallback to real tensors
    assert report.totals.macs == 2 * one and report.totals.params == 84
    # both calls belong to the first name a.0 and its parent; b.0 is its alias, and b
    # (which ran, calling the module a owns) holds none of it
    assert report.layer("a.0").macs == report.layer("a").macs == 2 * one
    assert report.layer("a.0").calls == 2 and report.layer("b").calls == 1
    alias = report.layer("b.0")
    assert alias.alias_of == "a.0" and alias.macs == alias.calls == alias.params == 0
    assert report.layer("b").macs == 0


def test_concurrent_analysis_and_inference_on_one_model() -> None:
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected_out = model(x)
    expected = convzoo.analyze(model, (3, 64, 64)).to_dict()
    before = fingerprint(model)
    results: list = []
    outputs: list = []
    errors: list = []

    def analyse() -> None:
        try:
            for _ in range(3):
                results.append(convzoo.analyze(model, (3, 64, 64)).to_dict())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def infer() -> None:
        try:
            with torch.no_grad():
                for _ in range(3):
                    outputs.append(model(x))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (analyse, analyse, infer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 6 and all(r == expected for r in results)
    assert all(torch.equal(out, expected_out) for out in outputs)
    assert fingerprint(model) == before


def test_example_tensors_are_not_written_to() -> None:
    class WritesInput(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() >= 0:  # real fallback
                x.mul_(2)
            return x

    x = torch.ones(1, 3, 4, 4)
    convzoo.analyze(WritesInput(), [x])
    assert torch.equal(x, torch.ones(1, 3, 4, 4))


def _shape(m: nn.Module) -> list:
    """Names, classes, attribute names, and parameter/buffer shapes and dtypes."""
    return [
        (
            n,
            type(x).__name__,
            sorted(vars(x)),
            [(k, tuple(t.shape), t.dtype) for k, t in x.state_dict().items()],
        )
        for n, x in m.named_modules(remove_duplicate=False)
    ]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vit_b_16", "convnext_tiny"])
def test_the_fast_structural_copy_equals_a_deep_copy(name: str) -> None:
    import copy

    from convzoo.analysis import isolation

    model = torchvision.models.get_model(name)
    fast = isolation.private_copy(model)
    slow = copy.deepcopy(model, isolation._memo(model, None, True))
    assert _shape(fast) == _shape(slow)
    shared = {id(t) for t in model.parameters()} | {id(m) for m in model.modules()}
    assert not shared & ({id(t) for t in fast.parameters()} | {id(m) for m in fast.modules()})
    assert all(p.device.type == "meta" for p in fast.parameters())


def test_gc_paused_restores_the_collector_across_threads() -> None:
    """The cyclic collector is off while any analysis runs and back on after the last
    one; one that the user had turned off stays off."""
    assert gc.isenabled()
    inside = threading.Barrier(3)
    leave = threading.Event()
    seen: list[bool] = []

    def worker() -> None:
        with gc_paused():
            inside.wait()
            seen.append(gc.isenabled())
            leave.wait()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert not gc.isenabled()
    leave.set()
    for t in threads:
        t.join()
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
