"""`python -m app` runs the Lineproof command line."""

import sys

from app.cli import main

sys.exit(main())
