"""Mixed precision (``analyze(..., amp="bf16")``, CPU autocast's policy emulated on meta
tensors) against a real CPU ``torch.autocast`` forward: the tensors autograd saves
(``saved_tensors_hooks``: the low-precision copies of inputs and weights included), the
bytes of every leaf module's output, and the backward's MACs (unchanged by precision)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

import convzoo
from convzoo.analysis.memory import measured_saved_bytes
from convzoo.errors import ConvZooError
from tests.sacred import fingerprint

SLOW = pytest.mark.slow


class Mixed(nn.Module):
    """bf16 ops (convolutions, linear, matmul), a promoted ``cat`` of a bf16 and a float32
    tensor, a float32 op (``prod``, in autocast's fp32 list) and norms in between."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.side = nn.Conv2d(3, 4, 1)
        self.head = nn.Linear(12, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.norm(self.conv(x)).relu()
        b = torch.cat([a, x.repeat(1, 4, 1, 1)[:, :4] * 1.0], 1)  # bf16 + float32 -> float32
        c = torch.cat([a, self.side(x)], 1)  # bf16 + bf16 -> bf16
        pooled = (b + c).mean((2, 3))
        y = self.head(pooled)
        return y @ y.transpose(0, 1) + y.abs().add(1).prod(1, keepdim=True)


def real_autocast(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> tuple[int, int]:
    """(saved bytes, leaf outputs' bytes) of a real train-mode CPU autocast forward, by
    convzoo's definition of ``activation_bytes`` (issue 21): every leaf output at its own
    size, one written in place included, except an input passed on unchanged or a view of
    one (same storage, version counter unmoved: ``Flatten``, ``Identity``)."""
    with torch.autocast("cpu", dtype=dtype):
        saved = measured_saved_bytes(copy.deepcopy(model), (x,))
    model = copy.deepcopy(model).train()
    outputs: list[int] = []
    given: dict[int, list[tuple[int, int]]] = {}

    def before(module: nn.Module, inputs: tuple) -> None:
        given[id(module)] = [
            (t.untyped_storage().data_ptr(), t._version)
            for t in inputs
            if isinstance(t, torch.Tensor)
        ]

    def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        passed = (out.untyped_storage().data_ptr(), out._version) in given.pop(id(module))
        if not passed:
            outputs.append(out.nbytes)

    for m in model.modules():
        if not list(m.children()):
            m.register_forward_pre_hook(before)
            m.register_forward_hook(hook)
    with torch.autocast("cpu", dtype=dtype):
        model(x)
    return saved, sum(outputs)


def check(model: nn.Module, shape: tuple[int, ...], amp: str = "bf16") -> convzoo.Report:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    before = fingerprint(model)
    report = convzoo.analyze(
        model, shape[1:], batch_size=shape[0], optimizer="sgd", amp=amp, train=True,
        receptive_fields=False,
    )  # fmt: skip
    assert fingerprint(model) == before
    saved, outputs = real_autocast(model, torch.randn(shape), dtype)
    assert report.training.saved_bytes == saved
    assert report.totals.activation_bytes == outputs
    plain = convzoo.analyze(model, shape[1:], batch_size=shape[0], optimizer="sgd")
    assert report.training.backward_macs == plain.training.backward_macs
    assert report.training.forward_macs == plain.training.forward_macs
    return report


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_ops_follow_cpu_autocast(amp: str) -> None:
    torch.manual_seed(0)
    report = check(Mixed(), (2, 3, 8, 8), amp)
    plain = convzoo.analyze(Mixed(), (3, 8, 8), batch_size=2, optimizer="sgd", train=True)
    assert report.totals.activation_bytes < plain.totals.activation_bytes


def test_amp_is_checked() -> None:
    with pytest.raises(ConvZooError, match="amp must be one of bf16, fp16, got 'int8'"):
        convzoo.analyze(Mixed(), (3, 8, 8), amp="int8")


@SLOW
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_torchvision_follow_cpu_autocast(name: str) -> None:
    torch.manual_seed(0)
    check(torchvision.models.get_model(name, num_classes=10), (2, 3, 32, 32))


@SLOW
@pytest.mark.parametrize("config", ["resnet18", "encoder_decoder", "vgg16"])
def test_configs_follow_cpu_autocast(config: str) -> None:
    model = convzoo.build(config)
    check(model, (2, *model.input_size))
