"""The kiosk survives any payload on every topic it takes: each bad message
is counted in its health (``bad_messages``, ``bad_message_<reason>``),
nothing raises on the UI thread, a bad menu neither replaces the menu shown
nor the one cached for the next start, and the diner's next order still
gets the hub's number.

The kiosk's real controller runs headless against the real broker and a
real hub; a UI thread here runs what it posts and stops at the first
exception, as a Kivy app would. The bad messages come from a second device
of role hub, the printing service's device and another kiosk."""

from __future__ import annotations

import uuid
from collections import Counter

import msgspec
import pytest

from kiosk.controller import KioskController
from restobox import config, contract
from restobox.contract import (
    LoyaltyBalance,
    MenuMessage,
    OrderReply,
    PricedLine,
    SoldOut,
    Words,
    topics,
)
from restobox.data import load_sample_menu
from tests.support import Device, kiosk_config
from tests.support import UIThread
from tests.test_bad_messages_common import POISON, counted, expected, flood
from tests.support import wait
from tests.test_bad_messages_screens import flood_store_topics, lying_presence

pytestmark = pytest.mark.integration

BIG = 2**53 - 1


@pytest.fixture
def senders(broker, hub):
    broker.add_device("hub-2", "hub")
    devs = (Device(broker, "hub-2", role="hub"), Device(broker, "kiosk-2", role="kiosk"),
            Device(broker, "printing", role="printing"))
    yield devs
    for d in devs:
        d.close()


@pytest.fixture
def kiosk_ctl(broker, tmp_path):
    ui = UIThread()
    cfg = config.load(kiosk_config(tmp_path / "kiosk.toml", broker, kiosk="reply_timeout_s = 5"))
    ctl = KioskController(cfg, post=ui.post, changed=lambda: None)
    ui.tick = ctl.tick
    ctl.start()
    yield ctl, ui
    ctl.stop()
    ui.close()


def test_the_kiosk_counts_poison_keeps_its_menu_and_takes_the_next_reply(kiosk_ctl, senders, monitor):
    ctl, ui = kiosk_ctl
    hub2, kiosk2, printing = senders
    wait(lambda: ctl.has_menu and ui.call(lambda: ctl.reachable), 15, "the hub's menu")
    version = load_sample_menu().version

    me = "kiosk-1"
    mine = (topics.MENU, topics.SOLDOUT, topics.order_reply(me), topics.loyalty_reply(me), topics.presence("hub"))
    for topic in mine:
        flood(hub2, topic)
    menu = load_sample_menu()
    hub2.publish(topics.MENU, contract.encode(MenuMessage(  # breaks the menu's rules: not used, not cached
        menu=msgspec.structs.replace(menu, version="poison", items=menu.items + (menu.items[0],)), at="")))
    hub2.publish(topics.SOLDOUT, contract.encode(SoldOut(items=tuple(f"x-{n}" for n in range(5000)), at="")))
    line = PricedLine(line=BIG, item_id="", name_zh="", name_en="n" * 3000, qty=-BIG, unit_price=BIG,
                      line_total=-BIG, station="")
    for corr in (b"o:" + uuid.uuid4().bytes, b"q:" + uuid.uuid4().bytes, None):
        hub2.publish(topics.order_reply(me), contract.encode(OrderReply(
            order_id=str(uuid.uuid4()), status="accepted", number=BIG, total=-BIG, lines=(line,) * 10,
            message=Words("", "w" * 8000), detail={"number": "²"})), correlation=corr)
        hub2.publish(topics.order_reply(me), contract.encode(OrderReply(
            order_id="", status="rejected", reason="duplicate_conflict", detail={"number": "٣" * 50})),
            correlation=corr)
    hub2.publish(topics.loyalty_reply(me), contract.encode(LoyaltyBalance(
        query_id="", ok=True, balance=-BIG, point_value_fen=BIG, max_share_pct=-1, points_per_yuan=1e15)))
    lying_presence(hub2)
    bad_sources = flood_store_topics(printing, kiosk2)

    # the diner's order still goes through, with the hub's number
    for t in ("start", "lang:en", "service:takeaway", "next", "item:spring-rolls", "add", "cart", "checkout",
              "pay:counter"):
        ui.call(lambda t=t: ctl.tap(t))
    wait(lambda: ui.call(lambda: ctl.vm.screen) == "confirm", 15, "the order confirmed")
    assert ui.call(lambda: (ctl.vm.number is not None, ctl.vm.provisional)) == (True, None)
    assert ui.errors == [] and ui.alive
    # the menu shown and the one cached are the hub's, not the broken one
    assert ui.call(lambda: ctl.vm.menu.version) == version
    assert contract.decode(ctl.store.get_value("menu"), MenuMessage, max_bytes=1 << 22).menu.version == version
    assert ui.call(lambda: ctl.hub_up) is True

    # the menu and the 86 list may be larger than 64 KiB
    want = expected(POISON, times=3) + expected(POISON, times=2, large_ok=True) + Counter(bad_menu=1, unusable=1)
    # one health record with every count (the order's delivery may be counted a record after the poison)
    h = monitor.wait_json(topics.health(me), lambda h: counted(h["counters"], want, "bad_message_{}")
                          and h["counters"]["bad_messages"] >= sum(want.values()) + bad_sources
                          and h["counters"].get("delivered", 0) >= 1, 20)
    assert h["counters"]["delivered"] >= 1
