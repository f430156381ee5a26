"""python -m counter --config FILE: the same as `restobox counter --config FILE`."""

import sys

from restobox.cli import main

sys.exit(main(["counter", *sys.argv[1:]]))
