"""Activation checkpointing in the training step, against real CPU steps: the backward's
MACs (the recomputed forward included) against FlopCounterMode, the saved bytes against
``saved_tensors_hooks`` (:func:`convzoo.analysis.memory.measured_saved_bytes`).

- a model that calls ``torch.utils.checkpoint`` itself (reentrant or not) is analysed as
  it runs: PyTorch's non-reentrant checkpoint stops its re-run early, once the tensors the
  backward needs exist again, and the count follows it;
- ``analyze(..., checkpoint=NAMES)`` checkpoints those modules of the private copy (never
  the user's model); the reference is the same model with the same modules wrapped by
  hand. The inputs the checkpoint keeps for its re-run are counted as saved: a
  non-reentrant checkpoint holds them outside autograd's saved tensors, so the reference
  adds the bytes of those that ``saved_tensors_hooks`` does not see.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.analysis.memory import measured_saved_bytes
from convzoo.errors import ConvZooError
from tests.sacred import fingerprint

SHAPE = (2, 3, 8, 8)


def block() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)
    )


class Net(nn.Module):
    """A stem, two residual blocks (the first checkpointed by the model itself when
    ``reentrant`` is not None) and a head."""

    def __init__(self, reentrant: bool | None = None) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block1, self.block2 = block(), block()
        self.head = nn.Linear(8, 4)
        self.reentrant = reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).relu()
        if self.reentrant is None:
            x = x + self.block1(x)
        else:
            x = x + checkpoint(self.block1, x, use_reentrant=self.reentrant)
        x = x + self.block2(x)
        return self.head(x.mean((2, 3)))


def real_step(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(saved bytes by saved_tensors_hooks, backward MACs by FlopCounterMode) of a real
    train-mode step of a copy of ``model``."""
    saved = measured_saved_bytes(copy.deepcopy(model), (x,))
    model = copy.deepcopy(model).train()
    out = model(x)
    with FlopCounterMode(display=False) as counter:
        out.backward(torch.ones_like(out))
    return saved, counter.get_total_flops() // 2


def analysed(model: nn.Module, **kwargs: Any) -> convzoo.Report:
    return convzoo.analyze(
        model, SHAPE[1:], batch_size=SHAPE[0], receptive_fields=False, optimizer="sgd", **kwargs
    )


@pytest.mark.slow
@pytest.mark.parametrize("reentrant", [True, False])
def test_models_calling_checkpoint_match_a_real_step(reentrant: bool) -> None:
    torch.manual_seed(0)
    model = Net(reentrant)
    report = analysed(model)
    step = report.training
    saved, backward = real_step(model, torch.randn(SHAPE))
    assert (step.saved_bytes, step.backward_macs) == (saved, backward)
    plain = analysed(Net(None)).training
    assert step.backward_macs - step.recompute_macs == plain.backward_macs
    assert step.saved_bytes < plain.saved_bytes
    block_macs = report["block1"].macs
    if reentrant:  # the whole block runs again
        assert step.recompute_macs == block_macs
    else:  # stops after the first conv: the second's output is needed by nothing
        assert step.recompute_macs == report["block1.0"].macs < block_macs


def hand_checkpointed(model: Net, names: list[str]) -> Net:
    """A copy of ``model`` with the modules ``names`` run under a non-reentrant checkpoint,
    and the bytes of their inputs (what the checkpoint keeps)."""
    model = copy.deepcopy(model)
    for name in names:
        module = model.get_submodule(name)
        forward = module.forward
        module.forward = lambda *a, f=forward: checkpoint(f, *a, use_reentrant=False)  # type: ignore[method-assign]
    return model


def test_checkpoint_keyword_matches_the_model_checkpointed_by_hand() -> None:
    torch.manual_seed(0)
    model = Net()
    before = fingerprint(model)
    report = analysed(model, checkpoint=["block*"])
    assert fingerprint(model) == before  # the private copy was checkpointed, not the model
    step, plain = report.training, analysed(model)
    saved, backward = real_step(hand_checkpointed(model, ["block1", "block2"]), torch.randn(SHAPE))
    activation = 2 * 8 * 8 * 8 * 4  # one Tensor[2, 8, 8, 8] of float32
    assert step.saved_bytes == saved  # the blocks' inputs included: the checkpoint saves them
    assert step.backward_macs == backward
    assert [c.module for c in step.checkpoints] == ["block1", "block2"]
    for cost in step.checkpoints:
        assert cost.saved_bytes == plain[cost.module].saved_bytes
        assert cost.checkpointed_bytes == activation  # its input, kept
        assert cost.recompute_macs == report[f"{cost.module}.0"].macs  # the early stop
        assert cost.bytes_saved > 0
    assert step.recompute_macs == sum(c.recompute_macs for c in step.checkpoints)
    assert step.backward_macs == plain.training.backward_macs + step.recompute_macs
    assert "checkpoint:       block1: saved" in str(report)
    assert convzoo.Report.from_json(report.to_json()).training == step


def test_checkpoint_choices_are_checked() -> None:
    with pytest.raises(ConvZooError, match="give an optimizer"):
        convzoo.analyze(Net(), SHAPE[1:], checkpoint="block1")
    with pytest.raises(ConvZooError, match=r"no module matches 'blok1'; did you mean 'block1'"):
        analysed(Net(), checkpoint="blok1")
    with pytest.raises(ConvZooError, match="checkpoint must be a module name"):
        analysed(Net(), checkpoint=3)


def test_a_module_with_hooks_of_its_own_is_not_checkpointed_and_the_report_says_so() -> None:
    model = Net()
    model.block2.register_forward_hook(lambda module, inputs, out: None)
    report = analysed(model, checkpoint=["block1", "block2"])
    assert report.notes == [
        "checkpoint: block2 ran without a checkpoint (a module with forward hooks of its own, "
        "or TorchScript, is not wrapped)"
    ]
    costs = {c.module: c for c in report.training.checkpoints}
    assert costs["block1"].recompute_macs > 0 and costs["block2"].recompute_macs == 0


@pytest.mark.slow
@pytest.mark.parametrize("source", ["timm", "torchvision"])
def test_checkpointing_in_library_models_matches_a_real_step(source: str) -> None:
    """timm's ``set_grad_checkpointing()`` and torchvision's ``memory_efficient`` DenseNet."""
    torch.manual_seed(0)
    if source == "timm":
        timm = pytest.importorskip("timm")
        model = timm.create_model("resnet18", num_classes=10)
        model.set_grad_checkpointing(True)
    else:
        import torchvision

        model = torchvision.models.densenet121(num_classes=10, memory_efficient=True)
    report = convzoo.analyze(
        model, (3, 32, 32), batch_size=2, optimizer="sgd", receptive_fields=False
    )
    step = report.training
    assert (step.saved_bytes, step.backward_macs) == real_step(model, torch.randn(2, 3, 32, 32))
    assert not report.notes
