"""``python -m dnc_interactive``: the command-line interface."""

import sys

from dnc_interactive.cli import main

sys.exit(main())
