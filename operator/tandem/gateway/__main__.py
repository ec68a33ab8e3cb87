"""``python -m tandem.gateway``: the figures gateway (see `server`)."""

from .server import main

raise SystemExit(main())
