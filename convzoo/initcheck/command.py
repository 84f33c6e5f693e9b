"""``convzoo init-check TARGET``: the command line of :func:`convzoo.init_check`."""

from __future__ import annotations

import argparse
import json
import sys

from convzoo.arguments import budget, parse_size


def run(args: argparse.Namespace) -> int:
    """Resolve the target, check it, print the report (text or JSON); ``--plot`` draws it."""
    from convzoo.plots import output_path
    from convzoo.targets import own_files, parse_kwargs, resolve

    reads = own_files(args.target)
    if args.plot:
        output_path(args.plot, args.force, reads)  # refused before any work
    size = parse_size(args.input) if args.input else None
    target = resolve(args.target, (size,) if size else (), parse_kwargs(args.kwargs))
    from convzoo.initcheck.check import init_check

    sizes = target.input_size
    report = init_check(
        target.model,
        sizes[0] if len(sizes) == 1 else sizes,
        batch_size=args.batch,
        init=args.init,
        train=not args.eval,
        name=target.name,
        **budget(args),
    )
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.to_text())
    if args.plot:
        from convzoo.initcheck.plot import plot_signal

        written = plot_signal(report, output_path(args.plot, args.force, reads))
        print(f"plot written to {written}", file=sys.stderr)
    return 0
