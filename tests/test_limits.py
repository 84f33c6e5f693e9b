"""convzoo.limits and convzoo.errors.render: the documented limits, bounded rendering of
any user value, strict memory amounts; the "Limits" table of the docs is the one in limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from convzoo import limits
from convzoo.errors import RENDER_CHARS, ConvZooError, render

LIMITS_PAGE = (Path(__file__).resolve().parent.parent / "docs" / "limits.md").read_text()


def alias_bomb(levels: int = 9) -> list:
    """What PyYAML builds from ``b: &b [*a, *a, ...]`` nine levels deep: 9**9 leaves, shared."""
    value: list = ["x"] * 9
    for _ in range(levels - 1):
        value = [value] * 9
    return value


def test_render_of_an_alias_bomb_takes_microseconds() -> None:
    bomb = alias_bomb()
    start = time.perf_counter()
    for _ in range(100):
        text = render({"kernel_size": bomb})
    elapsed = (time.perf_counter() - start) / 100
    assert elapsed < 1e-3, elapsed  # the full repr has 9**9 leaves: it would take minutes
    assert len(text) <= RENDER_CHARS and text.endswith("...") and "[...]" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1, 2, (3, 4)], "[1, 2, (3, 4)]"),
        ({"a": [1, 2]}, "{'a': [1, 2]}"),
        ([[[[1]]]], "[[[[...]]]]"),  # depth cap: 3 levels shown
        ("conv\n", "'conv\\n'"),  # control characters escaped: always one line
        ("\x1b[31mred", "'\\x1b[31mred'"),
        (9223372036854775808, "9223372036854775808"),
        (object(), "<object>"),
        (2.5, "2.5"),
        (None, "None"),
    ],
)
def test_render(value: object, expected: str) -> None:
    assert render(value) == expected


def test_render_describes_ints_without_a_decimal_form() -> None:
    # ints past 4300 digits have no str() at all in Python 3.11+
    assert render(10**100000) == "<int of ~100,001 digits>"
    assert render(-(10**300)) == "<int of ~301 digits>"


def test_render_cuts_long_strings_and_recursive_lists() -> None:
    text = render("a" * 10**7)
    assert len(text) == RENDER_CHARS and text.startswith("'aaa") and text.endswith("...")
    loop: list = []
    loop.append(loop)
    assert render(loop) == "[[[[...]]]]"
    assert len(render(list(range(10**6)))) == RENDER_CHARS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8GiB", 8 * 2**30),
        ("512MiB", 512 * 2**20),
        ("512 mib", 512 * 2**20),
        ("1000000", 10**6),
        ("1.5GiB", 3 * 2**29),
        ("2GB", 2 * 10**9),
        ("100B", 100),
    ],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert limits.parse_bytes(text) == expected


@pytest.mark.parametrize(
    "text", ["", "GiB", "8XB", "-1", "0", "8 G i B", "1e9", "0x10", "9" * 100, "5000TiB", "8GiBs"]
)
def test_parse_bytes_is_strict(text: str) -> None:
    with pytest.raises(ConvZooError) as info:
        limits.parse_bytes(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_check_size_refuses_bools_and_huge_ints() -> None:
    assert limits.check_size(3, "kernel") == 3
    for bad in (True, 0, limits.MAX_SIZE + 1, 9223372036854775808, "3", 3.0):
        with pytest.raises(ConvZooError, match="kernel must be an int from 1 to 1,048,576"):
            limits.check_size(bad, "kernel")


def test_check_memory_refuses_over_the_budget() -> None:
    limits.check_memory(100, 100, "x")
    with pytest.raises(ConvZooError, match=r"x needs about 1\.0 KiB .* budget of 100 B"):
        limits.check_memory(1024, 100, "x")


def test_docs_limits_table_is_the_one_in_limits() -> None:
    assert limits.limits_table() in LIMITS_PAGE
    for name, (value, _) in limits.LIMITS.items():
        assert getattr(limits, name) == value
