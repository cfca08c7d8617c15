"""`python -m bot` is `easydeploy`."""

from bot.cli import main

raise SystemExit(main())
