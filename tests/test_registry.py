"""Registry: duplicates refused, wildcard listing, close-match errors, keyword checks."""

from __future__ import annotations

import pytest
from torch import nn

import convzoo
from convzoo.registry import Registry, natural_key


def test_register_refuses_duplicates() -> None:
    reg = Registry("thing")

    @reg.register("a")
    class A(nn.Module):
        """An A."""

    with pytest.raises(ValueError, match="already registered"):

        @reg.register("a")
        class B(nn.Module):
            pass

    assert reg.list() == [("a", "An A.")]


def test_list_layers_wildcards_and_descriptions() -> None:
    names = [n for n, _ in convzoo.list_layers("depth*")]
    assert names == ["depthwise", "depthwise_separable"]
    assert all(desc for _, desc in convzoo.list_layers())
    assert convzoo.list_layers("no_such_*") == []
    conv_names = [n for n, _ in convzoo.list_layers(category="conv")]
    assert "conv" in conv_names and "batch_norm" not in conv_names


def test_natural_sort() -> None:
    assert sorted(["conv10", "conv2", "conv1"], key=natural_key) == ["conv1", "conv2", "conv10"]


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match=r"unknown layer 'depthwize'.*'depthwise'"):
        convzoo.create("depthwize", in_channels=3)


def test_unknown_keyword_names_layer_and_accepted_keywords() -> None:
    with pytest.raises(ValueError) as info:
        convzoo.create("conv", in_channels=3, out_channels=4, kernel=3)
    text = str(info.value)
    assert text.startswith("conv: unknown keyword 'kernel'")
    assert "did you mean 'kernel_size'" in text and "in_channels" in text


def test_missing_keyword() -> None:
    with pytest.raises(ValueError, match="conv: missing required keyword kernel_size"):
        convzoo.create("conv", in_channels=3, out_channels=4)


def test_every_layer_has_params_formula() -> None:
    for name in convzoo.LAYERS.names():
        assert convzoo.LAYERS.get(name).params_formula, name
