"""python -m kds --config FILE: the same as `restobox kds --config FILE`."""

import sys

from restobox.cli import main

sys.exit(main(["kds", *sys.argv[1:]]))
