"""``python -m kwire <command> ...``: the ``kwire`` command (kwire.cli) where the console
script is not on PATH, e.g. ``python -m kwire quorum --bootstrap-controller H:P describe
--status``."""

import sys

from kwire.cli import main

sys.exit(main())
