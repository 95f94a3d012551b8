"""``python -m quantbench``: the ``quantbench`` command (quantbench.cli)."""

import sys

from quantbench.cli import main

sys.exit(main())
