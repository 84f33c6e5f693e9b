"""Each sentence of the README and docs/ that names a flag, a layer, a category or a keyword
is backed by the code (tests/doc_claims.py), and the checker catches made-up claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_claims import problems

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_every_claim_is_backed(path: Path) -> None:
    assert problems(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("sentence", "problem"),
    [
        (
            "Use `convzoo report --frobnicate` to see it.",
            "--frobnicate: no such flag in convzoo report",
        ),
        ("`rf --by-op` gives the operators.", "--by-op: no such flag in convzoo rf"),
        ("In ```` ```console ```` blocks. `rf --top 3` too.", "--top: no such flag in convzoo rf"),
        ("`convzoo rf resnet18 --top 3` shows three.", "--top: no such flag in convzoo rf"),
        ("With `convzoo compare`, `--unit 3,3` is one unit.", "--unit: no such flag in compare"),
        (
            "`mkdocs build --strict` builds; `convzoo build --strict` too.",
            "--strict: no such flag in convzoo build",
        ),
        (
            "`--shiny` makes it shine.",
            "--shiny: no such flag in build or compare or init-check or list or report or rf",
        ),
        (
            "`convzoo list --category magic` lists them.",
            "--category magic: not one of attention, basic, block, capsule, conv",
        ),
        (
            "`--format json|yaml` for machines.",
            "--format yaml: not one of csv, json, markdown, table, text",
        ),
        (
            "A spec `{type: convolution, out_channels: 8}`.",
            "convolution: no such registered layer or block",
        ),
        (
            '`convzoo.create("depthwize", in_channels=3)` builds it.',
            "depthwize: no such registered layer or block",
        ),
        ("`convzoo.analyze(model, fast=True)` is quicker.", "fast=: not a keyword of analyze"),
        ("`warp=2` warps every layer.", "warp=: not a keyword of any public function or layer"),
    ],
)
def test_a_made_up_claim_is_caught(sentence: str, problem: str) -> None:
    assert problems(sentence) == [problem]


def test_true_claims_pass() -> None:
    text = (
        "`convzoo report --sort macs|params --top N`, `rf --unit 3,3`, `compare --bench/--train`"
        ' and `convzoo list --category conv`; `convzoo.analyze(model, optimizer="adam")`. '
        "`dims=3` and `{type: conv}`. `python scripts/update_docs.py --check` reports; "
        "`pytest -q --durations=20` times.\n\n```console\n$ convzoo report --made-up\n```\n"
    )
    assert problems(text) == []
