"""`python -m convis` runs the command line."""

import sys

from convis.cli import main

sys.exit(main())
