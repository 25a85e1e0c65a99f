"""``python -m equifind``: the command line (as the ``equifind`` script)."""

from .cli import main

raise SystemExit(main())
