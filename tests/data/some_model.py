"""A user's own model file, for ``convzoo report tests/data/some_model.py:Net``.

``Net``: a valid 3x3 convolution (3 -> 8 channels), global average pooling and a linear
classifier. On ``Tensor[B, 3, H, W]``: MACs = (H-2)(W-2)·8·27 + 8·num_classes per image.
"""

from __future__ import annotations

import torch
from torch import nn


class Net(nn.Module):
    """``Tensor[B, 3, H, W] -> Tensor[B, num_classes]``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def make_net(num_classes: int = 10) -> Net:
    """A factory, as ``tests.data.some_model:make_net``; remembers a default input size."""
    net = Net(num_classes)
    net.input_size = (3, 32, 32)  # type: ignore[assignment]
    return net


net = Net(4)
"""A module instance: ``some_model.py:net``."""
