"""Phone payment's asynchronous parts at the store (restobox.sync.PayAgent):
the gateway's notifications come down from the chain's cloud and reach the
hub only when their signature checks; an enquiry finds what a lost or a bad
notification did not say; an expired payment is closed (and a payment that
lands after the close still reaches the hub); money due back is refunded
once, however often it is asked for; the page is told at once when the
gateway cannot be reached; notifications kept by the cloud while the store
could not fetch them all arrive, in order, once.

Real parts: mosquitto, ``restobox sync`` and ``restobox cloud-dev`` and
``restobox paygate-dev`` in their own processes, a store.db made by the
hub's own schema. The hub is not here: the test writes the pay_intent rows
the hub would, and reads pay/result and pay/status as the hub and the page
would (the monitor).

The tests that leave every process running share one stack (``stack``,
started once for the module): each uses merchant numbers of its own, starts
with the faults reset, counts the sync service's counters and cursor from
where they stood when it started, and takes its intents out of store.db when
it ends. A test that kills or stops one of the processes has a stack of its
own (``own_stack``)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
import pytest

from restobox import db, paygate
from restobox.contract import topics
from tests.conftest import broker_with_standard_devices
from tests.paygate_support import PaygateDev
from tests.support import Device, HubProcess, wait
from tests.test_sync import Cloud, sync_config

pytestmark = pytest.mark.integration

KEY = b"pay-agent-test-key-0123456789"
MCH = "m-store-1"
STORE = "store-1"  # sync_config's [store] id


def new_no() -> str:
    return paygate.merchant_no(str(uuid.uuid4()), 1)


def iso(t: float) -> str:
    from restobox.sync import iso as sync_iso

    return sync_iso(t)


def together(*calls) -> None:
    """Run ``calls`` side by side (each in a thread); re-raises the first failure once all have ended."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(c) for c in calls]
    for f in futures:
        f.result()


class Stack:
    """The cloud, the gateway, store.db and the sync service. ``begin()``
    and ``end()`` frame each test that uses it."""

    def __init__(self, broker, monitor, tmp_path: Path) -> None:
        self.broker = broker
        self.monitor = monitor
        self.tmp = tmp_path
        self.store_db = tmp_path / "store.db"
        db.open_store_db(self.store_db).close()  # the hub's schema, pay_intent included
        self.cloud = Cloud(tmp_path)
        self.gw = PaygateDev(tmp_path, key=KEY, mch_id=MCH, notify_delay=0.05)
        self.svc: HubProcess | None = None
        self.mine: set[str] = set()  # the merchant numbers of the test's intents
        self.base: dict = {}  # the sync service's health when the test began

    def start(self, **paygate_kw) -> "Stack":
        # the cloud and the gateway side by side; the sync service once both answer
        together(self.cloud.start, self.gw.start)
        self.config(**paygate_kw)
        self.svc = HubProcess(self.tmp / "sync.toml", self.tmp / "sync.log", service="sync", device="sync")
        self.svc.start(self.monitor)
        return self

    def config(self, **paygate_kw) -> Path:
        path = sync_config(self.tmp / "sync.toml", self.cloud, self.tmp, self.broker, menu_poll_s=0,
                           preorder_poll_s=0, health_interval_s=0.1)
        # quick enquiries and probes; the cloud holds a fetch 0.5 s, so the service stops that soon
        pg = {"timeout_s": 2, "query_first_s": 0.2, "query_max_s": 1.0, "notify_wait_s": 0.5, "probe_s": 0.2,
              **paygate_kw}
        with open(path, "a", encoding="utf-8") as f:
            f.write(f'\n[paygate]\nenabled = true\nurl = "{self.gw.url}"\nmch_id = "{MCH}"\n'
                    f'key_file = "{self.gw.key_file}"\n' + "".join(f"{k} = {v!r}\n" for k, v in pg.items()))
        return path

    def stop(self) -> None:
        """Every process stopped, side by side."""
        together(*(p.stop for p in (self.svc, self.gw, self.cloud) if p is not None))

    def begin(self) -> None:
        """A test begins: no fault at the gateway or the cloud; the counters
        and the cursor counted from the health published now."""
        self.gw.fault("ok")
        self.cloud.mode("ok")
        self.mine = set()
        self.base = self.health(lambda h: True)

    def end(self) -> None:
        """A test ends: whatever it left stopped runs again; its intents are
        taken out of store.db, so the next test finds none of them open and
        the service asks no more about them."""
        if self.cloud.proc is None:
            self.cloud.start()
        if self.gw.proc is None:
            self.gw.start()
        if self.svc.proc.poll() is not None:
            self.svc.start(self.monitor)
        con = sqlite3.connect(self.store_db)
        with con:
            con.executemany('DELETE FROM "pay_intent" WHERE "merchant_no" = ?', [(no,) for no in self.mine])
        con.close()

    # -- the gateway, as the page and the diner use it
    def create(self, no: str, amount: int = 3200) -> None:
        c = self.gw.client()
        try:
            c.create(no, amount, description="Sichuan Kitchen, table 7",
                     notify_url=f"{self.cloud.url}/v1/paygate/notify/{STORE}", return_url="http://127.0.0.1/back")
        finally:
            c.close()

    # -- store.db, as the hub writes it
    def intent(self, no: str, *, state: str = "open", amount: int = 3200, age_s: float = 0.0,
               expires_in_s: float = 300.0, refund_amount: int = 0, reason: str = "") -> None:
        self.mine.add(no)
        now = time.time()
        con = sqlite3.connect(self.store_db)
        with con:
            con.execute(
                'INSERT OR REPLACE INTO "pay_intent" ("merchant_no", "order_id", "business_date", "attempt", '
                '"amount", "state", "reason", "trade_no", "refund_amount", "created_at", "expires_at", '
                '"updated_at") VALUES (?, ?, ?, 1, ?, ?, ?, "", ?, ?, ?, ?)',
                (no, str(uuid.uuid4()), "2026-11-22", amount, state, reason, refund_amount, iso(now - age_s),
                 iso(now + expires_in_s), iso(now)))
        con.close()

    def set_state(self, no: str, state: str) -> None:
        con = sqlite3.connect(self.store_db)
        with con:
            con.execute('UPDATE "pay_intent" SET "state" = ? WHERE "merchant_no" = ?', (state, no))
        con.close()

    # -- what the hub and the page receive
    def results(self, no: str, source: str | None = None) -> list[dict]:
        return [r for r in self.monitor.all_json(topics.PAY_RESULT)
                if r["fields"].get("out_trade_no") == no and (source is None or r["source"] == source)]

    def result(self, no: str, source: str, pred=lambda f: True, timeout: float = 10.0) -> dict:
        r = self.monitor.wait_json(topics.PAY_RESULT, lambda r: r["source"] == source
                                   and r["fields"].get("out_trade_no") == no and pred(r["fields"]), timeout)
        paygate.verify(r["fields"], KEY)  # what reaches the hub is the gateway's, signed
        return r["fields"]

    def health(self, pred, timeout: float = 10.0) -> dict:
        """The first health the sync service publishes from now on that ``pred`` likes."""
        return self.fresh(topics.health("sync"), pred, timeout)

    def grown(self, h: dict) -> dict[str, int]:
        """The counters of health ``h``, less what they were when the test
        began (both from the same run of the service: they start at zero
        when it starts)."""
        was = self.base["counters"]
        return {k: v - was.get(k, 0) for k, v in h["counters"].items()}

    def counted(self, name: str, n: int = 1):
        """``health()``'s predicate: counter ``name`` grew by ``n`` or more since the test began."""
        return lambda h: self.grown(h).get(name, 0) >= n

    def cursor(self, h: dict) -> int:
        """How many notifications the service's cursor moved past since the test began."""
        return int(h["details"]["pay_notify_cursor"]) - int(self.base["details"]["pay_notify_cursor"])

    def status(self, pred, since: float, timeout: float = 10.0) -> dict:
        """The first PayStatus received since ``since`` (monotonic) that ``pred`` likes."""
        return self.fresh(topics.PAY_STATUS, pred, timeout, since)

    def fresh(self, topic: str, pred, timeout: float, since: float | None = None) -> dict:
        since = time.monotonic() if since is None else since
        m = self.monitor.wait_for(lambda m: m.topic == topic and m.received >= since
                                  and pred(msgspec.json.decode(m.payload)), timeout)
        return msgspec.json.decode(m.payload)

    def cloud_notifications(self) -> list[dict]:
        return httpx.get(f"{self.cloud.url}/_dev/paygate", timeout=5).json()


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory, standard_devices_dir):
    """One broker, monitor and stack for the module's tests that leave every process running."""
    work = tmp_path_factory.mktemp("pay-agent")
    b = broker_with_standard_devices(work / "broker", standard_devices_dir).start()
    monitor = s = None
    try:
        monitor = Device(b, "monitor-1", ("restobox/v1/#",), role="monitor")
        s = Stack(b, monitor, work)
        yield s.start()
    finally:
        if s is not None:
            s.stop()
        if monitor is not None:
            monitor.close()
        b.stop()


@pytest.fixture
def stack(shared_stack):
    """The shared stack, framed for this test (Stack.begin, Stack.end)."""
    shared_stack.begin()
    yield shared_stack
    shared_stack.end()


@pytest.fixture
def own_stack(broker, monitor, tmp_path):
    """A stack of this test's own, on its own broker: for a test that kills or stops one of its processes."""
    s = Stack(broker, monitor, tmp_path)
    try:
        s.start().begin()
        yield s
    finally:
        s.stop()


def test_notifications_reach_the_hub_verified_and_an_enquiry_finds_what_they_did_not_say(stack):
    s = stack
    # a payment's notification, posted by the gateway to the cloud, reaches the hub as it was signed
    plain = new_no()
    s.create(plain)
    s.gw.pay(plain)
    assert s.result(plain, "notify", lambda f: f["status"] == "SUCCESS")["amount"] == 3200

    # one the gateway delivers three times is passed on three times (the hub counts the payment once)
    repeated = new_no()
    s.create(repeated)
    s.gw.fault("notify_repeat", count=1)
    s.gw.pay(repeated)
    wait(lambda: len(s.results(repeated, "notify")) >= 3, 10, "three copies of the repeated notification")

    # a notification whose signature does not check stops at the store; the enquiry says it is paid
    forged = new_no()
    s.create(forged)
    s.intent(forged)
    s.gw.fault("bad_signature", count=1)
    s.gw.pay(forged)
    s.result(forged, "query", lambda f: f["status"] == "SUCCESS")
    h = s.health(lambda h: s.counted("pay.bad_signature")(h) and s.counted("pay.bad_notifications")(h))
    assert any(forged in n["body"] for n in s.cloud_notifications())  # it did come
    assert s.results(forged, "notify") == []

    # a lost notification: the enquiry finds the payment
    lost = new_no()
    s.create(lost)
    s.intent(lost)
    s.gw.fault("notify_lost", count=1)
    s.gw.pay(lost)
    s.result(lost, "query", lambda f: f["status"] == "SUCCESS")
    assert not any(lost in n["body"] for n in s.cloud_notifications())

    h = s.health(lambda h: h["details"].get("pay_open_intents") == 2 and h["details"]["pay_gateway"] == "available")
    c = s.grown(h)
    assert c["pay.notifications"] == 4 and c["pay.bad_notifications"] == 1 and c["pay.queries"] >= 2, c
    assert s.cursor(h) == 5  # 1 + 3 repeats + the forged one
    assert s.svc.proc.poll() is None


def test_an_expired_payment_is_closed_and_one_paid_after_its_close_still_reaches_the_hub(stack):
    s = stack
    unpaid = new_no()
    s.create(unpaid)
    s.intent(unpaid, age_s=400, expires_in_s=-100)
    assert s.result(unpaid, "close")["status"] == "CLOSED"
    assert s.gw.trades()[unpaid]["status"] == "CLOSED"
    s.set_state(unpaid, "closed")  # what the hub does with it: then nobody asks again
    s.health(lambda h: h["details"].get("pay_open_intents") == 0)

    # the diner's payment was in flight: the gateway closes it, then takes the money
    late = new_no()
    s.create(late)
    s.gw.fault("success_after_close", count=1)
    s.intent(late, age_s=400, expires_in_s=-100)
    # and a payment never made at the gateway (the page did not get to create it), expired at
    # the same time (its close is refused before any fault could be taken)
    never = new_no()
    s.intent(never, age_s=400, expires_in_s=-100)
    assert s.result(late, "close")["status"] == "CLOSED"
    assert s.result(late, "notify")["status"] == "SUCCESS"
    # and while the hub's row stays open, closing again brings the paid trade (ORDER_PAID), signed
    assert s.result(late, "query", lambda f: f.get("code") == "ORDER_PAID")["status"] == "SUCCESS"

    # the one never made is closed for the hub
    assert s.result(never, "close")["code"] == "ORDER_NOT_EXIST"
    assert never not in s.gw.trades()
    s.health(s.counted("pay.order_not_exist"))


def test_money_due_back_is_refunded_once_though_the_sync_service_is_killed_waiting_for_the_answer(own_stack):
    s = own_stack
    no = new_no()
    s.create(no, 4500)
    s.gw.pay(no)
    s.result(no, "notify")
    s.gw.fault("timeout", count=1, calls=["refund"])  # the gateway refunds, then never answers
    s.intent(no, state="refund_due", amount=4500, refund_amount=4500, reason="order_voided")
    wait(lambda: s.gw.trades()[no]["refunds"], 10, "the refund made at the gateway")
    s.svc.kill()
    s.svc.start(s.monitor)  # the row still says refund_due: asked again, with the same refund number
    r = s.result(no, "refund", timeout=15)
    assert r["out_refund_no"] == no + "R" and r["amount"] == 4500 and r["status"] == "SUCCESS"
    t = s.gw.trades()[no]
    assert len(t["refunds"]) == 1 and t["refunded"] == 4500 and t["status"] == "REFUND"
    s.set_state(no, "refunded")
    s.health(lambda h: h["details"].get("pay_refunds_due") == 0)
    assert len(s.gw.trades()[no]["refunds"]) == 1


def test_the_page_is_told_at_once_when_the_gateway_cannot_be_reached_and_when_it_is_back(own_stack):
    s = own_stack
    s.monitor.wait_json(topics.PAY_STATUS, lambda st: st["available"])
    t = time.monotonic()
    s.gw.stop()
    st = s.status(lambda st: not st["available"], t, 5)
    assert st["reason"] == "gateway_unreachable" and time.monotonic() - t < 3
    s.health(lambda h: h["details"]["pay_gateway"] == "gateway_unreachable" and s.counted("pay.gateway_unreachable")(h))
    t = time.monotonic()
    s.gw.start()
    s.status(lambda st: st["available"], t, 5)
    # retained: a page that connects now learns it at once
    s.broker.add_device("monitor-2", "monitor")
    late = Device(s.broker, "monitor-2", (topics.PAY_STATUS,), role="monitor")
    try:
        assert late.wait_json(topics.PAY_STATUS)["available"] is True
    finally:
        late.close()


def test_notifications_kept_while_the_store_could_not_fetch_them_all_arrive_in_order_once(own_stack):
    s = own_stack
    first = new_no()
    s.create(first)
    s.gw.pay(first)
    s.result(first, "notify")
    s.cloud.mode("fail")  # the store's fetches fail; the gateway's posts are still kept
    nos = [new_no() for _ in range(3)]
    for no in nos:
        s.create(no)
        s.gw.pay(no)
    wait(lambda: len(s.cloud_notifications()) == 4, 10, "the cloud keeping the notifications")
    s.health(s.counted("pay.cloud_http_error"))
    s.cloud.stop()  # and the cloud goes away altogether; it keeps what it stored
    s.health(lambda h: h["details"]["pay_notify_error"] in ("cloud_unreachable", "cloud_closed"))
    s.cloud.start()
    for no in nos:
        s.result(no, "notify")
    h = s.health(lambda h: h["details"]["pay_notify_cursor"] == "4" and h["details"]["pay_notify_error"] is None)
    got = [r["fields"]["out_trade_no"] for r in s.monitor.all_json(topics.PAY_RESULT) if r["source"] == "notify"]
    kept = [msgspec.json.decode(n["body"])["out_trade_no"]
            for n in sorted(s.cloud_notifications(), key=lambda n: n["seq"])]
    assert got == kept and sorted(got) == sorted([first, *nos])  # each once, in the cloud's order
    assert h["counters"]["pay.notifications"] == 4


def test_a_store_database_from_before_phone_payment_has_nothing_to_ask_about(tmp_path):
    from restobox import config
    from restobox.sync import PayAgent

    con = sqlite3.connect(tmp_path / "store.db")  # no pay_intent table (store schema before v3)
    con.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY)")
    con.close()
    (tmp_path / "paygate.key").write_bytes(KEY)
    cfg = config.parse(f"""
[device]
id = "sync"
role = "sync"
[store]
id = "{STORE}"
[sync]
database = "{tmp_path / 'sync.db'}"
store_database = "{tmp_path / 'store.db'}"
[paygate]
enabled = true
key_file = "{tmp_path / 'paygate.key'}"
""")
    sync_db = db.open_sync_db(cfg.sync.database)
    agent = PayAgent(cfg, bus=None)
    try:
        assert agent.intents() == []
        assert agent.details()["pay_open_intents"] == 0 and agent.cursor == "0"
    finally:
        agent.close()
        sync_db.close()
