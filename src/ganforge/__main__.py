"""``python -m ganforge`` runs the command line."""

from ganforge.entry import main

raise SystemExit(main())
