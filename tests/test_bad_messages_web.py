"""The table QR page's service survives any payload on every topic it takes:
each bad message is counted in its health (``bad_messages``,
``bad_message_<reason>``), the page keeps the hub's menu (not a broken
one), and the next diner's order gets the hub's number.

The web service and the hub run in their own processes on the real broker;
the bad messages come from a second device of role hub."""

from __future__ import annotations

import uuid
from collections import Counter

import httpx
import msgspec
import pytest

from restobox import contract
from restobox.contract import Board, MenuMessage, OrderReply, OrderUpdate, SoldOut, topics
from restobox.data import load_sample_menu
from tests.support import Device
from tests.test_bad_messages_common import POISON, counted, expected, flood
from tests.test_bad_messages_screens import lying_presence
from tests.test_web_qr import order_body, start_web

pytestmark = pytest.mark.integration

BIG = 2**53 - 1


def test_the_web_service_counts_poison_keeps_the_menu_and_takes_the_next_order(broker, hub, monitor, tmp_path):
    broker.add_device("hub-2", "hub")
    hub2 = Device(broker, "hub-2", role="hub")
    web = start_web(broker, monitor, tmp_path)
    try:
        version = load_sample_menu().version
        mine = (topics.MENU, topics.SOLDOUT, topics.order_reply("web"), topics.ORDER_UPDATE, topics.BOARD,
                topics.presence("hub"))
        for topic in mine:
            flood(hub2, topic)
        menu = load_sample_menu()
        hub2.publish(topics.MENU, contract.encode(MenuMessage(  # breaks the menu's rules
            menu=msgspec.structs.replace(menu, version="poison", items=menu.items + (menu.items[0],)), at="")))
        hub2.publish(topics.SOLDOUT, contract.encode(SoldOut(items=tuple(f"x-{n}" for n in range(5000)), at="")))
        for n in range(3):  # replies for orders never placed here
            hub2.publish(topics.order_reply("web"), contract.encode(OrderReply(
                order_id=str(uuid.uuid4()), status="accepted", number=BIG, total=-BIG)))
        hub2.publish(topics.ORDER_UPDATE, contract.encode(OrderUpdate(
            order_id="nobody", number=BIG, business_date="", state="ready", at="")))
        hub2.publish(topics.BOARD, contract.encode(Board(business_date="", preparing=tuple(range(5000)),
                                                         ready=(BIG, -BIG) * 1000, at="")))
        lying_presence(hub2)

        with httpx.Client(base_url=web.url, timeout=10) as c:
            got = c.get("/api/menu").json()
            assert got["menu"]["version"] == version
            r = c.post("/api/orders", json=order_body())
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "accepted" and body["order"]["number"] >= 1

        # the menu may be larger than 64 KiB
        want = (expected(POISON, times=5) + expected(POISON, large_ok=True)
                + Counter(bad_menu=1, unknown_order=3, unusable=1))
        h = monitor.wait_json(topics.health("web"), lambda h: counted(h["counters"], want, "bad_message_{}")
                              and h["counters"]["bad_messages"] == sum(want.values()), 10)
        assert h["state"] == "ready" and h["details"]["menu_version"] == version
        assert h["counters"]["orders_accepted"] == 1
        assert web.proc.proc.poll() is None
    finally:
        web.proc.stop()
        hub2.close()
