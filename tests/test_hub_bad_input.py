"""Bad input: every message is answered with a reason code and a sentence,
counted, visible to staff, nothing is stored, and the hub keeps serving."""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest

from restobox import contract
from restobox.contract import StaffCommand, topics
from tests.support import COMBO, KUNG_PAO, SPRING_ROLLS, Device, new_order

pytestmark = pytest.mark.integration


def order_dict(*lines, **kw) -> dict:
    return json.loads(contract.encode(new_order(*lines, **kw)))


def with_changes(base: dict, **changes) -> bytes:
    d = json.loads(json.dumps(base))
    for path, value in changes.items():
        target = d
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        last = keys[-1]
        target[int(last) if last.isdigit() else last] = value
    return json.dumps(d).encode()


def bad_payloads() -> list[tuple[str, bytes | None, str]]:
    good = order_dict(KUNG_PAO)
    combo = order_dict(COMBO)
    cases = [
        ("not json", b"{this is not json", "bad_json"),
        ("empty payload", b"", "bad_json"),
        ("a JSON array", b"[1, 2, 3]", "bad_schema"),
        ("no version", json.dumps({k: v for k, v in good.items() if k != "v"}).encode(), "bad_schema"),
        ("future version", with_changes(good, v=2), "unsupported_version"),
        ("qty as text", with_changes(good, lines__0__qty="two"), "bad_schema"),
        ("lines not a list", with_changes(good, lines="kung-pao"), "bad_schema"),
        ("order id not a uuid", with_changes(good, order_id="order-1"), "bad_schema"),
        ("unknown field", json.dumps({**good, "discount": 9999}).encode(), "bad_schema"),
        ("unknown field in a line", with_changes(good, lines__0__price=1), "bad_schema"),
        ("unknown channel", with_changes(good, channel="telepathy"), "bad_schema"),
        ("no lines", with_changes(good, lines=[]), "empty_order"),
        ("unknown item", with_changes(good, lines__0__item_id="pizza-margherita"), "unknown_item"),
        ("zero quantity", with_changes(good, lines__0__qty=0), "bad_quantity"),
        ("negative quantity", with_changes(good, lines__0__qty=-3), "bad_quantity"),
        ("huge quantity", with_changes(good, lines__0__qty=10**30), "number_out_of_range"),
        ("largest quantity a number may be", with_changes(good, lines__0__qty=2**53 - 1), "bad_quantity"),
        ("too many of one item", with_changes(good, lines__0__qty=100), "bad_quantity"),
        ("required choice missing", with_changes(good, lines__0__modifiers=["spice-mild"]), "modifier_missing"),
        ("two spice levels", with_changes(good, lines__0__modifiers=["spice-mild", "spice-hot", "rice-white"]),
         "modifier_too_many"),
        ("option of another item", with_changes(good, lines__0__modifiers=["spice-mild", "rice-white", "sugar-half"]),
         "modifier_not_allowed"),
        ("unknown option", with_changes(good, lines__0__modifiers=["spice-mild", "rice-white", "gold-leaf"]),
         "unknown_modifier"),
        ("same option twice", with_changes(good, lines__0__modifiers=["spice-mild", "rice-white", "addon-egg", "addon-egg"]),
         "modifier_duplicate"),
        ("combo without its drink", with_changes(combo, lines__0__modifiers=["spice-hot", "combo-side-fries"]),
         "modifier_missing"),
        ("tampered total", with_changes(good, expected_total=1), "price_mismatch"),
        ("paid less than the total", with_changes(good, payment={"method": "card", "status": "approved", "amount": 100}),
         "payment_mismatch"),
        ("too many lines", with_changes(good, lines=[good["lines"][0]] * 51), "too_many_lines"),
        ("oversized payload", json.dumps({**good, "note": "x" * 70_000}).encode(), "payload_too_large"),
    ]
    return cases


@pytest.mark.parametrize("name,payload,reason", bad_payloads(), ids=[c[0] for c in bad_payloads()])
def test_bad_submission_is_refused_with_a_reason_and_nothing_stored(hub, kiosk, monitor, name, payload, reason):
    reply = kiosk.submit_raw(payload)
    assert reply["status"] == "rejected"
    assert reply["reason"] == reason, reply
    assert reply["message"]["en"] and reply["message"]["zh"]
    assert reply["number"] is None
    # staff see it: a notice on the reject topic and a counter in health
    notice = monitor.wait_json(topics.REJECTS)
    assert notice["reason"] == reason and notice["device"] == "kiosk-1"
    monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get(f"rejected.{reason}") == 1
                      and any(e["reason"] == reason for e in h["last_errors"]))
    con = sqlite3.connect(hub.database)
    try:
        assert con.execute('select count(*) from "order"').fetchone() == (0,)
        assert con.execute("select count(*) from outbox").fetchone() == (0,)
        assert con.execute("select count(*) from day_counter").fetchone() == (0,)
    finally:
        con.close()
    # and the hub still serves: the next good order is number 1
    ok = kiosk.submit(new_order(KUNG_PAO))
    assert ok.status == "accepted" and ok.number == 1


def test_sold_out_item_is_refused(broker, hub, kiosk):
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        staff.publish(topics.staff_command("staff-1"), contract.encode(
            StaffCommand(command_id=str(uuid.uuid4()), kind="eighty_six", item_id="combo-side-fries")))
        staff.wait_json(topics.staff_reply("staff-1"))
        r = kiosk.submit(new_order(COMBO))
        assert r.status == "rejected" and r.reason == "modifier_unavailable"
        assert r.detail["modifier"] == "combo-side-fries"
    finally:
        staff.close()


def test_same_order_id_with_a_different_body_is_refused(hub, kiosk):
    order = new_order(KUNG_PAO)
    assert kiosk.submit(order).number == 1
    changed = new_order(KUNG_PAO, SPRING_ROLLS)
    forged = contract.encode(order.__class__(**{**{f: getattr(changed, f) for f in changed.__struct_fields__},
                                                "order_id": order.order_id}))
    r = kiosk.submit_raw(forged)
    assert r["status"] == "rejected" and r["reason"] == "duplicate_conflict"
    assert r["detail"]["number"] == "1"
    con = sqlite3.connect(hub.database)
    try:
        assert con.execute('select count(*), max(total) from "order"').fetchone() == (1, 3200)
    finally:
        con.close()


def test_bad_station_events_are_counted_not_crashing(broker, hub, kiosk, monitor):
    kds = Device(broker, "kds-wok-1", (topics.station_ticket("wok"),), role="kds")
    try:
        order = new_order(KUNG_PAO)
        kiosk.submit(order)
        base = {"v": 1, "event_id": str(uuid.uuid4()), "kind": "bump", "order_id": order.order_id,
                "device": "kds-wok-1"}
        kds.publish(topics.station_event("wok"), b"garbage")
        kds.publish(topics.station_event("wok"), json.dumps({**base, "kind": "explode"}).encode())
        kds.publish(topics.station_event("wok"), json.dumps({**base, "order_id": str(uuid.uuid4())}).encode())
        kds.publish(topics.station_event("wok"), json.dumps({**base, "kind": "item_bump", "line": 9}).encode())
        h = monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("rejected", 0) == 4)
        assert h["counters"]["rejected.bad_json"] == 1
        assert h["counters"]["rejected.bad_schema"] == 1
        assert h["counters"]["rejected.unknown_order"] == 1
        assert h["counters"]["rejected.bad_line"] == 1
        # a good bump still works
        kds.publish(topics.station_event("wok"), json.dumps({**base, "event_id": str(uuid.uuid4())}).encode())
        monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["state"] == "ready")
    finally:
        kds.close()
