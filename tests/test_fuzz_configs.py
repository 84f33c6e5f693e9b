"""Fuzzed configs: random corruptions of the shipped configs end in a valid model or a
one-line ConfigError (exit code 2 from the CLI); never a traceback, a hang or a blow-up."""

from __future__ import annotations

import copy
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import convzoo
from convzoo.cli import main
from convzoo.config import ConfigError
from convzoo.limits import MAX_CONFIG_BYTES, MAX_SIZE, MAX_YAML_NODES
from tests.conftest import COUNTS

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SMALL = ["seed_64x64_5x5", "seed_7x7_alternatives", "encoder_decoder", "capsnet_mnist"]
JUNK: list[Any] = [
    "",
    "abc",
    "same",
    -1,
    0,
    10**15,
    2.5,
    None,
    True,
    [],
    [1, 2, 3],
    {"a": 1},
    "\x00\xff",
    "conv",
    7,
    [3, 3],
    "𝔲𝔫𝔦𝔠𝔬𝔡𝔢",
    float("nan"),
]


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every (container path, key) in a nested config."""
    found = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths(value, (*prefix, key)))
    return found


def parent(config: Any, path: tuple) -> Any:
    for key in path[:-1]:
        config = config[key]
    return config


def corrupt(config: dict, rng: random.Random) -> dict:
    config = copy.deepcopy(config)
    spots = paths(config)
    path = rng.choice(spots)
    holder, key = parent(config, path), path[-1]
    action = rng.randrange(7)
    if action == 0:
        holder[key] = rng.choice(JUNK)
    elif action == 1 and isinstance(holder, dict):
        del holder[key]
    elif action == 2 and isinstance(holder, dict):
        holder[rng.choice(["kernal_size", "stride2", "type", "repeat", "block", "merge"])] = (
            rng.choice(JUNK)
        )
    elif action == 3:
        holder[key] = {
            "sequential": [holder[key]] if not isinstance(holder[key], list) else holder[key]
        }
    elif action == 4 and isinstance(holder, dict):
        holder["repeat"] = rng.choice([10**9, 1001, -5, 3])
    elif action == 5:
        nested: Any = {"type": "identity"}
        for _ in range(rng.choice([5, 40, 200])):
            nested = {"sequential": [nested]}
        config["layers"].insert(0, nested)
    else:
        holder[key] = rng.choice([10**6, 10**12, 2**31, 0, -3])
    return config


def check(config: Any) -> str:
    """Build; return 'ok' or 'error', failing on anything but a one-line ConfigError."""
    try:
        convzoo.build(config)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc), repr(str(exc))
        return "error"
    return "ok"


@pytest.mark.parametrize("name", SMALL)
def test_structural_corruptions(name: str) -> None:
    base = convzoo.load_config(CONFIGS / f"{name}.yaml")
    rng = random.Random(name)
    outcomes = [check(corrupt(base, rng)) for _ in range(60)]
    COUNTS["fuzzed configs"] += len(outcomes)
    assert "error" in outcomes  # the corruptions do bite


def test_text_corruptions(tmp_path: Path) -> None:
    rng = random.Random(7)
    texts = [(CONFIGS / f"{n}.yaml").read_text() for n in SMALL]
    cases = 0
    for i in range(80):
        text = rng.choice(texts)
        cut = rng.randrange(len(text))
        kind = i % 4
        if kind == 0:
            data = text[:cut].encode()
        elif kind == 1:
            data = (
                text[:cut]
                + rng.choice(
                    ["{", "]", ":", "- [", "\t", "&a", "*b", "!!python/object:os.system", "%"]
                )
                + text[cut:]
            ).encode()
        elif kind == 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        elif i == 3:
            data = ("layers: " + "[" * 5000).encode()
        else:
            data = "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(200)).encode()
        path = tmp_path / f"case{i}.yaml"
        path.write_bytes(data)
        try:
            convzoo.build(path)
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
        cases += 1
    COUNTS["fuzzed configs"] += cases


def test_yaml_alias_bomb_is_bounded(tmp_path: Path) -> None:
    layer = "{type: identity}"
    lines = [f"a0: &a0 [{layer}]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [{', '.join([f'{{sequential: *a{i - 1}}}'] * 9)}]")
    text = "\n".join(lines).replace("a0:", "blocks: {}\nx0:", 1)
    config = yaml.safe_load(text.replace("x0:", "a0:"))
    bomb = {"input": [1, 4, 4], "layers": config[f"a{11}"]}
    with pytest.raises(ConfigError, match="more than 10000 layers"):
        convzoo.build(bomb)
    COUNTS["fuzzed configs"] += 1


@pytest.mark.parametrize(
    "text",
    [
        "input: [3, 8, 8]\nlayers: [{type: conv, out_channels: 1000000000000, kernel_size: 3}]",
        "input: [3, 8, 8]\nlayers: [{type: conv, out_channels: 4, kernel_size: 3, "
        "repeat: 1000000}]",
        "input: [3, 100000000, 100000000]\nlayers: [{type: locally_connected, out_channels: 4, "
        "kernel_size: 3}]",
        "\x00\x01\x02binary",
        "layers: [",
    ],
)
def test_cli_exit_code_2_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["build", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convzoo: error: ")
    COUNTS["fuzzed configs"] += 1


# -- hostile inputs (issue 10): each case exits 2 with one short line, fast ------------------
LINE_CAP = 400  # characters of the one error line, whatever the input
ANCHORS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)  # *i has 9**9 leaves but costs 9 nodes: a ~450-byte alias bomb
BOMB_AT = {
    "kernel_size": "layers: [{type: conv, out_channels: 2, kernel_size: *i}]",
    "out_channels": "layers: [{type: conv, out_channels: *i, kernel_size: 3}]",
    "bias": "layers: [{type: conv, out_channels: 2, kernel_size: 3, bias: *i}]",
    "conv_args": "layers: [{type: conv_norm_act, out_channels: 2, conv_args: *i}]",
    "name": "name: *i\nlayers: [{type: identity}]",
    "layer name": "layers: [{type: identity, name: *i}]",
    "repeat": "layers: [{type: identity, repeat: *i}]",
    "type": "layers: [{type: *i}]",
    "layer spec": "layers: [*i]",
    "layers": "layers: *i",
    "input": "input2: *i\nlayers: [{type: identity}]",
    "block": "layers: [{block: *i}]",
    "sequential": "layers: [{sequential: *i}]",
    "residual": "layers: [{residual: *i}]",
    "shortcut": "layers: [{residual: [{type: identity}], shortcut: *i}]",
    "activation": "layers: [{residual: [{type: identity}], activation: *i}]",
    "parallel": "layers: [{parallel: *i}]",
    "merge": "layers: [{parallel: [[{type: identity}], [{type: identity}]], merge: *i}]",
    "description": "description: *i\nlayers: [{type: identity}]",
    "unknown keyword": "layers: [{type: conv, out_channels: 2, kernel_size: 3, extra: *i}]",
}


def bomb_config(body: str) -> str:
    """The anchors under a block (defining them), then ``body`` using ``*i``."""
    anchors = "".join(f"  {line}\n" for line in ANCHORS.splitlines())
    if body.startswith("input2"):  # the input itself: no other input key
        return f"blocks:\n{anchors}input: *i\nlayers: [{{type: identity}}]\n"
    return f"blocks:\n{anchors}input: [3, 8, 8]\n{body}\n"


def cli_error(capsys: pytest.CaptureFixture[str], argv: list[str], seconds: float = 5.0) -> str:
    """Run the CLI in-process; require exit 2, nothing on stdout, one short line, fast."""
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("convzoo: error: "), err
    assert len(err) < LINE_CAP and "Traceback" not in err, err
    assert elapsed < seconds, (elapsed, argv)
    COUNTS["hostile inputs"] += 1
    return err


@pytest.mark.parametrize("where", sorted(BOMB_AT))
def test_alias_bomb_at_every_position(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb_config(BOMB_AT[where]))
    assert path.stat().st_size < 1000
    cli_error(capsys, ["build", str(path)], seconds=2.0)


def test_special_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)  # opening it for reading would block forever
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # sparse: 100 MB that take no disk
        handle.truncate(100 * 2**20)
    folder = tmp_path / "d.yaml"
    folder.mkdir()
    cases = {"/dev/zero": "not a regular file", str(fifo): "not a regular file"}
    cases.update({str(big): "over the limit of 1,048,576", str(folder): "a directory"})
    for path, message in cases.items():
        for command in ("build", "report", "compare", "rf"):
            assert message in cli_error(capsys, [command, path], seconds=2.0)


def test_config_just_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("description: '" + "x" * MAX_CONFIG_BYTES + "'\nlayers: []\n")
    with pytest.raises(ConfigError, match="over the limit"):
        convzoo.load_config(path)


def int_leaves(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to every int (not bool) in a config."""
    return [
        path
        for path in paths(node, prefix)
        if isinstance(parent(node, (*path, None)), int)
        and not isinstance(parent(node, (*path, None)), bool)
    ]


@pytest.mark.parametrize("name", SMALL)
def test_huge_number_at_every_integer_field(name: str) -> None:
    base = convzoo.load_config(CONFIGS / f"{name}.yaml")
    huge = [9223372036854775808, 2**64, 10**100, MAX_SIZE + 1, -(2**63) - 1]
    leaves = int_leaves(base)
    assert leaves
    for i, path in enumerate(leaves):
        config = copy.deepcopy(base)
        parent(config, path)[path[-1]] = huge[i % len(huge)]
        start = time.perf_counter()
        with pytest.raises(ConfigError) as info:
            convzoo.build(config, meta=True)
        text = str(info.value)
        assert "\n" not in text and len(text) < LINE_CAP and time.perf_counter() - start < 2
    COUNTS["hostile inputs"] += len(leaves)


DUPLICATES = {
    "input: [3, 8, 8]\ninput: [3, 8, 8]\nlayers: [{type: identity}]": ("input", 2, 1),
    "input: [3, 8, 8]\nlayers:\n  - type: conv\n    out_channels: 2\n    kernel_size: 3\n"
    "    kernel_size: 5\n": ("layers[0].kernel_size", 6, 5),
    "input: [3, 8, 8]\nblocks:\n  b: [{type: identity, name: x, name: y}]\nlayers: [{block: b}]": (
        "blocks.b[0].name",
        3,
        33,
    ),
}


@pytest.mark.parametrize("text", list(DUPLICATES))
def test_duplicate_keys_are_refused_with_their_location(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    where, line, column = DUPLICATES[text]
    err = cli_error(capsys, ["build", str(path)])
    assert f"{path}: {where}: line {line}, column {column}: duplicate key" in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "identity", "name": "conv\n"}, "expected an identifier"),
        ({"type": "identity", "name": "\x1b[31mred"}, "expected an identifier"),
        ({"type": "identity", "name": "a" * 65}, "at most 64 characters"),
        ({"type": "identity", "name": "a b"}, "expected an identifier"),
        ({"type": "conv", "out_channels": 2, "kernel_size": 3, "bias": "no"}, "true or false"),
        ({"type": "conv", "out_channels": 2, "kernel_size": 3, "bias": 2}, "true or false"),
        ({"type": "conv", "out_channels": 2, "kernel_size": 3, "bias": "false"}, "true or"),
        ({"type": "conv", "out_channels": True, "kernel_size": 3}, "found True (bool)"),
        ({"type": "conv", "out_channels": 2, "kernel_size": [3, True]}, "found True (bool)"),
        ({"type": "activation", "fn": "relu" * 100}, "at most 64 characters"),
        ({"type": "conv", "out_channels": 2, "kernel_size": float("inf")}, "finite number"),
    ],
)
def test_hostile_values_and_names(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        convzoo.build({"input": [3, 8, 8], "layers": [spec]}, meta=True)
    assert message in str(info.value) and "\n" not in str(info.value)
    COUNTS["hostile inputs"] += 1


@pytest.mark.parametrize("name", [["a"], "x\x1b[2J", "a\n", "", "a" * 65, 7])
def test_hostile_model_names(name: object) -> None:
    with pytest.raises(ConfigError, match=r"^name: expected a name"):
        convzoo.build({"name": name, "input": [3, 8, 8], "layers": [{"type": "identity"}]})


def test_bias_is_a_real_boolean() -> None:
    layer = {"type": "conv", "out_channels": 2, "kernel_size": 3}
    with_bias = convzoo.build({"input": [3, 8, 8], "layers": [{**layer, "bias": True}]})
    without = convzoo.build({"input": [3, 8, 8], "layers": [{**layer, "bias": False}]})
    assert with_bias.conv1.bias is not None and without.conv1.bias is None


def test_projection_shortcuts_count_against_the_limit() -> None:
    """The issue's case: 32000 channels with a projection shortcut built 2,048,064,000
    parameters in 8.7 GB; the body alone (a 1x1 conv) is under the limit."""
    config = {
        "input": [32000, 1, 1],
        "layers": [
            {
                "residual": [{"type": "pointwise", "out_channels": 32000, "bias": False}],
                "shortcut": "projection",
            }
        ],
    }
    with pytest.raises(ConfigError, match=r"projection shortcut brings the model to 2,048,064,000"):
        convzoo.build(config)  # refused on meta, before anything real


def test_yaml_node_count_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("input: [3, 8, 8]\ndescription: [" + "1," * 520_000 + "]\n")
    assert MAX_CONFIG_BYTES - 2**16 < path.stat().st_size < MAX_CONFIG_BYTES
    start = time.perf_counter()  # the parse stops at the first node over the limit
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES:,} YAML nodes"):
        convzoo.load_config(path)
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("design", ["a b", "x\x1b[0m", "n" * 65])
def test_hostile_design_names(design: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "cmp.yaml"
    layers = [{"type": "identity"}]
    path.write_text(yaml.safe_dump({"input": [1, 4, 4], "compare": {"ok": layers, design: layers}}))
    assert "compare: expected an identifier" in cli_error(capsys, ["compare", str(path)])


def test_a_hostile_file_name_stays_on_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad\nname\x1b[2J.yaml"
    path.write_text("layers: [")
    assert "'" in cli_error(capsys, ["build", str(path)])
