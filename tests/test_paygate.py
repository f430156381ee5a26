"""The payment gateway's protocol (restobox/paygate.py) against its simulator
(``restobox paygate-dev``, a real HTTP server in its own process): signing,
the merchant order number as the idempotency key, the wallet page, close and
refund, notifications retried until acknowledged, the statement, every fault
mode, and a restart. Notifications go to a real HTTP receiver in this test.

One gateway serves the module's tests (started once: a process per test
cost more than the tests); each test starts it with the fault mode reset,
uses merchant order numbers and refund numbers of its own (``no``) and a
receiver of its own, and reads counters as they grew during the test. The
tests that need the gateway's timing or stop it (notify_early, a restart)
start one of their own."""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import closing

import httpx
import pytest

from restobox import paygate
from restobox.paygate import GatewayError, as_trade, parse_notification, signed, verify
from tests.devproc import PostReceiver
from tests.paygate_support import PaygateDev
from tests.support import wait

pytestmark = pytest.mark.integration

KEY = b"test-merchant-key"
ACK = (200, b'{"code": "SUCCESS"}')
REFUSE = (200, b'{"code": "FAIL", "message": "not believed"}')
RETURN_URL = "http://store.test/pay/return?order=42"


class Receiver(PostReceiver):
    """The store's notification address: records every body, answers with
    ``answers`` first (one each) and then ``default``. Its path is its own:
    a notification of an earlier test still retried to a port now reused
    by this receiver is answered 404, neither recorded nor answered from
    ``answers``."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.answers: list[tuple[int, bytes]] = []
        self.default = ACK
        self.lock = threading.Lock()
        self.path = f"/notify/{uuid.uuid4().hex}"
        super().__init__(self.path)

    def answer(self, path: str, headers, body: bytes) -> tuple[int, bytes]:
        if path != self.path:
            return 404, b""
        with self.lock:
            self.bodies.append(body)
            return self.answers.pop(0) if self.answers else self.default

    def of(self, out_trade_no: str) -> list[bytes]:
        with self.lock:
            return [b for b in self.bodies if json.loads(b).get("out_trade_no") == out_trade_no]


@pytest.fixture
def rx():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """The module's gateway: quick notifications (0.05 s after a payment),
    three quick retries."""
    with PaygateDev(tmp_path_factory.mktemp("paygate"), key=KEY, notify_delay=0.05,
                    notify_retry=(0.05, 0.1, 0.15)) as g:
        yield g


@pytest.fixture
def pg(gateway):
    """The module's gateway, its fault mode reset for this test."""
    gateway.fault("ok")
    return gateway


@pytest.fixture
def no():
    """This test's merchant order and refund numbers: ``no("RB100")`` is
    RB100 with a suffix of this test's own, the same each time it is asked."""
    tag = uuid.uuid4().hex[:10]
    return lambda name: f"{name}x{tag}"


def grew(pg, before: dict[str, int], key: str) -> int:
    """How much the gateway's counter ``key`` grew since ``before`` (its stats then)."""
    return pg.stats().get(key, 0) - before.get(key, 0)


@pytest.fixture
def client(pg):
    c = pg.client()
    yield c
    c.close()


def create(client, no: str, amount: int, rx: Receiver | None = None, **kw):
    trade, _ = client.create(no, amount, description="桌 12 点餐 Table 12", payer_phone="13800138000",
                             notify_url=rx.url if rx else "http://127.0.0.1:9/notify", return_url=RETURN_URL, **kw)
    return trade


def refused(fn, *args, **kw) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        fn(*args, **kw)
    return info.value


# ------------------------------------------------------------- signing
def test_a_signed_message_checks_and_a_tampered_or_unsigned_one_does_not():
    f = signed({"out_trade_no": "RB1", "amount": 1234, "description": "点餐", "payer_phone": ""}, KEY)
    assert verify(dict(f), KEY)
    assert refused(verify, {**f, "amount": 1233}, KEY).reason == "bad_signature"
    assert refused(verify, {**f, "extra": "x"}, KEY).reason == "bad_signature"
    assert refused(verify, {k: v for k, v in f.items() if k != "sign"}, KEY).reason == "bad_signature"
    assert refused(verify, f, b"another-key").reason == "bad_signature"
    # an empty field is not signed: adding or dropping one changes nothing
    assert verify({**f, "paid_at": ""}, KEY)


def test_the_gateway_refuses_a_bad_signature_with_a_signed_answer(pg):
    before = pg.stats()
    body = signed({"mch_id": pg.mch_id, "out_trade_no": "RB1"}, KEY)
    r = httpx.post(f"{pg.url}/v1/pay/query", json={**body, "out_trade_no": "RB2"})
    assert r.status_code == 400
    answer = verify(r.json(), KEY)
    assert answer["code"] == "SIGN_ERROR" and answer["out_trade_no"] == "RB2"
    r = httpx.post(f"{pg.url}/v1/pay/query", json=signed({"mch_id": "m-other", "out_trade_no": "RB1"}, KEY))
    assert r.status_code == 400 and verify(r.json(), KEY)["code"] == "SIGN_ERROR"
    r = httpx.post(f"{pg.url}/v1/pay/query", content=b"<xml/>")
    assert r.status_code == 400 and verify(r.json(), KEY)["code"] == "PARAM_ERROR"
    # a store with the wrong key cannot believe the gateway's answer either
    wrong = paygate.PaygateClient(pg.url, pg.mch_id, b"wrong-key")
    try:
        assert refused(wrong.query, "RB1").reason == "bad_signature"
    finally:
        wrong.close()
    assert grew(pg, before, "refused.SIGN_ERROR") == 3


# ------------------------------------------------------------- trades
def test_create_is_idempotent_by_merchant_order_number(client, no):
    t1 = create(client, no("RB100"), 1234)
    assert t1.status == "NOTPAY" and t1.trade_no.startswith("T") and t1.cashier_url.endswith(f"/cashier/{t1.trade_no}")
    t2 = create(client, no("RB100"), 1234)
    assert (t2.trade_no, t2.cashier_url) == (t1.trade_no, t1.cashier_url)
    e = refused(create, client, no("RB100"), 1300)
    assert e.reason == "param_conflict" and e.answer["out_trade_no"] == no("RB100")
    assert refused(create, client, "RB 100", 1234).reason == "gateway_refused"  # PARAM_ERROR


def test_the_wallet_page_shows_the_payment_and_paying_returns_to_the_store(pg, client, no):
    t = create(client, no("RB200"), 1234)
    page = httpx.get(t.cashier_url).text
    assert "¥12.34" in page and "138****8000" in page and "13800138000" not in page
    assert 'id="pay"' in page and "确认支付 Pay ¥12.34" in page
    assert 'id="cancel"' in page and 'href="http://store.test/pay/return?order=42"' in page
    r = httpx.post(f"{t.cashier_url}/pay")
    assert r.status_code == 303 and r.headers["location"] == RETURN_URL
    paid, _ = client.query(no("RB200"))
    assert paid.status == "SUCCESS" and paid.amount == 1234 and paid.paid_at.endswith("+08:00")
    again = create(client, no("RB200"), 1234)  # a retried create of a paid payment says so
    assert again.status == "SUCCESS" and again.trade_no == t.trade_no
    page = httpx.get(t.cashier_url).text
    assert 'id="pay"' not in page and "已支付 Paid" in page
    # a script pays with JSON
    t3 = create(client, no("RB201"), 500)
    r = httpx.post(f"{t3.cashier_url}/pay", headers={"Accept": "application/json"})
    assert r.json()["status"] == "SUCCESS" and r.json()["return_url"] == RETURN_URL


def test_query_close_and_a_paid_close(pg, client, no):
    # made first, so that its second of life passes while the rest is tried
    create(client, no("RB303"), 700, expire_s=1)
    assert refused(client.query, no("RB300")).reason == "order_not_exist"
    assert refused(client.close_trade, no("RB300")).reason == "order_not_exist"
    create(client, no("RB301"), 800)
    closed, _ = client.close_trade(no("RB301"))
    assert closed.status == "CLOSED"
    assert client.close_trade(no("RB301"))[0].status == "CLOSED"  # closing twice is fine
    assert refused(create, client, no("RB301"), 800).reason == "order_closed"
    page = httpx.get(closed.cashier_url).text
    assert "This payment is closed" in page and 'id="pay"' not in page and 'id="back"' in page
    assert httpx.post(f"{closed.cashier_url}/pay").status_code == 409
    assert pg.pay(no("RB301"))["status"] == "CLOSED"
    # paid first: the close answers ORDER_PAID with the paid trade, signed
    create(client, no("RB302"), 900)
    pg.pay(no("RB302"))
    e = refused(client.close_trade, no("RB302"))
    assert e.reason == "order_paid"
    paid = as_trade(verify(e.answer, KEY))
    assert (paid.status, paid.amount) == ("SUCCESS", 900) and paid.paid_at and paid.trade_no
    # an unpaid payment past its expiry is closed
    wait(lambda: client.query(no("RB303"))[0].status == "CLOSED", 5, "RB303 closed at its expiry")


def test_refund_is_idempotent_and_never_more_than_was_charged(pg, client, no):
    rb, rf1, rf2 = no("RB400"), no("RF400-1"), no("RF400-2")
    create(client, rb, 1000)
    assert refused(client.refund, rb, rf1, 100, "not paid").reason == "gateway_refused"
    pg.pay(rb)
    r1, _ = client.refund(rb, rf1, 400, "a dish missing")
    assert (r1.status, r1.amount) == ("SUCCESS", 400) and r1.refund_id
    r1b, _ = client.refund(rb, rf1, 400, "a dish missing")
    assert r1b.refund_id == r1.refund_id
    e = refused(client.refund, rb, rf2, 700, "too much")
    assert e.reason == "gateway_refused" and "REFUND_EXCEEDS" in e.detail
    client.refund(rb, rf2, 600, "the rest")
    t, _ = client.query(rb)
    assert (t.status, t.refunded, t.amount) == ("REFUND", 1000, 1000)
    assert [r["out_refund_no"] for r in pg.trades()[rb]["refunds"]] == [rf1, rf2]
    lines = client.statement(t.paid_at[:10]).transactions
    assert [(ln.type, ln.amount, ln.out_refund_no) for ln in lines if ln.out_trade_no == rb] == [
        ("PAY", 1000, ""), ("REFUND", 400, rf1), ("REFUND", 600, rf2)]


# ------------------------------------------------------- notifications
def test_a_payment_is_notified_signed(pg, client, rx, no):
    rb = no("RB500")
    create(client, rb, 1500, rx)
    pg.pay(rb)
    body = wait(lambda: rx.of(rb), 5, "the notification")[0]
    f = parse_notification(body, KEY)
    assert (f["status"], f["amount"], f["mch_id"]) == ("SUCCESS", 1500, pg.mch_id) and "code" not in f
    assert f["trade_no"] == client.query(rb)[0].trade_no
    wait(lambda: pg.trades()[rb]["notifications"][0]["state"] == "delivered", 5, "delivered")


def test_a_notification_is_retried_until_acknowledged_then_given_up(pg, client, rx, no):
    acked, given_up = no("RB600"), no("RB601")
    rx.answers = [(500, b"oops"), REFUSE]
    create(client, acked, 600, rx)
    pg.pay(acked)
    wait(lambda: pg.trades()[acked]["notifications"][0]["state"] == "delivered", 5, "delivered")
    n = pg.trades()[acked]["notifications"][0]
    assert [a["http_status"] for a in n["attempts"]] == [500, 200, 200]
    assert [a["delivered"] for a in n["attempts"]] == [0, 0, 1] and len(rx.of(acked)) == 3
    rx.default = REFUSE
    create(client, given_up, 600, rx)
    pg.pay(given_up)
    wait(lambda: pg.trades()[given_up]["notifications"][0]["state"] == "given_up", 5, "given up")
    assert len(rx.of(given_up)) == 4 == pg.trades()[given_up]["notify_attempts"]  # the first and 3 retries


# --------------------------------------------------------------- faults
def test_slow_answers_within_the_clients_time(pg, client, no):
    create(client, no("RB700"), 100)
    pg.fault("slow", count=1, slow_s=0.4)
    t0 = time.monotonic()
    assert client.query(no("RB700"))[0].status == "NOTPAY"
    assert time.monotonic() - t0 >= 0.4
    assert httpx.get(f"{pg.url}/_dev/fault").json()["mode"] == "ok"


def test_timeout_does_the_work_and_a_retry_gets_the_same_trade(pg, no):
    rb = no("RB710")
    impatient = pg.client(timeout_s=0.5)
    try:
        pg.fault("timeout", count=1)
        assert refused(create, impatient, rb, 1000).reason == "gateway_timeout"
        made = pg.trades()[rb]
        t = create(impatient, rb, 1000)
        assert t.trade_no == made["trade_no"] and t.status == "NOTPAY"
        pg.fault("timeout", count=1)
        assert refused(impatient.close_trade, rb).reason == "gateway_timeout"
        assert pg.trades()[rb]["status"] == "CLOSED"  # the close was done
    finally:
        impatient.close()


def test_notify_lost_sends_nothing(pg, client, rx, no):
    lost, next_ = no("RB720"), no("RB721")
    create(client, lost, 100, rx)
    create(client, next_, 100, rx)
    pg.fault("notify_lost", count=1)
    pg.pay(lost)
    pg.pay(next_)  # the next payment is notified: by then the lost one would have been
    wait(lambda: rx.of(next_), 5, "the next payment's notification")
    assert rx.of(lost) == [] and pg.trades()[lost]["notifications"] == []
    assert pg.trades()[lost]["faults"] == ["notify_lost"]


def test_notify_repeat_delivers_three_times(pg, client, rx, no):
    rb = no("RB730")
    create(client, rb, 100, rx)
    pg.fault("notify_repeat", count=1)
    pg.pay(rb)
    wait(lambda: pg.trades()[rb]["notifications"][0]["state"] == "delivered", 5, "delivered")
    bodies = rx.of(rb)
    assert len(bodies) == 3 and all(parse_notification(b, KEY)["status"] == "SUCCESS" for b in bodies)


def test_notify_early_arrives_before_the_wallet_returns(tmp_path, rx):
    # a gateway of its own: its notifications a whole second after the payment
    with PaygateDev(tmp_path, key=KEY, notify_delay=1.0) as pg, closing(pg.client()) as c:
        late, early = create(c, "RB740", 100, rx), create(c, "RB741", 100, rx)
        assert httpx.post(f"{late.cashier_url}/pay").status_code == 303
        assert rx.of("RB740") == []  # normally the redirect comes first
        pg.fault("notify_early", count=1)
        assert httpx.post(f"{early.cashier_url}/pay").status_code == 303
        assert len(rx.of("RB741")) == 1  # received before the redirect was answered
        wait(lambda: rx.of("RB740"), 5, "the normal notification")


def test_success_after_close(pg, client, rx, no):
    rb = no("RB750")
    create(client, rb, 2000, rx)
    pg.fault("success_after_close", count=1)
    assert client.close_trade(rb)[0].status == "CLOSED"
    wait(lambda: client.query(rb)[0].status == "SUCCESS", 5, "paid after the close")
    f = parse_notification(wait(lambda: rx.of(rb), 5, "the notification")[0], KEY)
    assert (f["status"], f["amount"]) == ("SUCCESS", 2000)
    assert refused(client.close_trade, rb).reason == "order_paid"


def test_bad_signature_on_every_attempt(pg, client, rx, no):
    rb = no("RB760")
    rx.default = REFUSE  # the store refuses what does not check
    create(client, rb, 100, rx)
    pg.fault("bad_signature", count=1)
    pg.pay(rb)
    wait(lambda: pg.trades()[rb]["notifications"][0]["state"] == "given_up", 5, "given up")
    bodies = rx.of(rb)
    assert len(bodies) == 4
    for b in bodies:
        assert refused(parse_notification, b, KEY).reason == "bad_signature"


def test_amount_mismatch_charges_a_fen_less(pg, client, rx, no):
    rb = no("RB770")
    create(client, rb, 1000, rx)
    pg.fault("amount_mismatch", count=1)
    pg.pay(rb)
    assert parse_notification(wait(lambda: rx.of(rb), 5, "the notification")[0], KEY)["amount"] == 999
    t, _ = client.query(rb)
    assert (t.status, t.amount) == ("SUCCESS", 999)
    assert (pg.trades()[rb]["amount"], pg.trades()[rb]["charged"]) == (1000, 999)


def test_statement_extra_and_missing_lines_still_match_their_digest(pg, client, no):
    # the day's statement holds the other tests' payments too: compared as sets, ours in them
    for rb, amount in ((no("RB780"), 1000), (no("RB781"), 2000)):
        create(client, rb, amount)
        pg.pay(rb)
    day = client.query(no("RB781"))[0].paid_at[:10]
    ours = {(no("RB780"), 1000), (no("RB781"), 2000)}
    good = {(ln.out_trade_no, ln.amount) for ln in client.statement(day).transactions}
    assert ours <= good
    pg.fault("statement_extra", count=1)
    extra = {(ln.out_trade_no, ln.amount) for ln in client.statement(day).transactions}  # the digest checks
    assert len(extra - good) == 1 and good <= extra
    pg.fault("statement_missing", count=1)
    missing = {(ln.out_trade_no, ln.amount) for ln in client.statement(day).transactions}
    assert len(good - missing) == 1 and missing <= good
    assert {(ln.out_trade_no, ln.amount) for ln in client.statement(day).transactions} == good


def test_random_faults_for_a_soak(pg, no):
    rb = no("RB790")
    impatient = pg.client(timeout_s=0.5)
    try:
        create(impatient, rb, 100)
        before = pg.stats()
        pg.fault("random", count=4, rate=1.0, seed=7, slow_s=0.05)
        outcomes = []
        for _ in range(4):
            try:
                outcomes.append(impatient.query(rb)[0].status)
            except GatewayError as exc:
                outcomes.append(exc.reason)
        assert set(outcomes) <= {"NOTPAY", "gateway_timeout"}
        assert grew(pg, before, "faults.slow") + grew(pg, before, "faults.timeout") == 4
        assert httpx.get(f"{pg.url}/_dev/fault").json()["mode"] == "ok"
        assert impatient.query(rb)[0].status == "NOTPAY"
    finally:
        impatient.close()


# -------------------------------------------------------------- restart
def test_a_restart_keeps_trades_and_resumes_notifications(tmp_path, rx):
    rx.default = REFUSE
    # a gateway of its own, as it is stopped; retried every 0.1 s for 10 s, longer than a restart takes
    with PaygateDev(tmp_path, key=KEY, notify_delay=0.05, notify_retry=[0.1] * 100) as pg:
        with closing(pg.client()) as c:
            open_ = create(c, "RB800", 300, rx)
            create(c, "RB801", 400, rx)
        paid = pg.pay("RB801")
        wait(lambda: rx.of("RB801"), 5, "a first attempt")
        pg.stop()
        rx.default = ACK
        pg.start()
        with closing(pg.client()) as c:
            t = create(c, "RB800", 300)
            assert (t.status, t.trade_no, t.cashier_url) == ("NOTPAY", open_.trade_no, open_.cashier_url)
            assert c.query("RB801")[0].trade_no == paid["trade_no"]
        wait(lambda: pg.trades()["RB801"]["notifications"][0]["state"] == "delivered", 5, "delivered after restart")
