"""python -m kiosk --config FILE: the same as `restobox kiosk --config FILE`."""

import sys

from restobox.cli import main

sys.exit(main(["kiosk", *sys.argv[1:]]))
