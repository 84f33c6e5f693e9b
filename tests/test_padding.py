"""Pure padding arithmetic against the definitions and against torch's own conv sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from convzoo.errors import LayerArgumentError
from convzoo.layers import geometry as G


@pytest.mark.parametrize("n", [1, 5, 8, 17])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("d", [1, 2])
def test_modes_match_definitions(n: int, k: int, s: int, d: int) -> None:
    k_eff = d * (k - 1) + 1
    same = G.axis_padding("same", n, k, s, d)
    assert G.conv_output_size(n, k, s, d, same) == math.ceil(n / s)
    assert same[1] - same[0] in (0, 1)  # odd pixel after
    full = G.axis_padding("full", n, k, s, d)
    assert full == (k_eff - 1, k_eff - 1)
    if s == 1:
        assert G.conv_output_size(n, k, s, d, full) == n + k_eff - 1
    if n >= k_eff:
        assert G.conv_output_size(n, k, s, d, (0, 0)) == (n - k_eff) // s + 1


@pytest.mark.parametrize("spec", ["valid", "same", "full", 2, (1, 3)])
def test_output_size_matches_torch(spec: G.PaddingSpec) -> None:
    size, k, s, d = (13, 10), (3, 4), (2, 1), (1, 2)
    pads = G.Geometry(k, s, d, spec).pads(size)
    x = G.zero_pad(torch.zeros(1, 1, *size), pads)
    y = F.conv2d(x, torch.zeros(1, 1, *k), stride=s, dilation=d)
    assert tuple(y.shape[-2:]) == G.Geometry(k, s, d, spec).output_size(size)


def test_pairs_and_padding_specs_are_checked() -> None:
    assert G.ints(3, 2, "conv", "kernel_size") == (3, 3)
    assert G.ints([2, 5], 2, "conv", "kernel_size") == (2, 5)
    for bad in (0, -1, (1, 0), (1, 2, 3), "3", 2.5, True):
        with pytest.raises(LayerArgumentError, match="conv: kernel_size"):
            G.ints(bad, 2, "conv", "kernel_size")
    with pytest.raises(LayerArgumentError, match="conv: padding must be one of"):
        G.check_padding("half", 2, "conv")
    assert G.check_padding(0, 2, "conv") == (0, 0)


def test_split_symmetric() -> None:
    sym, rest = G.split_symmetric(((1, 2), (3, 3)))
    assert sym == (1, 3) and rest == ((0, 1), (0, 0))
