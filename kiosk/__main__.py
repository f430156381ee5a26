"""python -m kiosk --config FILE: the diner's self-order kiosk."""

import argparse
import logging
import sys

from restobox.config import ConfigError


def main() -> int:
    ap = argparse.ArgumentParser(prog="kiosk", description="Restobox self-order kiosk")
    ap.add_argument("--config", help="config file (default $RESTOBOX_CONFIG or /etc/restobox/restobox.toml)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kiosk.app import run

    try:
        return run(args.config)
    except ConfigError as exc:
        print(f"restobox kiosk: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
