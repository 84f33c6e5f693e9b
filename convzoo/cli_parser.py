"""The ``convzoo`` command line's grammar: every sub-command's arguments and defaults.

:mod:`convzoo.cli` runs the commands; this module only declares what they accept.
"""

from __future__ import annotations

import argparse
from typing import Any

from convzoo.arguments import INPUT_DTYPES, Parser, count, memory, names, version
from convzoo.catalogue import categories
from convzoo.config import INITS
from convzoo.limits import MAX_SAMPLES, MEMORY_BUDGET, human

DESIGN_FLAGS = {
    f"--{dest.replace('_', '-')}": dest
    for dest in (
        "kernel",
        "in_channels",
        "out_channels",
        "size",
        "designs",
        "padding",
        "no_bias",
        "upsample",
    )
}
"""``compare`` flags that describe the designs: a ``compare:`` config refuses them."""
NOT_UPSAMPLING = {"--padding": "padding"}
"""``compare`` flags that ``--upsample`` refuses (its designs always pad "same")."""
COMPARE_DEFAULTS = dict(kernel=7, in_channels=64, out_channels=64, size=56, padding="same")
UPSAMPLE_DEFAULTS = dict(COMPARE_DEFAULTS, kernel=3, size=28)
DTYPES = ("float32", "float16", "bfloat16", "float64")
TARGET_HELP = (
    "a config path (configs/resnet18.yaml), a packaged config (resnet18), torchvision:NAME, "
    "timm:NAME, path/to/file.py:NAME or package.module:NAME (class, factory or instance)"
)


WRITES = {"report": "--output", "compare": "--plot", "rf": "--plot", "init-check": "--plot"}
"""The commands that write a file, by the option naming it; each takes ``--force``."""

NEEDS = {
    **{
        (command, "--force"): (flag, f"--force overwrites the {flag} file")
        for command, flag in WRITES.items()
    },
    ("rf", "--samples"): ("--plot", "--samples averages the effective field that --plot draws"),
}
"""Options that do something only with another: ``(command, option) -> (the option it needs,
what it does)``; given without it, the command line is refused (a flag never does nothing)."""
SAMPLES = 8
"""``rf --samples`` when ``--plot`` is given without it."""

OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw")  # memory.OPTIMIZER_STATES (no torch here)


def add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument(
        "--kwargs",
        metavar="JSON",
        help="keyword arguments for the class or factory, a JSON object: '{\"num_classes\": 10}'",
    )


def add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="params, MACs, shapes, receptive fields and memory of a model, layer by layer",
    )
    add_target(p)
    p.add_argument(
        "--input",
        action="append",
        metavar="CxHxW[:DTYPE]",
        help="input size (repeat for several inputs; default: the target's own, e.g. the "
        "config's input or the size torchvision's weights expect); ':DTYPE' feeds zeros of "
        f"that dtype ({', '.join(INPUT_DTYPES)}), e.g. token ids: 16:int64",
    )
    p.add_argument("--batch", type=lambda t: count(t, 1), default=1, help="batch size (1)")
    p.add_argument("--dtype", choices=DTYPES, help="of parameters and activations (float32)")
    p.add_argument("--train", action="store_true", help="count in train mode (default: eval)")
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="also the memory of one training step with this optimizer: parameters, "
        "gradients, optimizer state and the tensors autograd saves (a train-mode forward)",
    )
    p.add_argument("--layer", metavar="NAME", help="only this module's subtree")
    p.add_argument(
        "--depth",
        type=lambda t: count(t, 0),
        help="rows down to this module depth (0: the model only), in every format",
    )
    p.add_argument(
        "--sort",
        choices=["macs", "params"],
        help="rows by cost, largest first, by full name (the model row left out)",
    )
    p.add_argument(
        "--by-op",
        action="store_true",
        help="per-operator totals (op, kind, calls, MACs, share, element-wise ops) instead of "
        "layers; with --layer, that subtree's",
    )
    p.add_argument("--top", type=lambda t: count(t, 1), metavar="N", help="the N largest rows")
    p.add_argument("--format", choices=["table", "markdown", "json", "csv"], default="table")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write the report to FILE, not stdout (a new regular file; --force replaces one)",
    )
    p.add_argument(
        "--check-fvcore",
        action="store_true",
        help="also count with fvcore (batch 1, eval) and explain each difference",
    )
    p.add_argument(
        "--no-fields", action="store_true", help="skip receptive fields (about 2x faster)"
    )


def add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="designs replacing a k x k conv: theory and speed")
    p.add_argument(
        "config",
        nargs="?",
        help="a YAML config with a 'compare:' mapping, or a packaged one's name "
        "(convzoo list --configs)",
    )
    p.add_argument("--kernel", type=lambda t: count(t, 3), help="k (7; 3 with --upsample)")
    p.add_argument("--in-channels", type=lambda t: count(t, 1), help="(64)")
    p.add_argument("--out-channels", type=lambda t: count(t, 1), help="(64)")
    p.add_argument(
        "--size", type=lambda t: count(t, 1), help="input H = W (56; 28 with --upsample)"
    )
    p.add_argument(
        "--upsample",
        type=lambda t: count(t, 2),
        metavar="S",
        help="compare upsampling by S: resize-then-conv, transposed, sub-pixel",
    )
    p.add_argument("--batch", type=lambda t: count(t, 1), default=1, help="batch size (1)")
    p.add_argument(
        "--designs",
        type=names,
        metavar="A,B",
        help="comma-separated designs (default: the headline set; with --upsample, all three)",
    )
    p.add_argument("--variants", type=names, dest="designs", help=argparse.SUPPRESS)  # old name
    p.add_argument("--padding", choices=["same", "valid"], help="(same)")
    p.add_argument("--no-bias", action="store_true", help="designs without biases")
    p.add_argument("--bench", action="store_true", help="also measure forward latency")
    p.add_argument("--train", action="store_true", help="also measure forward + backward")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of params, MACs, latency")
    p.add_argument("--format", choices=["table", "markdown", "json", "csv"], default="table")


def add_init_check(sub: Any) -> None:
    p = sub.add_parser(
        "init-check",
        help="how a model trains at initialisation: symmetric, dead and saturated units, "
        "signal and gradients through depth (one real forward and backward on a copy)",
    )
    add_target(p)
    p.add_argument("--input", help="input size CxHxW (default as for report)")
    p.add_argument(
        "--batch", type=lambda t: count(t, 1, 4096), default=8, help="random samples (8)"
    )
    p.add_argument(
        "--init", choices=INITS, help="re-initialise the copy first (default: its own weights)"
    )
    p.add_argument(
        "--eval",
        action="store_true",
        help="eval mode: batch norm on its running statistics, no dropout (default: train)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="signal and gradient norm through depth")
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="a table and one line per finding, or one JSON object",
    )


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="convzoo", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"convzoo {version()}")
    top.add_argument("--debug", action="store_true", help="show the traceback of a bug")
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("list", help="list registered layers and blocks, or packaged configs")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'depth*'")
    p.add_argument("--category", choices=categories(), help="only the layers of this category")
    p.add_argument(
        "--configs",
        action="store_true",
        help="the packaged configs instead: usable by name (convzoo report resnet18)",
    )
    p.add_argument("--format", choices=["table", "markdown"], default="table")
    p = sub.add_parser("build", help="build a YAML config and print the model")
    p.add_argument("config", help="path to a YAML config, or a packaged config's name")
    p.add_argument("--input", help="input size CxHxW, overrides the config's input")
    add_report(sub)
    add_compare(sub)
    p = sub.add_parser("rf", help="receptive field of a layer; --plot draws it with the ERF")
    add_target(p)
    p.add_argument("--input", help="input size CxHxW (default as for report)")
    p.add_argument(
        "--layer",
        default="",
        help="module name (default: the model output when it is a feature map with a local "
        "field, else the last layer in module order whose units each see part of the input)",
    )
    p.add_argument(
        "--unit", metavar="I,J[,K]", help="print the exact input pixels of this output unit"
    )
    p.add_argument(
        "--plot", metavar="FILE.png", help="exact field of a unit over the effective one"
    )
    p.add_argument(
        "--samples",
        type=lambda t: count(t, 1, MAX_SAMPLES),
        help=f"random inputs averaged for the effective field of --plot ({SAMPLES}; at most "
        f"{MAX_SAMPLES:,})",
    )
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text lines, or one JSON object: target, layer, output shape, field per axis, "
        "the unit's exact field (text)",
    )
    add_init_check(sub)
    for name, p in sub.choices.items():
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="")
        if name in ("report", "rf", "compare", "init-check"):
            p.add_argument(
                "--max-memory",
                type=memory,
                metavar="BYTES",
                help=f"budget of real tensors, e.g. 8GiB (default {human(MEMORY_BUDGET)})",
            )
        if name in WRITES:
            p.add_argument(
                "--force",
                action="store_true",
                help=f"overwrite an existing {WRITES[name]} file (never the target's own file)",
            )
    return top
