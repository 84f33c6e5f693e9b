"""The ``convzoo`` command line: ``list`` the registry, ``build`` a config, ``report`` costs.

Every expected failure (bad config, unknown name, malformed size, a resource limit)
prints one line to stderr and exits with status 2; an internal bug prints a one-line
summary and exits with status 1 (``--debug`` shows its traceback); never a traceback
otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from convzoo.arguments import budget, check_command, parse_size
from convzoo.catalogue import registry_table
from convzoo.cli_parser import COMPARE_DEFAULTS, DESIGN_FLAGS, UPSAMPLE_DEFAULTS, parser
from convzoo.errors import ConvZooError, first_line, render
from convzoo.limits import check_memory

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(
    name: str,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register a sub-command implementation under ``name``."""

    def decorator(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return decorator


def load_target(
    target: str, size: tuple[int, ...] | None, kwargs: str | None = None
) -> tuple[nn.Module, tuple[int, ...], str]:
    """``(model, input size, display name)`` of a target (see :mod:`convzoo.targets`)."""
    from convzoo.targets import parse_kwargs, resolve

    found = resolve(target, (size,) if size else (), parse_kwargs(kwargs))
    return found.model, found.input_size[0], found.name


def real(model: nn.Module, target: str, size: tuple[int, ...], kwargs: str | None) -> nn.Module:
    """``model`` with real weights: rebuilt from ``target`` when it is on the meta device."""
    if any(p.is_meta for p in model.parameters()):
        return load_target(target, size, kwargs)[0]
    return model


def emit(text: str, output: str | None) -> None:
    """Print ``text`` (one trailing newline), or write it to the file ``output``."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConvZooError(f"cannot write {render(output)}: {exc.strerror or exc}") from None


@command("list")
def cmd_list(args: argparse.Namespace) -> int:
    fmt = {"table": "simple", "markdown": "github"}[args.format]
    width = shutil.get_terminal_size((100, 24)).columns if fmt == "simple" else None
    print(registry_table(args.pattern, args.category, fmt, width))
    return 0


@command("build")
def cmd_build(args: argparse.Namespace) -> int:
    from convzoo.builder import build
    from convzoo.targets import packaged_configs

    config: str | Path = packaged_configs().get(args.config, args.config)
    model = build(config, parse_size(args.input) if args.input else None, meta=True)
    params = sum(p.numel() for p in model.parameters())
    print(model)
    print(f"{model.config_name}: {params:,} parameters, input {model.input_size}")
    return 0


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    import torch

    from convzoo import views
    from convzoo.analysis.analyzer import analyze
    from convzoo.targets import parse_kwargs, resolve

    layer_flags = [f for f, v in (("--sort", args.sort), ("--top", args.top)) if v is not None]
    layer_flags += ["--depth"] if args.depth is not None else []
    if args.by_op and layer_flags:
        raise ConvZooError(f"--by-op lists operators, not layers: drop {', '.join(layer_flags)}")
    sizes = tuple(parse_size(text) for text in args.input or ())
    target = resolve(args.target, sizes, parse_kwargs(args.kwargs))
    model, sizes = target.model, target.input_size
    size = sizes[0] if len(sizes) == 1 else sizes
    report = analyze(
        model,
        size,
        batch_size=args.batch,
        dtype=getattr(torch, args.dtype),
        train=args.train,
        receptive_fields=not args.no_fields,
        optimizer=args.optimizer,
        **budget(args),
    )
    report.target = target.name
    if args.layer:
        report = views.subtree(report, model, args.layer)
    check = None
    if args.check_fvcore:
        from convzoo.analysis.peers import compare_fvcore

        if len(sizes) != 1:
            raise ConvZooError("--check-fvcore takes one --input")
        totals = report.totals  # fvcore runs a real forward at batch 1: estimate it first
        needed = totals.param_bytes + totals.activation_bytes // args.batch
        check_memory(needed + 4 * math.prod(sizes[0]), args.max_memory, "--check-fvcore")
        model = real(model, args.target, sizes[0], args.kwargs)
        check = compare_fvcore(model, sizes[0], args.max_memory).to_text()
    if args.by_op:
        text = views.operators_text(report, args.format)
    elif args.format == "json":
        text = report.to_json()
    elif args.format == "csv":
        text = views.csv_with_totals(report)
    elif args.sort or args.top:
        text = views.top_table(report, args.sort or "macs", args.top, args.format, args.depth)
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
    from convzoo.compare import compare, compare_config, compare_upsample
    from convzoo.measure import rows_table

    if args.plot:
        from convzoo.plots import output_path

        output_path(args.plot, args.force)  # refused before any work
    options = {
        "batch": args.batch,
        "bench": args.bench or args.train,
        "train": args.train,
        "progress": (args.bench or args.train) and sys.stderr.isatty(),  # quiet when piped
        "max_memory": args.max_memory,
    }
    given = [
        flag for flag, dest in DESIGN_FLAGS.items() if getattr(args, dest) not in (None, False)
    ]
    if args.config and given:
        raise ConvZooError(
            f"compare {args.config} takes its designs from the config: "
            f"{', '.join(given)} do not apply (drop them, or drop the config)"
        )
    defaults = UPSAMPLE_DEFAULTS if args.upsample else COMPARE_DEFAULTS
    for dest, value in defaults.items():
        setattr(args, dest, value if getattr(args, dest) is None else getattr(args, dest))
    if args.config:
        rows = compare_config(args.config, **options)
        title = f"designs of {args.config}"
    elif args.upsample:
        k, size = args.kernel, args.size
        rows = compare_upsample(
            args.upsample, k, args.in_channels, args.out_channels, size,
            bias=not args.no_bias, **options,
        )  # fmt: skip
        title = f"upsampling x{args.upsample} with a {k}x{k} filter, {size}x{size} input"
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
        from convzoo.plots import output_path, plot_comparison

        written = plot_comparison(rows, output_path(args.plot, args.force), title)
        print(f"plot written to {written}", file=sys.stderr)
    return 0


@command("rf")
def cmd_rf(args: argparse.Namespace) -> int:
    from convzoo.analysis.analyzer import analyze
    from convzoo.analysis.receptive.describe import parse_unit, pick_layer, unit_text
    from convzoo.analysis.render import field_text

    if args.plot:
        from convzoo.plots import output_path

        output_path(args.plot, args.force)  # refused before any work
    size = parse_size(args.input) if args.input else None
    unit = parse_unit(args.unit) if args.unit else None
    model, size, name = load_target(args.target, size, args.kwargs)
    if args.plot:  # a float64 forward and backward per sample: estimated before any work
        from convzoo.plots import check_effective_field

        what = "rf --plot (a float64 forward and backward)"
        check_effective_field(model, size, args.layer, args.max_memory, what)
    report = analyze(model, size, **budget(args))
    names = [row.name for row in report.layers]
    if args.layer not in names:
        from convzoo.registry import close_matches

        hints = close_matches(args.layer, [n for n in names if n])
        raise ConvZooError(
            f"no layer named {render(args.layer)} in {name}"
            + (f"; did you mean {', '.join(map(repr, hints))}?" if hints else "")
        )
    row, remark = pick_layer(report, args.layer)
    rf = row.receptive_field
    if remark:
        print(f"{name}: {remark}")
    axes = rf.to_dict() if rf is not None else {}  # per-axis lists, as printed before
    print(
        f"{name} / {row.name or '(output)'}: output {row.output_shape}, receptive field "
        f"{field_text(rf)}; size {axes.get('size')}, stride {axes.get('stride')}, start "
        f"{axes.get('start')}, period {axes.get('period')} (input pixels, per axis)"
    )
    if unit is not None:
        print(unit_text(row, unit))
    if args.plot:
        from convzoo.plots import output_path, plot_receptive_field

        if len(size) != 3:
            raise ConvZooError(f"--plot needs a CxHxW input, got {'x'.join(map(str, size))}")
        chw = (size[0], size[1], size[2])
        model = real(model, args.target, size, args.kwargs)
        path = output_path(args.plot, args.force)
        written = plot_receptive_field(
            model, chw, path, row.name, args.samples, name, unit, remark, args.max_memory
        )
        print(f"plot written to {written}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 for a bug, 2 for a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        check_command(argv, list(COMMANDS))
        args = parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConvZooError as exc:
        print(f"convzoo: error: {first_line(exc, 2000)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "convzoo: error: out of memory; try a smaller input or batch, or a lower "
            "--max-memory so the estimate refuses it first",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("convzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `convzoo list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line, the traceback on request
        if debug:
            traceback.print_exc()
        print(
            f"convzoo: internal error: {type(exc).__name__}: {first_line(exc)} "
            "(a bug; --debug shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
