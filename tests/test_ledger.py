"""The payment ledger at the hub, against a real mosquitto (the project's
broker_config) and a real hub process on a real SQLite file: counters pay,
split, refund and void through till/<device>/request; every fen is an
append-only ledger row in the order's transaction, sent to the cloud's
outbox; a request id is recorded once; a held order reaches the kitchen
only once paid; shifts balance their cash; the store's totals are the
ledger's sums."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
import uuid
from datetime import datetime, timezone

import msgspec
import pytest

from restobox import contract
from restobox.contract import RefundLine, StaffCommand, Tender, TillRequest, topics
from restobox.data import load_sample_menu
from restobox.menu import MenuIndex
from restobox.orders import price_order
from tests.hub_fixtures import RunningHub
from tests.test_hub_flow import rows
from tests.support import KUNG_PAO, MILK_TEA, SPRING_ROLLS, Device, HubProcess, Kiosk, hub_config, in_process_hub, \
    new_order, wait

pytestmark = pytest.mark.integration

PIN = "2468"


class Counter(Device):
    """A counter (role counter): asks the hub and waits for its answer."""

    def __init__(self, broker, name: str = "counter-1") -> None:
        super().__init__(broker, name, (topics.till_reply(name),), role="counter")

    def ask_raw(self, payload: bytes, timeout: float = 10.0) -> dict:
        corr = uuid.uuid4().bytes
        self.publish(topics.till_request(self.name), payload, correlation=corr,
                     response_topic=topics.till_reply(self.name))
        m = self.wait_for(lambda m: m.correlation == corr, timeout)
        return msgspec.json.decode(m.payload)

    def ask(self, req: TillRequest) -> dict:
        return self.ask_raw(contract.encode(req))

    def pay(self, order_id: str, *tenders: Tender, request_id: str | None = None, **kw) -> dict:
        return self.ask(TillRequest(request_id=request_id or str(uuid.uuid4()), kind="pay", order_id=order_id,
                                    tenders=tenders, staff="li", **kw))

    def refund(self, order_id: str, *, request_id: str | None = None, pin: str = PIN, reason: str = "cold",
               **kw) -> dict:
        return self.ask(TillRequest(request_id=request_id or str(uuid.uuid4()), kind="refund", order_id=order_id,
                                    manager_pin=pin, reason=reason, staff="li", **kw))


def cash(amount: int, tendered: int = 0) -> Tender:
    return Tender(method="cash", amount=amount, tendered=tendered)


def card(amount: int) -> Tender:
    return Tender(method="card", amount=amount, intent_id="pi-1", reference="TRM-1")


@pytest.fixture
def till(broker, monitor, tmp_path):
    """A hub whose table QR orders wait for their payment, with a manager's
    PIN and a wok printer that prints every ticket."""
    pins = tmp_path / "pins"
    pins.write_text(f"wang:{hashlib.sha256(PIN.encode()).hexdigest()}\n", encoding="utf-8")
    db = tmp_path / "store.db"
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=db, extra=f"""
[hub.loyalty]
enabled = true
point_value_fen = 10
[hub.till]
hold_unpaid = ["qr"]
manager_pin_file = "{pins}"
[hub.printing]
stations = {{wok = {{printer = "kitchen", mode = "always"}}}}
receipt_printers = {{counter-1 = "receipt-1", counter-2 = "receipt-2"}}
""")
    proc = HubProcess(cfg, tmp_path / "hub.log")
    proc.start(monitor)
    yield RunningHub(proc, db, cfg)
    proc.stop()


@pytest.fixture
def kiosk(broker, till):
    k = Kiosk(broker, "kiosk-1")
    yield k
    k.close()


@pytest.fixture
def counter(broker, till):
    c = Counter(broker)
    yield c
    c.close()


def ledger(db, order_id: str) -> list[tuple]:
    return rows(db, 'SELECT "kind", "method", "amount", "tendered", "device" FROM "payment" '
                    'WHERE "order_id" = ? ORDER BY "seq"', order_id)


def order_paid(db, order_id: str) -> tuple:
    return rows(db, 'SELECT "paid", "payment" FROM "order" WHERE "id" = ?', order_id)[0]


def test_cash_with_change_is_one_ledger_row_and_everyone_sees_the_order_paid(till, kiosk, counter, monitor):
    order = new_order(KUNG_PAO)
    total = kiosk.submit(order).total
    reply = counter.pay(order.order_id, cash(total, tendered=10000))
    assert reply["ok"] and reply["payment"] == "paid" and reply["paid"] == total and reply["due"] == 0
    assert reply["change"] == 10000 - total
    assert [(e["method"], e["amount"], e["tendered"], e["device"]) for e in reply["entries"]] == \
        [("cash", total, 10000, "counter-1")]
    upd = monitor.wait_json(topics.PAYMENT_UPDATE, lambda u: u["order_id"] == order.order_id)
    assert (upd["payment"], upd["paid"], upd["total"]) == ("paid", total, total)
    ou = monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["order_id"] == order.order_id and u["payment"] == "paid")
    assert (ou["state"], ou["paid"], ou["total"], ou["channel"]) == ("accepted", total, total, "kiosk")
    assert ledger(till.database, order.order_id) == [("payment", "cash", total, 10000, "counter-1")]
    assert order_paid(till.database, order.order_id) == (total, "paid")
    events = rows(till.database, 'SELECT "kind", "payload" FROM "outbox" WHERE "kind" LIKE \'payment.%\' AND "order_id" = ?',
                  order.order_id)
    assert [(k, json.loads(p)["amount"]) for k, p in events] == [("payment.recorded", total)]


def test_an_order_taken_at_the_counter_gets_its_receipt_when_paid_with_the_tenders_and_change(
        broker, till, counter, monitor):
    """Taken at counter-2, unpaid: no receipt then; paid at counter-1 in
    cash and by card: the receipt comes out of counter-1's printer with
    each tender, the cash handed over and the change."""
    taker = Kiosk(broker, "counter-2")
    try:
        order = new_order(KUNG_PAO, MILK_TEA, channel="counter")
        total = taker.submit(order).total
    finally:
        taker.close()
    reply = counter.pay(order.order_id, cash(1000, tendered=5000), card(total - 1000))
    assert reply["ok"] and reply["change"] == 4000
    job = monitor.wait_json(topics.PRINT_JOB, lambda j: j["order_id"] == order.order_id and j["kind"] == "receipt")
    assert job["job_id"].startswith(f"{order.order_id}:receipt:receipt-1:paid-") and job["printer"] == "receipt-1"
    r = job["receipt"]
    assert (r["payment"], r["change"], r["refunded"]) == ("paid", 4000, 0)
    assert [(t["method"], t["amount"], t["tendered"]) for t in r["tenders"]] == \
        [("cash", 1000, 5000), ("card", total - 1000, 0)]
    # the order's acceptance printed nothing at counter-2 (nor anywhere)
    receipts = [j for j in monitor.all_json(topics.PRINT_JOB) if j["kind"] == "receipt"
                and j["order_id"] == order.order_id]
    assert [j["printer"] for j in receipts] == ["receipt-1"]


MEMBER = "13812345678"


def member_points(db, order_id: str) -> list[tuple]:
    return rows(db, 'SELECT "kind", "points", "discount" FROM "points_entry" WHERE "order_id" = ? ORDER BY "seq"',
                order_id)


def test_a_members_points_pay_part_of_an_order_and_come_back_with_its_refund(till, kiosk, counter):
    """Points as a tender at the counter ([hub.loyalty] 10 fen a point):
    taken off the member's balance in the payment's transaction, refused
    when there are not enough (nothing recorded), given back by the refund."""
    earned = kiosk.submit(new_order(KUNG_PAO, MILK_TEA, loyalty=contract.LoyaltyClaim(phone=MEMBER)))
    balance = earned.loyalty.balance
    assert balance > 20
    order = new_order(KUNG_PAO)
    total = kiosk.submit(order).total
    too_many = counter.pay(order.order_id, Tender(method="points", amount=(balance + 1) * 10),
                           cash(total - (balance + 1) * 10), member_phone=MEMBER)
    assert (too_many["ok"], too_many["reason"]) == (False, "points_insufficient")
    bad = counter.pay(order.order_id, Tender(method="points", amount=200), cash(total - 200), member_phone="12")
    assert (bad["ok"], bad["reason"]) == (False, "phone_invalid")
    assert ledger(till.database, order.order_id) == [] and member_points(till.database, order.order_id) == []
    paid = counter.pay(order.order_id, Tender(method="points", amount=200), cash(total - 200, tendered=total),
                       member_phone=MEMBER)
    assert paid["ok"] and paid["payment"] == "paid"
    assert [(e["method"], e["amount"], e["reference"]) for e in paid["entries"]] == \
        [("points", 200, "138****5678"), ("cash", total - 200, "")]
    assert member_points(till.database, order.order_id) == [("redeem", -20, 200)]
    # the whole order back: the points to the member, the rest in cash
    back = counter.refund(order.order_id, reason="wrong dish")
    assert back["ok"] and back["payment"] == "refunded"
    assert sorted((e["method"], e["amount"]) for e in back["entries"]) == [("cash", total - 200), ("points", 200)]
    assert member_points(till.database, order.order_id) == [("redeem", -20, 200), ("reverse", 20, -200)]
    q = kiosk.submit(new_order(MILK_TEA, loyalty=contract.LoyaltyClaim(phone=MEMBER)))
    assert q.loyalty.balance == balance + q.loyalty.earned


def test_split_cash_and_card_add_up_to_what_is_due(till, kiosk, counter):
    order = new_order(KUNG_PAO, MILK_TEA)
    total = kiosk.submit(order).total
    short = counter.pay(order.order_id, cash(1000), card(total - 1001))
    assert (short["ok"], short["reason"], short["due"]) == (False, "amount_mismatch", total)
    reply = counter.pay(order.order_id, cash(1000, tendered=1000), card(total - 1000))
    assert reply["ok"] and reply["change"] == 0
    assert ledger(till.database, order.order_id) == [("payment", "cash", 1000, 1000, "counter-1"),
                                            ("payment", "card", total - 1000, 0, "counter-1")]
    assert order_paid(till.database, order.order_id) == (total, "paid")


def test_a_payment_sent_twice_is_recorded_once_and_a_second_counter_is_told_who_paid(broker, till, kiosk, counter):
    order = new_order(KUNG_PAO)
    total = kiosk.submit(order).total
    rid = str(uuid.uuid4())
    first = counter.pay(order.order_id, cash(total, tendered=total + 500), request_id=rid)
    again = counter.pay(order.order_id, cash(total, tendered=total + 500), request_id=rid)
    assert first["ok"] and not first["duplicate"]
    assert again["ok"] and again["duplicate"]
    assert again["entries"] == first["entries"] and again["change"] == first["change"] == 500
    other = Counter(broker, "counter-2")
    try:
        late = other.pay(order.order_id, card(total))
    finally:
        other.close()
    assert (late["ok"], late["reason"], late["payment"], late["paid"], late["due"]) == \
        (False, "already_paid", "paid", total, 0)
    assert [(e["device"], e["staff"], e["method"]) for e in late["entries"]] == [("counter-1", "li", "cash")]
    assert late["message"]["en"] == contract.REASONS["already_paid"].en
    assert ledger(till.database, order.order_id) == [("payment", "cash", total, total + 500, "counter-1")]


def test_refund_of_chosen_lines_with_the_managers_pin_once_and_never_more_than_paid(till, kiosk, counter, monitor):
    order = new_order(KUNG_PAO, MILK_TEA)  # line 2: two milk teas
    placed = kiosk.submit(order)
    tea = placed.lines[1].unit_price
    assert counter.pay(order.order_id, card(placed.total))["ok"]

    wrong = counter.refund(order.order_id, lines=(RefundLine(line=2, qty=1),), pin="1111")
    assert (wrong["ok"], wrong["reason"]) == (False, "pin_wrong")
    no_reason = counter.refund(order.order_id, lines=(RefundLine(line=2, qty=1),), reason=" ")
    assert no_reason["reason"] == "refund_reason_required"

    rid = str(uuid.uuid4())
    one = counter.refund(order.order_id, lines=(RefundLine(line=2, qty=1),), request_id=rid)
    assert one["ok"] and one["payment"] == "partly_refunded" and one["paid"] == placed.total - tea
    assert [(e["kind"], e["method"], e["amount"]) for e in one["entries"]] == [("refund", "card", tea)]
    again = counter.refund(order.order_id, lines=(RefundLine(line=2, qty=1),), request_id=rid)
    assert again["duplicate"] and again["entries"] == one["entries"]
    # the second tea once more is fine; a third is more than was sold
    three = counter.refund(order.order_id, lines=(RefundLine(line=2, qty=2),))
    assert (three["ok"], three["reason"]) == (False, "refund_exceeds_paid")
    too_much = counter.refund(order.order_id, amount=placed.total)
    assert (too_much["ok"], too_much["reason"], too_much["paid"]) == (False, "refund_exceeds_paid",
                                                                      placed.total - tea)
    assert ledger(till.database, order.order_id) == [("payment", "card", placed.total, 0, "counter-1"),
                                            ("refund", "card", tea, 0, "counter-1")]
    assert order_paid(till.database, order.order_id) == (placed.total - tea, "partly_refunded")
    kinds = rows(till.database, 'SELECT "kind" FROM "outbox" WHERE "order_id" = ? AND "kind" LIKE \'payment.%\' '
                       'ORDER BY "seq"', order.order_id)
    assert kinds == [("payment.recorded",), ("payment.refunded",)]
    h = monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("rejected.refund_exceeds_paid") == 2)
    assert h["counters"]["rejected.pin_wrong"] == 1


def test_a_paid_order_is_voided_only_with_its_refund(broker, till, kiosk, counter, monitor):
    order = new_order(KUNG_PAO, SPRING_ROLLS)
    total = kiosk.submit(order).total
    assert counter.pay(order.order_id, cash(total))["ok"]
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        staff.publish(topics.staff_command("staff-1"), contract.encode(
            StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=order.order_id, reason="left")))
        refused = staff.wait_json(topics.staff_reply("staff-1"))
    finally:
        staff.close()
    assert (refused["ok"], refused["reason"]) == (False, "refund_required")
    assert rows(till.database, 'SELECT "state" FROM "order" WHERE "id" = ?', order.order_id) == [("accepted",)]

    done = counter.refund(order.order_id, void=True, reason="diner left")
    assert done["ok"] and done["payment"] == "refunded" and done["paid"] == 0
    assert [(e["method"], e["amount"]) for e in done["entries"]] == [("cash", total)]
    upd = monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["order_id"] == order.order_id and u["state"] == "voided")
    assert (upd["payment"], upd["paid"]) == ("refunded", 0)
    assert rows(till.database, 'SELECT "state", "paid", "payment" FROM "order" WHERE "id" = ?', order.order_id) == \
        [("voided", 0, "refunded")]
    assert counter.refund(order.order_id)["reason"] == "refund_exceeds_paid"  # nothing left to give back


def test_a_held_qr_order_reaches_its_station_and_printer_only_once_paid(broker, till, counter, monitor):
    wok = Device(broker, "kds-wok-1", (topics.station_ticket("wok"),), role="kds")
    expo = Device(broker, "expo-1", ("restobox/v1/station/+/ticket",), role="expo")
    web = Kiosk(broker, "web")
    try:
        order = new_order(KUNG_PAO, channel="qr", service="dine_in", table="7")
        placed = web.submit(order)
        assert placed.status == "accepted"
        held = expo.wait_json(topics.station_ticket("expo"), lambda t: t["order_id"] == order.order_id)
        assert (held["state"], held["station"], held["payment"], held["revision"]) == ("held", "wok", "unpaid", 1)
        upd = monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["order_id"] == order.order_id)
        assert (upd["state"], upd["payment"], upd["channel"], upd["table"]) == ("held", "unpaid", "qr", "7")
        assert rows(till.database, 'SELECT "state" FROM "ticket" WHERE "order_id" = ?', order.order_id) == [("held",)]

        reply = counter.pay(order.order_id, Tender(method="qr", amount=placed.total, reference="WX-1"))
        assert reply["ok"]
        # the wok's first sight of it is the released ticket (MQTT keeps the
        # hub's messages in order: a held one sent to the wok would be first)
        first = wok.wait_for(lambda m: json.loads(m.payload)["order_id"] == order.order_id)
        t = json.loads(first.payload)
        assert (t["state"], t["revision"], t["payment"]) == ("open", 2, "paid")
        expo.wait_json(topics.station_ticket("wok"), lambda t: t["order_id"] == order.order_id)
        upd = monitor.wait_json(topics.ORDER_UPDATE,
                                lambda u: u["order_id"] == order.order_id and u["state"] == "accepted")
        assert (upd["payment"], upd["paid"]) == ("paid", placed.total)
        jobs = [json.loads(m.payload) for m in monitor.received if m.topic == topics.PRINT_JOB]
        kitchen = [j for j in jobs if j["order_id"] == order.order_id and j["kind"] == "kitchen"]
        assert len(kitchen) == 1 and kitchen[0]["kitchen"]["ticket"]["state"] == "open"
        kitchen_seen = next(i for i, m in enumerate(monitor.received) if m.topic == topics.PRINT_JOB
                            and json.loads(m.payload)["order_id"] == order.order_id)
        paid_seen = next(i for i, m in enumerate(monitor.received) if m.topic == topics.PAYMENT_UPDATE
                         and json.loads(m.payload)["order_id"] == order.order_id)
        assert kitchen_seen > paid_seen
        assert rows(till.database, 'SELECT "state" FROM "ticket" WHERE "order_id" = ?', order.order_id) == [("open",)]

        # a held order nobody pays is voided like any other; the expo is told
        unpaid = new_order(MILK_TEA, channel="qr", service="dine_in", table="8")
        web.submit(unpaid)
        expo.wait_json(topics.station_ticket("expo"), lambda t: t["order_id"] == unpaid.order_id)
        # a hub started again sends the held tickets to the expo screen again,
        # and so does the expo's resync (a station's has none of them)
        def copies() -> int:
            return len([m for m in expo.received if m.topic == topics.station_ticket("expo")
                        and json.loads(m.payload)["order_id"] == unpaid.order_id])
        till.process.stop()
        till.process.start(monitor)
        wait(lambda: copies() == 2, what="the held ticket again")
        expo.publish(topics.station_sync("expo"), contract.encode(contract.SyncRequest(device="expo-1")))
        wait(lambda: copies() == 3, what="the held ticket in the expo's resync")
        wok.publish(topics.station_sync("wok"), contract.encode(contract.SyncRequest(device="kds-wok-1")))
        wok.wait_for(lambda m: json.loads(m.payload)["order_id"] == order.order_id
                     and m.received > first.received)  # the paid order's ticket: the barrier
        counter.publish(topics.staff_command("counter-1"), contract.encode(
            StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=unpaid.order_id, reason="gone")))
        gone = expo.wait_json(topics.station_ticket("expo"),
                              lambda t: t["order_id"] == unpaid.order_id and t["state"] == "voided")
        assert gone["station"] == "drinks"
        assert rows(till.database, 'SELECT "state" FROM "order" WHERE "id" = ?', unpaid.order_id) == [("voided",)]
        assert not [m for m in wok.received if json.loads(m.payload)["order_id"] == unpaid.order_id]
    finally:
        for d in (wok, expo, web):
            d.close()


def test_a_shift_closes_with_its_cash_over_or_short(till, kiosk, counter):
    shift = str(uuid.uuid4())
    opened = counter.ask(TillRequest(request_id=str(uuid.uuid4()), kind="shift_open", shift_id=shift,
                                     float_fen=20000, staff="li"))
    assert opened["ok"] and opened["shift"]["expected"] == 20000
    twice = counter.ask(TillRequest(request_id=str(uuid.uuid4()), kind="shift_open", shift_id=str(uuid.uuid4())))
    assert twice["reason"] == "shift_already_open"
    a, b = new_order(KUNG_PAO), new_order(MILK_TEA)
    ta, tb = kiosk.submit(a).total, kiosk.submit(b).total
    assert counter.pay(a.order_id, cash(ta, tendered=ta + 1000), shift_id=shift)["ok"]
    assert counter.pay(b.order_id, cash(1000), card(tb - 1000), shift_id=shift)["ok"]
    # the whole of b back, as it was paid: the card first, then 1000 in cash
    back = counter.refund(b.order_id, shift_id=shift)
    assert sorted((e["method"], e["amount"]) for e in back["entries"]) == [("card", tb - 1000), ("cash", 1000)]
    expected = 20000 + ta + 1000 - 1000
    closed = counter.ask(TillRequest(request_id=str(uuid.uuid4()), kind="shift_close", shift_id=shift,
                                     counted_fen=expected - 150))
    s = closed["shift"]
    assert (s["cash_in"], s["cash_out"], s["expected"], s["counted"], s["over_short"]) == \
        (ta + 1000, 1000, expected, expected - 150, -150)
    assert rows(till.database, 'SELECT "float_fen", "counted_fen", "expected_fen", "closed_at" IS NOT NULL '
                      'FROM "till_shift" WHERE "id" = ?', shift) == [(20000, expected - 150, expected, 1)]
    again = counter.ask(TillRequest(request_id=str(uuid.uuid4()), kind="shift_close", shift_id=shift,
                                    counted_fen=1))
    assert again["reason"] == "shift_not_open"
    late = counter.pay(kiosk.submit(new_order(SPRING_ROLLS)).order_id, cash(1200), shift_id=shift)
    assert late["reason"] in ("shift_not_open", "amount_mismatch")
    assert [k for (k,) in rows(till.database, 'SELECT "kind" FROM "outbox" WHERE "kind" LIKE \'till.%\' ORDER BY "seq"')] == \
        ["till.shift_opened", "till.shift_closed"]


def test_the_stores_totals_are_the_ledgers_sums_after_a_seeded_day(broker, till, kiosk, counter):
    rng = random.Random(17)
    taken: dict[str, int] = {}  # method -> fen taken, as the counter and kiosk meant it
    given: dict[str, int] = {}
    menu = (KUNG_PAO, MILK_TEA, SPRING_ROLLS)
    idx = MenuIndex(load_sample_menu())
    for i in range(24):
        lines = rng.sample(menu, rng.randint(1, 3))
        o = new_order(*lines)
        total = price_order(o, idx).total
        if i % 4 == 0:  # paid at the kiosk by card
            o = msgspec.structs.replace(o, payment=contract.SubmitPayment(
                method="card", status="approved", amount=total, reference=f"T{i}"))
            assert kiosk.submit(o).total == total
            taken["card"] = taken.get("card", 0) + total
        else:
            assert kiosk.submit(o).total == total
            if i % 4 == 3:
                continue  # left unpaid
            part = rng.randint(1, total - 1)
            if i % 2:
                tenders = (cash(part, tendered=part + rng.randint(0, 500)), Tender(method="qr", amount=total - part))
            else:
                tenders = (cash(total, tendered=total),)
            assert counter.pay(o.order_id, *tenders)["ok"]
            for t in tenders:
                taken[t.method] = taken.get(t.method, 0) + t.amount
        if i % 3 == 0:
            amount = rng.randint(1, total)
            refunds = [counter.refund(o.order_id, amount=amount)]
            if i % 2 == 0 and amount < total:  # and the rest, voiding the order
                refunds.append(counter.refund(o.order_id, void=True))
            for r in refunds:
                assert r["ok"], r
                for e in r["entries"]:
                    given[e["method"]] = given.get(e["method"], 0) + e["amount"]
    by_method = {m: (p, r) for m, p, r in rows(
        till.database, 'SELECT "method", SUM(CASE WHEN "kind" = \'payment\' THEN "amount" ELSE 0 END), '
                 'SUM(CASE WHEN "kind" = \'refund\' THEN "amount" ELSE 0 END) FROM "payment" GROUP BY "method"')}
    assert {m: p for m, (p, _) in by_method.items()} == taken
    assert {m: r for m, (_, r) in by_method.items() if r} == given
    # each order's paid and payment are its ledger's
    mismatched = rows(till.database, """
        SELECT o."id", o."paid", o."payment", COALESCE(SUM(CASE WHEN p."kind" = 'payment' THEN p."amount" END), 0),
               COALESCE(SUM(CASE WHEN p."kind" = 'refund' THEN p."amount" END), 0)
        FROM "order" o LEFT JOIN "payment" p ON p."order_id" = o."id" GROUP BY o."id"
        HAVING o."paid" != COALESCE(SUM(CASE WHEN p."kind" = 'payment' THEN p."amount" END), 0)
                          - COALESCE(SUM(CASE WHEN p."kind" = 'refund' THEN p."amount" END), 0)""")
    assert mismatched == []
    (net_orders,), = rows(till.database, 'SELECT SUM("paid") FROM "order"')
    assert net_orders == sum(taken.values()) - sum(given.values())
    states = dict(rows(till.database, 'SELECT "payment", COUNT(*) FROM "order" GROUP BY "payment"'))
    assert states.get("paid") and states.get("unpaid") and (states.get("refunded") or states.get("partly_refunded"))
    # every ledger row is an outbox event for the cloud, once
    (ledger_rows,), = rows(till.database, 'SELECT COUNT(*) FROM "payment"')
    (events,), = rows(till.database, 'SELECT COUNT(*) FROM "outbox" WHERE "kind" IN (\'payment.recorded\', '
                            '\'payment.refunded\') AND "event_id" IN (SELECT "entry_id" FROM "payment")')
    assert events == ledger_rows


def test_bad_till_requests_are_refused_with_reasons_counted_and_store_nothing(till, kiosk, counter, monitor):
    order = new_order(KUNG_PAO)
    total = kiosk.submit(order).total
    good = json.loads(contract.encode(TillRequest(request_id=str(uuid.uuid4()), kind="pay",
                                                  order_id=order.order_id, tenders=(cash(total),))))
    cases = [
        (b"{not json", "bad_json"),
        (json.dumps({**good, "kind": "steal"}).encode(), "bad_schema"),
        (json.dumps({**good, "tenders": [{"method": "cash", "amount": -5}]}).encode(), "bad_schema"),
        (json.dumps({**good, "order_id": str(uuid.uuid4())}).encode(), "unknown_order"),
        (json.dumps({**good, "tenders": [{"method": "cash", "amount": total + 1}]}).encode(), "amount_mismatch"),
        (json.dumps({**good, "tenders": [{"method": "cash", "amount": total, "tendered": total - 1}]}).encode(),
         "tendered_short"),
        (json.dumps({**good, "kind": "refund", "reason": "x", "manager_pin": PIN}).encode(), "not_paid"),
        (json.dumps({**good, "kind": "pay", "shift_id": str(uuid.uuid4())}).encode(), "shift_not_open"),
    ]
    for payload, reason in cases:
        reply = counter.ask_raw(payload)
        assert (reply["ok"], reply["reason"]) == (False, reason), payload
        assert reply["message"]["zh"] and reply["message"]["en"]
    h = monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("rejected", 0) >= len(cases))
    for _, reason in cases:
        assert h["counters"][f"rejected.{reason}"] >= 1, reason
    assert rows(till.database, 'SELECT COUNT(*) FROM "payment"') == [(0,)]
    assert order_paid(till.database, order.order_id) == (0, "unpaid")
    assert counter.ask_raw(json.dumps(good).encode())["ok"]  # the same request, good, goes through


def test_retention_takes_the_ledger_rows_with_their_order_and_old_closed_shifts_only(tmp_path):
    """In the hub's own handling (Hub._process, no broker), months back:
    what retention deletes of the till, and what it keeps."""
    from datetime import datetime, timedelta, timezone

    from restobox import config, db
    from restobox.contract import StationEvent
    from tests.fixtures.db.make import KeepBus, msg, offline_hub
    from tests.support import hub_config_text

    now = datetime(2027, 6, 1, 6, 0, tzinfo=timezone.utc)
    clock = [now - timedelta(days=120)]
    pins = tmp_path / "pins"
    pins.write_text(f"wang:{hashlib.sha256(PIN.encode()).hexdigest()}\n", encoding="utf-8")
    hub = offline_hub(config.parse(hub_config_text(tmp_path / "store.db", extra=f"""
[hub.till]
hold_unpaid = ["qr"]
manager_pin_file = "{pins}"
[hub.retention]
keep_days = 90
sync_database = "{tmp_path / 'sync.db'}"
batch_rows = 10
""")), lambda: clock[0])
    assert isinstance(hub.bus, KeepBus)
    counter = topics.till_request("counter-1")

    def till(**kw) -> None:
        hub._process([("till", msg(counter, TillRequest(request_id=str(uuid.uuid4()), staff="li", **kw)))])

    def submit(o) -> int:
        hub._process([("submit", msg(topics.order_submit("kiosk-1"), o))])
        return db.Order.get_by_id(o.order_id).total

    old_shift, open_shift = str(uuid.uuid4()), str(uuid.uuid4())
    till(kind="shift_open", shift_id=old_shift, float_fen=10000)
    done, held = new_order(KUNG_PAO), new_order(MILK_TEA, channel="qr", service="dine_in", table="3")
    till(kind="pay", order_id=done.order_id, tenders=(cash(submit(done)),), shift_id=old_shift)
    till(kind="refund", order_id=done.order_id, amount=100, reason="cold", manager_pin=PIN, shift_id=old_shift)
    submit(held)
    for station in ("wok", contract.EXPO_STATION):
        hub._process([("station", msg(topics.station_event(station), StationEvent(
            event_id=str(uuid.uuid4()), kind="bump", order_id=done.order_id, device=f"kds-{station}")))])
    till(kind="shift_close", shift_id=old_shift, counted_fen=10000 + db.Order.get_by_id(done.order_id).paid)
    # the second counter's shift, opened long ago and never closed
    hub._process([("till", msg(topics.till_request("counter-2"), TillRequest(
        request_id=str(uuid.uuid4()), kind="shift_open", shift_id=open_shift, float_fen=5000)))])
    clock[0] = now
    recent = new_order(SPRING_ROLLS)
    till(kind="pay", order_id=recent.order_id, tenders=(card(submit(recent)),))
    assert db.Order.get_by_id(done.order_id).state == "completed"
    assert db.Payment.select().where(db.Payment.order_id == done.order_id).count() == 2

    sdb = db.open_sync_db(tmp_path / "sync.db")
    db.SyncCursor.insert(id=1, seq=db.Outbox.select().count() + 100, updated_at=0).on_conflict_replace().execute()
    sdb.close()
    db.store_db.initialize(hub._db)  # the sync database's open rebound nothing of the store's
    r = hub.retention
    r.next_pass = float("-inf")
    gone = r.step(hub._db, now, hub.menu.version)
    while r.busy:
        gone.update(r.step(hub._db, now, hub.menu.version))
    assert gone["order"] == 1 and gone["till_shift"] == 1
    assert {p.order_id for p in db.Payment.select()} == {recent.order_id}
    assert {s.id for s in db.Shift.select()} == {open_shift}
    assert db.Order.get_by_id(held.order_id).state == "held"  # waiting for its payment: kept
    assert [t.state for t in db.Ticket.select().where(db.Ticket.order == held.order_id)] == ["held"]
    hub._db.close()


def test_till_pin_writes_a_line_the_hub_accepts_and_replaces_a_managers_old_pin(tmp_path):
    import subprocess
    import sys

    from restobox.hub.till import pin_ok
    from tests.support import REPO

    pins = tmp_path / "pins"

    def till_pin(name: str, pin: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "restobox.cli", "till-pin", name, "--file", str(pins)],
                              input=f"{pin}\n", capture_output=True, text=True, cwd=REPO, timeout=30)

    assert till_pin("wang", "1357").returncode == 0
    assert till_pin("zhao", "8642").returncode == 0
    assert till_pin("wang", "2468").returncode == 0
    assert pins.stat().st_mode & 0o777 == 0o600
    lines = pins.read_text(encoding="utf-8").splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["zhao", "wang"] and "2468" not in pins.read_text()
    assert (pin_ok(str(pins), "2468"), pin_ok(str(pins), "8642"), pin_ok(str(pins), "1357")) == ("wang", "zhao", None)
    bad = till_pin("li", "12ab")
    assert bad.returncode == 2 and "4 to 12 digits" in bad.stderr
    assert len(pins.read_text(encoding="utf-8").splitlines()) == 2


def unpaid_list(dev: Device, want: set[str], since: float = 0.0, timeout: float = 10.0) -> dict:
    """The first till/unpaid ``dev`` heard (after ``since``) listing exactly ``want``."""
    m = dev.wait_for(lambda m: m.topic == topics.TILL_UNPAID and m.received >= since
                     and {o["order_id"] for o in msgspec.json.decode(m.payload)["orders"]} == want, timeout)
    return msgspec.json.decode(m.payload)


def test_the_tills_unpaid_list_is_retained_kept_by_payments_and_voids_and_survives_a_restart(
        broker, till, kiosk, counter, monitor):
    idx = MenuIndex(load_sample_menu())
    web = Kiosk(broker, "web")
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        at_kiosk = new_order(KUNG_PAO)
        at_table = new_order(SPRING_ROLLS, channel="qr", service="dine_in", table="7")
        offline = new_order(MILK_TEA, offline=True, provisional_number="K1-007")
        card_paid = new_order(SPRING_ROLLS)
        card_paid = msgspec.structs.replace(card_paid, payment=contract.SubmitPayment(
            method="card", status="approved", amount=price_order(card_paid, idx).total, reference="T1"))
        kiosk.submit(at_kiosk)
        web.submit(at_table)
        kiosk.submit(offline)
        kiosk.submit(card_paid)  # paid at the kiosk: nothing to take at the counter
        listed = unpaid_list(monitor, {at_kiosk.order_id, at_table.order_id, offline.order_id})
        by_id = {o["order_id"]: o for o in listed["orders"]}
        assert listed["more"] == 0 and listed["business_date"]
        assert [o["number"] for o in listed["orders"]] == [3, 2, 1]  # newest first
        t = by_id[at_table.order_id]
        assert (t["channel"], t["service"], t["table"], t["state"], t["paid"]) == ("qr", "dine_in", "7", "held", 0)
        assert t["total"] == t["due"] == price_order(at_table, idx).total
        assert by_id[offline.order_id]["provisional_number"] == "K1-007"
        assert by_id[at_kiosk.order_id]["provisional_number"] == ""
        upd = monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["order_id"] == offline.order_id)
        assert upd["provisional_number"] == "K1-007"

        assert counter.pay(at_kiosk.order_id, cash(by_id[at_kiosk.order_id]["due"]))["ok"]
        unpaid_list(monitor, {at_table.order_id, offline.order_id})
        staff.publish(topics.staff_command("staff-1"), contract.encode(
            StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=offline.order_id, reason="left")))
        assert staff.wait_json(topics.staff_reply("staff-1"))["ok"]
        unpaid_list(monitor, {at_table.order_id})

        # a counter that connects now gets the list at once (retained)
        late = Device(broker, "counter-2", (topics.TILL_UNPAID,), role="counter")
        try:
            got = late.wait_for(lambda m: m.topic == topics.TILL_UNPAID)
            assert got.retain
            assert [o["order_id"] for o in msgspec.json.decode(got.payload)["orders"]] == [at_table.order_id]
        finally:
            late.close()

        # the hub's next life lists the same from store.db
        till.process.stop()
        since = time.monotonic()
        till.process.start(monitor)
        again = unpaid_list(monitor, {at_table.order_id}, since=since)
        assert again["orders"][0] == by_id[at_table.order_id]
    finally:
        web.close()
        staff.close()


def test_the_unpaid_list_starts_again_when_the_business_day_turns(broker, tmp_path, monitor):
    class Clock:
        t = datetime(2026, 11, 22, 19, 58, tzinfo=timezone.utc)  # 03:58 in Shanghai: still the 22nd

        def __call__(self) -> datetime:
            return self.t

    clock = Clock()
    hub = in_process_hub(broker, tmp_path, clock)
    hub.start()
    kiosk = Kiosk(broker, "kiosk-1")
    try:
        late = new_order(SPRING_ROLLS)
        kiosk.submit(late)
        assert unpaid_list(monitor, {late.order_id})["business_date"] == "2026-11-22"
        since = time.monotonic()
        clock.t = datetime(2026, 11, 22, 20, 1, tzinfo=timezone.utc)  # 04:01: the 23rd
        turned = unpaid_list(monitor, set(), since=since)
        assert (turned["business_date"], turned["more"]) == ("2026-11-23", 0)
        first = new_order(MILK_TEA)
        kiosk.submit(first)
        assert unpaid_list(monitor, {first.order_id})["business_date"] == "2026-11-23"
    finally:
        kiosk.close()
        hub.stop()
