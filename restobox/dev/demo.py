"""``restobox demo``: a whole store on this machine.

A private mosquitto with the project's restobox/broker_config (on a free port), the
hub as its own process, a scripted virtual kiosk placing orders and virtual
cooks acknowledging and bumping tickets; the terminal shows the live order
book. The table QR ordering page (``restobox web``, loyalty points on) runs
too, with its tables' QR codes rendered. Everything runs under ``var/demo/``
and stops on Ctrl-C (or after ``--duration`` seconds), leaving no process
behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from restobox import contract
from restobox.brokerconf import STANDARD_DEVICES, Broker, free_port, terminate
from restobox.bus import Bus, Incoming
from restobox.contract import topics
from restobox.data import load_sample_menu
from restobox.dev.sim import VirtualCook, VirtualKiosk

REPO = Path(__file__).resolve().parent.parent
STATIONS = ("wok", "fryer", "drinks")
COOKS = {"wok": "kds-wok-1", "fryer": "kds-fryer-1", "drinks": "kds-drinks-1", "expo": "expo-1"}
# The kitchen screens the demo opens: (device, role, station, kds mode).
SCREENS = [("kds-wok-2", "kds", "wok", "station"), ("expo-2", "expo", "expo", "expo"),
           ("board-2", "board", None, "board"), ("kiosk-2", "kiosk", None, "kiosk"),
           ("counter-2", "counter", None, "counter")]


def _screen_config(path: Path, port: int, password_file: Path, device: str, role: str, station: str | None,
                   mode: str, state: Path, size: tuple[int, int]) -> None:
    path.write_text(
        f"[device]\nid = \"{device}\"\nrole = \"{role}\"\n" + STORE +
        f"[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\npassword_file = \"{password_file}\"\n\n"
        f"[kds]\nmode = \"{mode}\"\nstation = \"{station or 'wok'}\"\n"
        f"cache = \"{state / (device + '.db')}\"\nwidth = {size[0]}\nheight = {size[1]}\n"
        # short thresholds so the demo shows every colour within minutes
        "warn_s = 30\nlate_s = 60\n\n"
        f"[kiosk]\ndatabase = \"{state / (device + '-kiosk.db')}\"\n\n"
        f"[counter]\ndatabase = \"{state / (device + '-counter.db')}\"\nreceipt_printer = \"receipt-1\"\n",
        encoding="utf-8",
    )


def _start_screens(broker: Broker, state: Path, port: int) -> tuple[list, list, str]:
    """Open the kitchen screens: on this display if there is one, else each
    on a virtual display of its own. Returns (processes, displays, note)."""
    from restobox.display import Xvfb

    shots = state / "screens"
    shots.mkdir(parents=True, exist_ok=True)
    procs, displays = [], []
    desktop = bool(os.environ.get("DISPLAY"))
    size = (1280, 800) if desktop else (1920, 1080)
    for device, role, station, mode in SCREENS:
        cfg = state / f"{device}.toml"
        kiosk = mode == "kiosk"
        # the kiosk is a portrait screen; the counter a landscape one at the till
        wh = ((540, 960) if desktop else (1080, 1920)) if kiosk else (1280, 800) if mode == "counter" else size
        _screen_config(cfg, port, broker.creds[device].password_file, device, role, station,
                       mode if mode in ("station", "expo", "board") else "station", state, wh)
        env = dict(os.environ)
        if not desktop:
            x = Xvfb(*wh)
            displays.append(x)
            env = x.env()
        env.update(RESTOBOX_SCREENSHOT_DIR=str(shots), RESTOBOX_SCREENSHOT_EVERY="5",
                   RESTOBOX_KIOSK_SIZE=f"{wh[0]}x{wh[1]}", RESTOBOX_COUNTER_SIZE=f"{wh[0]}x{wh[1]}")
        with open(state / f"{device}.log", "wb") as log:
            app = "kiosk" if kiosk else "counter" if mode == "counter" else "kds"
            procs.append(subprocess.Popen([sys.executable, "-m", app, "--config", str(cfg)],
                                          stdout=log, stderr=subprocess.STDOUT, env=env))
    where = "on this display" if desktop else "on virtual displays (Xvfb)"
    note = (f"Kitchen screens (wok station, expo, pickup board), a kiosk and the counter are open {where}; "
            f"a picture of each every 5 s: {shots}/\n")
    return procs, displays, note


@dataclass
class BookEntry:
    order_id: str
    number: int
    state: str = "accepted"
    total: int = 0
    items: int = 0
    stations: dict[str, str] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)


class OrderBook:
    """What the monitor sees on the bus, folded into one table."""

    def __init__(self) -> None:
        self.orders: dict[str, BookEntry] = {}
        self.board: dict = {"preparing": [], "ready": []}
        self.healths: dict[str, dict] = {}
        self.printers: dict[str, dict] = {}
        self.printed: Counter = Counter()
        self.rejected = 0
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def on_message(self, m: Incoming) -> None:
        try:
            d = msgspec.json.decode(m.payload)
        except msgspec.DecodeError:
            return
        with self.lock:
            if m.topic.startswith(f"{contract.ROOT}/order/reply/"):
                if d.get("status") == "accepted" and not d.get("duplicate"):
                    e = self.orders.setdefault(d["order_id"], BookEntry(d["order_id"], d["number"]))
                    e.total = d["total"]
                    e.items = sum(line["qty"] for line in d["lines"])
                    self.lines.append(f"#{d['number']:>3} accepted  ¥{d['total'] / 100:.2f}")
                elif d.get("status") == "rejected":
                    self.rejected += 1
                    self.lines.append(f"refused: {d.get('reason')} — {d['message']['en']}")
            elif m.topic == topics.ORDER_UPDATE:
                e = self.orders.setdefault(d["order_id"], BookEntry(d["order_id"], d["number"]))
                if e.state != d["state"]:
                    self.lines.append(f"#{d['number']:>3} {d['state']}")
                e.state = d["state"]
                e.stations = {s["station"]: s["state"] for s in d["stations"]}
            elif m.topic == topics.BOARD:
                self.board = d
            elif m.topic.startswith(f"{contract.ROOT}/health/"):
                self.healths[d.get("device", "")] = d
            elif m.topic.startswith(f"{contract.ROOT}/print/printer/"):
                self.printers[d["printer"]] = d
            elif m.topic == topics.PRINT_JOB_STATE:
                if d.get("state") == "done":
                    self.printed[(d["printer"], d["kind"])] += 1
                    self.lines.append(f"printed {d['kind']} on {d['printer']}")
                elif d.get("state") == "held":
                    self.lines.append(f"held {d['kind']} on {d['printer']}: {d.get('reason')}")

    @property
    def health(self) -> dict:
        return self.healths.get("hub", {})

    def _cloud(self) -> str:
        h = self.healths.get("sync")
        if not h:
            return "sync not running"
        d = h.get("details", {})
        colour = "green" if h.get("state") == "ready" else "yellow"
        return f"[{colour}]{h.get('reason', '?')}[/] (delivered up to event {d.get('cursor', 0)}, {d.get('backlog', '?')} waiting)"

    def render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        colours = {"accepted": "cyan", "in_progress": "yellow", "ready": "green",
                   "completed": "dim", "voided": "red"}
        with self.lock:
            entries = sorted(self.orders.values(), key=lambda e: e.number)
            open_ = [e for e in entries if e.state not in ("completed", "voided")]
            done = [e for e in entries if e.state in ("completed", "voided")][-5:]
            t = Table(title="Order book", expand=True)
            t.add_column("No.", justify="right")
            t.add_column("State")
            for s in STATIONS:
                t.add_column(s.capitalize(), justify="center")
            t.add_column("Items", justify="right")
            t.add_column("Total", justify="right")
            t.add_column("Age", justify="right")
            for e in (open_ + done)[-18:]:
                t.add_row(
                    str(e.number), f"[{colours.get(e.state, 'white')}]{e.state}",
                    *[{"done": "[green]✓", "open": "[yellow]…"}.get(e.stations.get(s, ""), "") for s in STATIONS],
                    str(e.items), f"¥{e.total / 100:.2f}", f"{time.monotonic() - e.since:.0f}s",
                )
            h = self.health
            c = h.get("counters", {})
            head = (
                f"hub [bold]{h.get('state', '?')}[/] · accepted {c.get('accepted', 0)} · "
                f"refused {c.get('rejected', 0)} · duplicates {c.get('duplicates', 0)} · "
                f"cloud: {self._cloud()}\n"
                f"pickup board — preparing: {' '.join(map(str, self.board.get('preparing', []))) or '—'}   "
                f"[green]ready: {' '.join(map(str, self.board.get('ready', []))) or '—'}[/]"
            )
            if self.printers:
                head += "\nprinters — " + " · ".join(
                    f"{p} [{'green' if st['state'] == 'ready' else 'red'}]{st['state']}[/] "
                    f"({sum(n for (pr, _), n in self.printed.items() if pr == p)} printed, {st['queued']} queued)"
                    for p, st in sorted(self.printers.items()))
            return Group(Panel(head, title="Restobox demo store"), t)


STORE = """
[store]
name_zh = "川味小馆"
name_en = "Sichuan Kitchen"
address = "1 Demo Road"
phone = "021-0000-0000"
timezone = "Asia/Shanghai"
"""


def _hub_config(path: Path, port: int, password_file: Path, database: Path, extra: str = "") -> None:
    path.write_text(
        "[device]\nid = \"hub\"\nrole = \"hub\"\n" + STORE +
        f"[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\npassword_file = \"{password_file}\"\n\n"
        f"[hub]\ndatabase = \"{database}\"\nhealth_interval_s = 2\n\n"
        # points for a phone number given on the table QR page
        "[hub.loyalty]\nenabled = true\n\n"
        # receipts for the kiosk; the wok and the fryer print every ticket,
        # the drinks station only those its screen does not confirm
        "[hub.printing.receipt_printers]\nkiosk-1 = \"receipt-1\"\ncounter-2 = \"receipt-1\"\n"
        "[hub.printing.stations.wok]\nprinter = \"kitchen-1\"\nmode = \"always\"\n"
        "[hub.printing.stations.fryer]\nprinter = \"kitchen-1\"\nmode = \"always\"\n"
        "[hub.printing.stations.drinks]\nprinter = \"kitchen-1\"\nmode = \"fallback\"\nfallback_after_s = 20\n\n"
        + extra,
        encoding="utf-8",
    )


def _printing_config(path: Path, port: int, password_file: Path, state: Path) -> None:
    path.write_text(
        "[device]\nid = \"printing\"\nrole = \"printing\"\n" + STORE +
        f"[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\npassword_file = \"{password_file}\"\n\n"
        f"[printing]\ndatabase = \"{state / 'printing.db'}\"\nstatus_interval_s = 1\n\n"
        f"[[printing.printers]]\nid = \"kitchen-1\"\nport = \"virtual\"\n"
        f"directory = \"{state / 'printers' / 'kitchen-1'}\"\nwidth_mm = 80\n\n"
        f"[[printing.printers]]\nid = \"receipt-1\"\nport = \"virtual\"\n"
        f"directory = \"{state / 'printers' / 'receipt-1'}\"\nwidth_mm = 58\n",
        encoding="utf-8",
    )


def _sync_config(path: Path, port: int, password_file: Path, state: Path, cloud_port: int, extra: str = "") -> None:
    # delivery platforms' orders come down from the cloud (restobox/sync_delivery.py)
    token = state / "cloud.token"
    token.write_text("dev-token\n", encoding="utf-8")
    path.write_text(
        "[device]\nid = \"sync\"\nrole = \"sync\"\n" + STORE +
        f"[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\npassword_file = \"{password_file}\"\n\n"
        f"[sync]\ncloud_url = \"http://127.0.0.1:{cloud_port}\"\ntoken_file = \"{token}\"\n"
        f"database = \"{state / 'sync.db'}\"\nstore_database = \"{state / 'store.db'}\"\n"
        "health_interval_s = 2\npoll_s = 0.5\ndelivery = true\ndelivery_wait_s = 10\n\n" + extra,
        encoding="utf-8",
    )


WEB_TABLES = 8


def _web_config(path: Path, port: int, password_file: Path, state: Path, web_port: int, extra: str = "") -> None:
    # on every network of this machine, so a phone on the same Wi-Fi can
    # scan a table's code (which holds this machine's LAN address: the
    # default of an empty public_url)
    path.write_text(
        "[device]\nid = \"web\"\nrole = \"web\"\n" + STORE +
        f"[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\npassword_file = \"{password_file}\"\n\n"
        f"[web]\nhost = \"0.0.0.0\"\nport = {web_port}\n"
        f"table_count = {WEB_TABLES}\nhealth_interval_s = 2\nqr_dir = \"{state / 'table-qr'}\"\nloyalty = true\n\n"
        + extra,
        encoding="utf-8",
    )


OWNER_TOKEN = "demo-owner"
PLATFORM = "mt"
SHOP = "demo-shop"


def _start_cloud(state: Path) -> tuple[subprocess.Popen, int, subprocess.Popen, int]:
    """The chain's cloud, on this machine: ``restobox cloud`` on a SQLite
    file (the code a chain runs on PostgreSQL), the store enrolled, the
    sample menu published, and a delivery platform, simulated
    (``restobox delivery-dev``), selling the store's dishes. Returns (the
    cloud, its port, the platform, its port)."""
    from restobox.cloud import db as cdb
    from restobox.cloud.chain import Chain
    from restobox.cloud.config import CloudSection
    from restobox.cloud.delivery import Hooks
    from restobox.cloud.menus import publish
    from restobox.data import sample_menu_bytes

    port, platform_port = free_port(), free_port()
    url = f"sqlite:///{state / 'cloud.db'}"
    database = cdb.connect(url, pool=1)
    cdb.migrate(database)
    chain = Chain(database)
    chain.enroll("store-1", "演示店 Demo store", "dev-token")
    chain.issue("owner", "owner", OWNER_TOKEN)
    publish(chain, sample_menu_bytes(), "demo")
    office = Hooks(chain, CloudSection(), lambda _store: None)  # the office's set-up of the platform
    office.map_shop(PLATFORM, SHOP, "store-1")
    office.map_skus(PLATFORM, _platform_skus())
    database.close()
    secret = state / "platform.secret"
    secret.write_text("demo-platform-secret\n", encoding="utf-8")
    (state / "cloud.toml").write_text(
        f"[cloud]\ndatabase = \"{url}\"\nport = {port}\noffline_after_s = 60\n\n"
        f"[[cloud.platform]]\nname = \"{PLATFORM}\"\nurl = \"http://127.0.0.1:{platform_port}\"\n"
        f"app_id = \"demo-chain\"\nsecret_file = \"{secret}\"\naccept_within_s = 60\n", encoding="utf-8")
    with open(state / "cloud.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "restobox.cli", "cloud", "--config", str(state / "cloud.toml"),
                                 "serve"], stdout=log, stderr=subprocess.STDOUT)
    with open(state / "delivery.log", "wb") as log:
        platform = subprocess.Popen([sys.executable, "-m", "restobox.cli", "delivery-dev", "--port", str(platform_port),
                                     "--db", str(state / "delivery.db"), "--app-id", "demo-chain", "--platform", PLATFORM,
                                     "--secret-file", str(secret),
                                     "--webhook-url", f"http://127.0.0.1:{port}/v1/delivery/{PLATFORM}/webhook"],
                                    stdout=log, stderr=subprocess.STDOUT)
    return proc, port, platform, platform_port


def _platform_skus() -> dict[str, str]:
    """The platform's sku of every dish and option of the sample menu."""
    menu = load_sample_menu()
    ids = [i.id for i in menu.items] + [o.id for g in menu.modifier_groups for o in g.options]
    return {f"{PLATFORM}-{i}": i for i in ids}


class VirtualDeliveryDiner:
    """Diners ordering on the delivery platform now and then: dishes with no
    choices to make, posted to the simulated platform, which sends them to
    the cloud like a real one."""

    def __init__(self, platform_port: int, every_s: tuple[float, float] = (15.0, 30.0)) -> None:
        import random

        menu = load_sample_menu()
        required = {g.id for g in menu.modifier_groups if g.required}
        self.dishes = [(i.id, i.name.zh, i.price) for i in menu.items
                       if i.available and not i.combo and not required & set(i.modifier_groups)]
        self.url = f"http://127.0.0.1:{platform_port}/_dev/orders"
        self.every_s = every_s
        self.rng = random.Random()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delivery-diner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import httpx

        wait = 3.0  # the first soon after the store opens, then now and then
        while not self._stop.wait(wait):
            wait = self.rng.uniform(*self.every_s)
            item, name, price = self.rng.choice(self.dishes)
            body = {"shop_id": SHOP, "items": [{"sku": f"{PLATFORM}-{item}", "name": name, "qty": 1,
                                                "unit_price": price}], "note": "", "pickup_in_s": 1200}
            try:
                httpx.post(self.url, json=body, timeout=5)
            except httpx.HTTPError:
                pass  # the platform is starting or stopping: the next diner tries


def _start_paygate(state: Path, cloud_port: int) -> tuple[subprocess.Popen, int, str]:
    """The payment gateway, simulated (``restobox paygate-dev``): the
    diners' wallet for paying on the phone. Returns (process, port, the
    ``[paygate]`` section the hub, the sync service and the page share)."""
    port = free_port()
    key = state / "paygate.key"
    key.write_text("demo-merchant-key\n", encoding="utf-8")
    with open(state / "paygate.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "restobox.cli", "paygate-dev", "--port", str(port),
                                 "--db", str(state / "paygate.db"), "--mch-id", "m-demo", "--key-file", str(key)],
                                stdout=log, stderr=subprocess.STDOUT)
    section = (f"[paygate]\nenabled = true\nurl = \"http://127.0.0.1:{port}\"\nmch_id = \"m-demo\"\n"
               f"key_file = \"{key}\"\nnotify_url = \"http://127.0.0.1:{cloud_port}/v1/paygate/notify/store-1\"\n")
    return proc, port, section


def _spawn(name: str, cfg: Path, log_path: Path, *more: str) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "restobox.cli", name, "--config", str(cfg), *more],
                                stdout=log, stderr=subprocess.STDOUT)


def _start_service(name: str, cfg: Path, log_path: Path, book: "OrderBook", device: str,
                   timeout: float = 20, proc: subprocess.Popen | None = None) -> subprocess.Popen | None:
    """Start the service (or take ``proc``, started earlier) and wait for its health "ready"."""
    proc = proc or _spawn(name, cfg, log_path)
    deadline = time.monotonic() + timeout
    while book.healths.get(device, {}).get("state") != "ready":
        if time.monotonic() > deadline or proc.poll() is not None:
            print(f"the {name} service did not start; see {log_path}", file=sys.stderr)
            terminate(proc)
            return None
        time.sleep(0.1)
    return proc


def _device_bus(broker: Broker, name: str, role: str) -> Bus:
    c = broker.creds[name]
    b = Bus(device=name, role=role, host=broker.host, port=broker.port, username=c.username,
            password=c.password, persistent=False, reconnect_max_s=2)
    return b


def save_snapshot(book: OrderBook, path: Path) -> None:
    """The order book as the terminal shows it, as an SVG picture."""
    from rich.console import Console

    con = Console(record=True, width=100, file=open(os.devnull, "w"), force_terminal=True)
    con.print(book.render())
    path.parent.mkdir(parents=True, exist_ok=True)
    con.save_svg(str(path), title="restobox demo")


def run_demo(duration: float = 0, live: bool = True, rate: float = 0.5,
             state_dir: Path | None = None, snapshot: Path | None = None, screens: bool = True) -> int:
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # the live screen is the output; library chatter would tear it
        logging.getLogger("restobox").setLevel(logging.WARNING)
    state = Path(state_dir or os.environ.get("RESTOBOX_DEMO_DIR") or REPO / "var" / "demo")
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    port = free_port()
    out = sys.stdout
    # "watcher" is for the person at the terminal: a device name of its own,
    # since two connections with one name take turns throwing each other off
    broker = Broker(state / "broker", port=port).start_with_devices(
        [*STANDARD_DEVICES, ("watcher", "monitor", None), *((d, r, s) for d, r, s, _ in SCREENS)])
    hub_proc = print_proc = sync_proc = cloud_proc = web_proc = qr_proc = pay_proc = platform_proc = None
    screen_procs: list = []
    displays: list = []
    screens_note = ""
    buses: list[Bus] = []
    actors: list = []
    stop = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # the chain's cloud and the payment gateway: the internet's side, on this machine
        cloud_proc, cloud_port, platform_proc, platform_port = _start_cloud(state)
        pay_proc, pay_port, pay_section = _start_paygate(state, cloud_port)
        cfg = state / "hub.toml"
        _hub_config(cfg, port, broker.creds["hub"].password_file, state / "store.db", pay_section)
        book = OrderBook()
        mon = _device_bus(broker, "monitor-1", "monitor")
        buses.append(mon)
        mon.subscribe(f"{contract.ROOT}/#", book.on_message)
        mon.start()
        mon.wait_connected(10)
        hub_proc = _start_service("hub", cfg, state / "hub.log", book, "hub")
        if hub_proc is None:
            return 1
        # the table QR page and its codes start meanwhile (ready is awaited below)
        web_port = free_port()
        wcfg = state / "web.toml"
        _web_config(wcfg, port, broker.creds["web"].password_file, state, web_port, pay_section)
        web_proc = _spawn("web", wcfg, state / "web.log")
        qr_proc = _spawn("table-qr", wcfg, state / "table-qr.log")
        pcfg = state / "printing.toml"
        _printing_config(pcfg, port, broker.creds["printing"].password_file, state)
        print_proc = _start_service("printing", pcfg, state / "printing.log", book, "printing")
        if print_proc is None:
            return 1
        scfg = state / "sync.toml"
        _sync_config(scfg, port, broker.creds["sync"].password_file, state, cloud_port, pay_section)
        sync_proc = _start_service("sync", scfg, state / "sync.log", book, "sync")
        if sync_proc is None:
            return 1
        web_proc = _start_service("web", wcfg, state / "web.log", book, "web", proc=web_proc)
        if web_proc is None:
            return 1
        menu = load_sample_menu()
        kb = _device_bus(broker, "kiosk-1", "kiosk")
        buses.append(kb)
        kiosk = VirtualKiosk(kb, menu, rate=rate)
        actors.append(kiosk)
        for station, dev in COOKS.items():
            b = _device_bus(broker, dev, "expo" if station == "expo" else "kds")
            buses.append(b)
            actors.append(VirtualCook(b, station, cook_s=(2, 8) if station != "expo" else (1, 4)))
        for b in buses[1:]:
            b.start()
        for b in buses:
            b.wait_connected(10)
        if screens:
            screen_procs, displays, screens_note = _start_screens(broker, state, port)
        actors.append(VirtualDeliveryDiner(platform_port))
        for a in actors:
            a.start()
        print(
            f"Restobox demo: broker on 127.0.0.1:{port}, hub ready, a kiosk placing orders.\n"
            f"Watch the raw messages in another terminal:\n"
            f"  mosquitto_sub -V mqttv5 -p {port} -u watcher "
            f"-P \"$(cat {broker.creds['watcher'].password_file})\" "
            f"-t 'restobox/v1/#' -v\n"
            f"Store database: {state / 'store.db'}   Logs: {state}/*.log\n"
            f"The chain's cloud (restobox cloud on {state / 'cloud.db'}): the owner's dashboard at "
            f"http://127.0.0.1:{cloud_port}/dashboard (token: {OWNER_TOKEN})\n"
            f"A delivery platform, simulated, sends its diners' orders through it: http://127.0.0.1:{platform_port}/\n"
            f"Printed tickets and pictures of the paper: {state / 'printers'}/\n"
            f"Table QR ordering page: http://127.0.0.1:{web_port}/t/1 (tables 1 to {WEB_TABLES}; "
            f"from a phone on this network, scan a code)\n"
            f"The tables' QR codes: {state / 'table-qr'}/ (tables.pdf to print)\n"
            f"Paying on the phone goes to a simulated payment gateway: http://127.0.0.1:{pay_port}/_dev/trades\n"
            + screens_note,
            file=out, flush=True,
        )
        t_end = time.monotonic() + duration if duration > 0 else float("inf")
        if live and out.isatty():
            from rich.live import Live

            with Live(book.render(), refresh_per_second=4, screen=False) as lv:
                while not stop.is_set() and time.monotonic() < t_end:
                    time.sleep(0.25)
                    lv.update(book.render())
        else:
            shown = 0
            while not stop.is_set() and time.monotonic() < t_end:
                time.sleep(0.25)
                with book.lock:
                    new, shown = book.lines[shown:], len(book.lines)
                for line in new:
                    print(line, file=out, flush=True)
        # no new orders, and the last ones answered, before the summary
        kiosk.stop()
        time.sleep(1.0)
        if snapshot is not None:
            save_snapshot(book, snapshot)
        with book.lock:
            n = len(book.orders)
            done = sum(e.state == "completed" for e in book.orders.values())
            receipts = sum(v for (_, k), v in book.printed.items() if k == "receipt")
            kitchen = sum(v for (_, k), v in book.printed.items() if k == "kitchen")
        print(f"\n{n} orders accepted, {done} completed, {book.rejected} refused; "
              f"{receipts} receipts and {kitchen} kitchen tickets printed.\n"
              f"Store database kept at {state / 'store.db'}; the paper is in {state / 'printers'}/.",
              file=out, flush=True)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)
        for a in actors:
            a.stop()
        for b in buses:
            b.stop()
        for proc in (*screen_procs, qr_proc, web_proc, sync_proc, platform_proc, cloud_proc, pay_proc, print_proc,
                     hub_proc):
            if proc is not None:
                terminate(proc, 10)
        for x in displays:
            x.close()
        broker.stop()
