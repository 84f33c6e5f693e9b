"""The ``convzoo`` command line: ``list`` the registry, ``build`` a config, ``report`` costs.

Every expected failure (bad config, unknown name, malformed size, a resource limit, a
refused output path, ``sys.exit`` or any ``BaseException`` raised by the target's code)
prints one line to stderr and exits with status 2; Ctrl-C prints one line and exits with
status 130; an internal bug prints a one-line summary and exits with status 1 (``--debug``
shows its traceback); never a traceback otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convzoo.arguments import budget, check_command, check_needs, given, parse_input, parse_size
from convzoo.catalogue import CONFIG_FOLDERS, config_paths, configs_table, registry_table
from convzoo.cli_parser import (
    COMPARE_DEFAULTS,
    DESIGN_FLAGS,
    NEEDS,
    NOT_UPSAMPLING,
    SAMPLES,
    UPSAMPLE_DEFAULTS,
    parser,
)
from convzoo.errors import ConvZooError, first_line, render, user_code
from convzoo.limits import check_memory
from convzoo.outputs import created, writable

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


def emit(text: str, output: str | None, force: bool = False) -> None:
    """Print ``text`` (one trailing newline), or write it to the file ``output`` (checked
    by :func:`convzoo.outputs.writable` before the work; replaced only with ``force``)."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    with created(output, force) as file:
        file.write(text)


@command("list")
def cmd_list(args: argparse.Namespace) -> int:
    fmt = {"table": "simple", "markdown": "github"}[args.format]
    width = shutil.get_terminal_size((100, 24)).columns if fmt == "simple" else None
    if args.configs and args.category:
        raise ConvZooError("--category picks layers, not configs: drop it or --configs")
    if args.configs:
        print(configs_table(args.pattern, fmt, width))
    else:
        print(registry_table(args.pattern, args.category, fmt, width))
    return 0


CONFIG_KINDS = {
    "build": "a YAML config (a path, or a name from convzoo list --configs)",
    "compare": "a config with a 'compare:' mapping (a path, or a name from convzoo list --configs)",
}
"""What the commands that take only a config take (``report`` and ``rf`` take any target)."""


def config_file(text: str, command: str) -> str | Path:
    """``text`` as the config of ``command``: a packaged config's name or a path. A packaged
    config for other commands, or any other target form, is refused in one line that names
    it (``build torchvision:resnet18``)."""
    for folder, commands in CONFIG_FOLDERS.items():
        path = config_paths(folder).get(text)
        if path is not None and command in commands.split(", "):
            return path
        if path is not None:
            raise ConvZooError(
                f"{render(text)} is a config for {commands}: convzoo {command} takes "
                f"{CONFIG_KINDS[command]}"
            )
    from convzoo.targets import form_of

    found = form_of(text)
    if found is not None and found.name != "a config path":
        raise ConvZooError(
            f"{render(text)} is {found.name}: convzoo {command} takes {CONFIG_KINDS[command]}"
        )
    return text


@command("build")
def cmd_build(args: argparse.Namespace) -> int:
    from convzoo.builder import build

    config = config_file(args.config, "build")
    model = build(config, parse_size(args.input) if args.input else None, meta=True)
    params = sum(p.numel() for p in model.parameters())
    print(model)
    print(f"{model.config_name}: {params:,} parameters, input {model.input_size}")
    return 0


def example_inputs(inputs: list[tuple[tuple[int, ...], str | None]], batch: int) -> tuple:
    """``--input 16:int64 --input 16:bool`` at ``batch`` -> ``(Tensor[batch, 16] int64 zeros,
    Tensor[batch, 16] bool)``: one zero row expanded (no memory per batch); an input without
    a dtype is float32 zeros (``--dtype`` casts it)."""
    import torch

    return tuple(
        torch.zeros((1, *size), dtype=getattr(torch, dtype or "float32")).expand(batch, *size)
        for size, dtype in inputs
    )


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    from convzoo.targets import own_files, parse_kwargs, resolve

    if args.output is not None:  # refused before any work (torch is not even imported)
        writable(args.output, args.force, own_files(args.target), "the report")
    if args.by_op:  # operators' counts: no layer rows, no bytes
        layers = [f"--{f}" for f in ("sort", "top", "depth") if getattr(args, f) is not None]
        if layers:
            raise ConvZooError(f"--by-op lists operators, not layers: drop {', '.join(layers)}")
        memory = [f"--{f}" for f in ("dtype", "optimizer") if getattr(args, f) is not None]
        if memory:
            raise ConvZooError(f"--by-op counts operators, not bytes: drop {', '.join(memory)}")
    inputs = [parse_input(text) for text in args.input or ()]
    typed = any(dtype for _, dtype in inputs)
    if typed and args.check_fvcore:
        raise ConvZooError("--check-fvcore feeds float inputs: drop the ':DTYPE' of --input")
    target = resolve(args.target, tuple(s for s, _ in inputs), parse_kwargs(args.kwargs))
    import torch

    from convzoo import views
    from convzoo.analysis.analyzer import analyze

    model, sizes = target.model, target.input_size
    size: Any = sizes[0] if len(sizes) == 1 else sizes
    if typed:  # zeros of each input's dtype: a valid token id or mask for any vocabulary
        size = example_inputs(inputs, args.batch)
    report = analyze(
        model,
        size,
        batch_size=args.batch,
        dtype=getattr(torch, args.dtype or "float32"),
        train=args.train,
        receptive_fields=not (args.no_fields or args.by_op),  # --by-op shows none
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
        check = compare_fvcore(model, sizes[0], args.max_memory).to_text()
    if args.by_op:
        text = views.operators_text(report, args.format)
    else:
        text = views.layers_text(report, args.format, args.sort, args.top, args.depth)
    machine = args.format in ("json", "csv")
    if check is not None and not machine:
        text = f"{text}\n\n{check}"
    emit(text, args.output, args.force)
    if check is not None and machine:  # keep stdout parseable: the check goes elsewhere
        print(check, file=sys.stderr if args.output is None else sys.stdout)
    return 0


@command("compare")
def cmd_compare(args: argparse.Namespace) -> int:
    from convzoo.compare import compare, compare_config, compare_upsample
    from convzoo.measure import rows_table

    reads = [args.config] if args.config else []  # never written over
    if args.plot:
        from convzoo.plots import output_path

        output_path(args.plot, args.force, reads)  # refused before any work
    options = {
        "batch": args.batch,
        "bench": args.bench or args.train,
        "train": args.train,
        "progress": (args.bench or args.train) and sys.stderr.isatty(),  # quiet when piped
        "max_memory": args.max_memory,
    }
    designs = given(args, DESIGN_FLAGS)
    if args.config and designs:
        raise ConvZooError(
            f"compare {args.config} takes its designs from the config: "
            f"{apply(designs)} (drop {'it' if len(designs) == 1 else 'them'}, or the config)"
        )
    ignored = given(args, NOT_UPSAMPLING) if args.upsample else []
    if ignored:
        raise ConvZooError(f"--upsample designs all pad 'same': {apply(ignored)}")
    if args.designs is not None:  # checked here, to name the flag
        from convzoo.compare import DESIGNS, UPSAMPLERS, pick

        try:
            pick(args.designs, UPSAMPLERS if args.upsample else DESIGNS, [])
        except ConvZooError as exc:
            raise ConvZooError(f"--designs: {exc}") from None
    defaults = UPSAMPLE_DEFAULTS if args.upsample else COMPARE_DEFAULTS
    for dest, value in defaults.items():
        setattr(args, dest, value if getattr(args, dest) is None else getattr(args, dest))
    if args.config:
        config = config_file(args.config, "compare")
        rows = compare_config(config, **options)
        title = f"designs of {args.config}"
    elif args.upsample:
        k, size = args.kernel, args.size
        rows = compare_upsample(
            args.upsample, k, args.in_channels, args.out_channels, size,
            bias=not args.no_bias, designs=args.designs, **options,
        )  # fmt: skip
        title = f"upsampling x{args.upsample} with a {k}x{k} filter, {size}x{size} input"
    else:
        rows = compare(
            args.kernel,
            args.in_channels,
            args.out_channels,
            args.size,
            designs=args.designs,
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

        written = plot_comparison(rows, output_path(args.plot, args.force, reads), title)
        print(f"plot written to {written}", file=sys.stderr)
    return 0


def apply(flags: list[str]) -> str:
    """``'--kernel does not apply'``, ``'--kernel, --size do not apply'``."""
    return f"{', '.join(flags)} {'does' if len(flags) == 1 else 'do'} not apply"


def plot_size(size: tuple[int, ...]) -> tuple[int, int, int]:
    """``size`` as the ``(C, H, W)`` that ``rf --plot`` draws; one line refusing any other."""
    if len(size) != 3:
        raise ConvZooError(f"--plot needs a CxHxW input, got {'x'.join(map(str, size))}")
    return size[0], size[1], size[2]


@command("rf")
def cmd_rf(args: argparse.Namespace) -> int:
    from convzoo.analysis.analyzer import analyze
    from convzoo.analysis.receptive import describe
    from convzoo.targets import own_files

    if args.plot:
        from convzoo.plots import output_path

        output_path(args.plot, args.force, own_files(args.target))  # refused before any work
    size = parse_size(args.input) if args.input else None
    if args.plot and size is not None:
        plot_size(size)  # refused before the target is even loaded
    unit = describe.parse_unit(args.unit) if args.unit else None
    model, size, name = load_target(args.target, size, args.kwargs)
    if args.plot:  # a float64 forward and backward per sample: estimated before any work
        from convzoo.plots import check_effective_field

        plot_size(size)  # the target's own input, known now
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
    row, remark = describe.pick_layer(report, args.layer)
    hw = report.input_shape[0][2:] if report.input_shape else None
    text = args.format == "text"
    answer: dict[str, object] = {
        "target": name,
        "layer": row.name,
        "remark": remark or None,
        "output_shape": row.output_shape,
        "receptive_field": describe.field_data(row, hw),
    }
    shown = f"{name} / {row.name or '(output)'}: {describe.output_text(row)}"
    lines = [f"{name}: {remark}"] if remark else []
    lines.append(f"{shown}, {describe.field_line(row, hw)}")
    if unit is not None:
        answer["unit"] = describe.unit_data(row, unit)
        lines.append(describe.unit_text(row, unit))
    if text:  # at once: the plot below takes a while
        print("\n".join(lines))
        lines = []
    if args.plot:
        from convzoo.plots import output_path, plot_receptive_field

        path = output_path(args.plot, args.force, own_files(args.target))
        drawn = plot_receptive_field(
            model, plot_size(size), path, row.name, args.samples or SAMPLES, name, unit, remark,
            args.max_memory,
        )  # fmt: skip
        if unit is None and describe.spatial(row):  # the unit drawn: its exact field
            answer["unit"] = describe.unit_data(row, drawn.unit)
            lines.append(describe.unit_text(row, drawn.unit))
        answer["effective_field"] = drawn.to_dict()
        answer["plot"] = str(drawn.path)
        lines.append(drawn.support_text())
    if not text:
        print(json.dumps(answer, indent=2))
    elif lines:
        print("\n".join(lines))
    if args.plot:
        print(f"plot written to {drawn.path}", file=sys.stderr)
    return 0


@command("init-check")
def cmd_init_check(args: argparse.Namespace) -> int:
    from convzoo.initcheck.command import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 for a bug, 2 for a user error,
    130 for Ctrl-C). ``--help`` and ``--version`` exit as argparse does (status 0); any
    other ``SystemExit``, or ``BaseException``, comes from the target's code, and is one
    line with status 2 (a last resort: where the code runs, it is worded with its place)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        check_command(argv, list(COMMANDS))
        args = parser().parse_args(argv)
        check_needs(args, NEEDS)
        with user_code("stopped by the target's code"):
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
