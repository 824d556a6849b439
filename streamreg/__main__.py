"""``python -m streamreg`` runs the command-line interface."""

import sys

from streamreg.cli import main

sys.exit(main())
