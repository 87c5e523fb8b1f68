"""``python -m cssim``: the same command line as ``cssim``."""

import sys

from .cli import main

sys.exit(main())
