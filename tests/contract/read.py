"""The output of ``convzoo`` read back, in each of its formats (table, markdown, json, csv)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

FORMATS = ("table", "markdown", "json", "csv")


def parses(text: str, fmt: str) -> None:
    """``text`` is well formed in ``fmt``: JSON loads, CSV rows as wide as the header, a
    table has its header rule, markdown its ``|---|`` line."""
    if fmt == "json":
        json.loads(text)
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows), text
    elif fmt == "markdown":
        lines = text.splitlines()
        assert lines[0].startswith("| ") and re.match(r"^\|[:|-]+\|$", lines[1]), text
    else:
        assert re.match(r"^-+( +-+)*$", text.splitlines()[1]), text


def table_rows(text: str, fmt: str) -> list[dict[str, str]]:
    """The rows of the first table in ``text`` (tabulate's plain or GitHub format) as
    ``{header: cell}``, stripped; ``"_indent"``: the first cell's indentation (a layer's
    depth). The continuation lines of a wrapped cell are left out."""
    lines = text.split("\n\n")[0].splitlines()
    if fmt == "markdown":
        headers = [h.strip() for h in lines[0].strip()[1:-1].split("|")]
        raw = [[c[1:] for c in line.strip()[1:-1].split("|")] for line in lines[2:]]
    else:
        spans = [m.span() for m in re.finditer(r"-+", lines[1])]
        ends = [a for a, _ in spans[1:]] + [None]

        def cut(line: str) -> list[str]:
            return [line[a:end] for (a, _), end in zip(spans, ends, strict=True)]

        headers = [h.strip() for h in cut(lines[0])]
        raw = [cut(line) for line in lines[2:]]
    found = []
    for cells in raw:
        if cells[0].strip():  # else a wrapped cell's next line
            row = dict(zip(headers, (c.strip() for c in cells), strict=True))
            found.append({**row, "_indent": str(len(cells[0]) - len(cells[0].lstrip()))})
    return found


def layers(text: str, fmt: str) -> list[dict[str, Any]]:
    """A report's layer rows (the model's included, the total left out): ``name`` and
    ``depth`` (table, markdown: from the indentation) and, in JSON and CSV, every field."""
    if fmt == "json":
        return list(json.loads(text)["layers"])
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows and rows[-1]["name"] == "(total)", "the CSV ends with its (total) row"
        return [{**r, "depth": int(r["depth"])} for r in rows[:-1]]
    rows = [r for r in table_rows(text, fmt) if r["name"] != "total"]
    return [{**r, "depth": int(r["_indent"]) // 2} for r in rows]


SUMMARY = re.compile(r"^(?:- \*\*)?([a-zA-Z ]+?)(?:\*\*)?:\s+(.*)$", re.M)
TOTALS = ("params", "macs", "elementwise_ops", "activation_bytes", "param_bytes")


def summary(text: str, fmt: str) -> dict[str, Any]:
    """A report's totals as far as ``fmt`` shows them: the ints of :data:`TOTALS` and
    ``input_shape``, ``output_shape`` (``'1x3x64x64'``). CSV: its ``(total)`` row's."""
    if fmt == "json":
        data = json.loads(text)
        return {
            **{k: data["totals"][k] for k in TOTALS},
            "input_shape": "x".join(map(str, data["input_shape"][0])),
            "output_shape": "x".join(map(str, data["output_shape"])),
        }
    if fmt == "csv":
        total = list(csv.DictReader(io.StringIO(text)))[-1]
        return {
            **{k: int(total[k]) for k in TOTALS if k in total},
            "output_shape": total["output_shape"],
        }
    lines = {k.lower().replace(" ", "_"): v for k, v in SUMMARY.findall(text.split("\n\n", 1)[1])}
    found: dict[str, Any] = {k: lines[k] for k in ("input_shape", "output_shape")}
    for key in TOTALS:
        number = re.match(r"\S+ \(([\d,]+)", lines.get(key, ""))
        if number:
            found[key] = int(number.group(1).replace(",", ""))
    return found


def designs(text: str, fmt: str) -> list[dict[str, Any]]:
    """``compare``'s rows: ``design``, ``params`` and ``macs`` (ints), ``receptive_field``."""
    if fmt == "json":
        return list(json.loads(text))
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        rows = [
            {**r, "macs": r["MACs"], "receptive_field": r["field"]} for r in table_rows(text, fmt)
        ]
    return [{**r, "params": _int(r["params"]), "macs": _int(r["macs"])} for r in rows]


def _int(value: object) -> int:
    return int(str(value).replace(",", ""))


def operators(text: str, fmt: str) -> list[dict[str, Any]]:
    """``report --by-op``'s operator rows (the total left out)."""
    if fmt == "json":
        return list(json.loads(text)["operators"])
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [o for o in table_rows(text, fmt) if o["op"] != "total"]


def names(text: str, fmt: str) -> list[str]:
    """The first column of ``list``'s table (markdown's code spans unwrapped)."""
    return [r["name"].strip("`") for r in table_rows(text, fmt)]
