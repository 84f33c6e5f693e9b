"""Registry: duplicates refused, wildcard listing, close-match errors, keyword checks."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

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


def test_a_registry_imports_its_modules_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing the registry costs nothing; its modules register when it is first used, and
    a user's class that takes a built-in name is refused at once, not at a later import."""
    package = tmp_path / "lazyzoo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "home.py").write_text(
        "from convzoo.registry import Registry\n"
        "ZOO = Registry('layer', modules=('lazyzoo.layers',))\n"
    )
    (package / "layers.py").write_text(
        "from torch import nn\nfrom lazyzoo.home import ZOO\n\n"
        "@ZOO.register('builtin')\nclass Builtin(nn.Module):\n    '''A built-in.'''\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        zoo = importlib.import_module("lazyzoo.home").ZOO
        assert "lazyzoo.layers" not in sys.modules
        with pytest.raises(ValueError, match="'builtin' is already registered .by Builtin"):

            @zoo.register("builtin")
            class Mine(nn.Module):
                """Mine."""

        assert "lazyzoo.layers" in sys.modules and zoo.list() == [("builtin", "A built-in.")]
    finally:
        for name in ("lazyzoo", "lazyzoo.home", "lazyzoo.layers"):
            sys.modules.pop(name, None)
