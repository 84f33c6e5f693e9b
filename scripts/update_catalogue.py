"""Write convzoo/catalogue.json (what ``convzoo list`` shows) from the live registry, and
convzoo/torchvision_names.json (the names a mistyped target is compared with) from
``torchvision.models.list_models()``.

``python scripts/update_catalogue.py`` rewrites them; ``--check`` only reports (exit 1 if
one is stale). tests/test_catalogue.py refuses a stale file, so a new or renamed layer (or
a torchvision upgrade) fails the fast tier until this is run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's convzoo

from convzoo.catalogue import (  # noqa: E402
    PATH,
    TORCHVISION,
    dumps,
    dumps_names,
    live_rows,
    live_torchvision_names,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report a stale file, write nothing")
    args = parser.parse_args()
    stale = 0
    for path, fresh in (
        (PATH, dumps(live_rows())),
        (TORCHVISION, dumps_names(live_torchvision_names())),
    ):
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if args.check:
            print(f"{path.name} is {'current' if fresh == current else 'stale'}")
            stale |= fresh != current
        else:
            path.write_text(fresh, encoding="utf-8")
            print(f"wrote {path}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
