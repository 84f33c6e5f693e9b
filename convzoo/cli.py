"""The ``convzoo`` command line: ``list`` the registry, ``build`` a config.

Every expected failure (bad config, unknown name, malformed size) prints one line to
stderr and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from tabulate import tabulate

from convzoo.errors import ConvZooError
from convzoo.registry import LAYERS

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(
    name: str,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register a sub-command implementation under ``name``."""

    def decorator(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return decorator


def parse_size(text: str) -> tuple[int, ...]:
    """``"3x224x224"`` -> ``(3, 224, 224)``; a clear error otherwise."""
    try:
        size = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        size = ()
    if not size or any(v < 1 for v in size):
        raise ConvZooError(
            f"--input must look like 3x224x224 (positive ints joined by x), got {text!r}"
        )
    return size


def registry_table(pattern: str = "*", category: str | None = None, fmt: str = "simple") -> str:
    """The registry as a table: name, category, description, parameter formula."""
    rows = []
    for name, description in LAYERS.list(pattern, category):
        entry = LAYERS.get(name)
        formula = f"`{entry.params_formula}`" if fmt == "github" else entry.params_formula
        rows.append(
            (f"`{name}`" if fmt == "github" else name, entry.category, description, formula)
        )
    return tabulate(rows, headers=["name", "category", "what it is", "parameters"], tablefmt=fmt)


@command("list")
def cmd_list(args: argparse.Namespace) -> int:
    fmt = {"table": "simple", "markdown": "github"}[args.format]
    print(registry_table(args.pattern, args.category, fmt))
    return 0


@command("build")
def cmd_build(args: argparse.Namespace) -> int:
    from convzoo.builder import build

    model = build(args.config, parse_size(args.input) if args.input else None)
    params = sum(p.numel() for p in model.parameters())
    print(model)
    print(f"{model.config_name}: {params:,} parameters, input {model.input_size}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="convzoo", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list registered layers and blocks")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'depth*'")
    p.add_argument("--category", choices=["conv", "basic", "block", "capsule"])
    p.add_argument("--format", choices=["table", "markdown"], default="table")
    p = sub.add_parser("build", help="build a YAML config and print the model")
    p.add_argument("config", help="path to a YAML config")
    p.add_argument("--input", help="input size CxHxW, overrides the config's input")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConvZooError as exc:
        print(f"convzoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `convzoo list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
