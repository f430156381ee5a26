"""SIGKILL the hub: no accepted order is lost, numbers continue, duplicates
still deduplicate, and submissions sent while it was down are answered."""

from __future__ import annotations

import sqlite3
import threading
import time

import msgspec
import pytest

from restobox import contract
from restobox.contract import topics
from tests.support import KUNG_PAO, MILK_TEA, SPRING_ROLLS, Device, Kiosk, new_order

pytestmark = pytest.mark.integration


def stored(db_path) -> dict[str, int]:
    con = sqlite3.connect(db_path)
    try:
        return dict(con.execute('select id, number from "order"').fetchall())
    finally:
        con.close()


def test_sigkill_between_submissions_loses_nothing_and_numbers_continue(hub, kiosk, monitor):
    accepted: dict[str, int] = {}
    orders = []
    for round_ in range(4):
        for _ in range(3):
            o = new_order(KUNG_PAO, SPRING_ROLLS)
            r = kiosk.submit(o)
            assert r.status == "accepted"
            accepted[o.order_id] = r.number
            orders.append(o)
        hub.process.kill()
        hub.process.start(monitor)
    assert sorted(accepted.values()) == list(range(1, 13))
    assert stored(hub.database) == accepted
    # a kiosk retrying an order from before the kills gets the same number
    again = kiosk.submit(orders[0])
    assert again.duplicate and again.number == accepted[orders[0].order_id]
    assert kiosk.submit(new_order(MILK_TEA)).number == 13
    con = sqlite3.connect(hub.database)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("select count(*) from outbox where kind='order.accepted'").fetchone() == (13,)
    finally:
        con.close()


def test_submission_sent_while_the_hub_is_down_is_answered_after_restart(hub, kiosk, monitor):
    hub.process.kill()
    order = new_order(KUNG_PAO)
    corr = b"while-down"
    # the broker holds it in the hub's persistent session
    kiosk.publish(topics.order_submit("kiosk-1"), contract.encode(order), correlation=corr)
    hub.process.start(monitor)
    reply = msgspec.json.decode(kiosk.wait_for(lambda m: m.correlation == corr, timeout=15).payload)
    assert reply["status"] == "accepted" and reply["number"] == 1
    assert stored(hub.database) == {order.order_id: 1}


def test_sigkill_mid_rush_every_order_is_stored_exactly_once(broker, hub, monitor):
    """Orders in flight when the hub dies are redelivered by the broker (they
    were not acknowledged before their commit) and stored exactly once."""
    kiosks = [Kiosk(broker, "kiosk-1"), Kiosk(broker, "kiosk-2")]
    sent: list[str] = []
    try:
        def fire(k: Kiosk, n: int) -> None:
            for _ in range(n):
                o = new_order(SPRING_ROLLS)
                sent.append(o.order_id)
                k.bus.publish(topics.order_submit(k.name), contract.encode(o), correlation=o.order_id.encode())

        threads = [threading.Thread(target=fire, args=(k, 150)) for k in kiosks]
        for t in threads:
            t.start()
        # kill while replies are still coming
        kiosks[0].wait_for(lambda m: True, timeout=15)
        hub.process.kill()
        for t in threads:
            t.join()
        hub.process.start(monitor)

        def answered() -> set[str]:
            ids = set()
            for k in kiosks:
                for m in list(k.received):
                    d = msgspec.json.decode(m.payload)
                    assert d["status"] == "accepted", d
                    ids.add(d["order_id"])
            return ids

        deadline = time.monotonic() + 30
        while answered() != set(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert answered() == set(sent)
        db = stored(hub.database)
        assert set(db) == set(sent)
        assert sorted(db.values()) == list(range(1, len(sent) + 1))
    finally:
        for k in kiosks:
            k.close()


def test_unacknowledged_tickets_are_sent_again_after_a_restart(broker, hub, kiosk, monitor):
    order = new_order(KUNG_PAO)
    kiosk.submit(order)
    hub.process.kill()
    kds = Device(broker, "kds-wok-1", (topics.station_ticket("wok"),), role="kds")
    try:
        hub.process.start(monitor)
        t = kds.wait_json(topics.station_ticket("wok"))
        assert t["order_id"] == order.order_id and t["number"] == 1
    finally:
        kds.close()
