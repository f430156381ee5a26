"""A delivery platform's open API (restobox/delivery.py) against its simulator
(``restobox delivery-dev``, a real HTTP server in its own process): webhooks
signed and retried to a real HTTP receiver in this test that checks their
signatures, the order calls' state rules and idempotency, signing refusals,
closed shops and sold-out skus, the accept window, the fault modes and a
restart.

One platform serves most of the module's tests (started once): each test
uses a shop of its own (``shop``), and the receiver's answers are set per
shop. The accept window and the restart need a platform of their own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime

import httpx
import msgspec
import pytest

from restobox import delivery
from restobox.delivery import (BadMessage, OrderCancelled, OrderCreated, PlatformError, decode_webhook, sign,
                               signed_headers, verify)
from tests.delivery_support import DeliveryDev
from tests.devproc import PostReceiver
from tests.support import wait

pytestmark = pytest.mark.integration

SECRET = b"test-app-secret"
ACK = (200, delivery.ACK)
RICE = {"sku": "mt-rice", "name": "米饭", "qty": 2, "unit_price": 200}
CHICKEN = {"sku": "mt-kung-pao-chicken", "name": "宫保鸡丁", "qty": 2, "unit_price": 3200,
           "options": [{"sku": "mt-extra-rice", "name": "加饭", "price": 200}]}


class Receiver(PostReceiver):
    """The chain's webhook address: checks each webhook's signature (401 with
    its reason if it does not check, as the chain must), records every one,
    and answers a shop's webhooks with ``answers[shop]`` first (one each),
    503 while the shop is in ``down``, then ``{"code": 0}``."""

    def __init__(self) -> None:
        self.got: list[dict] = []
        self.answers: dict[str, list[tuple[int, bytes]]] = {}
        self.down: set[str] = set()
        self.lock = threading.Lock()
        super().__init__("/delivery/webhook")

    def answer(self, path: str, headers, body: bytes) -> tuple[int, bytes]:
        reason = verify(SECRET, headers, body, app_id="chain-1")
        try:
            msg = decode_webhook(body)
            shop, pid = msg.shop_id, (msg.order.platform_order_id if isinstance(msg, OrderCreated)
                                      else msg.platform_order_id)
        except BadMessage as exc:
            msg, shop, pid, reason = None, "", "", reason or exc.reason
        with self.lock:
            if reason is not None:
                status, answer = 401, msgspec.json.encode({"code": reason, "message": "not believed"})
            elif self.answers.get(shop):
                status, answer = self.answers[shop].pop(0)
            elif shop in self.down:
                status, answer = 503, b'{"code": "down"}'
            else:
                status, answer = ACK
            self.got.append({"shop": shop, "pid": pid, "msg": msg, "reason": reason, "status": status,
                             "acked": (status, answer) == ACK, "headers": dict(headers), "body": body})
        return status, answer

    def of(self, pid: str, type_: str | None = None) -> list[dict]:
        with self.lock:
            return [g for g in self.got if g["pid"] == pid and (type_ is None or g["msg"].type == type_)]

    def kept(self, pid: str, type_: str) -> list[dict]:
        """The webhooks of ``pid`` of ``type_`` this receiver acknowledged."""
        return [g for g in self.of(pid, type_) if g["acked"]]


@pytest.fixture(scope="module")
def rx():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory, rx):
    """The module's platform: quick webhook retries (0.05, 0.1, 0.15 s, then given up)."""
    with DeliveryDev(tmp_path_factory.mktemp("delivery"), secret=SECRET, webhook_url=rx.url,
                     webhook_retry=(0.05, 0.1, 0.15)) as p:
        yield p


@pytest.fixture
def dd(platform):
    """The module's platform, its fault mode reset for this test."""
    platform.fault("ok")
    return platform


@pytest.fixture
def shop():
    """This test's own shop."""
    return f"sh-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(dd):
    with dd.client() as c:
        yield c


def refused(fn, *args, **kw) -> PlatformError:
    with pytest.raises(PlatformError) as info:
        fn(*args, **kw)
    return info.value


def grew(dd, before: dict[str, int], key: str) -> int:
    return dd.stats().get(key, 0) - before.get(key, 0)


# ------------------------------------------------------- pure protocol
def test_a_signature_checks_and_a_tampered_stale_or_missing_one_does_not():
    body = b'{"open": false}'
    now = 1_800_000_000
    h = signed_headers("chain-1", SECRET, body, now)
    assert h["X-Signature"] == sign(SECRET, now, body) and len(h["X-Signature"]) == 64
    assert verify(SECRET, h, body, now + 300) is None
    assert verify(SECRET, {k.lower(): v for k, v in h.items()}, body, now) is None
    assert verify(SECRET, h, body + b" ", now) == "bad_signature"
    assert verify(b"another", h, body, now) == "bad_signature"
    assert verify(SECRET, {**h, "X-Timestamp": str(now + 1)}, body, now) == "bad_signature"
    assert verify(SECRET, {"X-Timestamp": str(now)}, body, now) == "bad_signature"
    assert verify(SECRET, h, body, now, app_id="chain-2") == "bad_signature"
    assert verify(SECRET, h, body, now + 301) == "stale_timestamp"
    assert verify(SECRET, h, body, now - 301) == "stale_timestamp"
    # an unsigned message learns nothing about the clock
    assert verify(b"another", h, body, now + 1000) == "bad_signature"


def test_a_webhook_that_does_not_decode_says_why():
    order = {"platform_order_id": "MT20261206000017", "shop_id": "sh-1001", "day_seq": 17, "items": [CHICKEN],
             "items_total": 6800, "delivery_fee": 500, "total": 7300, "note": "少辣",
             "pickup_at": "2026-12-06T12:30:00+08:00", "created_at": "2026-12-06T12:05:11+08:00",
             "customer": {"name_masked": "王**", "phone_masked": "138****5678"}}

    def hook(**kw):
        return msgspec.json.encode({"type": "order.created", "event_id": "evt-1", "shop_id": "sh-1001",
                                    "order": order, **kw})

    msg = decode_webhook(hook(extra="a later field"))
    assert isinstance(msg, OrderCreated) and msg.order.items[0].options[0].price == 200
    assert msg.order.pickup_at.utcoffset().total_seconds() == 8 * 3600

    def reason(body: bytes) -> str:
        with pytest.raises(BadMessage) as info:
            decode_webhook(body)
        return info.value.reason

    assert reason(b"<html>") == "bad_json"
    assert reason(b'{"type": "order.refunded", "event_id": "e"}') == "unknown_type"
    assert reason(hook(event_id=7)) == "bad_schema"
    assert reason(hook(order={**order, "pickup_at": "2026-12-06T12:30:00"})) == "bad_schema"  # no offset
    assert reason(hook(order={**order, "items": []})) == "bad_schema"
    assert reason(hook(shop_id="sh-2")) == "bad_schema"
    assert reason(hook(order={**order, "items_total": 6400, "total": 6900})) == "bad_amounts"
    assert reason(hook(order={**order, "total": 6800})) == "bad_amounts"


# ------------------------------------------------------------ webhooks
def test_a_diner_order_reaches_the_chain_signed(dd, rx, shop):
    o = dd.order(shop, [CHICKEN, RICE], note="少辣", delivery_fee=500, pickup_in_s=1200)
    pid = o["platform_order_id"]
    assert re.fullmatch(r"MT\d{8}\d{6}", pid) and pid[2:10] == o["created_at"][:10].replace("-", "")
    assert o["state"] == "new" and o["day_seq"] == 1
    got = wait(lambda: rx.kept(pid, "order.created"), 5, "the order.created webhook")
    assert len(got) == 1 and got[0]["reason"] is None
    assert got[0]["headers"]["X-App-Id"] == "chain-1"
    msg = got[0]["msg"]
    assert msg.shop_id == shop and msg.event_id.startswith("evt-")
    order = msg.order
    assert (order.items_total, order.delivery_fee, order.total) == (6800 + 400, 500, 7700)
    assert order.note == "少辣" and [i.sku for i in order.items] == ["mt-kung-pao-chicken", "mt-rice"]
    assert (order.pickup_at - order.created_at).total_seconds() == 1200
    assert order.customer.name_masked.endswith("**") and "****" in order.customer.phone_masked
    assert msgspec.json.decode(got[0]["body"])["order"] == o["order"]
    wait(lambda: dd.get(pid)["webhooks"][0]["state"] == "delivered", 5, "delivered")
    hook = dd.get(pid)["webhooks"][0]
    assert (hook["event_id"], hook["type"], len(hook["attempts"])) == (msg.event_id, "order.created", 1)
    # the shop's day counts on; another shop's starts at 1
    assert dd.order(shop, [RICE])["day_seq"] == 2
    assert dd.order(shop + "b", [RICE])["day_seq"] == 1
    assert pid in httpx.get(dd.url + "/").text


def test_a_refused_webhook_is_retried_and_a_repeat_keeps_its_event_id(dd, rx, shop):
    rx.answers[shop] = [(500, b"oops"), (200, b'{"code": "busy"}'), (200, b"not json")]
    pid = dd.order(shop, [RICE])["platform_order_id"]
    wait(lambda: rx.kept(pid, "order.created"), 5, "the webhook kept on its fourth attempt")
    got = rx.of(pid)
    assert [g["status"] for g in got] == [500, 200, 200, 200]
    assert len({g["msg"].event_id for g in got}) == 1
    assert len({g["headers"]["X-Signature"] for g in got}) >= 1  # each attempt signed anew, all checked
    hook = dd.get(pid)["webhooks"][0]
    assert hook["state"] == "delivered" and [a["delivered"] for a in hook["attempts"]] == [0, 0, 0, 1]

    dd.fault("webhook_repeat", count=1)
    pid = dd.order(shop, [RICE])["platform_order_id"]
    wait(lambda: len(rx.kept(pid, "order.created")) == 3, 5, "three deliveries")
    assert len({g["msg"].event_id for g in rx.of(pid)}) == 1
    assert httpx.get(f"{dd.url}/_dev/fault").json()["mode"] == "ok"  # the count was spent

    # never acknowledged: given up after the retries
    rx.down.add(shop)
    pid = dd.order(shop, [RICE])["platform_order_id"]
    wait(lambda: dd.get(pid)["webhooks"][0]["state"] == "given_up", 5, "given up")
    assert len(rx.of(pid)) == 4  # the first attempt and three retries


# ------------------------------------------------------ the order calls
def test_the_order_calls_follow_the_state_rules_and_are_idempotent(dd, rx, client, shop):
    a, b, c, d = (dd.order(shop, [RICE])["platform_order_id"] for _ in range(4))

    assert client.accept(a)["state"] == "accepted"
    assert client.accept(a)["state"] == "accepted"  # again: code 0, nothing changes
    accepted_at = dd.get(a)["accepted_at"]
    assert client.ready(a)["state"] == "ready"
    assert client.ready(a)["state"] == "ready"
    assert client.accept(a)["state"] == "ready"
    e = refused(client.refuse, a, "busy")
    assert (e.reason, e.retry, e.status) == ("order_accepted", False, 409)
    assert client.cancel(a, "store_voided", "作废")["state"] == "cancelled"
    assert client.cancel(a, "store_voided")["state"] == "cancelled"
    for call in (client.accept, client.ready):
        assert refused(call, a).reason == "order_cancelled"
    got = client.order(a)
    assert (got.state, got.cancel_reason, got.order.platform_order_id) == ("cancelled", "store_voided", a)
    seen = dd.get(a)
    assert seen["accepted_at"] == accepted_at and seen["ready_at"] and seen["cancelled_by"] == "merchant"
    assert not [w for w in seen["webhooks"] if w["type"] == "order.cancelled"]  # the chain made it: no webhook

    assert refused(client.ready, b).reason == "order_not_accepted"
    assert refused(client.cancel, b, "store_voided").reason == "order_not_accepted"
    assert client.refuse(b, "sold_out", "米饭卖完了")["state"] == "refused"
    assert client.refuse(b, "busy")["state"] == "refused"
    for call in (client.accept, client.ready):
        e = refused(call, b)
        assert (e.reason, e.retry) == ("order_refused", False)
    assert (client.order(b).state, client.order(b).refuse_reason) == ("refused", "sold_out")
    assert (dd.get(b)["refuse_reason"], dd.get(b)["refuse_message"]) == ("sold_out", "米饭卖完了")

    e = refused(client.refuse, c, "not-a-reason")
    assert (e.reason, e.retry, e.status) == ("bad_request", False, 400)
    assert dd.get(c)["state"] == "new"

    # the diner cancels: the chain hears it; the store's calls after it are answered so
    dd.cancel(c)
    hook = wait(lambda: rx.kept(c, "order.cancelled"), 5, "the order.cancelled webhook")[0]["msg"]
    assert isinstance(hook, OrderCancelled) and (hook.reason, hook.shop_id) == ("diner_cancelled", shop)
    assert refused(client.accept, c).reason == "order_cancelled"
    assert client.refuse(c, "busy")["state"] == "cancelled"  # refusing a cancelled order: a no-op
    dd.cancel(c)  # again: nothing new
    assert len(dd.get(c)["webhooks"]) == 2

    assert client.accept(d)["state"] == "accepted"
    dd.cancel(d, "rider_unavailable")
    wait(lambda: rx.kept(d, "order.cancelled"), 5, "the rider's cancel")
    assert client.order(d).cancel_reason == "rider_unavailable"

    e = refused(client.accept, "MT20990101999999")
    assert (e.reason, e.retry, e.status) == ("order_not_found", False, 404)
    calls = [x for x in dd.calls() if a in x["path"]]
    assert [x["code"] for x in calls[:2]] == [0, 0] and calls[0]["path"].endswith("/accept")


def test_a_bad_signature_and_a_stale_timestamp_are_refused_with_their_codes(dd, shop):
    pid = dd.order(shop, [RICE])["platform_order_id"]
    with dd.client(secret=b"not-the-secret") as wrong:
        e = refused(wrong.accept, pid)
    assert (e.reason, e.retry, e.status) == ("bad_signature", False, 401)
    url = f"{dd.url}{delivery.API_PREFIX}/orders/{pid}/accept"
    stale = signed_headers("chain-1", SECRET, b"{}", time.time() - 400)
    r = httpx.post(url, content=b"{}", headers=stale)
    assert (r.status_code, r.json()["code"]) == (401, "stale_timestamp")
    r = httpx.post(url, content=b"{}")
    assert (r.status_code, r.json()["code"]) == (401, "bad_signature")
    r = httpx.post(url, content=b"{}", headers=signed_headers("chain-2", SECRET, b"{}"))
    assert (r.status_code, r.json()["code"]) == (401, "bad_signature")
    assert dd.get(pid)["state"] == "new"
    assert [x["code"] for x in dd.calls() if pid in x["path"]] == ["bad_signature", "stale_timestamp",
                                                                   "bad_signature", "bad_signature"]


# ---------------------------------------------------------------- shops
def test_a_closed_shop_and_a_sold_out_sku_refuse_new_orders(dd, client, shop):
    assert client.shop_status(shop, False) == {"code": 0, "shop_id": shop, "open": False}
    assert dd.order(shop, [RICE], expect=409)["code"] == "shop_closed"
    client.shop_status(shop, True)
    got = client.stock(shop, {"mt-extra-rice": False, "mt-rice": False, "mt-tea": True})
    assert got["sold_out"] == ["mt-extra-rice", "mt-rice"]
    refusal = dd.order(shop, [CHICKEN, RICE], expect=409)
    assert (refusal["code"], refusal["skus"]) == ("sold_out", ["mt-extra-rice", "mt-rice"])
    client.stock(shop, {"mt-rice": True})
    assert dd.order(shop, [CHICKEN], expect=409)["skus"] == ["mt-extra-rice"]  # an option's sku too
    assert dd.order(shop, [RICE])["state"] == "new"
    s = dd.shops()[shop]
    assert (s["open"], s["sold_out"]) == (True, ["mt-extra-rice"])
    assert [x[1] for x in s["status_log"]] == [False, True]
    e = refused(client.stock, shop, {"bad sku!": False})
    assert (e.reason, e.status) == ("bad_request", 400)
    assert dd.order(f"{shop}-new", [RICE])["state"] == "new"  # a shop first named is open
    assert dd.shops()[f"{shop}-new"]["open"] is True


# ---------------------------------------------------------------- faults
def test_api_fail_does_nothing_and_a_retry_does_the_work(dd, client, shop):
    pid = dd.order(shop, [RICE])["platform_order_id"]
    dd.fault("api_fail", count=1)
    e = refused(client.accept, pid)
    assert (e.reason, e.retry, e.status) == ("platform_http_error", True, 500)
    assert dd.get(pid)["state"] == "new"
    assert client.accept(pid)["state"] == "accepted"

    dd.fault("api_slow", count=1, slow_s=1.0)
    with dd.client(timeout=0.3) as impatient:
        e = refused(impatient.ready, pid)
    assert (e.reason, e.retry) == ("platform_timeout", True)
    assert client.ready(pid)["state"] == "ready"  # the work was done; the retry says so

    with dd.client(timeout=0.3) as c:  # nobody there
        c.base = "http://127.0.0.1:9"
        e = refused(c.accept, pid)
    assert (e.reason, e.retry) == ("platform_unreachable", True)


def test_webhook_faults_lost_down_and_bad_signature(dd, rx, shop):
    before = dd.stats()
    dd.fault("webhook_lost", count=1)
    lost = dd.order(shop, [RICE])["platform_order_id"]
    sent = dd.order(shop, [RICE])["platform_order_id"]  # the fault was spent on the first
    wait(lambda: rx.kept(sent, "order.created"), 5, "the next webhook")
    hook = dd.get(lost)["webhooks"][0]
    assert (hook["state"], hook["attempts"]) == ("lost", [])
    assert rx.of(lost) == [] and grew(dd, before, "webhooks.lost") == 1

    dd.fault("webhook_down", count=2)
    pid = dd.order(shop, [RICE])["platform_order_id"]
    wait(lambda: rx.kept(pid, "order.created"), 5, "delivered once the chain is back")
    attempts = dd.get(pid)["webhooks"][0]["attempts"]
    assert [a["http_status"] for a in attempts] == [0, 0, 200] and len(rx.of(pid)) == 1

    dd.fault("bad_signature", count=1)
    pid = dd.order(shop, [RICE])["platform_order_id"]
    wait(lambda: dd.get(pid)["webhooks"][0]["state"] == "given_up", 5, "given up")
    assert {g["reason"] for g in rx.of(pid)} == {"bad_signature"} and len(rx.of(pid)) == 4
    assert dd.stats()["faults.bad_signature"] >= 1


# ------------------------------------------- accept window and restart
def test_the_accept_window_and_a_restart(tmp_path, rx, shop):
    """An order not accepted within the window is cancelled (merchant_timeout)
    and the chain told; a restart keeps every order, resumes a webhook not
    yet delivered, and counts a window from the order's created_at."""
    rx.down.add(shop)
    # another platform (its order ids ELE...: the receiver is the module's)
    with DeliveryDev(tmp_path, secret=SECRET, webhook_url=rx.url, accept_timeout=1, platform="ele",
                     webhook_retry=[0.1] * 100) as dd, dd.client() as client:
        late = dd.order(shop + "-t", [RICE])["platform_order_id"]
        assert late.startswith("ELE")
        kept = dd.order(shop + "-t", [RICE])["platform_order_id"]
        client.accept(kept)
        hook = wait(lambda: rx.kept(late, "order.cancelled"), 5, "the merchant_timeout webhook")[0]["msg"]
        assert hook.reason == "merchant_timeout"
        assert refused(client.accept, late).reason == "order_cancelled"
        o = dd.get(late)
        assert (o["state"], o["cancel_reason"], o["cancelled_by"]) == ("cancelled", "merchant_timeout", "platform")
        elapsed = (datetime.fromisoformat(o["cancelled_at"]) - datetime.fromisoformat(o["created_at"]))
        # never before its window (1 s); that it came at all is the wait above
        assert elapsed.total_seconds() >= 1, elapsed

        # the chain is down: the webhook waits; the platform stops with it undelivered
        pending = dd.order(shop, [RICE])["platform_order_id"]
        made = time.monotonic()
        wait(lambda: rx.of(pending), 5, "a first attempt")
        assert dd.get(pending)["state"] == "new"
        dd.stop()
        rx.down.discard(shop)
        wait(lambda: time.monotonic() > made + 1.2, 5, "its window to pass while the platform is down")
        dd.start()
        # cancelled (and the chain told) at once, not a whole window after the start
        wait(lambda: rx.kept(pending, "order.cancelled"), 0.8, "the window counted from created_at")
        wait(lambda: rx.kept(pending, "order.created"), 5, "the webhook resumed after the restart")
        assert dd.get(kept)["state"] == "accepted" and client.order(kept).state == "accepted"
        created = [w for w in dd.get(pending)["webhooks"] if w["type"] == "order.created"][0]
        assert created["state"] == "delivered" and len(created["attempts"]) >= 2
        assert len(rx.kept(pending, "order.created")) == 1


def test_the_command_says_what_is_missing(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "RESTOBOX_DELIVERY_SECRET"}
        return subprocess.run([sys.executable, "-m", "restobox.cli", "delivery-dev", "--db", str(tmp_path / "d.db"),
                               *args], capture_output=True, text=True, timeout=30, env=env)

    r = run("--webhook-url", "http://127.0.0.1:9/hook")
    assert r.returncode == 2 and "the app secret is empty" in r.stderr
    (tmp_path / "secret").write_text("s\n")
    r = run("--secret-file", str(tmp_path / "secret"), "--webhook-url", "chain.example/hook")
    assert r.returncode == 2 and "is not an http(s) address" in r.stderr
    r = run("--secret-file", str(tmp_path / "nope"), "--webhook-url", "http://127.0.0.1:9/hook")
    assert r.returncode == 2 and "cannot read the app secret file" in r.stderr
    assert not (tmp_path / "d.db").exists()
