"""The sync service survives any payload on the topics it takes (the hub's
retained menu, its pre-orders' replies): each bad one is counted in its
health (``bad_messages``, ``bad_message_<reason>``, and per topic
``menu_hub_unreadable``, ``preorders.bad_reply``), the menu version it
compares with the cloud's stays the hub's, and the next pre-order still
reaches the kitchen.

The sync service, the hub and the chain's cloud (restobox cloud-dev) run
in their own processes on the real broker; the bad messages come from a
second device of role hub."""

from __future__ import annotations

import uuid
from collections import Counter

import httpx
import msgspec
import pytest

from restobox import contract
from restobox.contract import MenuMessage, OrderReply, PricedLine, Words, topics
from restobox.data import load_sample_menu
from tests.support import KUNG_PAO, Device, HubProcess
from tests.test_bad_messages_common import POISON, counted, expected, flood
from tests.test_preorders import preorder
from tests.test_sync import Cloud, sync_config

pytestmark = pytest.mark.integration

BIG = 2**53 - 1


def test_the_sync_service_counts_poison_and_still_fires_the_next_preorder(broker, monitor, hub, tmp_path):
    broker.add_device("hub-2", "hub")
    hub2 = Device(broker, "hub-2", role="hub")
    cloud = Cloud(tmp_path).start()
    cfg = sync_config(tmp_path / "sync.toml", cloud, tmp_path, broker, preorder_poll_s=0.3, preorder_lead_s=2.0,
                      menu_poll_s=0, health_interval_s=0.5)
    svc = HubProcess(cfg, tmp_path / "sync.log", service="sync", device="sync")
    try:
        svc.start(monitor)
        version = load_sample_menu().version
        monitor.wait_json(topics.health("sync"), lambda h: h["details"]["menu_hub"] == version, 10)
        mine = (topics.MENU, topics.order_reply("sync"))
        for topic in mine:
            flood(hub2, topic)
        menu = load_sample_menu()
        hub2.publish(topics.MENU, contract.encode(MenuMessage(  # breaks the menu's rules
            menu=msgspec.structs.replace(menu, version="poison", items=menu.items + (menu.items[0],)), at="")))
        line = PricedLine(line=BIG, item_id="", name_zh="", name_en="n" * 3000, qty=-BIG, unit_price=BIG,
                          line_total=-BIG, station="")
        for reply in (OrderReply(order_id=str(uuid.uuid4()), status="accepted", number=BIG, lines=(line,) * 10),
                      OrderReply(order_id="x" * 8000, status="rejected", reason="r" * 8000,
                                 message=Words("", "")),
                      OrderReply(order_id="", status="rejected", reason="duplicate_conflict", number=-BIG)):
            hub2.publish(topics.order_reply("sync"), contract.encode(reply))

        # the next pre-order goes to the kitchen as ever
        soon = preorder(KUNG_PAO, pickup_in_s=2.5)
        httpx.post(f"{cloud.url}/_dev/preorders", json=[soon], timeout=5)
        monitor.wait_json(topics.station_ticket("wok"), lambda t: t["order_id"] == soon["order"]["order_id"], 10)

        want = expected(POISON) + expected(POISON, large_ok=True) + Counter(bad_menu=1)
        h = monitor.wait_json(topics.health("sync"),
                              lambda h: counted(h["counters"], want, "bad_message_{}")
                              and h["details"].get("preorders_accepted") == 1, 10)
        c = h["counters"]
        assert c["bad_messages"] == sum(want.values())
        assert c["menu_hub_unreadable"] == len(POISON) + 1 and c["preorders.bad_reply"] == len(POISON)
        assert h["details"]["menu_hub"] == version  # not "poison"
        assert svc.proc.poll() is None
    finally:
        svc.stop()
        cloud.stop()
        hub2.close()
