"""The cashier's counter in a real Kivy window (landscape 1280×800) under
Xvfb, driven by real X clicks and a "scanner" typing keys into the window
(xdotool), against the real broker, a real hub with its ledger and a payment
terminal simulator on a real pty: open a shift, find an order by scanning
its receipt, take cash with change (the drawer opens), split cash and card,
refund a line with the manager's PIN.

One window for the whole module (each test goes on from the last: the
shift stays open). RESTOBOX_DOCS_SCREENSHOTS=docs/screenshots keeps the
screenshots for the docs.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from restobox import config
from restobox.contract import topics
from restobox.dev.emulators import TcpPrinter
from restobox.dev.terminal_sim import TerminalSim
from restobox.printing.spooler import Spooler
from tests.conftest import broker_with_standard_devices
from tests.test_phonepay_hub import KEY as PAY_KEY, MCH as PAY_MCH, Page
from tests.support import Device, HubProcess, Kiosk, KUNG_PAO, MILK_TEA, SPRING_ROLLS, device_config, hub_config, \
    ledger_rows, new_order, printing_service_config, tcp_printer, wait
from tests.ui_support import TouchAppProcess, Xvfb

pytestmark = pytest.mark.integration

PIN = "2468"
PULSE = b"\x1bp\x00\x32\x32"  # ESC p, pin 2: the drawer's kick (python-escpos cashdraw(2))


def counter_config(path: Path, broker, device: str = "counter-1", *, terminal: str | None = None,
                   reply_timeout_s: float = 2.0, extra: str = "") -> Path:
    """A counter's config on the test broker, its counter.db next to ``path``."""
    term = f'[counter.terminal]\ndevice = "{terminal}"\ntimeout_s = 1\npay_timeout_s = 10\n' if terminal else ""
    return device_config(path, broker, device, "counter", f"""[counter]
database = "{path.parent / f'{device}.db'}"
reply_timeout_s = {reply_timeout_s}
receipt_printer = "front"
{extra}
{term}""")


@dataclass
class TillHub:
    process: HubProcess
    database: Path


def start_till_hub(broker, monitor, workdir: Path) -> TillHub:
    """A hub with a manager's PIN (2468) for refunds, taking phone payments
    at the tables (tests/test_phonepay_hub.py's merchant)."""
    pins = workdir / "pins"
    pins.write_text(f"wang:{hashlib.sha256(PIN.encode()).hexdigest()}\n", encoding="utf-8")
    key = workdir / "paygate.key"
    key.write_text(PAY_KEY.decode() + "\n", encoding="utf-8")
    db = workdir / "store.db"
    cfg = hub_config(workdir / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=db, extra=f'[hub.till]\nmanager_pin_file = "{pins}"\n'
                     f'[paygate]\nenabled = true\nmch_id = "{PAY_MCH}"\nkey_file = "{key}"\nexpire_s = 60\n')
    proc = HubProcess(cfg, workdir / "hub.log")
    proc.start(monitor)
    return TillHub(proc, db)


@pytest.fixture
def till_hub(broker, monitor, tmp_path):
    h = start_till_hub(broker, monitor, tmp_path)
    yield h
    h.process.stop()


class CounterProcess(TouchAppProcess):
    """``python -m counter`` on its own Xvfb; taps buttons by their view-model id."""

    MODULE = NAME = "counter"

    def kill(self) -> None:
        """SIGKILL: the counter gone mid-payment (no goodbye, nothing flushed)."""
        self.proc.kill()
        self.proc.wait(10)

    def amount(self, yuan: str) -> None:
        """Digits on the keypad, each seen in the entry before the next (the
        same key twice is two digits, never one touch taken twice)."""
        def typed(st: dict) -> int:  # the PIN on the refund screen, else the amount
            return st["pin_digits"] if st["screen"] == "refund" else len(st["entry"])

        n = typed(self.state())
        for k in yuan:
            n += 1
            self.tap(f"key:{k}")
            self.wait(lambda st, want=n: typed(st) == want, 5)

    def scan(self, code: str) -> None:
        """A keyboard-wedge scanner: the code's keys, then Enter."""
        self.x.xdotool("type", "--delay", "15", code)
        self.x.key("Return")


# ---------------------------------------------------------------- the module's store


@dataclass
class Store:
    broker: object
    monitor: Device
    hub: TillHub
    kiosk: Kiosk
    sim: TerminalSim
    counter: CounterProcess
    printer: TcpPrinter  # the counter's receipt printer ("front"), with the cash drawer on it


@pytest.fixture(scope="module")
def store(tmp_path_factory, standard_devices_dir):
    work = tmp_path_factory.mktemp("counter-ui")
    b = broker_with_standard_devices(work / "broker", standard_devices_dir).start()
    stack = [b.stop]
    try:
        monitor = Device(b, "monitor-1", ("restobox/v1/#",), role="monitor")
        stack.append(monitor.close)
        hub = start_till_hub(b, monitor, work)
        stack.append(hub.process.stop)
        kiosk = Kiosk(b, "kiosk-1")
        stack.append(kiosk.close)
        sim = TerminalSim(mode="approve")
        stack.append(sim.close)
        printer = TcpPrinter()
        stack.append(printer.close)
        spooler = Spooler(config.load(printing_config(work / "printing.toml", b, work, printer)))
        spooler.start()
        stack.append(spooler.stop)
        x = Xvfb(1280, 800)
        stack.append(x.close)
        c = CounterProcess(x, counter_config(work / "counter.toml", b, terminal=sim.device), work, "1280x800")
        c.start()
        stack.append(c.stop)
        c.wait(lambda st: st["link"] and st["menu"], 20)
        yield Store(b, monitor, hub, kiosk, sim, c, printer)
    finally:
        for fn in reversed(stack):
            fn()


def printing_config(path: Path, broker, workdir: Path, printer: TcpPrinter) -> Path:
    """The printing service with one printer, the counter's ("front")."""
    return printing_service_config(path, broker, workdir, tcp_printer("front", printer.port))


def ledger(db: Path, order_id: str) -> list[tuple]:
    return ledger_rows(db, order_id, "kind", "method", "amount", "tendered")


def drawer_job(monitor: Device, after: float) -> dict:
    m = monitor.wait_for(lambda m: m.topic == topics.PRINT_JOB and m.received >= after
                         and msgspec.json.decode(m.payload).get("kind") == "drawer", 10)
    return msgspec.json.decode(m.payload)


def test_open_a_shift_and_find_an_order_by_scanning_its_receipt(store):
    c = store.counter
    st = c.wait(lambda st: st["screen"] == "shift")
    c.keep("counter-shift.png")
    c.amount("500")
    c.wait(lambda st: st["big"] == "¥500.00")
    c.tap("shift_open")
    c.wait(lambda st: st["screen"] == "orders" and st["shift"])
    reply = store.kiosk.submit(new_order(KUNG_PAO, MILK_TEA))
    store.kiosk.submit(new_order(SPRING_ROLLS))
    c.wait(lambda st: len(st["unpaid"]) == 2)
    c.keep("counter-orders.png")
    code = f"R{reply.business_date.replace('-', '')}{reply.number}"
    c.scan(code)
    st = c.wait(lambda st: st["screen"] == "pay")
    assert st["order"]["order_id"] == reply.order_id and st["due"] == reply.total
    # a bare number works too, and yesterday's receipt is not today's order
    c.tap("back")
    c.wait(lambda st: st["screen"] == "orders")
    c.scan("R20200101" + str(reply.number))
    st = c.wait(lambda st: st["notice"])
    assert "2020-01-01" in st["notice"] and st["screen"] == "orders"


def test_take_cash_with_change_and_the_drawer_opens(store):
    c = store.counter
    reply = store.kiosk.submit(new_order(KUNG_PAO))
    c.wait(lambda st: [reply.number, reply.order_id] in st["unpaid"])
    c.scan(str(reply.number))
    c.wait(lambda st: st["screen"] == "pay" and st["selected"] == reply.order_id)
    since = time.monotonic()
    c.amount("100")
    c.wait(lambda st: "100.00" in st["sub"])
    c.keep("counter-pay.png")
    c.tap("cash")
    change = 10000 - reply.total
    st = c.wait(lambda st: st["screen"] == "done")
    assert st["big"] == f"找零 ¥{change // 100}.{change % 100:02d}"
    c.wait(lambda st: st["result_state"] == "recorded")
    c.keep("counter-change.png")
    assert ledger(store.hub.database, reply.order_id) == [("payment", "cash", reply.total, 10000)]
    job = drawer_job(store.monitor, since)
    assert job["printer"] == "front" and job["job_id"].endswith(":drawer") and job["drawer_pin"] == 2
    # the printing service sent the drawer's pulse to the printer, and nothing else for it
    wait(lambda: store.printer.received.count(PULSE) == 1, 10, "the drawer pulse at the printer")
    c.tap("done")
    st = c.wait(lambda st: st["screen"] == "orders")
    assert reply.order_id not in [o for _, o in st["unpaid"]]


def test_split_cash_and_card(store):
    c = store.counter
    reply = store.kiosk.submit(new_order(KUNG_PAO, SPRING_ROLLS))
    c.wait(lambda st: [reply.number, reply.order_id] in st["unpaid"])
    c.tap("lang")
    c.wait(lambda st: st["lang"] == "en")
    c.tap(f"order:{reply.order_id}")
    c.amount("20")
    c.tap("cash")
    st = c.wait(lambda st: st["tenders"] == [["cash", 2000, 2000]])
    assert st["due"] == reply.total - 2000 and st["screen"] == "pay"
    c.keep("counter-split.png")
    c.tap("card:card")
    st = c.wait(lambda st: st["screen"] == "done" and st["result_state"] == "recorded", 20)
    assert st["tenders"][1][:2] == ["card", reply.total - 2000]
    [charge] = store.sim.charges
    assert charge.amount == reply.total - 2000
    assert ledger(store.hub.database, reply.order_id) == [("payment", "cash", 2000, 2000),
                                                           ("payment", "card", reply.total - 2000, 0)]
    c.keep("counter-split-paid.png")
    c.tap("done")
    c.tap("lang")
    c.wait(lambda st: st["lang"] == "zh" and st["screen"] == "orders")


def test_a_walk_in_order_paid_then_a_line_refunded_with_the_managers_pin(store):
    c = store.counter
    c.tap("walkin")
    c.tap("walk:category:wok-dishes")
    c.tap("walk:item:kung-pao-chicken")
    c.wait(lambda st: st["walkin"] == "item")
    c.tap("walk:add")
    c.wait(lambda st: st["walkin"] == "menu")
    c.tap("walk:category:drinks")
    c.tap("walk:item:bubble-milk-tea")
    c.tap("walk:add")
    c.wait(lambda st: st["walkin"] == "menu")
    c.keep("counter-walkin.png")
    c.tap("walk:checkout")
    st = c.wait(lambda st: st["screen"] == "pay" and st["order"]["number"] and st["order"]["lines"] == 2)
    order_id, total = st["order"]["order_id"], st["due"]
    c.tap("cash:exact")
    c.wait(lambda st: st["result_state"] == "recorded")
    c.tap("done")
    c.wait(lambda st: st["screen"] == "orders")  # (keys reach the window before a touch's release)
    c.scan(str(st["order"]["number"]))
    c.wait(lambda st: st["screen"] == "refund")
    c.tap("rl:1:+")
    c.tap("reason:quality")
    c.amount(PIN)
    c.wait(lambda st: "●●●●" in st["big"])
    c.keep("counter-refund.png")
    since = time.monotonic()
    c.tap("refund_go")
    st = c.wait(lambda st: st["screen"] == "done" and st["result_state"] == "recorded")
    rows = ledger(store.hub.database, order_id)
    assert rows[0] == ("payment", "cash", total, total)
    assert rows[1][0:2] == ("refund", "cash") and 0 < rows[1][2] < total
    assert st["order"]["payment"] == "partly_refunded"
    drawer_job(store.monitor, since)
    c.keep("counter-refunded.png")
    # the cash given back opened the drawer again (the walk-in's cash took it to 3)
    wait(lambda: store.printer.received.count(PULSE) == 4, 10, "the refund's drawer pulse")
    c.tap("done")
    c.wait(lambda st: st["screen"] == "orders")


def test_close_the_shift_with_a_counted_drawer_shows_over_or_short(store):
    c = store.counter
    c.wait(lambda st: st["screen"] == "orders")
    c.tap("shift_close")
    c.wait(lambda st: st["screen"] == "close")
    # the float (500) and the cash taken so far, less the refund, less one yuan: short by ¥1.00
    con = sqlite3.connect(store.hub.database)
    try:
        cash = con.execute('SELECT COALESCE(SUM(CASE "kind" WHEN \'payment\' THEN "amount" ELSE -"amount" END), 0) '
                           'FROM "payment" WHERE "method" = \'cash\'').fetchone()[0]
    finally:
        con.close()
    counted = 50000 + cash - 100
    c.amount(f"{counted // 100}.{counted % 100:02d}")
    c.wait(lambda st: st["big"] == f"¥{counted // 100}.{counted % 100:02d}")
    c.tap("close")
    st = c.wait(lambda st: "¥1.00" in st["big"])
    assert st["big"] == "短款 ¥1.00"
    c.keep("counter-close.png")
    c.tap("done")
    st = c.wait(lambda st: st["screen"] == "shift")
    assert st["shift"] is None


def test_an_order_the_diner_is_paying_by_phone_is_shown_so_and_cash_here_waits_for_a_second_tap(store):
    """The table QR page asks the real hub for the order's phone payment
    (pay/intent goes out); the counter shows the order as paid by phone, and
    the first cash tap for it only tells the cashier."""
    c = store.counter
    if c.state()["screen"] == "shift":  # the module's earlier tests may have closed theirs
        c.amount("500")
        c.wait(lambda st: st["big"] == "¥500.00")
        c.tap("shift_open")
    c.wait(lambda st: st["screen"] == "orders" and st["shift"])
    order = new_order(KUNG_PAO, channel="qr", service="dine_in", table="5")
    reply = store.kiosk.submit(order)
    assert reply.status == "accepted", reply
    c.wait(lambda st: [reply.number, order.order_id] in st["unpaid"])
    page = Page(store.broker)
    try:
        answer = page.ask(order.order_id)
        assert answer["ok"] and answer["intent"]["state"] == "open", answer
    finally:
        page.close()
    st = c.wait(lambda st: any(f"{reply.number} 号" in r and "顾客手机支付中" in r for r in st["rows"]))
    c.scan(str(reply.number))
    st = c.wait(lambda st: st["screen"] == "pay" and st["selected"] == order.order_id)
    assert any("顾客正在手机上付这一单" in r for r in st["rows"]), st["rows"]
    c.tap("cash:exact")
    st = c.wait(lambda st: "再按一次" in st["notice"])
    assert st["screen"] == "pay" and ledger(store.hub.database, order.order_id) == []
    c.keep("counter-phone-paying.png")
    c.tap("cash:exact")
    c.wait(lambda st: st["screen"] == "done" and st["result_state"] == "recorded")
    assert ledger(store.hub.database, order.order_id) == [("payment", "cash", reply.total, reply.total)]
    c.tap("done")
    c.wait(lambda st: st["screen"] == "orders")
