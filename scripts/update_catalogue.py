"""Write convzoo/catalogue.json (what ``convzoo list`` shows) from the live registry.

``python scripts/update_catalogue.py`` rewrites it; ``--check`` only reports (exit 1 if it
is stale). tests/test_catalogue.py refuses a stale catalogue, so a new or renamed layer
fails the fast tier until this is run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's convzoo

from convzoo.catalogue import PATH, dumps, live_rows  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report a stale file, write nothing")
    args = parser.parse_args()
    fresh = dumps(live_rows())
    current = PATH.read_text(encoding="utf-8") if PATH.exists() else ""
    if args.check:
        print(f"{PATH.name} is {'current' if fresh == current else 'stale'}")
        return int(fresh != current)
    PATH.write_text(fresh, encoding="utf-8")
    print(f"wrote {PATH} ({len(live_rows())} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
