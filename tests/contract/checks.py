"""What a contract cell must give: :func:`ok` with checks that find each flag's effect in
the output (whatever its format), or :func:`refused` in one line naming what does not apply.

A check is ``check(result, baseline)``: ``baseline`` is the result of the cell's baseline
command line (the same one without the flag under test), or None.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from tests.contract import read
from tests.contract.run import Argv, Expect, Result

Check = Callable[[Result, "Result | None"], None]
Rows = list[dict[str, Any]]


def ok(*checks: Check, stderr: str | None = "") -> Expect:
    """Exit 0, no traceback, ``stderr`` exactly (None: anything), then every check."""

    def expect(r: Result, base: Result | None) -> None:
        assert r.code == 0 and "Traceback" not in r.stderr, (r.code, r.stderr)
        assert stderr is None or r.stderr == stderr, r.stderr
        for check in checks:
            check(r, base)

    return expect


def refused(*words: str) -> Expect:
    """Exit 2, nothing printed or written, one stderr line ``convzoo: error: ...`` naming
    each of ``words`` (the flag that does not apply, the value refused)."""

    def expect(r: Result, base: Result | None) -> None:
        lines = r.stderr.splitlines()
        assert r.code == 2 and len(lines) == 1, (r.code, r.stderr)
        assert lines[0].startswith("convzoo: error: "), lines[0]
        assert all(w in lines[0] for w in words), (words, lines[0])
        assert r.stdout == "" and not r.files, (r.stdout, [n for n, _ in r.files])

    return expect


def that(test: Callable[[Result, Any], object], what: str) -> Check:
    """``test(result, baseline)`` true; ``what`` says what it means."""

    def check(r: Result, base: Result | None) -> None:
        assert test(r, base), f"{what}: {r.stdout[:3000]}"

    return check


def shows(*texts: str) -> Check:
    return that(lambda r, b: all(t in r.stdout for t in texts), f"stdout shows {texts}")


def like_baseline(r: Result, base: Result | None) -> None:
    """The baseline's output: the flag has nothing to do here (a default, a budget not
    reached, no bug for ``--debug``)."""
    assert base is not None and (r.stdout, r.files) == (base.stdout, base.files), r.stdout


def unlike_baseline(r: Result, base: Result | None) -> None:
    assert base is not None and (r.stdout, r.files) != (base.stdout, base.files), r.stdout


def well_formed(r: Result, base: Result | None) -> None:
    read.parses(r.stdout, r.format)


# -- report -----------------------------------------------------------------------------


def report_of(name: str, argv: Argv) -> Check:
    """A report of the target ``argv`` named ``name``: well formed, the model's row first,
    the JSON baseline's totals, the input given (``--input``)."""

    def check(r: Result, base: Result | None) -> None:
        read.parses(r.stdout, r.format)
        assert read.layers(r.stdout, r.format)[0]["name"] == ("" if r.format == "json" else name)
        got = read.summary(r.stdout, r.format)
        assert base is not None
        truth = read.summary(base.stdout, base.format)
        assert got == {k: truth[k] for k in got}, (got, truth)
        if "--input" in argv and "input_shape" in got:
            assert got["input_shape"] == "1x" + argv[argv.index("--input") + 1], got

    return check


def scaled(**factors: float | Fraction) -> Check:
    """Each total named (that the format shows) the baseline's times its factor."""

    def check(r: Result, base: Result | None) -> None:
        assert base is not None
        got, was = read.summary(r.stdout, r.format), read.summary(base.stdout, base.format)
        for key, factor in factors.items():
            assert key not in got or got[key] == was[key] * factor, (key, got[key], was[key])

    return check


def shaped(input_shape: str | None = None, output_shape: str | None = None) -> Check:
    """The input and output shapes (where the format shows them), ``'1x3x32x32'``."""
    want = {"input_shape": input_shape, "output_shape": output_shape}

    def check(r: Result, base: Result | None) -> None:
        got = read.summary(r.stdout, r.format)
        for key, shape in want.items():
            assert shape is None or key not in got or got[key] == shape, (key, got[key])

    return check


def layer_shape(name: str, shape: str) -> Check:
    """The layer ``name``'s output shape, ``'1x8x14x14'``."""

    def check(r: Result, base: Result | None) -> None:
        row = next(row for row in read.layers(r.stdout, r.format) if row["name"] == name)
        found = row.get("output shape") or row["output_shape"]
        found = found if isinstance(found, str) else "x".join(map(str, found))
        assert found == shape, (name, found)

    return check


def batched(size: int, keys: tuple[str, ...] = ("input_shape", "output_shape")) -> Check:
    """The baseline's shapes (``keys``) with a batch of ``size``."""

    def check(r: Result, base: Result | None) -> None:
        assert base is not None
        got, was = read.summary(r.stdout, r.format), read.summary(base.stdout, base.format)
        for key in keys:
            batch, _, rest = was.get(key, "1x").partition("x")
            assert key not in got or got[key] == f"{size}x{rest}", (key, got[key], was[key])

    return check


def layer_rows(rule: Callable[[Rows, Rows], object], what: str) -> Check:
    """``rule(the layer rows, the baseline's)``, true."""

    def check(r: Result, base: Result | None) -> None:
        assert base is not None
        got, full = read.layers(r.stdout, r.format), read.layers(base.stdout, base.format)
        assert rule(got, full), f"{what}: {[row['name'] for row in got]}"

    return check


def to_depth(depth: int) -> Check:
    """The baseline's rows at most ``depth`` deep, in its order."""
    return layer_rows(
        lambda got, full: (
            [r["depth"] for r in got] == [r["depth"] for r in full if r["depth"] <= depth]
        ),
        f"depth <= {depth}",
    )


def heaviest(key: str, top: int | None = None) -> Check:
    """Layers (the model left out) each once, largest ``key`` first: all, or the ``top``
    largest (ties in any order). Reads the JSON baseline's values by full name."""

    def rule(got: Rows, full: Rows) -> object:
        value = {r["name"]: r[key] for r in full if r["depth"] > 0}
        found = [r["name"] for r in got]
        largest = sorted(value.values(), reverse=True)[:top]
        return len(set(found)) == len(found) and [value[n] for n in found] == largest

    return layer_rows(rule, f"by {key}" + (f", top {top}" if top else ""))


def fields(r: Result) -> list[object]:
    """Each layer's receptive field as shown, None where "not computed" (JSON null, empty CSV
    cells, ``not computed`` in a table)."""
    found = read.layers(r.stdout, r.format)
    if r.format == "json":
        return [row["receptive_field"] for row in found]
    if r.format == "csv":
        return [row["rf_size_h"] or None for row in found]
    shown = [row["receptive field"] for row in found]
    return [None if field == "not computed" else field for field in shown]


def no_fields(r: Result, base: Result | None) -> None:
    """No layer's receptive field, where the baseline has them."""
    assert all(field is None for field in fields(r)), fields(r)
    assert base is not None and any(field is not None for field in fields(base))


def subtree(layer: str) -> Check:
    """Only ``layer``'s subtree, rooted at depth 0; its total MACs the layer's."""

    def check(r: Result, base: Result | None) -> None:
        assert base is not None
        found = read.layers(r.stdout, r.format)
        whole = {row["name"]: row for row in read.layers(base.stdout, base.format)}
        assert found[0]["name"] == layer and found[0]["depth"] == 0, found[0]
        if r.format in ("json", "csv"):
            assert all(row["name"].startswith(layer) for row in found), found
        assert read.summary(r.stdout, r.format)["macs"] == whole[layer]["macs"]

    return check


def operators(r: Result, base: Result | None) -> None:
    """Operator rows instead of layers; in JSON and CSV their MACs add up to the model's
    (the JSON baseline's)."""
    ops = read.operators(r.stdout, r.format)
    assert ops and all(o["op"] for o in ops), r.stdout
    if r.format in ("json", "csv"):
        assert base is not None
        assert sum(int(o["macs"]) for o in ops) == read.summary(base.stdout, "json")["macs"]


STATES = {"sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2}
"""An optimizer's state in copies of the parameters."""


def training(optimizer: str) -> Check:
    """The memory of one training step with ``optimizer`` (the baseline has none)."""

    def check(r: Result, base: Result | None) -> None:
        unlike_baseline(r, base)
        if r.format == "json":
            step = json.loads(r.stdout)["training"]
            assert step["optimizer"] == optimizer, step
            assert step["optimizer_bytes"] == STATES[optimizer] * step["param_bytes"], step
        elif r.format == "csv":  # saved bytes per row; the step's total on the totals row
            rows = list(csv.DictReader(io.StringIO(r.stdout)))
            assert all(row["saved_bytes"] != "" for row in rows), rows
            total = rows[-1]
            params = int(total["params"]) * 4  # float32
            assert int(total["training_step_bytes"]) == (2 + STATES[optimizer]) * params + int(
                total["saved_bytes"]
            ), total
        else:
            assert f"optimizer state ({optimizer})" in r.stdout, r.stdout

    return check


def recomputed(module: str) -> Check:
    """The training step with ``module`` checkpointed: fewer saved bytes than the baseline's
    step (the same without it), MACs recomputed in the backward, the trade-off shown."""

    def check(r: Result, base: Result | None) -> None:
        unlike_baseline(r, base)
        if r.format == "json":
            step, plain = (json.loads(x.stdout)["training"] for x in (r, base))
            assert [c["module"] for c in step["checkpoints"]] == [module], step
            assert step["recompute_macs"] > 0 and step["saved_bytes"] < plain["saved_bytes"]
            assert step["backward_macs"] == plain["backward_macs"] + step["recompute_macs"]
        elif r.format == "csv":  # the checkpointed step's saved bytes
            total, plain = (list(csv.DictReader(io.StringIO(x.stdout)))[-1] for x in (r, base))
            assert int(total["saved_bytes"]) < int(plain["saved_bytes"]), (total, plain)
        else:
            assert f"{module}: saved " in r.stdout and "recomputed" in r.stdout, r.stdout

    return check


def written(name: str) -> Check:
    """The file ``name`` holds what the baseline printed; nothing printed."""

    def check(r: Result, base: Result | None) -> None:
        assert base is not None and r.stdout == "", r.stdout
        assert r.file(name).decode() == base.stdout

    return check


# -- compare, list, build -------------------------------------------------------------------


def designs(*names: str) -> Check:
    """Well-formed output listing exactly the designs ``names``."""

    def check(r: Result, base: Result | None) -> None:
        read.parses(r.stdout, r.format)
        assert [row["design"] for row in read.designs(r.stdout, r.format)] == list(names)

    return check


def conv(**expected: int) -> Check:
    """The ``conv`` design's (the first row's) ``params``, ``macs`` or ``receptive_field``."""

    def check(r: Result, base: Result | None) -> None:
        first = read.designs(r.stdout, r.format)[0]
        assert first["design"] == "conv" and {k: int(first[k]) for k in expected} == expected

    return check


def scaled_designs(key: str, factor: int, only: str | None = None) -> Check:
    """Each design's (design ``only``'s) ``key``: the baseline's times ``factor``."""

    def check(r: Result, base: Result | None) -> None:
        assert base is not None
        pairs = [
            (g[key], w[key])
            for g, w in zip(
                read.designs(r.stdout, r.format),
                read.designs(base.stdout, base.format),
                strict=True,
            )
            if only in (None, g["design"])
        ]
        assert pairs and all(g == factor * w for g, w in pairs), pairs

    return check


def same_designs(r: Result, base: Result | None) -> None:
    """The baseline's designs, params and MACs."""
    assert base is not None
    keys = ("design", "params", "macs")
    got, was = (
        [{k: row[k] for k in keys} for row in read.designs(x.stdout, x.format)] for x in (r, base)
    )
    assert got == was, got


def measured(key: str) -> Check:
    """Each design's measured ``key`` positive (JSON)."""
    return that(lambda r, b: all(row[key] > 0 for row in json.loads(r.stdout)), f"{key} measured")


def listed(column: str, rule: Callable[[str], object], what: str) -> Check:
    """``list``: rows, each ``rule(its column)`` true."""

    def check(r: Result, base: Result | None) -> None:
        read.parses(r.stdout, r.format)
        values = [row[column].strip("`") for row in read.table_rows(r.stdout, r.format)]
        assert values and all(rule(v) for v in values), f"{what}: {values}"

    return check


def built(name: str, size: str | None = None) -> Check:
    """``build``: the model, then ``NAME: N parameters, input (C, H, W)``; with ``size``,
    that input and the baseline's model and parameters."""

    def check(r: Result, base: Result | None) -> None:
        *model, last = r.stdout.splitlines()
        assert model and last.startswith(f"{name}: ") and " parameters, input (" in last, last
        if size is not None:
            assert base is not None and last.endswith(f"input {size}"), last
            assert base.stdout.rsplit(", input", 1)[0] == r.stdout.rsplit(", input", 1)[0]

    return check


# -- plots --------------------------------------------------------------------------------

MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF", "jpg": b"\xff\xd8\xff"}


def plotted(name: str, printed: Check | None = None) -> Check:
    """``name`` written in the format its extension names, and said so on stderr; stdout
    the baseline's (without the plot) when ``printed`` is None, else ``printed``."""

    def check(r: Result, base: Result | None) -> None:
        assert r.file(name).startswith(MAGIC[name.rsplit(".", 1)[1]]), r.file(name)[:20]
        assert r.stderr == f"plot written to {name}\n", r.stderr
        if printed is None:
            assert base is not None and r.stdout == base.stdout, r.stdout
        else:
            printed(r, base)

    return check
