"""`python -m bot` runs the `siyu` command line."""

from bot.cli import main

raise SystemExit(main())
