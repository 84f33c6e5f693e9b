"""Config loading and every config error: each says where, what was expected and found."""

from __future__ import annotations

from pathlib import Path

import pytest

import convzoo
from convzoo.config import MAX_DEPTH, MAX_REPEAT, ConfigError


def build_error(config: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        convzoo.build(config, **kwargs)
    return str(info.value)


def cfg(*layers: dict, **top) -> dict:
    return {"input": [3, 16, 16], "layers": list(layers), **top}


CONV = {"type": "conv", "out_channels": 4, "kernel_size": 3}


def test_unknown_type_suggests() -> None:
    text = build_error(cfg(CONV, {"type": "depthwize"}))
    assert text.startswith("layers[1].type: unknown layer type 'depthwize'")
    assert "'depthwise'" in text


def test_unknown_keyword_suggests_and_lists() -> None:
    text = build_error(cfg({**CONV, "kernal_size": 3}))
    assert text.startswith("layers[0].kernal_size: conv has no keyword 'kernal_size'")
    assert "did you mean 'kernel_size'" in text and "accepts in_channels" in text


def test_missing_keyword() -> None:
    text = build_error(cfg({"type": "conv", "kernel_size": 3}))
    assert text.startswith("layers[0]: conv needs out_channels")


def test_wrong_value_type() -> None:
    text = build_error(cfg({**CONV, "stride": "two"}))
    assert text.startswith("layers[0].stride: conv: stride must be an int or (h, w) pair")
    assert "'two'" in text


def test_channel_mismatch_names_both_shapes() -> None:
    text = build_error(cfg(CONV, {**CONV, "in_channels": 8}))
    assert text.startswith("layers[1].in_channels: conv expects in_channels=8")
    assert "(4, 14, 14)" in text and "in_channels=4" in text


def test_spatial_size_below_one() -> None:
    text = build_error(cfg(*[{**CONV, "kernel_size": 5}] * 4))
    assert text.startswith("layers[3]: conv: kernel_size (5, 5)")
    assert "padded input is only 4x4" in text


def test_merge_shape_mismatch() -> None:
    text = build_error(cfg({"parallel": [[CONV], [{**CONV, "kernel_size": 5}]], "merge": "sum"}))
    assert text.startswith("layers[0].merge: cannot sum branches with output shapes")
    assert "(4, 14, 14)" in text and "(4, 12, 12)" in text


def test_identity_shortcut_shape_mismatch() -> None:
    text = build_error(cfg({"residual": [CONV], "shortcut": "identity"}))
    assert text.startswith("layers[0].shortcut: identity shortcut needs the body to keep")


def test_undefined_and_cyclic_blocks() -> None:
    text = build_error(cfg({"block": "stemm"}, blocks={"stem": [CONV]}))
    assert text.startswith("layers[0].block: undefined block 'stemm'; did you mean 'stem'")
    text = build_error(cfg({"block": "a"}, blocks={"a": [{"block": "b"}], "b": [{"block": "a"}]}))
    assert "block cycle: a -> b -> a" in text


def test_limits_on_repeat_and_nesting() -> None:
    text = build_error(cfg({**CONV, "padding": "same", "repeat": MAX_REPEAT + 1}))
    assert text.startswith(f"layers[0].repeat: expected an int from 1 to {MAX_REPEAT}")
    nested: dict = CONV
    for _ in range(MAX_DEPTH + 2):
        nested = {"sequential": [nested]}
    assert f"nesting deeper than {MAX_DEPTH}" in build_error(cfg(nested))


def test_structure_errors() -> None:
    assert "missing the 'layers' list" in build_error({"input": [3, 8, 8]})
    assert "layers: expected a non-empty list" in build_error({"input": [3, 8, 8], "layers": 5})
    assert "exactly one of type, block" in build_error(cfg({"type": "conv", "block": "x"}))
    assert "missing 'input" in build_error({"layers": [CONV]})
    assert "input: expected a list of positive ints" in build_error(cfg(CONV, input=[3, 0, 8]))
    assert "did you mean 'layers'" in build_error({"input": [3, 8, 8], "layer": [CONV]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "config is empty"),
        ("- just\n- a list\n", "found list"),
        ("layers: [\n  {type: conv\n", "line 3"),
        ("a: b: c", "line 1, column 5: YAML syntax error"),
    ],
)
def test_yaml_problems(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        convzoo.load_config(path)
    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)


def test_binary_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        convzoo.load_config(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        convzoo.load_config(tmp_path / "missing.yaml")


def test_errors_from_files_carry_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("input: [3, 8, 8]\nlayers:\n  - {type: conv, out_channels: 2, kernel_size: 0}")
    with pytest.raises(ConfigError) as info:
        convzoo.build(path)
    assert str(info.value) == (
        f"{path}: layers[0].kernel_size: conv: kernel_size must be positive, got (0, 0)"
    )
