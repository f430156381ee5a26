"""Paying on the phone, end to end: the table QR page in Debian's chromium
(driven by Playwright) against the real store — mosquitto with the project's
broker_config, ``restobox hub``, ``sync``, ``web``, the chain's cloud
(``cloud-dev``) and the payment gateway (``paygate-dev``), each in its own
process (restobox/dev/paystack.py) — through every fault the gateway can
have (docs/paygate.md). Whatever happens: no double charge, no payment
lost, no order left "paying", and a clear way forward on the page.

One store for the module; each test places its own order at its own
table. Screenshots of the payment go to docs/screenshots/ (web-pay-*.png).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import msgspec
import pytest

from restobox import config as rconfig
from restobox import contract
from restobox.contract import StaffCommand, topics
from restobox.dev.paystack import PayStack, ledger_vs_gateway
from tests.support import wait
from tests.test_web_qr import PHONE, WAIT_MS, add_item, browser, shot  # noqa: F401  (browser: the module's chromium)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EXPIRE_S = 8


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    st = PayStack(tmp_path_factory.mktemp("phone-pay"), expire_s=EXPIRE_S, query_first_s=0.5, query_max_s=2.0)
    st.start()
    watch = st.bus("staff-1", "staff")
    seen: list = []
    watch.subscribe("restobox/v1/#", lambda m: seen.append(m))
    watch.start()
    watch.wait_connected(10)
    st.seen = seen
    st.staff = watch
    try:
        yield st
    finally:
        watch.stop()
        st.stop()


@pytest.fixture
def phone(browser, store):
    store.fault("ok")
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                              locale="en-US")
    page = ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    ctx.close()


_tables = iter(range(1, 21))


def order_at_a_table(store, page, lang: str = "en") -> tuple[str, str]:
    """A diner orders spring rolls at a table of their own: (order id, table)."""
    table = str(next(_tables))
    page.goto(f"{store.web_url}/t/{table}?lang={lang}")
    page.wait_for_selector('.item[data-item="spring-rolls"]')
    add_item(page, "spring-rolls")
    page.click("#cartbar-btn")
    page.click("#place-btn")
    ticket = page.wait_for_selector(".ticket")
    page.wait_for_selector('.ticket[data-state="held"]')  # the kitchen waits for the payment
    return ticket.get_attribute("data-order"), table


def ledger(store, order_id: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{store.store_db}?mode=ro", uri=True)
    try:
        return con.execute('SELECT kind, method, amount, stray FROM payment WHERE order_id = ? ORDER BY seq',
                           (order_id,)).fetchall()
    finally:
        con.close()


def intents(store, order_id: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{store.store_db}?mode=ro", uri=True)
    try:
        return con.execute('SELECT merchant_no, state, reason FROM pay_intent WHERE order_id = ? ORDER BY attempt',
                           (order_id,)).fetchall()
    finally:
        con.close()


def trades_of(store, order_id: str) -> list[dict]:
    prefix = "RB" + order_id.replace("-", "")[:26]
    return [t for t in store.trades() if t["out_trade_no"].startswith(prefix)]


def paid_on_the_page(page) -> str:
    return page.wait_for_selector(".ticket .pay-done").inner_text()


def settled(store, order_id: str) -> None:
    """The gateway's records and the ledger agree on this order: every fen
    the gateway kept is one payment row, every fen it gave back one refund
    row; nothing is still open, nothing charged twice."""
    def agree() -> bool:
        trades = trades_of(store, order_id)
        kept = sum((t["charged"] or 0) - t["refunded"] for t in trades if t["status"] in ("SUCCESS", "REFUND"))
        rows = ledger(store, order_id)
        net = sum(a if k == "payment" else -a for k, _, a, _ in rows)
        gw_in = sorted(t["charged"] for t in trades if t["status"] in ("SUCCESS", "REFUND"))
        gw_back = sorted(t["refunded"] for t in trades if t["refunded"])
        return (kept == net and gw_in == sorted(a for k, _, a, _ in rows if k == "payment")
                and gw_back == sorted(a for k, _, a, _ in rows if k == "refund")
                and all(s not in ("open", "refund_due") for _, s, _ in intents(store, order_id)))
    wait(agree, 20, what=f"the gateway and the ledger to agree on {order_id}")
    total = sum(a if k == "payment" else -a for k, _, a, s in ledger(store, order_id) if not s)
    kept = sum(a if k == "payment" else -a for k, _, a, _ in ledger(store, order_id))
    assert kept == total, "money kept beyond the order's own payment: a double charge"


def pay_in_the_wallet(page, *, screenshot: str = "") -> None:
    page.wait_for_selector("#pay")
    if screenshot:
        shot(page, screenshot)
    page.click("#pay")


def test_pay_on_the_phone_goes_to_the_wallet_and_back_to_the_order_paid_and_sent_to_the_kitchen(store, phone):
    page = phone
    oid, table = order_at_a_table(store, page)
    assert "Or pay at the counter" in page.inner_text(".ticket .pay-box")
    shot(page, "web-pay-order")
    page.click(f'[data-pay="{oid}"]')
    pay_in_the_wallet(page, screenshot="web-pay-wallet")
    page.wait_for_url(f"**/t/{table}**")
    assert "Paid" in paid_on_the_page(page)
    page.wait_for_selector('.ticket[data-state="accepted"]')  # released to the kitchen
    shot(page, "web-pay-paid")
    assert ledger(store, oid) == [("payment", "gateway", 1200, 0)]
    assert [t["status"] for t in trades_of(store, oid)] == ["SUCCESS"]
    settled(store, oid)
    assert any(m.topic == topics.station_ticket("fryer") and oid.encode() in m.payload for m in store.seen)


def test_a_lost_notification_is_found_by_the_stores_own_enquiry(store, phone):
    """The gateway never notifies, and the diner's phone never comes back
    from the wallet: the sync service's enquiry records the payment."""
    page = phone
    oid, table = order_at_a_table(store, page)
    store.fault("notify_lost", count=1)
    page.click(f'[data-pay="{oid}"]')
    page.route(f"**/t/{table}?paid=*", lambda route: route.abort())  # the phone loses the page
    pay_in_the_wallet(page)
    wait(lambda: ledger(store, oid) == [("payment", "gateway", 1200, 0)], 15, what="the enquiry to record it")
    page.unroute(f"**/t/{table}?paid=*")
    page.goto(f"{store.web_url}/t/{table}?lang=en")
    page.click("#orders-btn")
    assert "Paid" in paid_on_the_page(page)
    settled(store, oid)
    t = trades_of(store, oid)[0]
    assert t["notify_deliveries"] == 0


def test_repeated_and_early_notifications_record_the_payment_once(store, phone):
    page = phone
    oid, _ = order_at_a_table(store, page)
    store.fault("notify_repeat", count=1)
    page.click(f'[data-pay="{oid}"]')
    pay_in_the_wallet(page)
    paid_on_the_page(page)
    wait(lambda: trades_of(store, oid)[0]["notify_deliveries"] >= 3, what="three deliveries")
    oid2, _ = order_at_a_table(store, page)
    store.fault("notify_early", count=1)
    page.click(f'[data-pay="{oid2}"]')
    pay_in_the_wallet(page)
    paid_on_the_page(page)
    for o in (oid, oid2):
        assert ledger(store, o) == [("payment", "gateway", 1200, 0)]
        settled(store, o)


def test_a_gateway_that_times_out_is_asked_again_with_the_same_payment_and_charges_once(store, phone):
    page = phone
    oid, _ = order_at_a_table(store, page)
    store.fault("timeout", count=1, calls=["create"])
    page.click(f'[data-pay="{oid}"]')
    msg = page.wait_for_selector('.ticket .pay-msg:has-text("did not answer")').inner_text()
    assert "not be charged twice" in msg and "counter" in msg
    shot(page, "web-pay-timeout")
    store.fault("slow", count=1, slow_s=1.0, calls=["create"])  # slow, but within the page's time
    page.click(f'[data-pay="{oid}"]')
    pay_in_the_wallet(page)
    paid_on_the_page(page)
    trades = trades_of(store, oid)
    assert len(trades) == 1 and trades[0]["status"] == "SUCCESS"  # the retry was the same payment
    assert len(intents(store, oid)) == 1
    settled(store, oid)


def test_a_forged_notification_is_not_believed_and_the_enquiry_still_records_the_payment(store, phone):
    page = phone
    oid, table = order_at_a_table(store, page)
    store.fault("bad_signature", count=1)
    before = store.healths["sync"]["counters"].get("pay.bad_signature", 0)
    page.click(f'[data-pay="{oid}"]')
    page.route(f"**/t/{table}?paid=*", lambda route: route.abort())
    pay_in_the_wallet(page)
    wait(lambda: store.healths["sync"]["counters"].get("pay.bad_signature", 0) > before, 15,
         what="the bad signature counted")
    wait(lambda: ledger(store, oid) == [("payment", "gateway", 1200, 0)], 15, what="the enquiry to record it")
    settled(store, oid)


def test_a_wrong_amount_is_refunded_and_the_diner_pays_again(store, phone):
    page = phone
    oid, _ = order_at_a_table(store, page)
    store.fault("amount_mismatch", count=1)
    page.click(f'[data-pay="{oid}"]')
    pay_in_the_wallet(page)
    msg = page.wait_for_selector('.ticket .pay-box[data-pay-state="refunded"], '
                                 '.ticket .pay-box[data-pay-state="refund_due"]').inner_text()
    assert "refunded to you" in msg
    shot(page, "web-pay-refunded")
    alerts = [msgspec.json.decode(m.payload) for m in store.seen if m.topic == topics.ALERTS]
    assert any(a["code"] == "stray_payment" and "amount_mismatch" in a["subject"] for a in alerts)
    page.click(f'[data-pay="{oid}"]')  # attempt 2, the right amount
    pay_in_the_wallet(page)
    paid_on_the_page(page)
    settled(store, oid)
    assert sorted(ledger(store, oid)) == sorted([("payment", "gateway", 1199, 1), ("refund", "gateway", 1199, 1),
                                                 ("payment", "gateway", 1200, 0)])


def test_an_order_voided_while_the_diner_pays_is_refunded_and_staff_are_told(store, phone):
    page = phone
    oid, _ = order_at_a_table(store, page)
    page.click(f'[data-pay="{oid}"]')
    page.wait_for_selector("#pay")
    store.staff.publish(topics.staff_command("staff-1"), contract.encode(StaffCommand(
        command_id=str(uuid.uuid4()), kind="void", order_id=oid, reason="the diner left")))
    wait(lambda: any(m.topic == topics.ORDER_UPDATE and oid.encode() in m.payload and b'"voided"' in m.payload
                     for m in store.seen), what="the void")
    page.click("#pay")
    wait(lambda: [s for _, s, _ in intents(store, oid)] == ["refunded"], 20, what="the payment given back")
    alerts = [msgspec.json.decode(m.payload) for m in store.seen if m.topic == topics.ALERTS]
    assert any(a["code"] == "stray_payment" and "order_voided" in a["subject"] for a in alerts)
    page.wait_for_selector('.ticket[data-state="voided"]')
    settled(store, oid)


def test_a_payment_the_gateway_takes_after_the_store_closed_it_pays_the_order_once(store, phone):
    """The diner leaves the wallet unpaid; the sync service closes the
    payment after its time, and the gateway takes the money after all (the
    diner's payment was in flight): the order is paid by it, once."""
    page = phone
    oid, _ = order_at_a_table(store, page)
    page.click(f'[data-pay="{oid}"]')
    page.wait_for_selector("#cancel")
    store.fault("success_after_close", count=1)
    page.click("#cancel")  # back to the order, unpaid
    page.wait_for_selector(".ticket .pay-box")
    # closed by the sync service after its time; the gateway then takes the money after all
    wait(lambda: ledger(store, oid) == [("payment", "gateway", 1200, 0)], EXPIRE_S + 15,
         what="the success after the close")
    assert [s for _, s, _ in intents(store, oid)] == ["paid"]
    assert "Paid" in paid_on_the_page(page)
    settled(store, oid)


def test_no_internet_says_at_once_that_phone_payment_is_unavailable_and_offers_the_counter(store, phone):
    page = phone
    oid, _ = order_at_a_table(store, page)
    page.wait_for_selector(f'[data-pay="{oid}"]')
    store.kill("paygate")
    try:
        msg = page.wait_for_selector(".ticket .pay-msg", timeout=15_000).inner_text()
        assert "not available right now" in msg and "counter" in msg
        assert page.query_selector(f'[data-pay="{oid}"]') is None
        shot(page, "web-pay-unavailable")
        assert intents(store, oid) == []  # nothing left "paying"
    finally:
        store.restart("paygate")
    page.wait_for_selector(f'[data-pay="{oid}"]', timeout=15_000)


def test_the_days_report_lists_every_difference_with_the_gateways_statement(store, phone, tmp_path):
    from restobox import report

    page = phone
    oid, _ = order_at_a_table(store, page)
    page.click(f'[data-pay="{oid}"]')
    pay_in_the_wallet(page)
    paid_on_the_page(page)
    cfg = rconfig.load(store.dir / "hub.toml")
    day = report.business_day(cfg, datetime.now(timezone.utc))
    clean = report.compute(cfg, day).reconciliation
    assert clean.checked and clean.differences == [] and clean.matched >= 1
    store.fault("statement_extra", count=1)
    extra = report.compute(cfg, day).reconciliation
    assert [d.kind for d in extra.differences] == ["missing_in_ledger"]
    store.fault("statement_missing", count=1)
    missing = report.compute(cfg, day).reconciliation
    assert [d.kind for d in missing.differences] == ["missing_in_statement"]
    page_html = report.write_page(report.compute(cfg, day), tmp_path / "report").read_text()
    assert "Phone payments reconciled" in page_html


def test_a_page_service_restarted_before_the_diner_pays_still_takes_the_payment(store, phone):
    """``restobox web`` keeps nothing: restarted (SIGKILL), it learns the
    diner's order from the hub when the page asks about it again."""
    page = phone
    oid, table = order_at_a_table(store, page)
    store.restart("web")
    page.goto(f"{store.web_url}/t/{table}?lang=en")
    page.click("#orders-btn")
    page.click(f'[data-pay="{oid}"]')
    pay_in_the_wallet(page)
    assert "Paid" in paid_on_the_page(page)
    settled(store, oid)


def test_the_diners_phone_number_goes_to_the_wallet_and_a_bad_one_is_left_out(store):
    """The page sends the number the diner typed (kept on their phone);
    the service passes it to the gateway only."""
    with httpx.Client(base_url=store.web_url, timeout=10) as web:
        ids = []
        for phone in ("138 0013 8000", "12345"):
            oid = str(uuid.uuid4())
            r = web.post("/api/orders", json={"order_id": oid, "table": "20",
                                               "lines": [{"item_id": "fries", "qty": 1}]}).json()
            assert r["status"] == "accepted"
            assert web.post(f"/api/orders/{oid}/pay", json={"phone": phone}).json()["status"] == "redirect"
            ids.append(oid)
        bad = web.post(f"/api/orders/{ids[0]}/pay", content=b'{"phone": 5}')
        assert bad.status_code == 400 and bad.json()["reason"] == "bad_schema"
    good, left_out = (trades_of(store, o)[0]["payer_phone"] for o in ids)
    assert good in ("13800138000", "138****8000") and left_out == ""
    assert "13800138000" not in store.log("web")


def test_a_refund_at_the_counter_of_a_phone_payment_goes_back_through_the_gateway(store):
    """The manager refunds part of a phone-paid order, then the rest: the
    ledger records each at once, and the gateway gives each back (the
    same refund however often it is asked), until the two agree."""
    import threading

    from restobox.contract import TillRequest
    from restobox.dev.paystack import MANAGER_PIN, diner

    with httpx.Client(timeout=10) as http:
        r = diner(store, "19", __import__("random").Random(5), http, abandon=0.0, check=1.0)
    oid = r["order_id"]
    wait(lambda: [s for _, s, _ in intents(store, oid)] == ["paid"], what="paid on the phone")
    total = ledger(store, oid)[0][2]
    counter = store.bus("counter-1", "counter")
    got: dict[str, dict] = {}
    ready = threading.Event()

    def answer(m) -> None:
        d = msgspec.json.decode(m.payload)
        got[d["request_id"]] = d
        ready.set()

    counter.subscribe(topics.till_reply("counter-1"), answer)
    counter.start()
    try:
        counter.wait_connected(10)
        for amount in (300, None):  # 3 yuan, then the rest
            rid = str(uuid.uuid4())
            req = TillRequest(request_id=rid, kind="refund", order_id=oid, amount=amount, reason="cold",
                              manager_pin=MANAGER_PIN, staff="li")
            for _ in range(2):  # the counter's retry: the same request
                counter.publish(topics.till_request("counter-1"), contract.encode(req), correlation=rid.encode(),
                                response_topic=topics.till_reply("counter-1"))
            wait(lambda: rid in got, what="the hub's answer")
            assert got[rid]["ok"], got[rid]
            mno = intents(store, oid)[0][0]
            want = 300 if amount else total
            wait(lambda: trades_of(store, oid)[0]["refunded"] == want, 15, what="the gateway to give it back")
    finally:
        counter.stop()
    wait(lambda: [s for _, s, _ in intents(store, oid)] == ["refunded"], 15, what="all given back")
    t = trades_of(store, oid)[0]
    assert t["refunded"] == total and len(t["refunds"]) == 2 and t["status"] == "REFUND"
    back = [(k, m, a, s) for k, m, a, s in ledger(store, oid) if k == "refund"]
    assert back == [("refund", "gateway", 300, 0), ("refund", "gateway", total - 300, 0)]
    check = ledger_vs_gateway(store)
    assert mno not in [x[0] for x in check["mismatched"]] and not check["lost"], check
