"""``python -m ganforge`` runs the command line."""

from ganforge.cli import main

raise SystemExit(main())
