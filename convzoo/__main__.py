"""``python -m convzoo`` is the ``convzoo`` command."""

import sys

from convzoo.cli import main

sys.exit(main())
