"""What the contract's cells are made of: one target of each kind a user names, and the
helpers that spread a command line over the output formats."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence

from convzoo.catalogue import config_paths
from convzoo.cli_parser import parser
from tests.contract.checks import like_baseline, ok, shows
from tests.contract.read import FORMATS
from tests.contract.run import Argv, Cell, Expect, Setup
from tests.helpers import ROOT

Table = dict[str, list[Cell]]
"""One command's cells by option (a positional argument by its name)."""

CONFIG = "encoder_decoder"  # a packaged config: 3x64x64, three levels of modules, batch norm
TOKENS = f"{ROOT / 'tests' / 'data' / 'token_model.py'}:TokenModel"  # takes int64 token ids
TARGETS: dict[str, tuple[Argv, str]] = {  # kind -> (its argv, with a small input; its name)
    "config": ((CONFIG,), CONFIG),
    "config path": ((str(ROOT / "configs" / f"{CONFIG}.yaml"),), CONFIG),
    "user yaml": (("user.yaml",), "user_net"),
    "torchvision classifier": (("torchvision:resnet18", "--input", "3x32x32"), ""),
    "torchvision detector": (("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",), ""),
    "torchvision segmentation": (
        ("torchvision:lraspp_mobilenet_v3_large", "--input", "3x64x64"),
        "",
    ),
    "torchvision video": (("torchvision:r3d_18", "--input", "3x4x32x32"), ""),
    "timm": (("timm:test_vit",), ""),
    "file": (("usernet.py:Net",), ""),
    "module": (("usermod:Net",), ""),
}
TARGETS = {kind: (argv, name or argv[0]) for kind, (argv, name) in TARGETS.items()}
CONFIGS = ("config", "config path", "user yaml")  # the kinds build takes
COMPARE = "bottleneck_vs_two_3x3"  # a packaged compare: config
COMPARES: dict[str, tuple[Argv, tuple[str, ...]]] = {  # kind -> (argv, its designs)
    "config": ((COMPARE,), ("two_3x3", "bottleneck")),
    "config path": ((str(config_paths("compare")[COMPARE]),), ("two_3x3", "bottleneck")),
    "user yaml": (("user_compare.yaml",), ("wide", "stacked")),
}
PLOTS = ("png", "svg", "pdf", "jpg")


def old(name: str) -> Setup:
    """An existing file ``name`` in the cell's directory (what ``--force`` replaces)."""
    return ((name, "an old file\n"),)


def per_format(
    argv: Argv,
    expect: Expect,
    base: Argv | None = None,
    base_format: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Cell]:
    """``argv --format F`` for each of ``formats``; the baseline ``base --format F`` (or
    ``base --format base_format``)."""
    return [
        Cell(
            (*argv, "--format", fmt),
            expect,
            None if base is None else (*base, "--format", base_format or fmt),
        )
        for fmt in formats
    ]


def subparsers(top: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))


def documented(command: str) -> list[str]:
    """The options ``command --help`` lists (``""``: ``convzoo`` itself)."""
    top = parser()
    found = top if not command else subparsers(top).choices[command]
    return [
        max(a.option_strings, key=len)
        for a in found._actions
        if a.option_strings and a.help != argparse.SUPPRESS
    ]


def common(command: str, base: Argv) -> Table:
    """``--help`` lists every documented option; ``--debug`` with no bug: the same output."""
    return defaultdict(
        list,
        {
            "--help": [Cell((command, "--help"), ok(shows(*documented(command))))],
            "--debug": [Cell((*base, "--debug"), ok(like_baseline), base)],
        },
    )
