"""Shared fixtures."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

import tests.strategies  # noqa: F401  (registers the hypothesis profiles "ci" and "thorough")

COUNTS: Counter[str] = Counter()  # generated cases per suite, printed at the end of the run
FIGURES: dict[str, str] = {}  # measured figures (e.g. worst errors), printed at the end


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, count in sorted(COUNTS.items()):
        terminalreporter.write_line(f"{name}: {count} cases")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value}")
