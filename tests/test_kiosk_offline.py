"""The kiosk keeps selling when the hub or the broker cannot be reached, and
every order reaches the hub exactly once when they are back.

The kiosk's real controller (its bus, kiosk.db, worker threads) runs against
the real mosquitto and a real hub process; a small "UI thread" here runs what
the controller posts, as Kivy's clock does in the app. The hub is stopped,
frozen (SIGSTOP) and restarted; the broker is killed and restarted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from kiosk.controller import KioskController
from restobox import config
from tests.support import UIThread, kiosk_config

pytestmark = pytest.mark.integration


def wait(pred, timeout: float = 15.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(f"no {what} within {timeout:g} s")


class RunningKiosk:
    def __init__(self, broker, workdir: Path, reply_timeout_s: float = 2.0, kiosk_extra: str = "") -> None:
        self.cfg_path = kiosk_config(workdir / "kiosk.toml", broker,
                                     kiosk=f"reply_timeout_s = {reply_timeout_s}\n{kiosk_extra}")
        self.ui = UIThread()
        self.ctl = KioskController(config.load(self.cfg_path), post=self.ui.post, changed=lambda: None)
        self.ui.tick = self.ctl.tick
        self.ctl.start()

    def tap(self, target: str) -> None:
        self.ui.call(lambda: self.ctl.tap(target))

    def order_spring_rolls(self) -> str:
        """A full order with real taps on the view model, paid at the counter.
        Returns the order id."""
        wait(lambda: self.ctl.has_menu, 15, "menu")
        for t in ("start", "lang:en", "service:takeaway", "next", "item:spring-rolls", "add", "cart",
                  "checkout", "pay:counter"):
            self.tap(t)
        return self.ui.call(lambda: self.ctl.vm.order_id)

    def confirmed(self, timeout: float = 15.0) -> tuple[int | None, str | None]:
        vm = self.ctl.vm
        wait(lambda: self.ui.call(lambda: vm.screen) == "confirm", timeout, "confirmation")
        return self.ui.call(lambda: (vm.number, vm.provisional))

    def outbox(self, order_id: str):
        return self.ctl.store.get_order(order_id)

    def close(self) -> None:
        self.ctl.stop()
        self.ui.close()


@pytest.fixture
def kiosk_ctl(broker, tmp_path):
    k = RunningKiosk(broker, tmp_path)
    yield k
    k.close()


def hub_orders(database: Path, order_id: str) -> list[tuple]:
    con = sqlite3.connect(database)
    try:
        return con.execute('SELECT "number", "offline", "provisional_number" FROM "order" WHERE "id" = ?',
                           (order_id,)).fetchall()
    finally:
        con.close()


def tickets_for(monitor, order_id: str) -> list[dict]:
    out = []
    for m in list(monitor.received):
        if m.topic.startswith("restobox/v1/station/") and m.topic.endswith("/ticket"):
            d = msgspec.json.decode(m.payload)
            if d.get("order_id") == order_id:
                out.append(d)
    return out


def test_online_order_gets_the_hubs_number(hub, kiosk_ctl):
    oid = kiosk_ctl.order_spring_rolls()
    number, provisional = kiosk_ctl.confirmed()
    assert number is not None and provisional is None
    row = wait(lambda: (r := kiosk_ctl.outbox(oid)) and r.state == "delivered" and r, 5, "delivered")
    assert row.number == number
    assert hub_orders(hub.database, oid) == [(number, 0, "")]


def test_hub_down_gives_a_provisional_number_and_the_order_reaches_the_hub_once(hub, monitor, kiosk_ctl):
    k = kiosk_ctl
    wait(lambda: k.ctl.has_menu, 15, "menu")
    hub.process.stop()
    wait(lambda: k.ui.call(lambda: k.ctl.hub_up) is False, 10, "hub offline")
    oid = k.order_spring_rolls()
    number, provisional = k.confirmed(5)
    assert number is None and provisional == "K1-001"
    row = k.outbox(oid)
    assert row.state == "queued" and row.provisional_number == "K1-001"
    assert k.ctl.store.backlog().queued == 1
    wait(lambda: k.ui.call(lambda: k.ctl.staff and k.ctl.staff.backlog.waiting == 1), 5, "backlog shown")
    assert "1 order(s) waiting for the store hub" in k.ui.call(lambda: k.ctl.staff.words().en)
    assert hub_orders(hub.database, oid) == []
    # the hub comes back: the queued order is delivered, once
    hub.process.start(monitor)
    row = wait(lambda: (r := k.outbox(oid)) and r.state == "delivered" and r, 20, "delivery")
    [(hub_number, offline, prov)] = hub_orders(hub.database, oid)
    assert (hub_number, offline, prov) == (row.number, 1, "K1-001")
    wait(lambda: tickets_for(monitor, oid), 5, "kitchen ticket")
    time.sleep(3)  # anything sent twice would have arrived by now
    [ticket] = {(t["ticket_id"], t["revision"]): t for t in tickets_for(monitor, oid)}.values()
    assert ticket["provisional_number"] == "K1-001" and ticket["number"] == hub_number
    assert hub_orders(hub.database, oid) == [(hub_number, 1, "K1-001")]
    wait(lambda: k.ui.call(lambda: k.ctl.staff.words()) is None, 5, "backlog cleared")


def order_while_the_hub_is_frozen(k: RunningKiosk, hub, meanwhile=lambda: None) -> str:
    """An order placed while the hub's process is stopped (SIGSTOP), so its
    first copy waits at the broker: the kiosk stops waiting after
    reply_timeout_s and shows the provisional number K1-001 (within 6 s).
    ``meanwhile`` runs before the hub goes on. Returns the order id, once the
    hub has it with that number, the kiosk has the hub's, and the kitchen's
    tickets show it."""
    wait(lambda: k.ctl.has_menu, 15, "menu")
    os.kill(hub.process.proc.pid, signal.SIGSTOP)
    try:
        oid = k.order_spring_rolls()
        t0 = time.monotonic()
        number, provisional = k.confirmed(10)
        assert number is None and provisional == "K1-001"
        assert time.monotonic() - t0 < 6
        meanwhile()
    finally:
        os.kill(hub.process.proc.pid, signal.SIGCONT)
    row = wait(lambda: (r := k.outbox(oid)) and r.state == "delivered" and r, 30, "delivery")
    wait(lambda: hub_orders(hub.database, oid) == [(row.number, 1, "K1-001")], 10, "provisional number at the hub")
    return oid


def test_a_hub_that_does_not_answer_in_time(hub, monitor, kiosk_ctl):
    """The hub is frozen: the order waits at the broker. The kiosk stops
    waiting after reply_timeout_s and shows a provisional number; when the hub
    thaws it takes the first copy, then the queued copy as a duplicate that
    records the diner's number on the kitchen's tickets."""
    oid = order_while_the_hub_is_frozen(kiosk_ctl, hub)
    wait(lambda: any(t["provisional_number"] == "K1-001" for t in tickets_for(monitor, oid)), 10,
         "ticket with the provisional number")
    # the number reached the hub only through the queued copy, taken as a
    # duplicate of the first: one order
    assert len(hub_orders(hub.database, oid)) == 1
    # the first copy made revision 1; the queued copy re-sent it with the number
    revs = sorted((t["revision"], t["provisional_number"]) for t in tickets_for(monitor, oid))
    assert revs[0] == (1, "") and revs[-1] == (2, "K1-001"), revs


def test_the_broker_restarting_between_the_first_copy_and_the_resend_keeps_the_diners_number(broker, hub, monitor,
                                                                                               kiosk_ctl):
    """As above, and the broker dies and comes back (with whatever it had
    saved) before the kiosk sends its queued copy. Whichever copies reach
    the hub, it has the order once, with the number the diner holds, and so
    do the kitchen's tickets."""
    oid = order_while_the_hub_is_frozen(kiosk_ctl, hub, meanwhile=lambda: (broker.kill(), broker.start()))
    wait(lambda: any(t["provisional_number"] == "K1-001" for t in tickets_for(monitor, oid)), 15,
         "ticket with the provisional number")


def test_broker_down_then_back(broker, hub, monitor, tmp_path):
    k = RunningKiosk(broker, tmp_path / "k")
    try:
        wait(lambda: k.ctl.has_menu, 15, "menu")
        broker.kill()
        wait(lambda: not k.ui.call(lambda: k.ctl.link_up), 10, "link down")
        oid = k.order_spring_rolls()
        number, provisional = k.confirmed(5)
        assert number is None and provisional == "K1-001"
        broker.start()
        row = wait(lambda: (r := k.outbox(oid)) and r.state == "delivered" and r, 30, "delivery")
        assert hub_orders(hub.database, oid) == [(row.number, 1, "K1-001")]
    finally:
        k.close()


def test_a_restarted_kiosk_starts_from_its_cached_menu_and_delivers_its_queue(broker, hub, monitor, tmp_path):
    workdir = tmp_path / "k"
    workdir.mkdir()
    k = RunningKiosk(broker, workdir)
    try:
        wait(lambda: k.ctl.has_menu, 15, "menu")
        time.sleep(0.5)  # the menu is written to kiosk.db on the io thread
    finally:
        k.close()
    # store network gone (no broker: no retained menu either), kiosk restarted
    hub.process.stop()
    broker.kill()
    k = RunningKiosk(broker, workdir)
    try:
        wait(lambda: k.ctl.has_menu, 5, "menu from the cache")
        assert k.ctl.menu_from_cache and not k.ctl.link_up
        oid = k.order_spring_rolls()
        number, provisional = k.confirmed(5)
        assert provisional == "K1-001"
    finally:
        k.close()
    # the kiosk restarts again before the network is back
    broker.start()
    hub.process.start(monitor)
    k = RunningKiosk(broker, workdir)
    try:
        row = wait(lambda: (r := k.outbox(oid)) and r.state == "delivered" and r, 30, "delivery")
        assert hub_orders(hub.database, oid) == [(row.number, 1, "K1-001")]
        # a second offline order gets the next provisional number, never the same
        hub.process.stop()
        wait(lambda: k.ui.call(lambda: k.ctl.hub_up) is False, 10, "hub offline")
        k.order_spring_rolls()
        assert k.confirmed(5)[1] == "K1-002"
    finally:
        k.close()
