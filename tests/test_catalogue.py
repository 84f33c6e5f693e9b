"""``convzoo list`` reads the shipped catalogue: it must equal the live registry, always."""

from __future__ import annotations

import pytest

from convzoo.catalogue import (
    PATH,
    TORCHVISION,
    Catalogue,
    Row,
    dumps,
    dumps_names,
    live_rows,
    live_torchvision_names,
    registry_table,
    torchvision_names,
)
from convzoo.cli import main
from convzoo.errors import ConvZooError
from convzoo.registry import LAYERS, Registry

LIST_OPTIONS = {  # the command line -> (pattern, category, markdown)
    "": ("*", None, False),
    "depth*": ("depth*", None, False),
    "*conv* --category conv": ("*conv*", "conv", False),
    "--category block": ("*", "block", False),
    "--category capsule --format markdown": ("*", "capsule", True),
    "--format markdown": ("*", None, True),
    "*pool --format markdown": ("*pool", None, True),
}


def test_shipped_catalogue_is_the_live_registry() -> None:
    assert PATH.read_text(encoding="utf-8") == dumps(live_rows()), (
        "convzoo/catalogue.json is stale: run python scripts/update_catalogue.py"
    )


def test_shipped_torchvision_names_are_the_installed_ones() -> None:
    """Issue 25: a mistyped target's suggestions read torchvision's names from package data
    (no torch import); they are the installed torchvision's, in its order."""
    live = live_torchvision_names()
    assert "resnet18" in live
    assert TORCHVISION.read_text(encoding="utf-8") == dumps_names(live), (
        "convzoo/torchvision_names.json is stale: run python scripts/update_catalogue.py"
    )
    assert torchvision_names() == live


def test_live_rows_describe_every_entry() -> None:
    rows = live_rows()
    assert [r.name for r in rows] == LAYERS.names()
    conv = next(r for r in rows if r.name == "conv")
    entry = LAYERS.get("conv")
    assert (conv.category, conv.description, conv.params_formula) == (
        entry.category,
        entry.description,
        entry.params_formula,
    )


def test_a_registration_changes_the_rows() -> None:
    """What the staleness test compares is what a new layer changes."""
    registry = Registry("layer")
    before = dumps(live_rows(registry))

    @registry.register("mine", category="conv")
    class Mine(LAYERS.get("conv").cls):  # type: ignore[misc, name-defined]
        """A conv of my own."""

    assert dumps(live_rows(registry)) != before
    assert live_rows(registry)[0] == Row("mine", "conv", "A conv of my own.", Mine.params_formula)


@pytest.mark.parametrize("columns", ["60", "100", "200"])
@pytest.mark.parametrize("options", LIST_OPTIONS)
def test_list_prints_what_the_live_registry_renders(
    options: str,
    columns: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    assert main(["list", *options.split()]) == 0
    out, _ = capsys.readouterr()
    pattern, category, markdown = LIST_OPTIONS[options]
    fmt, width = ("github", None) if markdown else ("simple", int(columns))
    assert out == registry_table(pattern, category, fmt, width, listing=LAYERS) + "\n"


def test_no_match_is_the_same_error_from_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "depthwize*"]) == 2
    _, err = capsys.readouterr()
    with pytest.raises(ConvZooError) as live:
        registry_table("depthwize*", listing=LAYERS)
    assert err == f"convzoo: error: {live.value}\n"


def test_catalogue_lists_like_the_registry() -> None:
    catalogue = Catalogue(live_rows())
    for pattern, category in [("*", None), ("conv*", "conv"), ("*", "basic"), ("x*", None)]:
        assert catalogue.entries(pattern, category) == [
            Row(e.name, e.category, e.description, e.params_formula)
            for e in LAYERS.entries(pattern, category)
        ]
