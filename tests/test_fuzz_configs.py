"""Fuzzed configs: random corruptions of the shipped configs end in a valid model or a
one-line ConfigError (exit code 2 from the CLI); never a traceback, a hang or a blow-up."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

import convzoo
from convzoo.cli import main
from convzoo.config import ConfigError
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
