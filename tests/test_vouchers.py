"""Group-buy vouchers (团购券), against real parts: ``restobox voucher-dev``
(the platform, in its own process, on a free port, its records in SQLite),
the real mosquitto with the project's ACLs, a real hub process (the ledger),
the real sync service and the counter's real controller.

- the client: verify and redeem, a redemption idempotent by its request id
  (the same id twice: one redemption at the platform; another id:
  voucher_redeemed), every failure a reason code;
- the sync service's agent over the broker answers a counter on its own
  reply topic (never a response topic the request chose), a request that
  does not decode too; the platform down is voucher_unreachable with its
  sentence; a redemption whose answer never came, asked again with the same
  request id, is the one redemption;
- the hub applies a voucher's code to one order once (voucher_used), and a
  refund gives it back as the voucher;
- the counter: check, confirm, redeem, the rest in cash; the platform down
  is said and another tender taken; a redemption whose answer was lost and
  a counter restarted is the same redemption when the voucher is scanned
  again;
- the counter's view model alone: the flow, step by step.

One platform serves the module's tests (started once: a process per test
cost more than the tests), its fault mode reset as each test starts; each
test redeems vouchers of its own (``platform.fresh()``), so the demo ¥50
voucher (CODE) is only ever checked, never redeemed, here. The hub's and
the counter's tests share one store on a broker of its own (the hub, the
sync service and its dev cloud, started once): each test has a kiosk of its
own, its own voucher codes (the hub's ledger refuses a code twice), a
counter of its own (counter-1 or counter-2, each opening a shift once) and
the sync service's counters read as they grew during the test. The agent's
tests run it in this process on a broker of their own each (the store's
sync service is device ``sync`` too).
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from pathlib import Path

import httpx
import msgspec
import pytest

from restobox import contract, db
from restobox.brokerconf import terminate
from restobox.bus import Bus
from restobox.contract import REASONS, Tender, TillRequest, VoucherReply, VoucherRequest, Words, topics
from restobox.vouchers import VoucherAgent, VoucherClient, VoucherError
from tests.conftest import broker_with_standard_devices
from tests.support import KUNG_PAO, MILK_TEA, Device, Kiosk, ledger_rows, new_order, wait
from tests.test_counter_ui import TillHub, start_till_hub
from tests.test_pay_agent import together

REPO = Path(__file__).resolve().parent.parent
KEY = b"voucher-test-key"
APP = "store-app-1"
CODE = "880000000002"  # voucher-dev's demo ¥50 voucher: checked, never redeemed, in this module
EXPIRED = "880000000009"


def new_code() -> str:
    """A voucher code of this test's own: 12 digits, as the platform's."""
    return f"66{uuid.uuid4().int % 10**10:010d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VoucherDev:
    """``restobox voucher-dev`` in its own process, always stopped. Its
    _dev routes are asked through one HTTP client (a client made per call
    cost 45 ms: its TLS context)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.key_file = workdir / "voucher.key"
        self.log = workdir / "voucher-dev.log"
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=5)
        weakref.finalize(self, self.http.close)

    def start(self) -> "VoucherDev":
        self.key_file.write_bytes(KEY + b"\n")
        env = {k: v for k, v in os.environ.items() if k != "RESTOBOX_VOUCHER_KEY"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "restobox.cli", "voucher-dev", "--port", str(self.port), "--db",
                 str(self.workdir / "voucher-dev.db"), "--app-id", APP, "--key-file", str(self.key_file)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        weakref.finalize(self, terminate, self.proc)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voucher-dev exited:\n{self.log.read_text()[-2000:]}")
            try:
                return self.http.get("/_dev/stats", timeout=1).status_code == 200
            except httpx.TransportError:
                return False
        wait(up, 15, "voucher-dev answering")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 5)
            self.proc = None
        self.http.close()

    def client(self, timeout_s: float = 5.0, key: bytes = KEY) -> VoucherClient:
        return VoucherClient(self.url, APP, key, timeout_s)

    def fault(self, mode: str, count: int = 0) -> None:
        self.http.post("/_dev/fault", json={"mode": mode, "count": count}).raise_for_status()

    def add(self, code: str, value_fen: int, title_zh: str = "测试券", title_en: str = "Test voucher",
            expires: str = "2099-12-31") -> None:
        self.http.post("/_dev/vouchers", json=[{
            "code": code, "title_zh": title_zh, "title_en": title_en, "value_fen": value_fen,
            "expires": expires}]).raise_for_status()

    def vouchers(self) -> dict[str, dict]:
        return {v["code"]: v for v in self.http.get("/_dev/vouchers").json()}

    def redemptions(self, code: str) -> list[dict]:
        return self.vouchers()[code]["redemptions"]

    def fresh(self, value_fen: int = 5000, title_zh: str = "50元代金券", title_en: str = "¥50 voucher") -> str:
        """A new voucher, valid (by default one like the demo ¥50 voucher); its code."""
        code = new_code()
        self.add(code, value_fen, title_zh, title_en)
        return code


@pytest.fixture(scope="module")
def shared_platform(tmp_path_factory):
    """The module's platform."""
    p = VoucherDev(tmp_path_factory.mktemp("voucher-dev")).start()
    yield p
    p.stop()


@pytest.fixture
def platform(shared_platform):
    """The module's platform, its fault mode reset for this test."""
    shared_platform.fault("ok")
    return shared_platform


def rid() -> str:
    return str(uuid.uuid4())


# ================================================================ the client


@pytest.mark.integration
def test_the_client_verifies_and_redeems_once_per_request_id(platform):
    c = platform.client()
    try:
        v = c.verify(CODE)
        assert (v.status, v.value_fen, v.title_zh, v.title_en) == ("valid", 5000, "50元代金券", "¥50 voucher")
        assert c.verify("12345678").status == "unknown"
        assert c.verify(EXPIRED).status == "expired"
        code = platform.fresh()
        assert c.verify(code).status == "valid"
        first = rid()
        r1 = c.redeem(code, first, "store-1", "order-a")
        r2 = c.redeem(code, first, "store-1", "order-a")  # the answer lost: asked again
        assert r1 == r2 and r1.value_fen == 5000 and r1.redemption_id
        with pytest.raises(VoucherError) as e:
            c.redeem(code, rid(), "store-1", "order-b")
        assert e.value.reason == "voucher_redeemed" and e.value.words == REASONS["voucher_redeemed"]
        assert c.verify(code).status == "redeemed"
        [red] = platform.redemptions(code)
        assert (red["redemption_id"], red["request_id"], red["order_ref"]) == (r1.redemption_id, first, "order-a")
        for code, reason in ((EXPIRED, "voucher_expired"), ("12345678", "voucher_unknown")):
            with pytest.raises(VoucherError) as e:
                c.redeem(code, rid(), "store-1", "order-c")
            assert e.value.reason == reason
    finally:
        c.close()


class _NotThePlatform(http.server.BaseHTTPRequestHandler):
    """Answers 200 with a page that is not the API's (a captive portal)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b"<html>Welcome to the hotel wifi</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.integration
def test_every_failure_of_the_client_has_its_reason(platform):
    def reason(client, code=CODE) -> str:
        try:
            with pytest.raises(VoucherError) as e:
                client.verify(code)
            return e.value.reason
        finally:
            client.close()

    assert reason(platform.client(key=b"not-the-key")) == "voucher_refused"  # the platform refuses the sign
    assert reason(VoucherClient(f"http://127.0.0.1:{free_port()}", APP, KEY, 2)) == "voucher_unreachable"
    platform.fault("down", count=1)
    assert reason(platform.client()) == "voucher_unreachable"  # HTTP 503
    platform.fault("timeout", count=1)
    assert reason(platform.client(timeout_s=0.3)) == "voucher_timeout"
    portal = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotThePlatform)
    # polled every 0.05 s (not 0.5 s): shutdown() answers that soon
    t = threading.Thread(target=portal.serve_forever, args=(0.05,), daemon=True)
    t.start()
    try:
        assert reason(VoucherClient(f"http://127.0.0.1:{portal.server_address[1]}", APP, KEY, 2)) == \
            "voucher_bad_answer"
    finally:
        portal.shutdown()
        portal.server_close()
        t.join(5)
    assert platform.client().verify(CODE).status == "valid"  # the faults are over


# ============================================== the sync service's agent


class Counter(Device):
    """A counter asking about vouchers on the real broker (role counter)."""

    def __init__(self, broker, name: str = "counter-1") -> None:
        super().__init__(broker, name, (topics.voucher_reply(name),), role="counter")

    def ask_raw(self, payload: bytes, *, response_topic: str | None = None, timeout: float = 10.0) -> dict:
        corr = uuid.uuid4().bytes
        self.publish(topics.voucher_request(self.name), payload, correlation=corr,
                     response_topic=response_topic or topics.voucher_reply(self.name))
        m = self.wait_for(lambda m: m.correlation == corr, timeout)
        assert m.topic == topics.voucher_reply(self.name)
        return msgspec.json.decode(m.payload)

    def ask(self, kind: str, code: str, request_id: str | None = None, **kw) -> dict:
        return self.ask_raw(contract.encode(VoucherRequest(request_id=request_id or rid(), kind=kind, code=code,
                                                           order_id=str(uuid.uuid4()))), **kw)


@pytest.fixture
def agent(broker, platform):
    """The sync service's VoucherAgent on the broker as device ``sync``, its
    platform calls waiting at most 0.5 s."""
    cred = broker.creds["sync"]
    bus = Bus(device="sync", role="sync", host=broker.host, port=broker.port, username=cred.username,
              password=cred.password, keepalive=5, reconnect_max_s=1)
    a = VoucherAgent(platform.client(timeout_s=0.5), bus, store_id="store-1").start()
    bus.start()
    assert bus.wait_connected(10)
    yield a
    a.stop()
    bus.stop()


@pytest.mark.integration
def test_the_agent_answers_each_counter_on_its_own_reply_topic(broker, agent, platform):
    one, two = Counter(broker, "counter-1"), Counter(broker, "counter-2")
    try:
        # counter-2 listens on counter-1's reply topic too: the broker does not let it read it
        two.bus.subscribe(topics.voucher_reply("counter-1"), two._got)
        code = platform.fresh()
        checked = one.ask("verify", code)
        assert (checked["ok"], checked["kind"], checked["status"], checked["value_fen"]) == (True, "verify", "valid",
                                                                                            5000)
        assert checked["title"] == {"zh": "50元代金券", "en": "¥50 voucher"}
        req = rid()
        # a response topic naming another counter is not where the answer goes
        done = one.ask("redeem", code, req, response_topic=topics.voucher_reply("counter-2"))
        assert done["ok"] and done["redemption_id"] and done["value_fen"] == 5000
        again = one.ask("redeem", code, req)
        assert again["redemption_id"] == done["redemption_id"]
        taken = two.ask("redeem", code)  # another request: the voucher is used
        assert (taken["ok"], taken["reason"]) == (False, "voucher_redeemed")
        assert taken["message"] == msgspec.to_builtins(REASONS["voucher_redeemed"])
        # after counter-2's own answer (the same publisher, in order), nothing of counter-1's came
        assert not two.by_topic.get(topics.voucher_reply("counter-1"))
        assert len(platform.redemptions(code)) == 1
        expired = one.ask("verify", EXPIRED)
        assert (expired["ok"], expired["reason"], expired["status"]) == (False, "voucher_expired", "expired")
        bad = one.ask_raw(b'{"v":1,"request_id":"' + req.encode() + b'","kind":"verify","code":"x"}')
        assert (bad["ok"], bad["reason"], bad["request_id"], bad["kind"]) == (False, "bad_schema", req, "")
        assert one.ask_raw(b"{nope")["reason"] == "bad_json"
        c = agent.counters
        assert (c["vouchers.verify"], c["vouchers.redeem"], c["vouchers.redeemed"]) == (2, 3, 2)
        assert (c["vouchers.voucher_redeemed"], c["vouchers.voucher_expired"], c["vouchers.bad_schema"],
                c["vouchers.bad_json"]) == (1, 1, 1, 1)
    finally:
        one.close()
        two.close()


@pytest.mark.integration
def test_platform_down_then_a_lost_answer_asked_again_is_one_redemption(broker, agent, platform):
    one = Counter(broker)
    code = platform.fresh()
    try:
        platform.fault("down")
        down = one.ask("verify", code)
        assert (down["ok"], down["reason"]) == (False, "voucher_unreachable")
        assert down["message"]["zh"] == "团购平台暂时连不上，这张券现在无法核销，请换一种付款方式。"
        assert down["message"]["en"] == REASONS["voucher_unreachable"].en
        platform.fault("timeout", count=1)  # redeemed at the platform; the answer never comes
        req = rid()
        lost = one.ask("redeem", code, req)
        assert (lost["ok"], lost["reason"]) == (False, "voucher_timeout")
        [made] = platform.redemptions(code)
        again = one.ask("redeem", code, req)  # the counter's retry: the same request id
        assert again["ok"] and again["redemption_id"] == made["redemption_id"]
        assert len(platform.redemptions(code)) == 1
        assert agent.counters["vouchers.voucher_unreachable"] == 1 and agent.counters["vouchers.voucher_timeout"] == 1
    finally:
        one.close()


# ================================================== the module's store


def sync_service(broker, platform, workdir: Path):
    """The real sync service (`restobox sync`) with [vouchers] on, a dev
    cloud for its outbox; returns (service, cloud), neither started. Its
    health every 0.1 s (a test reads its counters from the next one), its
    platform calls waiting at most 0.5 s."""
    from tests.support import HubProcess
    from tests.test_sync import Cloud, sync_config

    cloud = Cloud(workdir)
    cfg = sync_config(workdir / "sync.toml", cloud, workdir, broker, menu_poll_s=0, preorder_poll_s=0,
                      health_interval_s=0.1)
    cfg.write_text(cfg.read_text(encoding="utf-8") + f"""
[vouchers]
enabled = true
url = "{platform.url}"
app_id = "{APP}"
key_file = "{platform.key_file}"
timeout_s = 0.5
""", encoding="utf-8")
    return HubProcess(cfg, workdir / "sync.log", service="sync", device="sync"), cloud


class Store:
    """The module's store on a broker of its own: a hub with a manager's PIN
    (its ledger), the sync service answering vouchers and its dev cloud, a
    monitor. ``begin()`` and ``end()`` frame each test that uses it."""

    def __init__(self, broker, monitor: Device, workdir: Path) -> None:
        self.broker = broker
        self.monitor = monitor
        self.workdir = workdir
        self.hub: TillHub | None = None
        self.svc, self.cloud = None, None
        self.kiosk: Kiosk | None = None
        self.base: dict = {}  # the sync service's health when the test began

    def start(self, platform: VoucherDev) -> "Store":
        self.svc, self.cloud = sync_service(self.broker, platform, self.workdir)
        # store.db made first (the hub's schema): the sync service opens it as it starts, so the
        # hub, the cloud and the sync service can start side by side
        db.open_store_db(self.workdir / "store.db").close()

        def hub() -> None:
            self.hub = start_till_hub(self.broker, self.monitor, self.workdir)
        together(hub, self.cloud.start, lambda: self.svc.start(self.monitor))
        return self

    def stop(self, *also) -> None:
        """Every process stopped (and ``also`` called), side by side."""
        together(*(p.stop for p in (self.svc, self.cloud, self.hub and self.hub.process) if p is not None), *also)

    def begin(self) -> None:
        """A test begins: a kiosk of its own; the sync service's counters
        counted from the health it publishes now."""
        self.base = self.health(lambda h: True)
        self.kiosk = Kiosk(self.broker)

    def end(self) -> None:
        if self.kiosk is not None:
            self.kiosk.close()
            self.kiosk = None

    def health(self, pred, timeout: float = 10.0) -> dict:
        """The first health the sync service publishes from now on that ``pred`` likes."""
        since = time.monotonic()
        m = self.monitor.wait_for(lambda m: m.topic == topics.health("sync") and m.received >= since
                                  and pred(msgspec.json.decode(m.payload)), timeout)
        return msgspec.json.decode(m.payload)

    def grown(self, h: dict) -> dict[str, int]:
        """The counters of health ``h``, less what they were when the test
        began (both from the same run of the service)."""
        was = self.base["counters"]
        return {k: v - was.get(k, 0) for k, v in h["counters"].items()}


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory, standard_devices_dir, shared_platform):
    """One broker, monitor, hub and sync service for the module's tests of the hub and the counter."""
    work = tmp_path_factory.mktemp("voucher-store")
    b = broker_with_standard_devices(work / "broker", standard_devices_dir).start()
    monitor = s = None
    try:
        monitor = Device(b, "monitor-1", ("restobox/v1/#",), role="monitor")
        s = Store(b, monitor, work)
        yield s.start(shared_platform)
    finally:
        # the platform too (the module's tests are over): its stop waits 1 s for the answers a
        # timeout fault holds back, as long as the others take; shared_platform's then does nothing
        if s is not None:
            s.stop(shared_platform.stop)
        if monitor is not None:
            monitor.close()
        b.stop()


@pytest.fixture
def store(shared_store, platform):
    """The module's store, framed for this test (Store.begin, Store.end), the platform's faults reset."""
    shared_store.begin()
    try:
        yield shared_store
    finally:
        shared_store.end()


# ========================================================== the hub's ledger


class TillCounter(Device):
    def __init__(self, broker, name: str) -> None:
        super().__init__(broker, name, (topics.till_reply(name),), role="counter")

    def ask(self, req: TillRequest) -> dict:
        corr = uuid.uuid4().bytes
        self.publish(topics.till_request(self.name), contract.encode(req), correlation=corr,
                     response_topic=topics.till_reply(self.name))
        return msgspec.json.decode(self.wait_for(lambda m: m.correlation == corr).payload)

    def pay(self, order_id: str, *tenders: Tender) -> dict:
        return self.ask(TillRequest(request_id=rid(), kind="pay", order_id=order_id, tenders=tenders, staff="li"))


def voucher(amount: int, code: str, redemption: str = "VR0001") -> Tender:
    return Tender(method="voucher", amount=amount, reference=code, intent_id=redemption)


@pytest.mark.integration
def test_the_hub_applies_a_voucher_to_one_order_once_and_a_refund_gives_it_back(store):
    from tests.test_counter_ui import PIN

    code = new_code()  # the hub asks no platform: a code of this test's own
    kiosk, one, two = store.kiosk, TillCounter(store.broker, "counter-1"), TillCounter(store.broker, "counter-2")
    try:
        a, b = new_order(KUNG_PAO), new_order(MILK_TEA)
        total_a, total_b = kiosk.submit(a).total, kiosk.submit(b).total
        paid = one.pay(a.order_id, voucher(1000, code), Tender(method="cash", amount=total_a - 1000))
        assert paid["ok"] and paid["payment"] == "paid"
        assert ledger_rows(store.hub.database, a.order_id, "method", "amount", "reference") == \
            [("voucher", 1000, code), ("cash", total_a - 1000, "")]
        used = two.pay(b.order_id, voucher(1000, code), Tender(method="cash", amount=total_b - 1000))
        assert (used["ok"], used["reason"], used["due"]) == (False, "voucher_used", total_b)
        assert used["message"] == msgspec.to_builtins(REASONS["voucher_used"])
        twice = two.pay(b.order_id, voucher(100, code), voucher(total_b - 100, code))
        assert twice["reason"] == "voucher_used"
        unredeemed = two.pay(b.order_id, Tender(method="voucher", amount=total_b, reference="880000000003"))
        assert unredeemed["reason"] == "bad_schema"
        assert ledger_rows(store.hub.database, b.order_id, "method") == []
        # the whole order refunded: the voucher goes back as the voucher, the cash as cash
        back = one.ask(TillRequest(request_id=rid(), kind="refund", order_id=a.order_id, reason="cold",
                                   manager_pin=PIN, staff="li"))
        assert back["ok"], back
        assert sorted((e["method"], e["amount"], e["reference"]) for e in back["entries"]) == \
            [("cash", total_a - 1000, ""), ("voucher", 1000, code)]
        # no longer paying an order: the code may pay again in this store
        again = two.pay(b.order_id, voucher(total_b, code, redemption="VR0002"))
        assert again["ok"] and again["payment"] == "paid"
    finally:
        for d in (one, two):
            d.close()


# ================================================ the counter, end to end


def running_counter(broker, workdir: Path, device: str):
    """The counter's real controller as ``device``, its counter.db in ``workdir``."""
    from tests.test_counter_faults import RunningCounter
    from tests.test_counter_ui import counter_config

    class VoucherCounter(RunningCounter):
        def __init__(self) -> None:
            from counter.controller import CounterController
            from restobox import config
            from tests.support import UIThread

            self.cfg_path = counter_config(workdir / f"{device}.toml", broker, device, reply_timeout_s=2.0,
                                           extra="[vouchers]\nenabled = true\ntimeout_s = 1\n")
            self.ui = UIThread(stop_on_error=False)
            self.ctl = CounterController(config.load(self.cfg_path), post=self.ui.post, changed=lambda: None)
            self.ui.tick = self.ctl.tick
            self.ctl.start()
            self.vm = self.ctl.vm

        def scan(self, code: str) -> None:
            """The keyboard-wedge scanner: the code's keys, then Enter."""
            def typed() -> None:
                for ch in code:
                    self.ctl.key(ch)
                self.ctl.enter()
            self.get(typed)

        def stage(self):
            return self.get(lambda: self.vm.voucher.stage if self.vm.voucher else None)

    return VoucherCounter()


@pytest.mark.integration
def test_the_counter_checks_redeems_and_pays_the_rest_and_says_when_the_platform_is_down(
        store, platform, tmp_path):
    ten = platform.fresh(1000, "十元代金券", "¥10 voucher")
    fifty = platform.fresh()
    c = running_counter(store.broker, tmp_path, "counter-1")  # the hub's only shift of counter-1
    try:
        c.open_shift()
        order = new_order(KUNG_PAO)
        total = store.kiosk.submit(order).total
        c.known(order.order_id)
        c.tap(f"order:{order.order_id}", "voucher")
        c.scan(ten)
        wait(lambda: c.stage() == "confirm", 10, "the voucher checked")
        assert "十元代金券" in c.get(lambda: c.vm.view().sub)
        assert platform.redemptions(ten) == []  # checked, not used
        c.tap("voucher_redeem")
        wait(lambda: c.get(lambda: [t.method for t in c.vm.tenders]) == ["voucher"], 10, "the voucher redeemed")
        assert c.get(lambda: c.vm.due) == total - 1000
        c.tap("cash:exact")
        wait(lambda: c.get(lambda: c.vm.result_state) == "recorded", 10, "the hub's answer")
        [red] = platform.redemptions(ten)
        assert red["order_ref"] == order.order_id
        assert ledger_rows(store.hub.database, order.order_id, "method", "amount", "reference") == \
            [("voucher", 1000, ten), ("cash", total - 1000, "")]
        wait(lambda: c.ctl.store.vouchers_kept() == 0, 10, "the voucher's request let go once recorded")
        c.tap("done")

        # the same voucher on the next order: used
        second = new_order(MILK_TEA)
        store.kiosk.submit(second)
        c.known(second.order_id)
        c.tap(f"order:{second.order_id}", "voucher")
        c.scan(ten)
        wait(lambda: c.get(lambda: c.vm.voucher is None and c.vm.notice), 10, "the platform's answer")
        assert c.get(lambda: c.vm.notice) == REASONS["voucher_redeemed"].zh

        # the platform is down: the sentence, and the cashier takes cash
        platform.fault("down")
        c.tap("voucher")
        c.scan(fifty)
        wait(lambda: c.get(lambda: c.vm.voucher is None and c.vm.notice), 10, "the platform's answer")
        assert c.get(lambda: c.vm.notice) == REASONS["voucher_unreachable"].zh
        c.tap("cash:exact")
        wait(lambda: c.get(lambda: c.vm.result_state) == "recorded", 10, "paid in cash")
        assert ledger_rows(store.hub.database, second.order_id, "method") == [("cash",)]
        assert platform.redemptions(fifty) == []
        # the sync service counts what it was asked and what was refused, in its health
        want = {"vouchers.verify": 3, "vouchers.redeem": 1, "vouchers.redeemed": 1, "vouchers.voucher_redeemed": 1,
                "vouchers.voucher_unreachable": 1}
        store.health(lambda h: all(store.grown(h).get(k) == n for k, n in want.items()))
    finally:
        c.close()


@pytest.mark.integration
def test_a_redemption_whose_answer_was_lost_is_the_same_after_a_counter_restart(store, platform, tmp_path):
    code = platform.fresh()
    c = running_counter(store.broker, tmp_path, "counter-2")  # the hub's only shift of counter-2
    try:
        c.open_shift()
        order = new_order(KUNG_PAO, MILK_TEA)
        total = store.kiosk.submit(order).total
        assert total > 5000
        c.known(order.order_id)
        c.tap(f"order:{order.order_id}", "voucher")
        c.scan(code)
        wait(lambda: c.stage() == "confirm", 10, "the voucher checked")
        platform.fault("timeout", count=1)  # redeemed, and the answer never comes
        c.tap("voucher_redeem")
        wait(lambda: c.get(lambda: c.vm.voucher is None and c.vm.notice), 10, "the sync service's answer")
        assert c.get(lambda: c.vm.notice) == REASONS["voucher_timeout"].zh
        assert c.get(lambda: c.vm.tenders) == []
        assert len(platform.redemptions(code)) == 1
        kept = c.ctl.store.voucher_kept_request(code)
        assert kept == platform.redemptions(code)[0]["request_id"]  # committed before it was sent
    finally:
        c.close()
    c = running_counter(store.broker, tmp_path, "counter-2")  # the counter restarted: the same counter.db
    try:
        c.open_shift()
        c.known(order.order_id)
        c.tap(f"order:{order.order_id}", "voucher")
        c.scan(code)  # checked again: the kept redemption, no second one
        wait(lambda: c.get(lambda: [t.method for t in c.vm.tenders]) == ["voucher"], 10, "the redemption")
        c.tap("cash:exact")
        wait(lambda: c.get(lambda: c.vm.result_state) == "recorded", 10, "the hub's answer")
        [red] = platform.redemptions(code)
        assert ledger_rows(store.hub.database, order.order_id, "method", "amount", "reference") == \
            [("voucher", 5000, code), ("cash", total - 5000, "")]
        assert red["request_id"] == kept
    finally:
        c.close()


# ================================================= the counter's view model


def test_the_voucher_flow_on_the_pay_screen():
    from counter.viewmodel import AskVoucher, SendTill
    from tests.test_counter_vm import OID, Clock, opened, tap, unpaid

    vm = opened(Clock(), vouchers=True)
    unpaid(vm, total=3800)
    tap(vm, f"order:{OID}", "voucher")
    assert "voucher" in [b.target for b in vm.view().buttons] and vm.voucher_code == ""
    for ch in "8800-x":  # the scanner's keys go to the code, not the find box
        vm.key(ch)
    tap(vm, "key:1")
    assert vm.voucher_code == "8800-X1" and vm.find == ""
    vm.backspace()
    tap(vm, "key:clear")
    for ch in "880000000002":
        vm.key(ch)
    assert "880000000002" in vm.view().sub
    vm.enter()
    [ask] = vm.take_commands()
    assert isinstance(ask, AskVoucher) and (ask.kind, ask.code, ask.order_id) == ("verify", CODE, OID)
    assert vm.voucher.stage == "verifying"
    tap(vm, "cash:exact")  # nothing else while the platform is asked
    assert vm.tenders == [] and vm.take_commands() == []
    # a late answer to another question is not this one
    assert not vm.on_voucher_reply(VoucherReply(request_id=rid(), kind="verify", ok=True, code=CODE))
    assert vm.on_voucher_reply(VoucherReply(request_id=ask.request_id, kind="verify", ok=True, code=CODE,
                                            title=Words("50元代金券", "¥50 voucher"), value_fen=5000,
                                            status="valid"))
    assert vm.voucher.stage == "confirm"
    assert vm.view().sub == "50元代金券：面值 ¥50.00，本单抵 ¥38.00。 面值高于应收，多出的 ¥12.00 不找零。"
    assert {"voucher_redeem", "voucher_cancel"} <= {b.target for b in vm.view().buttons}
    tap(vm, "voucher_redeem")
    [redeem] = vm.take_commands()
    assert (redeem.kind, redeem.code) == ("redeem", CODE) and redeem.request_id != ask.request_id
    assert vm.on_voucher_reply(VoucherReply(request_id=redeem.request_id, kind="redeem", ok=True, code=CODE,
                                            value_fen=5000, redemption_id="VR1", status="redeemed"))
    # worth more than is due: it pays what is due, and the payment goes at once
    [send] = [c for c in vm.take_commands() if isinstance(c, SendTill)]
    assert [(t.method, t.amount, t.reference, t.intent_id) for t in send.request.tenders] == \
        [("voucher", 3800, CODE, "VR1")]
    assert vm.screen == "done"


def test_a_voucher_refused_or_unanswered_says_why_and_the_cashier_takes_another_tender():
    from counter.viewmodel import AskVoucher, SendTill
    from tests.test_counter_vm import OID, Clock, opened, tap, type_amount, unpaid

    vm = opened(Clock(), vouchers=True)
    unpaid(vm, total=3800)
    tap(vm, f"order:{OID}", "voucher", "key:12", "voucher_ok")
    assert vm.take_commands() == [] and vm.notice == "这不是团购券码：应为 4 到 32 位数字或字母。"
    tap(vm, "key:345", "voucher_ok")
    [ask] = vm.take_commands()
    vm.on_voucher_reply(VoucherReply(request_id=ask.request_id, kind="verify", ok=False, code="12345",
                                     reason="voucher_unreachable", message=REASONS["voucher_unreachable"]))
    assert vm.voucher is None and vm.notice == REASONS["voucher_unreachable"].zh
    # a redemption refused, then one the sync service never answered
    tap(vm, "voucher")
    for ch in CODE:
        vm.key(ch)
    vm.enter()
    [ask] = vm.take_commands()
    vm.on_voucher_reply(VoucherReply(request_id=ask.request_id, kind="verify", ok=True, code=CODE, value_fen=1000,
                                     status="valid"))
    tap(vm, "voucher_redeem")
    [redeem] = vm.take_commands()
    tap(vm, "back")  # not while a redemption may come
    assert vm.screen == "pay"
    vm.voucher_unavailable(CODE)
    assert vm.voucher is None and "不会重复核销" in vm.notice
    # the answer after the counter gave up is not applied here (counter.db keeps its request: scanned again)
    assert not vm.on_voucher_reply(VoucherReply(request_id=redeem.request_id, kind="redeem", ok=True, code=CODE,
                                                value_fen=1000, redemption_id="VR1", status="redeemed"))
    # a redemption answered when the code was checked again (the kept request) pays part; the rest in cash
    tap(vm, "voucher")
    for ch in CODE:
        vm.key(ch)
    vm.enter()
    [ask] = vm.take_commands()
    assert isinstance(ask, AskVoucher)
    vm.on_voucher_reply(VoucherReply(request_id=redeem.request_id, kind="redeem", ok=True, code=CODE,
                                     value_fen=1000, redemption_id="VR1", status="redeemed"))
    assert vm.due == 2800 and "团购券 ¥10.00  ·  880000000002" in [r.text for r in vm.view().rows]
    type_amount(vm, "28")
    tap(vm, "cash")
    [send] = [c for c in vm.take_commands() if isinstance(c, SendTill)]
    assert [(t.method, t.amount) for t in send.request.tenders] == [("voucher", 1000), ("cash", 2800)]


def test_without_vouchers_there_is_no_voucher_button():
    from tests.test_counter_vm import OID, Clock, opened, tap, unpaid

    vm = opened(Clock())
    unpaid(vm)
    tap(vm, f"order:{OID}")
    assert "voucher" not in [b.target for b in vm.view().buttons]
    tap(vm, "voucher")
    assert vm.notice == "本店没有开通团购券。" and vm.voucher_code is None


def test_a_redemption_worth_nothing_is_not_taken_as_a_tender():
    from tests.test_counter_vm import OID, Clock, opened, tap, unpaid

    vm = opened(Clock(), vouchers=True)
    unpaid(vm)
    tap(vm, f"order:{OID}", "voucher")
    for ch in CODE:
        vm.key(ch)
    vm.enter()
    [ask] = vm.take_commands()
    assert vm.on_voucher_reply(VoucherReply(request_id=ask.request_id, kind="redeem", ok=True, code=CODE,
                                            value_fen=0, redemption_id="VR1", status="redeemed"))
    assert vm.tenders == [] and vm.notice == REASONS["voucher_bad_answer"].zh and vm.due == 3800
