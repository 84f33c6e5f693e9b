"""``convzoo report``'s cells: every target kind in every format, and each option's effect."""

from __future__ import annotations

import json
from fractions import Fraction

from tests.contract import read
from tests.contract.checks import (
    batched,
    heaviest,
    layer_shape,
    like_baseline,
    no_fields,
    ok,
    operators,
    recomputed,
    refused,
    report_of,
    scaled,
    shaped,
    shows,
    subtree,
    that,
    to_depth,
    training,
    unlike_baseline,
    written,
)
from tests.contract.latency import report_latency_cells
from tests.contract.matrix import CONFIG, TARGETS, TOKENS, Table, common, old, per_format
from tests.contract.read import FORMATS
from tests.contract.run import Cell

BASE = ("report", CONFIG)
BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw")


def targets(cells: Table) -> None:
    for argv, name in TARGETS.values():
        line = ("report", *argv)
        cells["target"] += per_format(line, ok(report_of(name, argv)), line, "json")
    cells["target"] += [
        Cell(("report", "nothing_like_it"), refused("nothing_like_it")),
        Cell(("report", "usernet.py:Pair"), refused("--input")),  # no default input size
    ]


def model_options(cells: Table) -> None:
    """``--kwargs``, ``--input``, ``--batch``, ``--dtype``, ``--train``, ``--optimizer``,
    ``--checkpoint``, ``--amp``."""
    for target in ("usernet.py:Net", "usermod:Net"):
        line = ("report", target, "--kwargs", '{"width": 8}')
        cells["--kwargs"] += per_format(line, ok(layer_shape("conv", "1x8x14x14")))
    classes = ("report", *TARGETS["torchvision classifier"][0], "--kwargs", '{"num_classes": 10}')
    cells["--kwargs"] += [
        Cell(classes, ok(shaped(output_shape="1x10"))),
        Cell((*BASE, "--kwargs", '{"width": 8}'), refused("--kwargs")),
        Cell(("report", "usernet.py:Net", "--kwargs", "[8]"), refused("--kwargs")),
    ]
    small = shaped(input_shape="1x3x32x32", output_shape="1x5x32x32")
    tokens = ("report", TOKENS, "--input", "16:int64", "--format", "json")
    embedding = that(lambda r, b: read.summary(r.stdout, "json")["macs"] == 32 * 2, "dim x 2")
    pair = ("report", "usernet.py:Pair", "--input", "3x8x8", "--input", "1x8x8", "--format", "json")
    both = [[1, 3, 8, 8], [1, 1, 8, 8]]
    cells["--input"] += [
        *per_format((*BASE, "--input", "3x32x32"), ok(small)),
        Cell(tokens, ok(shaped(input_shape="1x16"), embedding)),
        Cell(pair, ok(that(lambda r, b: json.loads(r.stdout)["input_shape"] == both, "two"))),
        Cell((*BASE, "--input", "3x0x5"), refused("--input", "3x0x5")),
        Cell((*BASE, "--input", "3x64x64:complex"), refused("--input")),
    ]
    twice = ok(scaled(macs=2, activation_bytes=2, params=1), batched(2))
    detector = ("report", *TARGETS["torchvision detector"][0], "--no-fields", "--depth", "0")
    cells["--batch"] += [
        *per_format((*BASE, "--batch", "2"), twice, BASE),
        *per_format(
            (*detector, "--batch", "2"),
            ok(batched(2, ("input_shape",))),
            detector,
            formats=["json"],
        ),
        Cell((*BASE, "--batch", "0"), refused("--batch")),
    ]
    for dtype, size in BYTES.items():
        ratio = Fraction(size, 4)
        sized = ok(scaled(param_bytes=ratio, activation_bytes=ratio, macs=1))
        cells["--dtype"] += per_format((*BASE, "--dtype", dtype), sized, BASE)
    cells["--dtype"] += [
        Cell((*BASE, "--by-op", "--dtype", "float16"), refused("--by-op", "--dtype")),
        Cell((*BASE, "--dtype", "int8"), refused("--dtype")),
    ]
    updates = that(  # batch norm in train mode updates its running statistics
        lambda r, b: (
            read.summary(r.stdout, r.format)["elementwise_ops"]
            > read.summary(b.stdout, b.format)["elementwise_ops"]
        ),
        "train-mode batch norm",
    )
    by_op = ("report", "usernet.py:Net", "--by-op")
    cells["--train"] += [
        *per_format((*BASE, "--train"), ok(updates), BASE),
        Cell((*by_op, "--train"), ok(unlike_baseline), by_op),
    ]
    for optimizer in OPTIMIZERS:
        cells["--optimizer"] += per_format(
            (*BASE, "--optimizer", optimizer), ok(training(optimizer)), BASE
        )
    cells["--optimizer"] += [
        Cell((*BASE, "--by-op", "--optimizer", "adam"), refused("--by-op", "--optimizer")),
        Cell((*BASE, "--optimizer", "lbfgs"), refused("--optimizer")),
    ]
    checkpointed = (*BASE, "--optimizer", "sgd", "--checkpoint", "encoder")
    cells["--checkpoint"] += [
        *per_format(checkpointed, ok(recomputed("encoder")), (*BASE, "--optimizer", "sgd")),
        Cell((*BASE, "--checkpoint", "encoder"), refused("--checkpoint", "--optimizer")),
        Cell((*checkpointed, "--by-op"), refused("--by-op", "--checkpoint")),
        Cell((*BASE, "--optimizer", "sgd", "--checkpoint", "encodr"), refused("encodr")),
    ]
    halved = ok(scaled(activation_bytes=Fraction(1, 2), macs=1, param_bytes=1))  # all in 16 bits
    for amp in ("bf16", "fp16"):
        cells["--amp"] += per_format((*BASE, "--amp", amp), halved, BASE)
    cells["--amp"] += [
        Cell((*BASE, "--amp", "bf16", "--optimizer", "sgd"), ok(training("sgd")), BASE),
        Cell((*BASE, "--amp", "int8"), refused("--amp", "int8")),
    ]


def row_options(cells: Table) -> None:
    """``--layer``, ``--depth``, ``--sort``, ``--top``, ``--by-op``, ``--no-fields``."""
    cells["--layer"] += [
        *per_format((*BASE, "--layer", "encoder"), ok(subtree("encoder")), BASE, "json"),
        Cell((*BASE, "--layer", "encoder", "--by-op"), ok(shows(f"{CONFIG} / encoder"))),
        Cell((*BASE, "--layer", "encodr"), refused("--layer", "encodr")),
    ]
    for depth in (0, 1):
        cells["--depth"] += per_format((*BASE, "--depth", str(depth)), ok(to_depth(depth)), BASE)
    for key in ("macs", "params"):
        cells["--sort"] += per_format((*BASE, "--sort", key), ok(heaviest(key)), BASE, "json")
    cells["--top"] += [
        *per_format((*BASE, "--top", "2"), ok(heaviest("macs", 2)), BASE, "json"),
        *per_format(
            (*BASE, "--top", "2", "--sort", "params"), ok(heaviest("params", 2)), BASE, "json"
        ),
        Cell((*BASE, "--top", "0"), refused("--top")),
    ]
    for flag, value in (("--depth", "1"), ("--sort", "macs"), ("--top", "2")):
        cells[flag].append(Cell((*BASE, "--by-op", flag, value), refused("--by-op", flag)))
    cells["--sort"].append(Cell((*BASE, "--sort", "flops"), refused("--sort")))
    cells["--depth"].append(Cell((*BASE, "--depth", "-1"), refused("--depth")))
    cells["--by-op"] += per_format((*BASE, "--by-op"), ok(operators), BASE, "json")
    cells["--no-fields"] += per_format((*BASE, "--no-fields"), ok(no_fields), BASE)


def output_options(cells: Table) -> None:
    """``--format``, ``--output``, ``--force``, ``--check-fvcore``, ``--max-memory``."""
    cells["--format"] += [
        *per_format(BASE, ok(report_of(CONFIG, BASE)), BASE, "json"),
        Cell((*BASE, "--format", "table"), ok(like_baseline), BASE),
        Cell((*BASE, "--format", "xml"), refused("--format")),
    ]
    for fmt in FORMATS:
        line = (*BASE, "--format", fmt, "--output", f"out.{fmt}")
        cells["--output"].append(Cell(line, ok(written(f"out.{fmt}")), (*BASE, "--format", fmt)))
    cells["--output"] += [
        Cell((*BASE, "--output", "out.txt"), refused("out.txt", "--force"), setup=old("out.txt")),
        Cell(("report", "user.yaml", "--output", "user.yaml", "--force"), refused("user.yaml")),
        Cell((*BASE, "--output", "."), refused("'.'")),
    ]
    replace = (*BASE, "--output", "out.txt", "--force")
    cells["--force"] += [
        Cell(replace, ok(written("out.txt")), BASE, setup=old("out.txt")),
        Cell((*BASE, "--force"), refused("--force", "--output")),
    ]
    check = (*BASE, "--no-fields", "--check-fvcore")
    json_check = ok(like_baseline, stderr=None)  # the cross-check on stderr: JSON stays JSON
    cells["--check-fvcore"] += [
        Cell(check, ok(shows("fvcore cross-check", "convzoo total"))),
        Cell((*check, "--format", "json"), json_check, (*BASE, "--no-fields", "--format", "json")),
        Cell(
            ("report", TOKENS, "--input", "16:int64", "--check-fvcore"), refused("--check-fvcore")
        ),
    ]
    cells["--max-memory"] += [
        Cell((*BASE, "--max-memory", "64GiB"), ok(like_baseline), BASE),
        Cell((*check, "--max-memory", "1KiB"), refused("--max-memory")),
        Cell((*BASE, "--max-memory", "lots"), refused("--max-memory")),
    ]


def report_cells() -> Table:
    cells = common("report", BASE)
    for add in (targets, model_options, row_options, output_options):
        add(cells)
    report_latency_cells(cells, BASE)
    return cells
