"""Pre-orders placed in the chain's cloud reach the kitchen at their time,
once, through the sync service and the hub like any order; a SIGKILLed sync
service forgets none of them."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone

import httpx
import msgspec
import pytest

from restobox.contract import topics
from tests.support import KUNG_PAO, MILK_TEA, HubProcess, new_order
from tests.test_sync import Cloud, sync_config

pytestmark = pytest.mark.integration


def preorder(*lines, pickup_in_s: float, channel: str = "preorder") -> dict:
    o = new_order(*lines, channel=channel)
    at = datetime.now(timezone.utc) + timedelta(seconds=pickup_in_s)
    return {"order": msgspec.to_builtins(o), "pickup_at": at.isoformat()}


def hub_rows(database, order_id: str) -> list[tuple]:
    con = sqlite3.connect(database)
    try:
        return con.execute('SELECT channel, number FROM "order" WHERE id = ?', (order_id,)).fetchall()
    finally:
        con.close()


def test_preorders_fire_at_their_time_once_even_across_a_kill(broker, monitor, hub, tmp_path):
    cloud = Cloud(tmp_path).start()
    cfg = sync_config(tmp_path / "sync.toml", cloud, tmp_path, broker, preorder_poll_s=0.3, preorder_lead_s=2.0,
                      menu_poll_s=0, health_interval_s=1.0)
    svc = HubProcess(cfg, tmp_path / "sync.log", service="sync", device="sync")
    try:
        soon = preorder(KUNG_PAO, pickup_in_s=3)  # to the kitchen in about 1 s
        later = preorder(MILK_TEA, pickup_in_s=7)  # in about 5 s
        wrong = preorder(KUNG_PAO, pickup_in_s=3, channel="kiosk")
        httpx.post(f"{cloud.url}/_dev/preorders", json=[soon, later, wrong], timeout=5)
        svc.start(monitor)
        t0 = time.monotonic()
        ticket = monitor.wait_json(topics.station_ticket("wok"),
                                   lambda t: t["order_id"] == soon["order"]["order_id"], 10)
        assert ticket["channel"] == "preorder"
        assert time.monotonic() - t0 < 5
        assert hub_rows(hub.database, later["order"]["order_id"]) == []  # not yet
        # the one that says it is not a pre-order was refused, and counted in this run's health
        monitor.wait_json(topics.health("sync"), lambda h: h["counters"].get("preorders_bad") == 1, 10)
        # the sync service dies before the later one is due, and comes back
        svc.kill()
        time.sleep(0.5)
        svc.start(monitor)
        monitor.wait_json(topics.station_ticket("drinks"), lambda t: t["order_id"] == later["order"]["order_id"], 15)
        h = monitor.wait_json(topics.health("sync"), lambda h: h["details"].get("preorders_accepted") == 2, 10)
        assert "preorders_waiting" not in h["details"] and "preorders_sent" not in h["details"]
        time.sleep(1.5)
        for p in (soon, later):
            [(channel, _)] = hub_rows(hub.database, p["order"]["order_id"])
            assert channel == "preorder"
            tickets = [t for t in monitor.all_json(topics.station_ticket("wok"))
                       + monitor.all_json(topics.station_ticket("drinks")) if t["order_id"] == p["order"]["order_id"]]
            assert len({(t["ticket_id"], t["revision"]) for t in tickets}) == 1
        assert hub_rows(hub.database, wrong["order"]["order_id"]) == []
        # and the cloud hears of them like of any order, through the outbox
        end = time.monotonic() + 15
        while time.monotonic() < end:
            got = {e["order_id"] for e in cloud.events() if e["kind"] == "order.accepted"}
            if {soon["order"]["order_id"], later["order"]["order_id"]} <= got:
                break
            time.sleep(0.3)
        else:
            pytest.fail("the pre-orders' order.accepted events did not reach the cloud")
    finally:
        svc.stop()
        cloud.stop()
