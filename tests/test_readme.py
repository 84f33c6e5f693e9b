"""README.md stays true: generated parts current, Python examples run, CI runs its commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


@pytest.mark.slow  # ~60 s: every console example of the README, each in a fresh process
def test_generated_parts_are_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/update_readme.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("block", re.findall(r"```python\n(.*?)```", README, re.S))
def test_python_examples_run(block: str) -> None:
    exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_commands() -> None:
    setup = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in setup:
        assert command in ci, command
