"""A language model's front end, for ``convzoo report tests/data/token_model.py:TokenModel
--input 16:int64``: its input is token ids, which a float input cannot be.

``TokenModel``: an embedding of ``vocab`` tokens in ``dim`` dimensions, averaged over the
sequence, then a linear classifier. On ``Tensor[B, L]`` int64: MACs = B·dim·classes (the
embedding is a lookup, the mean element-wise).
"""

from __future__ import annotations

import torch
from torch import nn


class TokenModel(nn.Module):
    """``Tensor[B, L] int64 -> Tensor[B, classes]``."""

    def __init__(self, vocab: int = 1000, dim: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(1))
