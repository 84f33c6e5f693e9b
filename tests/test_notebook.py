"""A Report in a notebook: ``print(report)`` is the table, Jupyter renders HTML."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import convzoo

ROOT = Path(__file__).resolve().parents[1]


class Cells(HTMLParser):
    """Collects the text of every table row's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.items: list[str] = []
        self.tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tag = tag
        if tag == "tr":
            self.rows.append([])
        if tag == "li":
            self.items.append("")

    def handle_data(self, data: str) -> None:
        if self.tag in ("td", "th"):
            self.rows[-1].append(data.strip())
        elif self.tag in ("li", "b") and self.items:
            self.items[-1] += data


def test_print_shows_the_table(capsys) -> None:  # type: ignore[no-untyped-def]
    report = convzoo.analyze(str(ROOT / "configs" / "resnet18.yaml"))
    print(report)
    out = capsys.readouterr().out
    assert out == report.to_table() + "\n"
    assert out.startswith("name ") and "Report(" not in out and "LayerStats(" not in out


def test_html_table_has_every_row_escaped() -> None:
    report = convzoo.analyze(str(ROOT / "configs" / "seed_7x7_alternatives.yaml"))
    report.target = "<script>x</script>"
    page = report._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    cells = Cells()
    cells.feed(page)
    header, *rows = cells.rows
    assert header[:5] == ["name", "type", "output shape", "params", "MACs"]
    assert len(rows) == len(report.layers) + 1 and rows[-1][0] == "total"
    assert [r[3] for r in rows[:-1]] == [str(layer.params) for layer in report.layers]
    assert any(item.startswith("MACs: ") and f"{report.totals.macs:,}" in item
               for item in cells.items)  # fmt: skip
