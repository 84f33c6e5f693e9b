"""The ``convzoo`` command line: ``list`` the registry, ``build`` a config, ``report`` costs.

Every expected failure (bad config, unknown name, malformed size) prints one line to
stderr and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from convzoo.errors import ConvZooError
from convzoo.registry import LAYERS, close_matches

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

TORCHVISION = "torchvision:"
TORCHVISION_INPUT = (3, 224, 224)
# Builders whose default init warns and is slow (scipy truncnorm); random weights suffice.
NO_INIT_WEIGHTS = {"googlenet", "inception_v3"}

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


def count(text: str, minimum: int) -> int:
    """An int >= ``minimum`` for argparse; its error exits with status 2."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an int >= {minimum}, got {text!r}")
    return value


def torchvision_model(name: str) -> nn.Module:
    """``torchvision.models.get_model(name, weights=None)``: random weights, no download."""
    import torchvision

    names = torchvision.models.list_models()
    if name not in names:
        hints = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hints = hints or close_matches(name, names)
        hint = f"; did you mean {', '.join(TORCHVISION + h for h in hints)}?" if hints else ""
        raise ConvZooError(
            f"unknown torchvision model {name!r}{hint} "
            f"(torchvision.models.list_models() has all {len(names)})"
        )
    kwargs: dict[str, object] = {"weights": None}
    if name in NO_INIT_WEIGHTS:
        kwargs["init_weights"] = False
    try:
        return torchvision.models.get_model(name, **kwargs)
    except Exception as exc:
        raise ConvZooError(f"torchvision cannot build {name!r}: {exc}") from None


def load_target(
    target: str, size: tuple[int, ...] | None
) -> tuple[nn.Module, tuple[int, ...], str]:
    """``(model, input size, display name)`` for a config path or ``torchvision:NAME``.

    torchvision models default to a 3x224x224 input, configs to their ``input``.
    """
    if target.startswith(TORCHVISION):
        name = target[len(TORCHVISION) :]
        return torchvision_model(name), size or TORCHVISION_INPUT, target
    from convzoo.builder import build

    if not Path(target).is_file():
        raise ConvZooError(
            f"no config file {target!r} (a target is a YAML config path or torchvision:NAME)"
        )
    model = build(target, size)
    return model, tuple(model.input_size), model.config_name


def emit(text: str, output: str | None) -> None:
    """Print ``text`` (one trailing newline), or write it to the file ``output``."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConvZooError(f"cannot write {output!r}: {exc.strerror or exc}") from None


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


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    from convzoo.analysis.analyzer import analyze

    size = parse_size(args.input) if args.input else None
    model, size, name = load_target(args.target, size)
    report = analyze(model, size, batch_size=args.batch, receptive_fields=not args.no_fields)
    report.target = name
    check = None
    if args.check_fvcore:
        from convzoo.analysis.peers import compare_fvcore

        check = compare_fvcore(model, size).to_text()
    if args.format == "json":
        text = report.to_json()
    elif args.format == "csv":
        text = report.to_csv()
    else:
        text = report.to_table(args.format, args.depth)
    machine = args.format in ("json", "csv")
    if check is not None and not machine:
        text = f"{text}\n\n{check}"
    emit(text, args.output)
    if check is not None and machine:  # keep stdout parseable: the check goes elsewhere
        print(check, file=sys.stderr if args.output is None else sys.stdout)
    return 0


@command("compare")
def cmd_compare(args: argparse.Namespace) -> int:
    from convzoo.compare import compare, compare_config, rows_table

    options = {
        "batch": args.batch,
        "bench": args.bench or args.train,
        "train": args.train,
        "progress": args.bench or args.train,
    }
    if args.config:
        rows = compare_config(args.config, **options)
        title = f"designs of {args.config}"
    else:
        variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
        rows = compare(
            args.kernel,
            args.in_channels,
            args.out_channels,
            args.size,
            variants=variants,
            padding=args.padding,
            bias=not args.no_bias,
            **options,
        )
        title = (
            f"{args.kernel}x{args.kernel} conv and its replacements, {args.in_channels}->"
            f"{args.out_channels} channels, {args.size}x{args.size}, batch {args.batch}"
        )
    print(rows_table(rows, args.format))
    if args.plot:
        from convzoo.plots import plot_comparison

        plot_comparison(rows, args.plot, title)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


@command("rf")
def cmd_rf(args: argparse.Namespace) -> int:
    from convzoo.analysis.analyzer import analyze
    from convzoo.analysis.receptive.describe import parse_unit, pick_layer, unit_text
    from convzoo.analysis.render import field_text

    size = parse_size(args.input) if args.input else None
    unit = parse_unit(args.unit) if args.unit else None
    model, size, name = load_target(args.target, size)
    report = analyze(model, size)
    names = [row.name for row in report.layers]
    if args.layer not in names:
        from convzoo.registry import close_matches

        hints = close_matches(args.layer, [n for n in names if n])
        raise ConvZooError(
            f"no layer named {args.layer!r} in {name}"
            + (f"; did you mean {', '.join(map(repr, hints))}?" if hints else "")
        )
    row, remark = pick_layer(report, args.layer)
    rf = row.receptive_field or {}
    if remark:
        print(f"{name}: {remark}")
    print(
        f"{name} / {row.name or '(output)'}: output {row.output_shape}, receptive field "
        f"{field_text(rf)}; size {rf.get('size')}, stride {rf.get('stride')}, start "
        f"{rf.get('start')}, period {rf.get('period')} (input pixels, per axis)"
    )
    if unit is not None:
        print(unit_text(row, unit))
    if args.plot:
        from convzoo.plots import plot_receptive_field

        if len(size) != 3:
            raise ConvZooError(f"--plot needs a CxHxW input, got {'x'.join(map(str, size))}")
        chw = (size[0], size[1], size[2])
        plot_receptive_field(model, chw, args.plot, row.name, args.samples, name, unit, remark)
        print(f"plot written to {args.plot}", file=sys.stderr)
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
    p = sub.add_parser(
        "report",
        help="params, MACs, shapes, receptive fields and memory of a model, layer by layer",
    )
    p.add_argument("target", help="a YAML config path, or torchvision:NAME (random weights)")
    p.add_argument(
        "--input", help="input size CxHxW (default: the config's input; 3x224x224 for torchvision)"
    )
    p.add_argument("--batch", type=lambda t: count(t, 1), default=1, help="batch size (1)")
    p.add_argument(
        "--depth",
        type=lambda t: count(t, 0),
        help="table rows down to this module depth (0: the model only); table/markdown only",
    )
    p.add_argument("--format", choices=["table", "markdown", "json", "csv"], default="table")
    p.add_argument("--output", metavar="FILE", help="write the report to FILE, not stdout")
    p.add_argument(
        "--check-fvcore",
        action="store_true",
        help="also count with fvcore (batch 1, eval) and explain each difference",
    )
    p.add_argument(
        "--no-fields", action="store_true", help="skip receptive fields (about 2x faster)"
    )
    p = sub.add_parser("compare", help="designs replacing a k x k conv: theory and speed")
    p.add_argument("config", nargs="?", help="a YAML config with a 'compare:' mapping")
    p.add_argument("--kernel", type=lambda t: count(t, 3), default=7, help="k (7)")
    p.add_argument("--in-channels", type=lambda t: count(t, 1), default=64, help="(64)")
    p.add_argument("--out-channels", type=lambda t: count(t, 1), default=64, help="(64)")
    p.add_argument("--size", type=lambda t: count(t, 1), default=56, help="input H = W (56)")
    p.add_argument("--batch", type=lambda t: count(t, 1), default=1, help="batch size (1)")
    p.add_argument("--variants", help="comma-separated designs (default: the headline set)")
    p.add_argument("--padding", choices=["same", "valid"], default="same")
    p.add_argument("--no-bias", action="store_true", help="designs without biases")
    p.add_argument("--bench", action="store_true", help="also measure forward latency")
    p.add_argument("--train", action="store_true", help="also measure forward + backward")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of params, MACs, latency")
    p.add_argument("--format", choices=["table", "markdown", "json", "csv"], default="table")
    p = sub.add_parser("rf", help="receptive field of a layer; --plot draws it with the ERF")
    p.add_argument("target", help="a YAML config path, or torchvision:NAME (random weights)")
    p.add_argument("--input", help="input size CxHxW (default as for report)")
    p.add_argument(
        "--layer",
        default="",
        help="module name (default: the model output, or its deepest spatial layer)",
    )
    p.add_argument(
        "--unit", metavar="I,J[,K]", help="print the exact input pixels of this output unit"
    )
    p.add_argument(
        "--plot", metavar="FILE.png", help="exact field of a unit over the effective one"
    )
    p.add_argument(
        "--samples",
        type=lambda t: count(t, 1),
        default=8,
        help="random inputs averaged for the effective field (8)",
    )
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
