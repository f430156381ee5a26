"""The hub against a real mosquitto (the project's broker_config) and a real
SQLite file: the whole life of an order, as the devices see it."""

from __future__ import annotations

import json
import sqlite3
import uuid

import msgspec
import pytest

from restobox import contract
from restobox.contract import StaffCommand, StationEvent, topics
from tests.support import COMBO, KUNG_PAO, MILK_TEA, SPRING_ROLLS, Device, new_order

pytestmark = pytest.mark.integration


def event(kind: str, order_id: str, device: str, line: int | None = None) -> bytes:
    return contract.encode(StationEvent(event_id=str(uuid.uuid4()), kind=kind, order_id=order_id,
                                        device=device, line=line))


def rows(db_path, sql, *args):
    con = sqlite3.connect(db_path)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def test_order_flows_from_submit_to_completed(broker, hub, kiosk, monitor):
    kds = {s: Device(broker, f"kds-{s}-1", (topics.station_ticket(s),), role="kds")
           for s in ("wok", "fryer", "drinks")}
    expo = Device(broker, "expo-1", ("restobox/v1/station/+/ticket",), role="expo")
    try:
        order = new_order(COMBO, KUNG_PAO, MILK_TEA, service="dine_in", table="12")
        reply = kiosk.submit(order)
        assert reply.status == "accepted", reply
        assert reply.number == 1
        # 4200 + milk tea upgrade 300; 3200; 2 × 1400
        assert reply.total == 4500 + 3200 + 2800
        assert reply.tax == round(reply.total * 600 / 10600)
        assert reply.subtotal + reply.tax == reply.total

        # every station gets its ticket; the combo's side and drink go to
        # the fryer and the drinks station
        tickets = {s: d.wait_json(topics.station_ticket(s)) for s, d in kds.items()}
        assert [i["item_id"] for i in tickets["wok"]["items"]] == ["combo-kung-pao-chicken", "kung-pao-chicken"]
        assert [i["item_id"] for i in tickets["fryer"]["items"]] == ["combo-side-fries"]
        assert sorted(i["item_id"] for i in tickets["drinks"]["items"]) == ["bubble-milk-tea", "combo-drink-milk-tea"]
        assert all(t["number"] == 1 and t["table"] == "12" for t in tickets.values())
        expo.wait_for(lambda m: m.topic == topics.station_ticket("drinks"))

        oid = order.order_id
        board = monitor.wait_json(topics.BOARD, lambda b: 1 in b["preparing"])
        assert board["ready"] == []

        # the wok acknowledges, bumps one line, then the ticket
        kds["wok"].publish(topics.station_event("wok"), event("ack", oid, "kds-wok-1"))
        kds["wok"].publish(topics.station_event("wok"), event("item_bump", oid, "kds-wok-1", line=1))
        monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["state"] == "in_progress")
        kds["wok"].publish(topics.station_event("wok"), event("bump", oid, "kds-wok-1"))
        kds["fryer"].publish(topics.station_event("fryer"), event("bump", oid, "kds-fryer-1"))
        upd = monitor.wait_json(topics.ORDER_UPDATE,
                                lambda u: [s["state"] for s in u["stations"]].count("done") == 2)
        assert upd["state"] == "in_progress"
        kds["drinks"].publish(topics.station_event("drinks"), event("bump", oid, "kds-drinks-1"))
        upd = monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["state"] == "ready")
        assert {s["station"]: s["acked"] for s in upd["stations"]} == {"drinks": False, "fryer": False, "wok": True}
        board = monitor.wait_json(topics.BOARD, lambda b: 1 in b["ready"])
        assert board["preparing"] == []
        # a bumped ticket is sent again with its new state, so every screen
        # showing it (expo) follows
        done = kds["wok"].wait_json(topics.station_ticket("wok"), lambda t: t["state"] == "done")
        assert done["revision"] == 3 and all(i["state"] == "done" for i in done["items"])

        expo.publish(topics.station_event("expo"), event("bump", oid, "expo-1"))
        monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["state"] == "completed")
        monitor.wait_json(topics.BOARD, lambda b: 1 not in b["ready"] and 1 not in b["preparing"])

        db_path = hub.database
        assert rows(db_path, "select number, state, total from \"order\" where id=?", oid) == [(1, "completed", reply.total)]
        kinds = [k for (k,) in rows(db_path, "select kind from outbox where order_id=? order by seq", oid)]
        assert kinds[0] == "order.accepted"
        assert "order.ready" in kinds and kinds[-1] == "order.completed"
        assert kinds.count("station.bump") == 3
    finally:
        for d in (*kds.values(), expo):
            d.close()


def test_recall_brings_a_bumped_ticket_back(broker, hub, kiosk, monitor):
    kds = Device(broker, "kds-fryer-1", (topics.station_ticket("fryer"),), role="kds")
    try:
        order = new_order(SPRING_ROLLS)
        assert kiosk.submit(order).status == "accepted"
        kds.wait_json(topics.station_ticket("fryer"))
        kds.publish(topics.station_event("fryer"), event("bump", order.order_id, "kds-fryer-1"))
        monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["state"] == "ready")
        kds.publish(topics.station_event("fryer"), event("recall", order.order_id, "kds-fryer-1"))
        monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["state"] == "in_progress")
        t = kds.wait_json(topics.station_ticket("fryer"), lambda t: t["revision"] == 3)
        assert t["state"] == "open"
        monitor.wait_json(topics.BOARD, lambda b: b["preparing"] == [1] and b["ready"] == [])
    finally:
        kds.close()


def test_a_repeated_bump_event_is_applied_once(broker, hub, kiosk, monitor):
    kds = Device(broker, "kds-fryer-1", (topics.station_ticket("fryer"),), role="kds")
    try:
        order = new_order(SPRING_ROLLS)
        kiosk.submit(order)
        ev = event("bump", order.order_id, "kds-fryer-1")
        kds.publish(topics.station_event("fryer"), ev)
        kds.publish(topics.station_event("fryer"), ev)
        health = monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("duplicate_events") == 1)
        assert health["counters"]["events.bump"] == 1
        assert len(rows(hub.database, "select 1 from outbox where kind='station.bump'")) == 1
    finally:
        kds.close()


def test_duplicate_submission_returns_the_same_order_number(hub, kiosk):
    order = new_order(KUNG_PAO)
    first = kiosk.submit(order)
    again = kiosk.submit(order)
    assert first.status == again.status == "accepted"
    assert again.number == first.number and again.total == first.total
    assert again.duplicate and not first.duplicate
    assert rows(hub.database, "select count(*) from \"order\"") == [(1,)]


def test_the_same_order_resent_from_an_offline_outbox_is_a_duplicate_not_a_conflict(hub, kiosk):
    import msgspec

    order = new_order(KUNG_PAO)
    first = kiosk.submit(order)
    again = kiosk.submit(msgspec.structs.replace(order, offline=True, provisional_number="K1-007"))
    assert again.status == "accepted" and again.duplicate and again.number == first.number
    # the number the diner holds reaches the chain's cloud too, once
    kiosk.submit(msgspec.structs.replace(order, offline=True, provisional_number="K1-007"))
    sent = rows(hub.database, "select kind, payload from outbox where order_id = ? and kind = 'order.provisional'",
                order.order_id)
    assert len(sent) == 1 and json.loads(sent[0][1])["provisional_number"] == "K1-007", sent


def test_order_numbers_count_up_per_business_day(hub, kiosk):
    numbers = [kiosk.submit(new_order(SPRING_ROLLS)).number for _ in range(5)]
    assert numbers == [1, 2, 3, 4, 5]


def test_hub_replies_only_on_the_submitting_devices_reply_topic(broker, hub, kiosk):
    other = Device(broker, "kiosk-2", (topics.order_reply("kiosk-2"),), role="kiosk")
    try:
        corr = b"spoof"
        order = new_order(SPRING_ROLLS)
        kiosk.publish(topics.order_submit("kiosk-1"), contract.encode(order), correlation=corr,
                      response_topic=topics.order_reply("kiosk-2"))
        got = kiosk.wait_for(lambda m: m.correlation == corr)
        assert got.topic == topics.order_reply("kiosk-1")
        with pytest.raises(TimeoutError):
            other.wait_for(lambda m: True, timeout=0.5)
    finally:
        other.close()


def test_void_removes_the_order_from_stations_and_board(broker, hub, kiosk, monitor):
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        order = new_order(KUNG_PAO, MILK_TEA)
        reply = kiosk.submit(order)
        monitor.wait_json(topics.BOARD, lambda b: reply.number in b["preparing"])
        cmd = StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=order.order_id,
                           reason="diner left")
        staff.publish(topics.staff_command("staff-1"), contract.encode(cmd))
        ans = staff.wait_json(topics.staff_reply("staff-1"))
        assert ans["ok"] is True
        for s in ("wok", "drinks"):
            monitor.wait_json(topics.station_ticket(s), lambda t: t["state"] == "voided")
        upd = monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["state"] == "voided")
        assert upd["reason"] == "diner left"
        monitor.wait_json(topics.BOARD, lambda b: reply.number not in b["preparing"])
        # voiding twice is refused with a reason, not a crash
        cmd2 = StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=order.order_id)
        staff.publish(topics.staff_command("staff-1"), contract.encode(cmd2))
        ans = staff.wait_json(topics.staff_reply("staff-1"), lambda a: a["command_id"] == cmd2.command_id)
        assert ans["ok"] is False and ans["reason"] == "bad_transition"
    finally:
        staff.close()


def test_eighty_six_list_is_retained_and_enforced(broker, hub, kiosk, monitor):
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        cmd = StaffCommand(command_id=str(uuid.uuid4()), kind="eighty_six", item_id="spring-rolls")
        staff.publish(topics.staff_command("staff-1"), contract.encode(cmd))
        assert staff.wait_json(topics.staff_reply("staff-1"))["ok"] is True
        monitor.wait_json(topics.SOLDOUT, lambda s: s["items"] == ["spring-rolls"])
        r = kiosk.submit(new_order(SPRING_ROLLS))
        assert r.status == "rejected" and r.reason == "item_unavailable"
        # a device that connects later still gets the list (retained)
        late = Device(broker, "board-1", (topics.SOLDOUT,), role="board")
        try:
            assert late.wait_json(topics.SOLDOUT)["items"] == ["spring-rolls"]
        finally:
            late.close()
        back = StaffCommand(command_id=str(uuid.uuid4()), kind="un_eighty_six", item_id="spring-rolls")
        mark = monitor.mark()
        staff.publish(topics.staff_command("staff-1"), contract.encode(back))
        monitor.wait_json(topics.SOLDOUT, lambda s: s["items"] == [], after=mark)
        assert kiosk.submit(new_order(SPRING_ROLLS)).status == "accepted"
        # an unknown item gets a reason, not a silent entry in the list
        bad = StaffCommand(command_id=str(uuid.uuid4()), kind="eighty_six", item_id="pizza")
        staff.publish(topics.staff_command("staff-1"), contract.encode(bad))
        ans = staff.wait_json(topics.staff_reply("staff-1"), lambda a: a["command_id"] == bad.command_id)
        assert ans["ok"] is False and ans["reason"] == "unknown_item"
    finally:
        staff.close()


def test_menu_and_presence_are_retained_for_late_joiners(broker, hub):
    late = Device(broker, "kiosk-2", (topics.MENU, topics.presence("hub")), role="kiosk")
    try:
        menu = late.wait_json(topics.MENU)
        assert menu["v"] == 1 and len(menu["menu"]["items"]) >= 38
        assert late.wait_json(topics.presence("hub"))["state"] == "online"
    finally:
        late.close()


def test_hub_stopping_says_offline_and_a_killed_hub_gets_its_last_will(broker, hub, monitor):
    hub.process.stop()
    monitor.wait_json(topics.presence("hub"), lambda p: p["state"] == "offline")
    hub.process.start(monitor)
    monitor.wait_json(topics.presence("hub"), lambda p: p["state"] == "online")
    n = len(monitor.by_topic[topics.presence("hub")])
    hub.process.kill()
    monitor.wait_for(lambda m: m.topic == topics.presence("hub")
                     and len(monitor.by_topic[topics.presence("hub")]) > n
                     and msgspec.json.decode(m.payload)["state"] == "offline", timeout=20)
