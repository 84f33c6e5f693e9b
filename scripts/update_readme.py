"""Regenerate the generated parts of README.md so they cannot drift from the code.

* the zoo table between ``<!-- zoo-table -->`` and ``<!-- /zoo-table -->`` markers
  (``convzoo list --format markdown``);
* every ```` ```console ```` block: each ``$ convzoo ...`` line is run and the output
  below it replaced.

``python scripts/update_readme.py`` rewrites README.md; ``--check`` only reports (exit 1
if anything is stale). tests/test_readme.py runs the same check.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TABLE = re.compile(r"(<!-- zoo-table -->\n)(.*?)(<!-- /zoo-table -->)", re.S)
CONSOLE = re.compile(r"(```console\n)(.*?)(```)", re.S)


def run(command: str) -> str:
    """Run a README ``$ convzoo ...`` command from the repo root in a fresh process, as a
    user would (an analysis in a process that has run others before could differ: issue
    20); return what it printed to stdout and stderr, in the order it printed them."""
    args = shlex.split(command)
    if args[0] != "convzoo":
        raise SystemExit(f"README console blocks may only run convzoo, found: {command}")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "convzoo", *args[1:]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    return done.stdout


def render_console(block: str) -> str:
    """Re-run every ``$`` line of a console block and put its fresh output after it."""
    out = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append(line)
            out.append(run(line[2:]).rstrip("\n"))
    return "\n".join(out) + "\n"


def render(text: str) -> str:
    from convzoo.catalogue import registry_table
    from convzoo.registry import LAYERS

    table = registry_table(fmt="github", listing=LAYERS)  # the live registry
    text = TABLE.sub(lambda m: m.group(1) + table + "\n" + m.group(3), text)
    return CONSOLE.sub(lambda m: m.group(1) + render_console(m.group(2)) + m.group(3), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale parts, write nothing")
    args = parser.parse_args()
    current = README.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md is stale: run python scripts/update_readme.py")
            return 1
        print("README.md is current")
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
