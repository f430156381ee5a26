"""The counter never loses a payment and never takes one twice, against the
real mosquitto, a real hub process (the ledger) and a payment terminal
simulator on a real pty.

The counter's real controller (its bus, counter.db, worker threads) runs in
this process with a small "UI thread" that runs what it posts, as Kivy's
clock does in the app; for the crash, the counter app itself runs in its
own process (a real window under Xvfb) and is SIGKILLed.

- the terminal's answer is lost (a timeout), the counter asks it and finds
  the charge: one charge, one payment;
- the counter is killed while the card is at the terminal; the card is
  charged meanwhile; after the restart the payment is found and recorded
  once;
- the hub is down during a cash sale: recorded at the counter, sent when the
  hub is back, once;
- two counters pay the same order at once: one payment, the other is told
  it is paid, and by whom;
- a counter started after orders were placed lists them (the hub's retained
  list of unpaid orders), finds a kiosk's offline order by its provisional
  receipt's code and takes its payment; an order paid at another counter
  while it was off is not listed again.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from counter.controller import CounterController
from restobox import config
from restobox.contract import topics
from tests.support import UIThread, Kiosk, ledger_rows, new_order, SPRING_ROLLS, KUNG_PAO, sim, wait  # noqa: F401 (sim)
from tests.test_counter_ui import CounterProcess, counter_config, till_hub  # noqa: F401 (fixture)
from tests.ui_support import Xvfb

pytestmark = pytest.mark.integration


class RunningCounter:
    def __init__(self, broker, workdir: Path, device: str = "counter-1", terminal: str | None = None,
                 reply_timeout_s: float = 2.0) -> None:
        self.cfg_path = counter_config(workdir / f"{device}.toml", broker, device, terminal=terminal,
                                       reply_timeout_s=reply_timeout_s)
        self.ui = UIThread(stop_on_error=False)
        self.ctl = CounterController(config.load(self.cfg_path), post=self.ui.post, changed=lambda: None)
        self.ui.tick = self.ctl.tick
        self.ctl.start()
        self.vm = self.ctl.vm

    def tap(self, *targets: str) -> None:
        for t in targets:
            # a tap the view model takes for one touch delivered twice (the
            # same key within its guard) is tapped again until it counts
            wait(lambda t=t: self.ui.call(lambda: self.ctl.tap(t)), 5, f"the tap {t}")

    def get(self, fn):
        return self.ui.call(fn)

    def open_shift(self) -> None:
        wait(lambda: self.get(lambda: self.ctl.link_up and self.vm.screen), 15, "the counter ready")
        if self.get(lambda: self.vm.shift) is None:
            self.tap("key:5", "key:0", "key:0", "shift_open")

    def known(self, order_id: str) -> None:
        wait(lambda: self.get(lambda: order_id in self.vm.orders and self.vm.orders[order_id].total), 15,
             "the order at the counter")

    def close(self) -> None:
        self.ctl.stop()
        self.ui.close()


def payments(db: Path, order_id: str) -> list[tuple]:
    return ledger_rows(db, order_id, "kind", "method", "amount", "device")


@pytest.fixture
def kiosk(broker):
    k = Kiosk(broker, "kiosk-1")
    yield k
    k.close()


def test_terminal_timeout_then_approved_is_one_charge_and_one_payment(broker, till_hub, kiosk, sim, tmp_path):
    sim.mode = "no_reply"  # charges, but its answer is lost
    c = RunningCounter(broker, tmp_path, terminal=sim.device)
    try:
        c.open_shift()
        order = new_order(KUNG_PAO)
        total = kiosk.submit(order).total
        c.known(order.order_id)
        c.tap(f"order:{order.order_id}", "card:card")
        wait(lambda: c.get(lambda: c.vm.screen) == "done", 30, "the card found approved")
        wait(lambda: c.get(lambda: c.vm.result_state) == "recorded", 10, "the hub's answer")
        assert len(sim.charges) == 1 and sim.charges[0].amount == total
        assert sum(sim.pay_requests.values()) == 1  # asked once, then only queried
        assert payments(till_hub.database, order.order_id) == [("payment", "card", total, "counter-1")]
    finally:
        c.close()


def test_hub_down_during_a_cash_sale_is_recorded_here_and_sent_once(broker, till_hub, kiosk, monitor, tmp_path):
    c = RunningCounter(broker, tmp_path)
    try:
        c.open_shift()
        order = new_order(SPRING_ROLLS)
        total = kiosk.submit(order).total
        c.known(order.order_id)
        wait(lambda: c.ctl.store.waiting() == 0, 10, "the shift at the hub")
        till_hub.process.stop()
        wait(lambda: c.get(lambda: not c.vm.hub_reachable), 10, "the hub seen offline")
        c.tap(f"order:{order.order_id}", "cash:exact")
        assert c.get(lambda: c.vm.screen) == "done"
        wait(lambda: c.get(lambda: c.vm.result_state) == "offline", 10, "shown kept here")
        # stored in counter.db by its io thread, which the screen does not wait for
        wait(lambda: c.ctl.store.waiting() == 1, 10, "saved in counter.db")
        till_hub.process.start(monitor)
        wait(lambda: payments(till_hub.database, order.order_id), 20, "the payment at the hub")
        # every request answered: the counter sends nothing more
        wait(lambda: c.ctl.store.waiting() == 0, 15, "the hub's answer")
        assert payments(till_hub.database, order.order_id) == [("payment", "cash", total, "counter-1")]
        assert c.get(lambda: c.vm.orders[order.order_id].payment) == "paid"
    finally:
        c.close()


def test_two_counters_pay_the_same_order_at_once_one_payment_the_other_told(broker, till_hub, kiosk, tmp_path):
    a = RunningCounter(broker, tmp_path, "counter-1")
    x = Xvfb(1280, 800)
    (tmp_path / "b").mkdir()
    b = CounterProcess(x, counter_config(tmp_path / "b" / "counter.toml", broker, "counter-2"), tmp_path / "b",
                       "1280x800")
    try:
        b.start()
        b.wait(lambda st: st["link"], 15)
        b.amount("500")
        b.tap("shift_open")
        a.open_shift()
        order = new_order(KUNG_PAO)
        total = kiosk.submit(order).total
        a.known(order.order_id)
        a.tap(f"order:{order.order_id}")
        b.tap(f"order:{order.order_id}")
        b.wait(lambda st: st["screen"] == "pay")
        # both take the exact cash at the same moment
        st = b.wait(lambda st: "cash:exact" in st["buttons"])
        bx, by, bw, bh = st["buttons"]["cash:exact"]
        click = threading.Thread(target=lambda: b.x.click(bx + bw / 2, by + bh / 2))
        click.start()
        a.tap("cash:exact")
        click.join()
        wait(lambda: payments(till_hub.database, order.order_id), 10, "a payment")
        a_state = wait(lambda: a.get(lambda: a.vm.result_state if a.vm.result_state != "recording" else None)
                       or a.get(lambda: "paid" if a.vm.notice else None), 10, "counter-1 answered")
        b_st = b.wait(lambda st: st["result_state"] in ("recorded", "refused") or st["notice"], 10)
        # both answered, nothing left to send
        wait(lambda: a.ctl.store.waiting() == 0, 10, "counter-1's requests answered")
        b.wait(lambda st: st["waiting"] == 0, 10)
        [(kind, method, amount, device)] = payments(till_hub.database, order.order_id)
        assert (kind, method, amount) == ("payment", "cash", total)
        if device == "counter-1":
            assert a_state == "recorded"
            told = b.state()
            said = told["sub"] if told["result_state"] == "refused" else told["notice"]
        else:
            told = b_st
            assert told["result_state"] == "recorded"
            said = a.get(lambda: a.vm.view().sub if a.vm.result_state == "refused" else a.vm.notice)
        assert "已经付过款" in said and device in said, said
    finally:
        a.close()
        b.stop()
        x.close()


def test_counter_killed_between_the_charge_and_the_record_records_it_once_after_restart(
        broker, till_hub, kiosk, sim, tmp_path):
    sim.mode, sim.slow_s = "slow", 2.0  # the customer takes a while at the terminal
    x = Xvfb(1280, 800)
    cfg = counter_config(tmp_path / "counter.toml", broker, "counter-1", terminal=sim.device)
    p = CounterProcess(x, cfg, tmp_path, "1280x800")
    try:
        p.start()
        p.wait(lambda st: st["link"], 15)
        for k in "500":
            p.tap(f"key:{k}")
        p.tap("shift_open")
        order = new_order(KUNG_PAO)
        total = kiosk.submit(order).total
        p.tap(f"order:{order.order_id}")
        p.tap("card:card")
        p.wait(lambda st: st["charging"] == "waiting_terminal", 10)
        p.kill()  # the card is at the terminal; the counter is gone
        sim.wait_until(lambda: len(sim.charges) == 1, 10, "the charge")
        assert payments(till_hub.database, order.order_id) == []
        p.start()
        wait(lambda: payments(till_hub.database, order.order_id), 20, "the payment recorded after the restart")
        p.wait(lambda st: st["waiting"] == 0, 10)  # every request answered: nothing more is sent
        assert payments(till_hub.database, order.order_id) == [("payment", "card", total, "counter-1")]
        assert len(sim.charges) == 1 and sum(sim.pay_requests.values()) == 1
        p.wait(lambda st: [total and n for n, _ in st["unpaid"]] == [], 10)
    finally:
        p.stop()
        x.close()


def test_walk_in_cash_sale_with_the_hub_down_gets_a_provisional_number_and_reaches_the_hub_once(
        broker, till_hub, monitor, tmp_path):
    c = RunningCounter(broker, tmp_path)
    try:
        c.open_shift()
        wait(lambda: c.get(lambda: c.ctl.has_menu), 15, "the menu")
        wait(lambda: c.ctl.store.waiting() == 0, 10, "the shift at the hub")
        till_hub.process.stop()
        wait(lambda: c.get(lambda: not c.vm.hub_reachable), 10, "the hub seen offline")
        c.tap("walkin", "walk:category:snacks", "walk:item:spring-rolls", "walk:add", "walk:checkout")
        provisional = wait(lambda: c.get(lambda: c.vm.order() and c.vm.order().provisional), 10,
                           "a provisional number")
        assert provisional == "C1-001"
        order_id, due = c.get(lambda: (c.vm.selected, c.vm.due))
        receipt = monitor.wait_json(topics.PRINT_JOB, lambda j: j.get("kind") == "receipt"
                                    and j["order_id"] == order_id)
        assert receipt["receipt"]["provisional_number"] == "C1-001" and receipt["printer"] == "front"
        c.tap("key:1", "key:0", "key:0", "cash")
        wait(lambda: c.get(lambda: c.vm.result_state) == "offline", 10, "saved here")
        assert c.get(lambda: c.vm.view().big) == f"找零 ¥{(10000 - due) // 100}.{(10000 - due) % 100:02d}"
        till_hub.process.start(monitor)
        wait(lambda: payments(till_hub.database, order_id), 20, "the payment at the hub")
        # every request answered: the counter sends nothing more
        wait(lambda: c.ctl.store.waiting() == 0, 15, "the hub's answer")
        assert payments(till_hub.database, order_id) == [("payment", "cash", due, "counter-1")]
        con = sqlite3.connect(till_hub.database)
        try:
            rows = con.execute('SELECT "provisional_number", "channel", "payment" FROM "order" WHERE "id" = ?',
                               (order_id,)).fetchall()
        finally:
            con.close()
        assert rows == [("C1-001", "counter", "paid")]
    finally:
        c.close()


def test_a_counter_started_after_the_orders_lists_them_finds_the_offline_one_by_its_code_and_takes_its_money(
        broker, till_hub, kiosk, tmp_path):
    """Orders placed while the counter was off: the hub's till/unpaid (retained)
    lists them at once, the kiosk's provisional receipt (P code) finds its
    offline order, and an order paid at another counter meanwhile is not
    listed again."""
    from tests.test_ledger import Counter as TillClient, cash

    at_kiosk = new_order(KUNG_PAO)
    offline = new_order(SPRING_ROLLS, offline=True, provisional_number="K1-007")
    kiosk.submit(at_kiosk)
    total = kiosk.submit(offline).total
    c = RunningCounter(broker, tmp_path)
    try:
        c.open_shift()
        wait(lambda: c.get(lambda: {o.order_id for o in c.vm.unpaid()}) == {at_kiosk.order_id, offline.order_id},
             15, "both orders listed")
        day = c.ctl.business_date().replace("-", "")
        for ch in f"P{day}K1-007":
            c.get(lambda ch=ch: c.ctl.key(ch))
        c.get(c.ctl.enter)
        assert c.get(lambda: (c.vm.selected, c.vm.screen)) == (offline.order_id, "pay")
        c.tap("cash:exact")
        wait(lambda: c.get(lambda: c.vm.result_state) == "recorded", 10, "the hub's answer")
        assert payments(till_hub.database, offline.order_id) == [("payment", "cash", total, "counter-1")]
        wait(lambda: c.get(lambda: [o.order_id for o in c.vm.unpaid()]) == [at_kiosk.order_id], 10,
             "the paid order off the list")
    finally:
        c.close()
    other = TillClient(broker, "counter-2")  # while counter-1 is off
    try:
        assert other.pay(at_kiosk.order_id, cash(kiosk_total(till_hub.database, at_kiosk.order_id)))["ok"]
    finally:
        other.close()
    c = RunningCounter(broker, tmp_path)  # the same counter.db: it knew the order as unpaid
    try:
        wait(lambda: c.get(lambda: c.vm.hub_unpaid) == set(), 15, "the hub's list")
        assert at_kiosk.order_id in c.get(lambda: c.vm.orders)
        assert c.get(c.vm.unpaid) == []
    finally:
        c.close()


def kiosk_total(db: Path, order_id: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute('SELECT "total" FROM "order" WHERE "id" = ?', (order_id,)).fetchone()[0]
    finally:
        con.close()
