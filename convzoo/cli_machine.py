"""The command line's latency parts: ``convzoo machine`` and the glue of ``report
--latency`` and ``compare --latency`` (registered in :mod:`convzoo.cli`; torch is imported
only by the measurement)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from convzoo.errors import ConvZooError
from convzoo.machine import LOCAL, Profile, list_table, load, save, show_text
from convzoo.outputs import created, writable

if TYPE_CHECKING:  # pragma: no cover
    from convzoo.analysis.report import Report


def run(args: argparse.Namespace) -> int:
    """``convzoo machine``: measure and save this machine's profile (to the cache, or
    ``--output``), or ``--list`` the profiles, or ``--show`` one."""
    chosen = [flag for flag, on in (("--list", args.list), ("--show", args.show)) if on]
    measuring = [f for f, on in (("--threads", args.threads), ("--output", args.output)) if on]
    if len(chosen) > 1:
        raise ConvZooError("--list and --show: give one of them")
    if chosen and measuring:
        raise ConvZooError(f"{chosen[0]} reads profiles: {', '.join(measuring)} measures (drop it)")
    if args.list:
        if args.format == "json":
            from convzoo.machine import names

            print(json.dumps([load(n).to_dict() for n in names()], indent=2))
        else:
            print(list_table())
        return 0
    if args.show:
        profile = load(args.show)
        print(
            json.dumps(profile.to_dict(), indent=2) if args.format == "json" else show_text(profile)
        )
        return 0
    if args.output is not None:
        writable(args.output, args.force, (), "the machine profile")  # refused before any work
    from convzoo.machine_bench import measure

    print("measuring this machine (a few seconds)...", file=sys.stderr)
    profile = measure(args.threads)
    if args.output is not None:
        with created(args.output, args.force) as file:
            file.write(json.dumps(profile.to_dict(), indent=2) + "\n")
        where = Path(args.output)
    else:
        where = save(profile)
    print(json.dumps(profile.to_dict(), indent=2) if args.format == "json" else show_text(profile))
    print(f"profile written to {where}", file=sys.stderr)
    return 0


def profile_of(args: argparse.Namespace) -> Profile:
    """The profile ``--machine`` names (default: this machine's measured one)."""
    return load(args.machine or LOCAL)


def report_latency(args: argparse.Namespace, reads: Sequence[Path]) -> Callable[[Report], str]:
    """``report --latency``: its options checked and its profile loaded before any work
    (``reads``: the target's own files, which ``--plot`` never replaces); returns what makes
    its text (and its ``--plot``) of the report, in ``--format``."""
    if args.by_op:
        raise ConvZooError("--by-op lists operators, --latency layers: give one of them")
    if args.plot:
        from convzoo.plots import output_path

        output_path(args.plot, args.force, reads)
    profile = profile_of(args)
    dtype = args.dtype or "float32"
    profile.rate("conv", dtype)  # refused now if the profile has no figure for the dtype

    def text(report: Report) -> str:
        from convzoo.latency_view import latency_text, plot_roofline

        out = latency_text(report, profile, args.format, dtype, args.sort, args.top, args.depth)
        if args.plot:
            from convzoo.plots import output_path

            path = output_path(args.plot, args.force, reads)  # again: the report took a while
            plot_roofline(report, profile, dtype, path, report.target)
            print(f"plot written to {path}", file=sys.stderr)
        return out

    return text
