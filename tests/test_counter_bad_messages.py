"""The counter survives any payload on every topic it takes: each bad message
is counted in its health (``bad_messages``, ``bad_message_<reason>``),
nothing raises on the UI thread, a menu that breaks the menu's rules is not
used, answers to requests it never made change nothing it stored, and the
cashier's next cash payment is still recorded once at the hub.

The counter's real controller runs headless against the real broker and a
real hub; a UI thread here runs what it posts and stops at the first
exception, as a Kivy app would. The bad messages come from a second device
of role hub."""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter

import msgspec
import pytest

from counter.controller import CounterController
from restobox import config, contract
from restobox.contract import (
    LedgerEntry,
    MenuMessage,
    OrderReply,
    OrderUpdate,
    PayIntent,
    PaymentUpdate,
    TillReply,
    UnpaidOrder,
    UnpaidOrders,
    Words,
    topics,
)
from restobox.data import load_sample_menu
from tests.support import Device, Kiosk, KUNG_PAO, UIThread, new_order, wait
from tests.test_bad_messages_common import POISON, counted, expected, flood
from tests.test_counter_ui import counter_config, till_hub  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

BIG = 2**53 - 1


def test_the_counter_counts_poison_keeps_its_data_and_takes_the_next_payment(broker, till_hub, monitor,
                                                                             tmp_path):
    broker.add_device("hub-2", "hub")
    hub2 = Device(broker, "hub-2", role="hub")
    kiosk = Kiosk(broker, "kiosk-1")
    ui = UIThread()
    ctl = CounterController(config.load(counter_config(tmp_path / "counter.toml", broker)), post=ui.post,
                            changed=lambda: None)
    ui.tick = ctl.tick
    ctl.start()
    try:
        wait(lambda: ctl.has_menu and ui.call(lambda: ctl.reachable), 15, "the hub's menu")
        for t in ("key:5", "key:0", "key:0", "shift_open"):
            ui.call(lambda t=t: ctl.tap(t))
        wait(lambda: ctl.store.waiting() == 0, 10, "the shift at the hub")
        me = "counter-1"
        mine = (topics.MENU, topics.SOLDOUT, topics.ORDER_UPDATE, topics.PAYMENT_UPDATE, topics.TILL_UNPAID,
                topics.PAY_INTENT, topics.till_reply(me),
                topics.order_reply(me), topics.loyalty_reply(me), topics.staff_reply(me), topics.presence("hub"))
        for topic in mine:
            flood(hub2, topic)
        menu = load_sample_menu()
        hub2.publish(topics.MENU, contract.encode(MenuMessage(  # breaks the menu's rules: not used
            menu=msgspec.structs.replace(menu, version="poison", items=menu.items + (menu.items[0],)), at="")))
        # well-formed, absurd, or answering nothing this counter asked
        stranger = str(uuid.uuid4())
        entry = LedgerEntry(entry_id="x" * 3000, order_id=stranger, kind="payment", method="cash", amount=BIG,
                            staff="s" * 5000, at="")
        hub2.publish(topics.till_reply(me), contract.encode(TillReply(
            request_id=str(uuid.uuid4()), ok=True, order_id=stranger, number=BIG, total=-BIG, paid=BIG,
            entries=(entry,) * 20, message=Words("", "w" * 8000))))
        hub2.publish(topics.PAYMENT_UPDATE, contract.encode(PaymentUpdate(
            order_id=stranger, number=-BIG, business_date="", payment="paid", paid=-BIG, total=BIG,
            entries=(entry,), at="")))
        hub2.publish(topics.ORDER_UPDATE, contract.encode(OrderUpdate(
            order_id="", number=BIG, business_date="", state="voided", at="", total=-BIG, table="T" * 8)))
        hub2.publish(topics.TILL_UNPAID, contract.encode(UnpaidOrders(business_date="", more=-BIG, at="", orders=(
            UnpaidOrder(order_id="", number=BIG, channel="", service="", total=-BIG, paid=BIG, due=-BIG,
                        state="voided", provisional_number="P" * 3000),) * 50)))
        hub2.publish(topics.order_reply(me), contract.encode(OrderReply(
            order_id=str(uuid.uuid4()), status="accepted", number=BIG, total=-BIG)))
        for k in range(600):  # phone payments open for ever, for orders nobody placed: remembered bounded
            hub2.publish(topics.PAY_INTENT, contract.encode(PayIntent(
                merchant_no="m" * 2000, order_id=str(uuid.uuid4()), number=BIG, attempt=-BIG, amount=-BIG,
                state="open", created_at="", expires_at="9999-12-31T00:00:00+00:00" if k % 2 else "never", at="")))

        # the cashier's next payment is recorded once
        order = new_order(KUNG_PAO)
        total = kiosk.submit(order).total
        wait(lambda: ui.call(lambda: order.order_id in ctl.vm.orders), 10, "the order at the counter")
        for t in (f"order:{order.order_id}", "cash:exact"):
            ui.call(lambda t=t: ctl.tap(t))
        wait(lambda: ui.call(lambda: ctl.vm.result_state) == "recorded", 30, "the hub's answer")
        con = sqlite3.connect(till_hub.database)
        try:
            rows = con.execute('SELECT "method", "amount" FROM "payment" WHERE "order_id" = ?',
                               (order.order_id,)).fetchall()
        finally:
            con.close()
        assert rows == [("cash", total)]
        assert ui.errors == [] and ui.alive
        assert ui.call(lambda: ctl.vm.menu.version) == menu.version
        assert ui.call(lambda: len(ctl.vm.phone_pays)) <= 500
        # nothing it never asked for is in counter.db as sent or answered (the
        # answer is stored by the counter's io thread after the screen shows it)
        wait(lambda: ctl.store.waiting() == 0, 10, "the hub's answer stored in counter.db")
        assert ctl.store.refused_requests() == []
        want = expected(POISON, times=len(mine)) + Counter(bad_menu=1)
        monitor.wait_json(topics.health(me), lambda h: counted(h["counters"], want, "bad_message_{}")
                          and h["counters"]["bad_messages"] >= sum(want.values()), 10)
        # the shift and the payment answered (the controller's own count: the
        # health that says it may come only at its next round)
        wait(lambda: ctl.counters["till_answered"] >= 2, 10, "two till answers counted")
    finally:
        ctl.stop()
        ui.close()
        kiosk.close()
        hub2.close()
