"""python -m kds --config FILE: the kitchen screen."""

import argparse
import logging
import sys

from restobox.config import ConfigError


def main() -> int:
    ap = argparse.ArgumentParser(prog="kds", description="Restobox kitchen screen")
    ap.add_argument("--config", help="config file (default $RESTOBOX_CONFIG or /etc/restobox/restobox.toml)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kds.app import run

    try:
        return run(args.config)
    except ConfigError as exc:
        print(f"restobox kds: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
