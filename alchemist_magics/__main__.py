"""``python -m alchemist_magics`` runs the command line (see ``alchemist_magics.cli``)."""
import sys

from .cli import main

sys.exit(main())
