"""Regenerate the generated parts of README.md and docs/*.md so they cannot drift from the
code.

* every ```` ```console ```` block: each ``$ convzoo ...`` line is run (in a fresh process,
  from the repository root) and the output below it replaced;
* the zoo table between ``<!-- zoo-table -->`` and ``<!-- /zoo-table -->`` markers
  (``convzoo list --format markdown``, docs/zoo.md);
* the limits table between ``<!-- limits-table -->`` and ``<!-- /limits-table -->``
  (:func:`convzoo.limits.limits_table`, docs/limits.md).

``python scripts/update_docs.py`` rewrites the files (``[FILE ...]``: only those);
``--check`` only reports (exit 1 if anything is stale). tests/test_docs.py runs the same
check.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = re.compile(r"(```console\n)(.*?)(```)", re.S)


def documents() -> list[Path]:
    """README.md and every page of the site, in a fixed order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(text: str) -> list[str]:
    """The ``$ convzoo ...`` lines of every console block of ``text``, without the ``$``."""
    return [
        line[2:]
        for block in CONSOLE.findall(text)
        for line in block[1].splitlines()
        if line.startswith("$ ")
    ]


def run(command: str) -> str:
    """Run a ``$ convzoo ...`` command from the repo root in a fresh process, as a user
    would (an analysis in a process that has run others before could differ: issue 20);
    return what it printed to stdout and stderr, in the order it printed them."""
    args = shlex.split(command)
    if args[0] != "convzoo":
        raise SystemExit(f"console blocks may only run convzoo, found: {command}")
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


def render_console(block: str, outputs: dict[str, str]) -> str:
    """A console block with the fresh output of each ``$`` line after it."""
    out = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append(line)
            out.append(outputs[line[2:]].rstrip("\n"))
    return "\n".join(out) + "\n"


def between(marker: str, text: str, table: str) -> str:
    """``text`` with ``table`` between ``<!-- marker -->`` and ``<!-- /marker -->``."""
    found = re.compile(rf"(<!-- {marker} -->\n)(.*?)(<!-- /{marker} -->)", re.S)
    return found.sub(lambda m: m.group(1) + table + "\n" + m.group(3), text)


def render(text: str, outputs: dict[str, str]) -> str:
    """``text`` with every generated part regenerated (``outputs``: command -> output)."""
    from convzoo.catalogue import registry_table
    from convzoo.limits import limits_table
    from convzoo.registry import LAYERS

    text = between("zoo-table", text, registry_table(fmt="github", listing=LAYERS))  # live
    text = between("limits-table", text, limits_table())
    return CONSOLE.sub(
        lambda m: m.group(1) + render_console(m.group(2), outputs) + m.group(3), text
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="only these (default: all)")
    parser.add_argument("--check", action="store_true", help="report stale parts, write nothing")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="commands run at once (CPUs)"
    )
    args = parser.parse_args()
    files = [f.resolve() for f in args.files] or documents()
    texts = {f: f.read_text(encoding="utf-8") for f in files}
    unique = list(dict.fromkeys(c for text in texts.values() for c in commands(text)))
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        outputs = dict(zip(unique, pool.map(run, unique), strict=True))
    stale = []
    for path, current in texts.items():
        fresh = render(current, outputs)
        if fresh != current:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
    if args.check:
        for name in stale:
            print(f"{name} is stale: run python scripts/update_docs.py")
        if not stale:
            print(f"{len(files)} files current ({len(unique)} commands)")
        return 1 if stale else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
