"""Phone payment at the hub, against a real mosquitto (the project's
broker_config) and a real hub process on a real SQLite file: the page asks
for an order's payment on pay/<device>/request and gets the same merchant
number on every retry; what the gateway says (pay/result, signed with the
merchant key) is believed only when its signature checks, recorded once
however often and from wherever it comes, and money the order cannot keep
goes into the ledger as a stray payment with its refund, never into the
order's sums."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from restobox import contract, paygate
from restobox.contract import PayRequest, PayResult, StaffCommand, topics
from tests.hub_fixtures import RunningHub
from tests.support import KUNG_PAO, Device, HubProcess, Kiosk, hub_config, new_order, wait
from tests.test_hub_flow import rows

pytestmark = pytest.mark.integration

KEY = b"test-merchant-key-0123456789"
MCH = "m-store-1"


class Page(Device):
    """The table QR page's side of the bus (role web)."""

    def __init__(self, broker, name: str = "web") -> None:
        super().__init__(broker, name, (topics.pay_reply(name), topics.PAY_INTENT), role="web")

    def ask(self, order_id: str, request_id: str | None = None) -> dict:
        corr = uuid.uuid4().bytes
        self.publish(topics.pay_request(self.name), contract.encode(PayRequest(
            request_id=request_id or str(uuid.uuid4()), order_id=order_id)),
            correlation=corr, response_topic=topics.pay_reply(self.name))
        return msgspec.json.decode(self.wait_for(lambda m: m.correlation == corr).payload)

    def result(self, source: str, fields: dict) -> None:
        self.publish(topics.PAY_RESULT, contract.encode(PayResult(source=source, fields=fields)))


def gateway_says(mno: str, amount: int, status: str = "SUCCESS", key: bytes = KEY, **more) -> dict:
    """The gateway's signed fields about a payment (as a notification or a query answer says them)."""
    f = {"mch_id": MCH, "out_trade_no": mno, "trade_no": f"T{mno[-6:]}", "status": status, "amount": amount,
         "paid_at": "2026-12-05T12:00:00+08:00" if status == "SUCCESS" else "", **more}
    return paygate.signed(f, key)


@pytest.fixture
def payhub(broker, monitor, tmp_path):
    """A hub that takes phone payments; table QR orders wait for theirs."""
    keyf = tmp_path / "paygate.key"
    keyf.write_text(KEY.decode() + "\n", encoding="utf-8")
    db = tmp_path / "store.db"
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=db, extra=f"""
[hub.till]
hold_unpaid = ["qr"]

[paygate]
enabled = true
mch_id = "{MCH}"
key_file = "{keyf}"
expire_s = 60
""")
    proc = HubProcess(cfg, tmp_path / "hub.log")
    proc.start(monitor)
    yield RunningHub(proc, db, cfg)
    proc.stop()


@pytest.fixture
def page(broker, payhub):
    p = Page(broker)
    yield p
    p.close()


@pytest.fixture
def kiosk(broker, payhub):
    k = Kiosk(broker, "kiosk-1")  # orders placed as the table QR page places them
    yield k
    k.close()


def qr_order(kiosk) -> tuple[str, int]:
    order = new_order(KUNG_PAO, channel="qr", service="dine_in", table="5")
    reply = kiosk.submit(order)
    assert reply.status == "accepted", reply
    return order.order_id, reply.total


def ledger(db, order_id: str) -> list[tuple]:
    return rows(db, 'SELECT "kind", "method", "amount", "stray", "entry_id" FROM "payment" WHERE "order_id" = ? '
                    'ORDER BY "seq"', order_id)


def order_state(db, order_id: str) -> tuple:
    return rows(db, 'SELECT "state", "paid", "payment" FROM "order" WHERE "id" = ?', order_id)[0]


def intent_state(db, mno: str) -> tuple:
    return rows(db, 'SELECT "state", "reason", "refund_amount" FROM "pay_intent" WHERE "merchant_no" = ?', mno)[0]


def test_every_retry_gets_the_same_payment_and_its_success_is_recorded_once(payhub, page, kiosk, monitor):
    oid, total = qr_order(kiosk)
    assert order_state(payhub.database, oid) == ("held", 0, "unpaid")
    first = page.ask(oid)
    assert first["ok"] and first["due"] == total
    intent = first["intent"]
    assert intent["state"] == "open" and intent["amount"] == total and intent["attempt"] == 1
    assert intent["merchant_no"] == paygate.merchant_no(oid, 1) and len(intent["merchant_no"]) <= 32
    again = page.ask(oid)
    assert again["intent"]["merchant_no"] == intent["merchant_no"]  # never a new one while it is open
    # the notification (via the cloud) and the enquiry both say so; the page's check too
    fields = gateway_says(intent["merchant_no"], total)
    for source in ("notify", "query", "notify", "return"):
        page.result(source, fields)
    upd = monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["order_id"] == oid and u["payment"] == "paid")
    assert upd["state"] == "accepted"  # released to the kitchen
    monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("pay.duplicates", 0) >= 3)
    assert ledger(payhub.database, oid) == [("payment", "gateway", total, 0, f"{intent['merchant_no']}:paid")]
    assert order_state(payhub.database, oid) == ("accepted", total, "paid")
    assert intent_state(payhub.database, intent["merchant_no"]) == ("paid", "", 0)
    ticket = monitor.wait_json(topics.station_ticket("wok"), lambda t: t["order_id"] == oid)
    assert ticket["state"] == "open"
    events = rows(payhub.database, 'SELECT "kind" FROM "outbox" WHERE "order_id" = ? AND "kind" LIKE \'payment.%\'',
                  oid)
    assert events == [("payment.recorded",)]
    # a paid order has no payment to ask for
    late = page.ask(oid)
    assert not late["ok"] and late["reason"] == "already_paid" and late["payment"] == "paid"


def test_a_result_whose_signature_does_not_check_changes_nothing(payhub, page, kiosk, monitor):
    oid, total = qr_order(kiosk)
    mno = page.ask(oid)["intent"]["merchant_no"]
    forged = gateway_says(mno, total, key=b"not-the-merchant-key")
    page.result("notify", forged)
    tampered = dict(gateway_says(mno, 1), amount=total)  # signed for 1 fen, then changed
    page.result("notify", tampered)
    unsigned = {k: v for k, v in gateway_says(mno, total).items() if k != "sign"}
    page.result("notify", unsigned)
    monitor.wait_json(topics.REJECTS, lambda r: r["reason"] == "bad_signature")
    monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("rejected.bad_signature", 0) == 3)
    assert ledger(payhub.database, oid) == []
    assert order_state(payhub.database, oid) == ("held", 0, "unpaid")
    assert intent_state(payhub.database, mno)[0] == "open"


def test_a_closed_payment_gives_way_to_a_new_attempt_and_a_late_success_still_pays_an_unpaid_order(
        payhub, page, kiosk, monitor):
    oid, total = qr_order(kiosk)
    first = page.ask(oid)["intent"]["merchant_no"]
    page.result("close", gateway_says(first, total, status="CLOSED"))
    wait(lambda: intent_state(payhub.database, first)[0] == "closed", what="closed")
    second = page.ask(oid)["intent"]
    assert second["attempt"] == 2 and second["merchant_no"] != first
    # the diner's payment of the first one was in flight: the gateway took it after all
    page.result("notify", gateway_says(first, total))
    monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["order_id"] == oid and u["payment"] == "paid")
    assert intent_state(payhub.database, first)[0] == "paid"
    # and the second one, paid too, cannot be kept: it goes back
    page.result("notify", gateway_says(second["merchant_no"], total))
    alert = monitor.wait_json(topics.ALERTS, lambda a: a["code"] == "stray_payment")
    assert "already_paid" in alert["subject"]
    wait(lambda: intent_state(payhub.database, second["merchant_no"]) == ("refund_due", "already_paid", total),
         what="the second payment to refund")
    assert order_state(payhub.database, oid) == ("accepted", total, "paid")  # not paid twice
    refund = paygate.signed({"mch_id": MCH, "out_trade_no": second["merchant_no"],
                             "out_refund_no": second["merchant_no"] + "R", "refund_id": "R1", "amount": total,
                             "status": "SUCCESS", "code": "OK"}, KEY)
    page.result("refund", refund)
    page.result("refund", refund)
    wait(lambda: intent_state(payhub.database, second["merchant_no"])[0] == "refunded", what="refunded")
    assert [(k, m, a, s) for k, m, a, s, _ in ledger(payhub.database, oid)] == [
        ("payment", "gateway", total, 0), ("payment", "gateway", total, 1), ("refund", "gateway", total, 1)]
    assert order_state(payhub.database, oid) == ("accepted", total, "paid")


def test_a_wrong_amount_or_a_voided_order_is_refunded_not_kept(broker, payhub, page, kiosk, monitor):
    oid, total = qr_order(kiosk)
    mno = page.ask(oid)["intent"]["merchant_no"]
    page.result("query", gateway_says(mno, total - 1))
    wait(lambda: intent_state(payhub.database, mno) == ("refund_due", "amount_mismatch", total - 1),
         what="the wrong amount to refund")
    assert order_state(payhub.database, oid) == ("held", 0, "unpaid")
    # a diner who paid, then the order was voided before the payment arrived
    oid2, total2 = qr_order(kiosk)
    mno2 = page.ask(oid2)["intent"]["merchant_no"]
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        staff.publish(topics.staff_command("staff-1"), contract.encode(StaffCommand(
            command_id=str(uuid.uuid4()), kind="void", order_id=oid2, reason="left")),
            correlation=b"c", response_topic=topics.staff_reply("staff-1"))
        staff.wait_for(lambda m: True)
    finally:
        staff.close()
    page.result("notify", gateway_says(mno2, total2))
    wait(lambda: intent_state(payhub.database, mno2) == ("refund_due", "order_voided", total2), what="voided")
    assert order_state(payhub.database, oid2)[0] == "voided"
    again = page.ask(oid2)
    assert not again["ok"] and again["reason"] == "bad_transition"


def test_a_payment_never_made_at_the_gateway_is_closed_and_unknown_ones_are_refused(payhub, page, kiosk, monitor):
    oid, total = qr_order(kiosk)
    mno = page.ask(oid)["intent"]["merchant_no"]
    page.result("close", paygate.signed({"mch_id": MCH, "out_trade_no": mno, "code": "ORDER_NOT_EXIST"}, KEY))
    wait(lambda: intent_state(payhub.database, mno)[0] == "closed", what="closed")
    page.result("notify", gateway_says("RB" + "0" * 28, total))
    rej = monitor.wait_json(topics.REJECTS, lambda r: r["reason"] == "unknown_payment")
    assert rej
    unknown = page.ask(str(uuid.uuid4()))
    assert not unknown["ok"] and unknown["reason"] == "unknown_order"


def test_a_store_without_phone_payment_says_so(broker, hub, monitor):
    page = Page(broker)
    try:
        k = Kiosk(broker, "kiosk-1")
        try:
            oid, _ = qr_order(k)
        finally:
            k.close()
        reply = page.ask(oid)
        assert not reply["ok"] and reply["reason"] == "pay_disabled"
        assert reply["message"]["en"].startswith("This store does not take payment on the phone")
    finally:
        page.close()
