"""``python -m auriko_obs``: the same as the ``auriko-obs`` command."""

import sys

from .cli import main

sys.exit(main())
