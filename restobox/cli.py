"""The ``restobox`` command: services and staff tools.

    restobox hub   [--config FILE]      run the store hub
    restobox printing [--config FILE]   run the printing service
    restobox kds   [--config FILE]      run a kitchen screen
    restobox kiosk [--config FILE] [--link URL]   run the self-order kiosk
    restobox counter [--config FILE]    run the cashier's counter
    restobox web   [--config FILE]      run the table QR ordering page
    restobox table-qr [--config FILE] [--out DIR] [--tables 1,2]   the tables' QR codes
    restobox demo  [--duration S]       a store on this machine: broker, hub,
                                        a scripted kiosk and cook
    restobox sync  [--config FILE] [--drain]   send the outbox to the chain's cloud
    restobox cloud-dev [--port N] [--db FILE]  a reference cloud receiver (demo, tests)
    restobox paygate-dev [--port N] [--key-file FILE]  the payment gateway, simulated (demo, tests)
    restobox voucher-dev [--port N] [--key-file FILE]  the group-buy voucher platform, simulated (demo, tests)
    restobox delivery-dev [--port N] --secret-file FILE --webhook-url URL  a delivery platform, simulated (demo, tests)
    restobox menu-check FILE            check a menu file and its photos before installing it
    restobox rush [--quick]             the lunch rush benchmark, with chaos (bench/rush.py)

For staff (on the hub Pi; config $RESTOBOX_CONFIG or /etc/restobox/staff.toml):

    restobox status                     what is running, printers, sync, disks, alerts
    restobox restart SERVICE            broker, hub, printing, sync, kiosk, kds
    restobox logs SERVICE [-n N] [-f]
    restobox reprint ORDER [--station S]
    restobox 86 ITEM | un86 ITEM        sold out / back on (id or name)
    restobox test-print PRINTER
    restobox devices                    what is online
    restobox add-device NAME ROLE [--station S] [--rotate]
    restobox report [--date YYYY-MM-DD] [--out DIR] [--print PRINTER]   the day's figures
    restobox till-pin NAME [--config FILE] [--file PATH]   a manager's PIN for refunds
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from restobox import config as config_mod
from restobox import contract
from restobox.migrations import SchemaError


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Kivy sets the root logger's level from its own config when a screen
    # starts (often DEBUG): peewee's statement of every query would then
    # fill the journal (a counter looks at its outbox four times a second)
    logging.getLogger("peewee").setLevel(logging.DEBUG if verbose else logging.INFO)


def _load_menu(spec: str):
    from restobox.data import load_sample_menu
    from restobox.menu import Menu

    if spec == "sample":
        return load_sample_menu()
    with open(spec, "rb") as f:
        return Menu.from_json(f.read())


def cmd_hub(args) -> int:
    from restobox.hub import Hub
    from restobox.menu import MenuError

    cfg = config_mod.load(args.config)
    try:
        menu = _load_menu(cfg.hub.menu)
    except (OSError, MenuError) as exc:
        print(f"restobox hub: the menu {cfg.hub.menu} cannot be used: {exc}", file=sys.stderr)
        return 2
    if menu.currency != cfg.store.currency:
        print(f"restobox hub: the menu {cfg.hub.menu} is priced in {menu.currency}, but the store sells in "
              f"{cfg.store.currency} ([store] currency)", file=sys.stderr)
        return 2
    too_large = contract.menu_too_large(menu)
    if too_large:
        print(f"restobox hub: the menu {cfg.hub.menu} is too large: {too_large}", file=sys.stderr)
        return 2
    Hub(cfg, menu).run_forever()
    return 0


def cmd_printing(args) -> int:
    from restobox.printing.spooler import Spooler

    cfg = config_mod.load(args.config)
    Spooler(cfg).run_forever()
    return 0


def cmd_kds(args) -> int:
    from kds.app import run

    return run(args.config)



def cmd_kiosk(args) -> int:
    from kiosk.app import run

    return run(args.config, deep_link=args.link)


def cmd_counter(args) -> int:
    from counter.app import run

    return run(args.config)


def cmd_web(args) -> int:
    from restobox.web import serve

    return serve(config_mod.load(args.config))


def cmd_table_qr(args) -> int:
    from restobox.tableqr import cmd_table_qr as run

    return run(config_mod.load(args.config), out=args.out, tables=args.tables)


def cmd_sync(args) -> int:
    from restobox.sync import SyncService, drain

    cfg = config_mod.load(args.config)
    if args.drain:
        return drain(cfg)
    SyncService(cfg).run_forever()
    return 0


def cmd_cloud_dev(args) -> int:
    from restobox.dev.cloud_dev import serve

    return serve(args.port, args.db, args.token or None, host=args.host)


def cmd_paygate_dev(args) -> int:
    from restobox.dev.paygate_dev import serve

    if args.key_file:
        try:
            key = Path(args.key_file).read_text(encoding="utf-8").strip().encode()
        except OSError as exc:
            raise config_mod.ConfigError(f"cannot read the merchant key file {args.key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get("RESTOBOX_PAYGATE_KEY", "").strip().encode()
    if not key:
        raise config_mod.ConfigError("the merchant key is empty: give --key-file or set RESTOBOX_PAYGATE_KEY")
    return serve(args.port, args.db, key, args.mch_id, host=args.host, public_url=args.public_url,
                 notify_delay=args.notify_delay, notify_retry=args.notify_retry)


def cmd_delivery_dev(args) -> int:
    from restobox.dev.delivery_dev import serve

    if args.secret_file:
        try:
            secret = Path(args.secret_file).read_text(encoding="utf-8").strip().encode()
        except OSError as exc:
            raise config_mod.ConfigError(f"cannot read the app secret file {args.secret_file}: "
                                         f"{exc.strerror}") from None
    else:
        secret = os.environ.get("RESTOBOX_DELIVERY_SECRET", "").strip().encode()
    if not secret:
        raise config_mod.ConfigError("the app secret is empty: give --secret-file or set RESTOBOX_DELIVERY_SECRET")
    if not args.webhook_url.startswith(("http://", "https://")):
        raise config_mod.ConfigError(f"--webhook-url {args.webhook_url!r} is not an http(s) address")
    if not args.platform.isascii() or not args.platform.isalpha() or not 1 <= len(args.platform) <= 8:
        raise config_mod.ConfigError(f"--platform {args.platform!r} is not 1 to 8 letters (e.g. mt, ele)")
    return serve(args.port, args.db, secret, args.app_id, webhook_url=args.webhook_url, host=args.host,
                 accept_timeout_s=args.accept_timeout, platform=args.platform, webhook_retry=args.webhook_retry)


def _seconds_list(text: str) -> tuple[float, ...]:
    try:
        out = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of seconds, e.g. 1,2,4") from None
    if any(s < 0 for s in out):
        raise argparse.ArgumentTypeError(f"{text!r}: a wait cannot be negative")
    return out


def cmd_voucher_dev(args) -> int:
    from restobox.dev.voucher_dev import serve

    if args.key_file:
        try:
            key = Path(args.key_file).read_text(encoding="utf-8").strip().encode()
        except OSError as exc:
            raise config_mod.ConfigError(f"cannot read the voucher key file {args.key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get("RESTOBOX_VOUCHER_KEY", "").strip().encode()
    if not key:
        raise config_mod.ConfigError("the voucher key is empty: give --key-file or set RESTOBOX_VOUCHER_KEY")
    return serve(args.port, args.db, key, args.app_id, host=args.host)


def checked_menu(spec: str, out=sys.stderr):
    """The menu in ``spec`` if it keeps the menu's rules and fits the
    store's bus; else None, with what is wrong said on ``out``, and the exit
    status (2: unreadable, 1: wrong) as the second value."""
    from restobox.menu import MenuError

    try:
        menu = _load_menu(spec)
    except OSError as exc:
        print(f"cannot read {spec}: {exc.strerror}", file=out)
        return None, 2
    except MenuError as exc:
        print(f"{spec}: {exc}", file=out)
        return None, 1
    too_large = contract.menu_too_large(menu)
    if too_large:
        print(f"{spec}: menu {menu.version} is too large for the store's bus: {too_large}", file=out)
        return None, 1
    return menu, 0


def cmd_menu_check(args) -> int:
    menu, status = checked_menu(args.file)
    if menu is None:
        return status
    print(f"{args.file}: menu {menu.version} is good: {len(menu.items)} items, "
          f"{len(menu.categories)} categories, stations {', '.join(s.id for s in menu.stations)}")
    _check_photos(menu, args.file, args.images)
    return 0


def _check_photos(menu, spec: str, images: str) -> None:
    """Each dish's photo as the hub would prepare it. A photo that is missing
    or broken does not stop the menu (the dish shows its colour tile): it is
    named, so it can be fixed before the store opens."""
    from restobox.photos import PhotoRefused, prepare, source_dir

    folder = source_dir(spec, images)
    names = sorted({i.image for i in menu.items if i.image})
    if not names:
        print("photos: none (every dish shows its colour tile)")
        return
    bad = 0
    for name in names:
        path = folder / name
        try:
            prepare(path.read_bytes())
        except OSError as exc:
            bad += 1
            print(f"photos: {name}: image_missing: cannot read {path}: {exc.strerror}; "
                  f"the dish shows its colour tile", file=sys.stderr)
        except PhotoRefused as exc:
            bad += 1
            print(f"photos: {name}: {exc.reason}: {exc.detail}; the dish shows its colour tile", file=sys.stderr)
    without = sum(1 for i in menu.items if not i.image)
    print(f"photos in {folder}: {len(names) - bad} of {len(names)} good"
          + (f", {without} dishes without one" if without else ""))


def cmd_till_pin(args) -> int:
    """Write NAME:sha256(PIN) to the hub's [hub.till] manager_pin_file (a
    manager's line is replaced if there is one): the hub checks refunds
    against it. The PIN is read without echo, or from stdin when it is not
    a terminal (provisioning)."""
    import getpass
    import hashlib
    import re

    name = args.name
    if not re.fullmatch(r"[^\s:]{1,32}", name):
        print(f"restobox till-pin: {name!r} cannot be a name (1 to 32 characters, no spaces, no ':')",
              file=sys.stderr)
        return 2
    path = args.file
    if not path:
        path = config_mod.load(args.config).hub.till.manager_pin_file
        if not path:
            print("restobox till-pin: the config has no [hub.till] manager_pin_file (or give --file)",
                  file=sys.stderr)
            return 2
    if sys.stdin.isatty():
        pin = getpass.getpass(f"PIN for {name}: ")
        if getpass.getpass("Again: ") != pin:
            print("restobox till-pin: the two PINs differ; nothing written", file=sys.stderr)
            return 1
    else:
        pin = sys.stdin.readline().strip()
    if not re.fullmatch(r"[0-9]{4,12}", pin):
        print("restobox till-pin: a PIN is 4 to 12 digits; nothing written", file=sys.stderr)
        return 2
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    kept = [ln for ln in (p.read_text(encoding="utf-8").splitlines() if p.exists() else [])
            if ln.strip() and ln.rpartition(":")[0] != name]
    kept.append(f"{name}:{hashlib.sha256(pin.encode()).hexdigest()}")
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(kept) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    print(f"{name}'s PIN is in {p}")
    return 0


def cmd_rush(args: list[str]) -> int:
    """bench/rush.py, from this checkout (it is a benchmark, not part of a Pi's install)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "rush.py"
    if not path.exists():
        print("restobox rush: runs from a checkout of the Restobox repository (bench/rush.py is not here)",
              file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("restobox_bench_rush", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.main(args)


def cmd_demo(args) -> int:
    from restobox.dev.demo import run_demo

    return run_demo(duration=args.duration, live=not args.plain, rate=args.rate,
                    snapshot=Path(args.snapshot) if args.snapshot else None, screens=not args.no_screens)


STAFF_CONFIG = Path("/etc/restobox/staff.toml")


def _staff(fn, config_optional: bool = False):
    """Run a staff command: its config, a console, and one sentence for
    every mistake. ``restart`` and ``logs`` also work without a staff
    config (on a kiosk or a kitchen screen's Pi), through systemd alone."""
    def run(args) -> int:
        from rich.console import Console

        from restobox.staff import StaffError

        if not args.verbose:  # the bus's connection lines are for services' logs
            logging.getLogger().setLevel(logging.WARNING)
        console = Console(highlight=False)
        path = args.config or os.environ.get("RESTOBOX_CONFIG") or STAFF_CONFIG
        try:
            try:
                cfg = config_mod.load(path)
            except config_mod.ConfigError:
                if not (config_optional and not args.config and not Path(path).exists()):
                    raise
                cfg = None
            return fn(cfg, console, args)
        except StaffError as exc:
            Console(stderr=True, highlight=False).print(f"[bold red]restobox {args.cmd}:[/] {exc}")
            return exc.status
        except config_mod.ConfigError as exc:
            if "Permission denied" in str(exc) and os.geteuid() != 0:
                # staff-1's password (and the broker's files) are root's on the store Pi
                raise config_mod.ConfigError(
                    f"{exc}. Staff commands need an administrator: sudo restobox {args.cmd} ...") from None
            raise
    return run


def _staff_cmd(name: str):
    """``restobox.staff``'s function ``name``, imported when the command runs:
    the screens and services start through this module and never need the
    staff tools (rich and the rest: about 4 MB resident)."""
    def call(*args):
        from restobox import staff

        return getattr(staff, name)(*args)
    return call


def _staff_commands(sub) -> None:
    from restobox.service import SERVICES

    def add(name, help, fn, *extra, config_optional=False):
        p = sub.add_parser(name, help=help)
        p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {STAFF_CONFIG})")
        for a, kw in extra:
            p.add_argument(*a, **kw)
        p.set_defaults(func=_staff(fn, config_optional))

    add("status", "staff: every service, printers, sync backlog, disks and alerts",
        lambda cfg, c, a: _staff_cmd("cmd_status")(cfg, c))
    add("restart", "staff: restart a service and wait until it is up again",
        lambda cfg, c, a: _staff_cmd("cmd_restart")(cfg, c, a.service),
        (("service",), {"help": f"one of {', '.join(SERVICES)}"}), config_optional=True)
    add("logs", "staff: a service's log",
        lambda cfg, c, a: _staff_cmd("cmd_logs")(cfg, c, a.service, a.lines, a.follow),
        (("service",), {"help": f"one of {', '.join(SERVICES)}"}),
        (("-n", "--lines"), {"type": int, "default": 50, "help": "how many lines (default 50)"}),
        (("-f", "--follow"), {"action": "store_true", "help": "keep showing new lines (Ctrl-C stops)"}),
        config_optional=True)
    add("reprint", "staff: print an order's receipt (or a station's ticket) again",
        lambda cfg, c, a: _staff_cmd("cmd_reprint")(cfg, c, a.order, a.station),
        (("order",), {"help": "today's order number (42 or #42) or an order id"}),
        (("--station",), {"help": "reprint this station's kitchen ticket instead of the receipt"}))
    add("86", "staff: an item or option is sold out",
        lambda cfg, c, a: _staff_cmd("cmd_eighty_six")(cfg, c, a.item, True),
        (("item",), {"help": "its id or its name (English or Chinese)"}))
    add("un86", "staff: an item or option can be ordered again",
        lambda cfg, c, a: _staff_cmd("cmd_eighty_six")(cfg, c, a.item, False),
        (("item",), {"help": "its id or its name (English or Chinese)"}))
    add("test-print", "staff: print a test page",
        lambda cfg, c, a: _staff_cmd("cmd_test_print")(cfg, c, a.printer), (("printer",), {}))
    add("devices", "staff: every device and whether it is online",
        lambda cfg, c, a: _staff_cmd("cmd_devices")(cfg, c))
    add("add-device", "staff: give a new device its broker password and an enrollment folder",
        lambda cfg, c, a: _staff_cmd("cmd_add_device")(cfg, c, a.name, a.role, a.station, a.rotate, a.out),
        (("name",), {"help": "e.g. kiosk-3"}), (("role",), {"help": "kiosk, kds, expo, board, ..."}),
        (("--station",), {"help": "the station of a kds device"}),
        (("--rotate",), {"action": "store_true", "help": "the device exists: give it a new password"}),
        (("--out",), {"help": "where to write the enrollment folder (default [staff] enroll_dir)"}))

    def report(cfg, c, a):
        from restobox.report import cmd_report

        return cmd_report(cfg, c, a.date, a.out, a.print_on)
    add("report", "staff: the day's figures (sales, ticket times, payments, faults) as a page with charts",
        report,
        (("--date",), {"help": "the business day, YYYY-MM-DD (default: today's)"}),
        (("--out",), {"help": "folder for the page and its charts (default [report] out_dir/DATE)"}),
        (("--print",), {"dest": "print_on", "metavar": "PRINTER", "help": "also print a summary, e.g. receipt-1"}))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["rush"]:  # its options are bench/rush.py's own
        return cmd_rush(argv[1:])
    ap = argparse.ArgumentParser(prog="restobox", description="Restobox store services and tools.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("hub", help="run the store hub (the order book)")
    p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {config_mod.DEFAULT_PATH})")
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser("printing", help="run the printing service (every printer's queue)")
    p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {config_mod.DEFAULT_PATH})")
    p.set_defaults(func=cmd_printing)

    p = sub.add_parser("kds", help="run a kitchen screen (station, expo or pickup board)")
    p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {config_mod.DEFAULT_PATH})")
    p.set_defaults(func=cmd_kds)

    p = sub.add_parser("kiosk", help="run the self-order kiosk")
    p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {config_mod.DEFAULT_PATH})")
    p.add_argument("--link", metavar="URL",
                   help="a table's QR deep link, e.g. restobox://kiosk?table=12&lang=en: every order starts "
                        "as dine-in at that table (a tablet on the table)")
    p.set_defaults(func=cmd_kiosk)

    p = sub.add_parser("counter", help="run the cashier's counter (payments, refunds, walk-in orders, the shift)")
    p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {config_mod.DEFAULT_PATH})")
    p.set_defaults(func=cmd_counter)

    p = sub.add_parser("web", help="run the table QR ordering page (diners' phones)")
    p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {config_mod.DEFAULT_PATH})")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("table-qr", help="the tables' QR codes: a picture per table and a sheet to print")
    p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {config_mod.DEFAULT_PATH})")
    p.add_argument("--out", help="folder for the pictures (default [web] qr_dir)")
    p.add_argument("--tables", help="only these tables, e.g. 1,2,A1 (default: every table of [web])")
    p.set_defaults(func=cmd_table_qr)

    p = sub.add_parser("sync", help="send the store's outbox to the chain's cloud")
    p.add_argument("--config", help=f"config file (default $RESTOBOX_CONFIG or {config_mod.DEFAULT_PATH})")
    p.add_argument("--drain", action="store_true",
                   help="send until the outbox is empty, with a progress bar, then exit")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("cloud-dev", help="a reference cloud receiver on a local port (demo and tests)")
    p.add_argument("--port", type=int, default=8700)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--db", default="cloud-dev.db", help="where it keeps what it received (SQLite)")
    p.add_argument("--token", default="dev-token", help="the store token it accepts ('' for none)")
    p.set_defaults(func=cmd_cloud_dev)

    from restobox.cloud.cli import add_parser as add_cloud

    add_cloud(sub)

    p = sub.add_parser("paygate-dev", help="the aggregated payment gateway, simulated, with fault modes (demo, tests)")
    p.add_argument("--port", type=int, default=8710)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--db", default="paygate-dev.db", help="where it keeps its trades and notifications (SQLite)")
    p.add_argument("--mch-id", default="m-store-1", help="the one merchant number it knows")
    p.add_argument("--key-file", help="file holding the merchant key (default: $RESTOBOX_PAYGATE_KEY)")
    p.add_argument("--public-url", default="",
                   help="its address as diners' phones reach it, for the cashier pages (default http://127.0.0.1:PORT)")
    p.add_argument("--notify-delay", type=float, default=0.2, metavar="S",
                   help="seconds from a payment to its notification's first attempt (default 0.2)")
    p.add_argument("--notify-retry", type=_seconds_list, default=(1.0, 2.0, 4.0, 8.0, 15.0, 30.0), metavar="S,S,...",
                   help="waits before each retry of a notification not acknowledged, then it is given up "
                        "(default 1,2,4,8,15,30)")
    p.set_defaults(func=cmd_paygate_dev)

    p = sub.add_parser("voucher-dev", help="the group-buy voucher platform, simulated, with fault modes (demo, tests)")
    p.add_argument("--port", type=int, default=8720)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--db", default="voucher-dev.db", help="where it keeps its vouchers and redemptions (SQLite)")
    p.add_argument("--app-id", default="store-app-1", help="the one store account it knows")
    p.add_argument("--key-file", help="file holding the store's key (default: $RESTOBOX_VOUCHER_KEY)")
    p.set_defaults(func=cmd_voucher_dev)

    p = sub.add_parser("delivery-dev", help="a delivery platform's open API, simulated, with fault modes (demo, tests)")
    p.add_argument("--port", type=int, default=8730)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--db", default="delivery-dev.db", help="where it keeps shops, orders and webhooks (SQLite)")
    p.add_argument("--app-id", default="chain-1", help="the one chain app it knows")
    p.add_argument("--secret-file", help="file holding the app's secret (default: $RESTOBOX_DELIVERY_SECRET)")
    p.add_argument("--webhook-url", required=True, help="the chain's address for the platform's webhooks")
    p.add_argument("--accept-timeout", type=float, default=120.0, metavar="S",
                   help="an order still new this many seconds after it was made is cancelled (default 120)")
    p.add_argument("--platform", default="mt", help="its name, the prefix of its order ids (default mt: MT2026...)")
    p.add_argument("--webhook-retry", type=_seconds_list, default=(1.0, 2.0, 4.0, 8.0, 15.0, 30.0), metavar="S,S,...",
                   help="waits before each retry of a webhook not acknowledged, then it is given up "
                        "(default 1,2,4,8,15,30)")
    p.set_defaults(func=cmd_delivery_dev)

    p = sub.add_parser("demo", help="run a whole store on this machine")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--rate", type=float, default=0.5, help="orders per second from the virtual kiosk")
    p.add_argument("--plain", action="store_true", help="print lines instead of a live screen")
    p.add_argument("--snapshot", metavar="SVG", help="save the final order book screen as an SVG picture")
    p.add_argument("--no-screens", action="store_true", help="do not open the kitchen screens")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("rush", help="the lunch rush benchmark with chaos (bench/rush.py; --quick: 3 minutes)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)  # bench/rush.py parses them (see main)

    p = sub.add_parser("menu-check", help="check a menu JSON file and its photos")
    p.add_argument("file")
    p.add_argument("--images", default="", metavar="DIR",
                   help="the photos' folder, as [hub] menu_images (default: images/ next to the menu file)")
    p.set_defaults(func=cmd_menu_check)

    p = sub.add_parser("till-pin", help="a manager's PIN for refunds at the counter ([hub.till] manager_pin_file)")
    p.add_argument("name", help="the manager's name (as the counter shows it)")
    p.add_argument("--config", help="the hub's config (default $RESTOBOX_CONFIG or /etc/restobox/restobox.toml)")
    p.add_argument("--file", help="the PIN file (default: the config's [hub.till] manager_pin_file)")
    p.set_defaults(func=cmd_till_pin)

    _staff_commands(sub)

    args = ap.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except config_mod.ConfigError as exc:
        print(f"restobox {args.cmd}: {exc}", file=sys.stderr)
        return 2
    except SchemaError as exc:  # a database this release cannot use (restobox/migrations.py)
        print(f"restobox {args.cmd}: {exc} [{exc.reason}]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
