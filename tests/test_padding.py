"""Pure padding arithmetic against the definitions and against torch's own conv sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from convzoo.errors import LayerArgumentError
from convzoo.layers import padding as P


@pytest.mark.parametrize("n", [1, 5, 8, 17])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("d", [1, 2])
def test_modes_match_definitions(n: int, k: int, s: int, d: int) -> None:
    k_eff = d * (k - 1) + 1
    same = P.axis_padding("same", n, k, s, d)
    assert P.conv_output_size(n, k, s, d, same) == math.ceil(n / s)
    assert same[1] - same[0] in (0, 1)  # odd pixel after
    full = P.axis_padding("full", n, k, s, d)
    assert full == (k_eff - 1, k_eff - 1)
    if s == 1:
        assert P.conv_output_size(n, k, s, d, full) == n + k_eff - 1
    if n >= k_eff:
        assert P.conv_output_size(n, k, s, d, (0, 0)) == (n - k_eff) // s + 1


@pytest.mark.parametrize("spec", ["valid", "same", "full", 2, (1, 3)])
def test_output_size_matches_torch(spec: P.PaddingSpec) -> None:
    size, k, s, d = (13, 10), (3, 4), (2, 1), (1, 2)
    pads = P.resolve(spec, size, k, s, d)
    x = P.zero_pad(torch.zeros(1, 1, *size), pads)
    y = F.conv2d(x, torch.zeros(1, 1, *k), stride=s, dilation=d)
    assert tuple(y.shape[-2:]) == P.output_size(spec, size, k, s, d)


def test_pair_and_check_padding_errors() -> None:
    assert P.pair(3, "conv", "kernel_size") == (3, 3)
    assert P.pair([2, 5], "conv", "kernel_size") == (2, 5)
    for bad in (0, -1, (1, 0), (1, 2, 3), "3", 2.5, True):
        with pytest.raises(LayerArgumentError, match="conv: kernel_size"):
            P.pair(bad, "conv", "kernel_size")
    with pytest.raises(LayerArgumentError, match="conv: padding must be one of"):
        P.check_padding("half", "conv")
    assert P.check_padding(0, "conv") == (0, 0)


def test_split_symmetric() -> None:
    sym, rest = P.split_symmetric(((1, 2), (3, 3)))
    assert sym == (1, 3) and rest == ((0, 1), (0, 0))
