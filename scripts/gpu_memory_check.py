"""One real training step on a CUDA GPU against convzoo's training-step memory.

For a torchvision model (``--model`` resnet50, weights=None, input 3x224x224, ``--batch`` 32,
float32) and ``--optimizer`` (sgd or adam):

- predicted: ``convzoo.analyze(model, optimizer=...)`` on meta tensors: parameters +
  gradients + optimizer state + the bytes autograd saves for backward (the input batch is
  among them: the first convolution saves it);
- measured: ``torch.cuda.max_memory_allocated()`` over the second of two steps (forward,
  cross-entropy loss, backward, ``optimizer.step()``, ``zero_grad(set_to_none=True)``), so
  the optimizer's state already exists, counted from an empty device (model, state and
  input included); also the bytes ``saved_tensors_hooks`` sees in the GPU forward.

The measured peak also holds what the prediction leaves out on purpose: the gradients of
activations alive during backward, cuDNN workspaces, the caching allocator's rounding,
buffers and the loss. Exits with status 0 and a message when no CUDA device is available.

    python scripts/gpu_memory_check.py [--model resnet50] [--batch 32] [--optimizer adam]
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
import torchvision

from convzoo import analyze
from convzoo.analysis.memory import measured_saved_bytes
from convzoo.limits import human

OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.01),
    "sgd-momentum": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params),
}


def measure(name: str, batch: int, optimizer: str) -> tuple[int, int]:
    """(peak bytes of the second training step, saved bytes of one GPU forward)."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    model = getattr(torchvision.models, name)().cuda()
    opt = OPTIMIZERS[optimizer](model.parameters())
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    target = torch.randint(0, 1000, (batch,), device="cuda")
    loss_fn = torch.nn.CrossEntropyLoss()
    for step in range(2):
        if step == 1:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del loss
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    saved = measured_saved_bytes(copy.deepcopy(model), (x,))
    return peak, saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (this check needs a GPU)")
        return 0
    report = analyze(
        getattr(torchvision.models, args.model)(),
        (3, 224, 224),
        batch_size=args.batch,
        optimizer=args.optimizer,
    )
    train = report.training
    assert train is not None
    peak, saved = measure(args.model, args.batch, args.optimizer)
    print(f"{args.model}, batch {args.batch}, {args.optimizer}, {torch.cuda.get_device_name()}")
    print(
        f"  convzoo: params {human(train.param_bytes)} + grads {human(train.gradient_bytes)}"
        f" + optimizer {human(train.optimizer_bytes)} + saved {human(train.saved_bytes)}"
        f" = {human(train.total_bytes)} ({train.total_bytes} B)"
    )
    print(
        f"  saved tensors in the GPU forward (saved_tensors_hooks): {human(saved)} "
        f"({saved} B; convzoo/measured {train.saved_bytes / saved:.4f})"
    )
    print(f"  measured peak of one step (max_memory_allocated): {human(peak)} ({peak} B)")
    print(f"  predicted / measured peak: {train.total_bytes / peak:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
