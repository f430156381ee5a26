"""Paying by card at the kiosk, and ordering while the hub is down, in a real
Kivy window under Xvfb with real X clicks, against the real broker and hub
and a payment terminal simulator on a real pty (restobox.dev.terminal_sim).

RESTOBOX_DOCS_SCREENSHOTS=docs/screenshots keeps the screenshots for the README.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.support import kiosk_config, sim  # noqa: F401 (a fixture)
from tests.test_kiosk_ui import KioskProcess, wok_ticket_for
from tests.ui_support import Xvfb

pytestmark = pytest.mark.integration


def config(path: Path, broker, terminal: str | None, methods: str) -> Path:
    term = f'[kiosk.terminal]\ndevice = "{terminal}"\ntimeout_s = 1\npay_timeout_s = 10\n' if terminal else ""
    return kiosk_config(path, broker, kiosk=f"reply_timeout_s = 3\npayment_methods = {methods}", more=term)


@pytest.fixture
def card_kiosk(broker, hub, sim, tmp_path):
    x = Xvfb(1080, 1920)
    k = KioskProcess(x, config(tmp_path / "kiosk.toml", broker, sim.device, '["card", "qr", "counter"]'),
                     tmp_path, "1080x1920")
    try:
        k.start()
        yield k
    finally:
        k.stop()
        x.close()


def to_payment(k: KioskProcess) -> None:
    """attract -> English -> take away -> kung pao (defaults + hot) -> cart -> pay screen."""
    k.wait(lambda st: st["menu"], 20)
    k.tap("lang:en")
    k.on("service", lang="en")
    k.tap("service:takeaway")
    k.tap("next")
    k.on("menu")
    k.tap("category:wok-dishes")
    k.tap("item:kung-pao-chicken")
    k.on("item")
    k.tap("option:spice-hot")
    k.tap("option:rice-white")
    k.tap("add")
    k.on("menu")
    k.tap("cart")
    k.on("cart")
    k.tap("checkout")
    k.on("pay")


def test_card_declined_then_approved_charges_once_and_reaches_the_kitchen(card_kiosk, sim, hub, monitor):
    k = card_kiosk
    to_payment(k)
    assert {"pay:card", "pay:qr", "pay:counter"} <= set(k.state()["buttons"])
    sim.mode = "decline"
    k.tap("pay:card")
    # a clear message and ways forward
    st = k.wait(lambda st: "payment:retry" in st["buttons"], 15)
    assert {"payment:pay_at_counter", "payment:cancel_order"} <= set(st["buttons"])
    k.keep("kiosk-pay-declined.png")
    assert sim.charges == []
    sim.mode = "approve"
    k.tap("payment:retry")
    st = k.wait(lambda st: st["screen"] == "confirm" and st["number"], 20)
    [charge] = sim.charges
    # the order carries its payment: the hub stored it approved with the terminal's reference
    ticket = wok_ticket_for(monitor, st["order_id"])
    assert ticket["number"] == st["number"]
    con = sqlite3.connect(k.workdir / "kiosk.db")
    intents = con.execute("SELECT state FROM payment_intent WHERE order_id = ? ORDER BY created_at",
                          (st["order_id"],)).fetchall()
    con.close()
    assert intents == [("declined",), ("approved",)]
    con = sqlite3.connect(hub.database)
    stored = con.execute('SELECT "payment_method", "payment_status", "payment_reference", "total" FROM "order" '
                         'WHERE "id" = ?', (st["order_id"],)).fetchall()
    con.close()
    assert stored == [("card", "approved", charge.auth_ref, charge.amount)]
    k.keep("kiosk-paid.png")
    assert len(sim.charges) == 1


def test_the_diner_cancels_at_the_terminal(card_kiosk, sim):
    k = card_kiosk
    sim.slow_s = 60  # the diner hesitates at the terminal
    sim.mode = "slow"
    to_payment(k)
    k.tap("pay:qr")
    k.wait(lambda st: "payment:cancel" in st["buttons"], 10)
    time.sleep(0.5)
    k.keep("kiosk-paying.png")
    k.tap("payment:cancel")
    st = k.wait(lambda st: "payment:retry" in st["buttons"], 15)
    assert st["screen"] == "pay"
    assert sim.charges == []
    # and a way forward: pay at the counter instead
    k.tap("payment:pay_at_counter")
    st = k.wait(lambda st: st["screen"] == "confirm" and st["number"], 20)


def test_hub_down_the_diner_gets_a_provisional_number_and_the_kitchen_gets_the_order_once(
        broker, hub, monitor, tmp_path):
    x = Xvfb(1080, 1920)
    k = KioskProcess(x, config(tmp_path / "kiosk.toml", broker, None, '["counter"]'), tmp_path, "1080x1920")
    try:
        k.start()
        k.wait(lambda st: st["menu"], 20)
        hub.process.stop()
        k.wait(lambda st: not st["reachable"], 10)
        to_payment(k)
        k.tap("pay:counter")
        st = k.wait(lambda st: st["screen"] == "confirm" and st["provisional"], 10)
        assert st["provisional"] == "K1-001" and st["number"] is None
        k.keep("kiosk-provisional.png")
        k.tap("done")
        st = k.wait(lambda st: st["screen"] == "attract" and st["staff"], 10)
        assert "1 order(s) waiting for the store hub" in st["staff"]
        k.keep("kiosk-backlog.png")
        hub.process.start(monitor)
        ticket = wok_ticket_for(monitor, st["order_id"] or _last_order(tmp_path))
        assert ticket["provisional_number"] == "K1-001"
        k.wait(lambda st: st["staff"] == "", 15)
        time.sleep(2)
        con = sqlite3.connect(hub.database)
        rows = con.execute('SELECT "number", "provisional_number" FROM "order"').fetchall()
        con.close()
        assert rows == [(ticket["number"], "K1-001")]
    finally:
        k.stop()
        x.close()


def _last_order(workdir: Path) -> str:
    con = sqlite3.connect(workdir / "kiosk.db")
    try:
        return con.execute('SELECT "order_id" FROM "order_outbox" ORDER BY "created_at" DESC').fetchone()[0]
    finally:
        con.close()
