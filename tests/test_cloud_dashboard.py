"""The owner's dashboard (restobox/cloud/dashboard.py, docs/cloud.md): the
chain's stores on a phone, live, in Chinese and English.

One cloud for the module (``restobox cloud`` on PostgreSQL behind the
balancer, ``offline_after_s = 3``) and one Chromium (Debian's, driven by
Playwright; never a downloaded browser) at a phone's size:

- store-1 人民广场店: a real sync service on its own broker forwards a day
  of orders (written with the hub's outbox function, in the hub's payloads)
  and reports its heartbeat: a printer out of paper there is an alert on the
  owner's phone;
- store-2 徐家汇店: its events and heartbeats posted over HTTP as a store
  sends them, by a request loop that keeps it in contact;
- store-3 静安寺店: the offline test's store (its own sync service, stopped);
- store-4 虹桥店: the heartbeat test's store (a StatusReporter in this process).

The API's figures are checked on SQLite too. Screenshots of the page are
taken in a temporary folder; RESTOBOX_DOCS_SCREENSHOTS=docs/screenshots
keeps them for the README (cloud-dashboard-*.png).
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from playwright.sync_api import expect

from restobox import config, contract, db
from restobox.cloud.dashboard import REFRESH_S
from restobox.contract import PrinterStatus, topics
from tests.browser_support import browser  # noqa: F401  (the module's chromium)
from tests.cloud_support import OWNER_TOKEN, Balancer, ChainCloud, CloudProcess
from tests.conftest import broker_with_standard_devices
from tests.support import COMBO, KUNG_PAO, MILK_TEA, REPO, SPRING_ROLLS, Device, HubProcess, new_order, wait
from tests.test_sync import sync_config as store_sync_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SHOTS = (REPO / os.environ["RESTOBOX_DOCS_SCREENSHOTS"] if os.environ.get("RESTOBOX_DOCS_SCREENSHOTS")
         else Path(tempfile.gettempdir()) / "restobox-dashboard-shots")
PHONE = {"width": 390, "height": 844}
WAIT_MS = 10_000
OFFLINE_AFTER_S = 3.0
REQUEST_S = 1.0
"""One request of the page's, drawn, and seen by the test: the stated time's allowance."""
ZONE = ZoneInfo("Asia/Shanghai")  # [cloud] timezone's default: the chain's day
NAMES = {"store-1": "人民广场店", "store-2": "徐家汇店", "store-3": "静安寺店", "store-4": "虹桥店"}


# ---------------------------------------------------------------- a day
def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def chain_today(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, ZONE).date().isoformat()


_MENU = None


def priced(lines: list[tuple]):
    from restobox.data import load_sample_menu
    from restobox.menu import MenuIndex
    from restobox.orders import price_order

    global _MENU
    _MENU = _MENU or MenuIndex(load_sample_menu())
    return price_order(new_order(*lines), _MENU)


# number, channel, lines, accepted minutes ago, seconds to ready (None: not ready), how it ends
STORE1_DAY = [
    (101, "kiosk", [KUNG_PAO], 52, 312, "completed"),
    (102, "qr", [COMBO], 46, 405, "completed"),
    (103, "counter", [MILK_TEA], 40, 198, "completed"),
    (104, "kiosk", [KUNG_PAO, MILK_TEA], 31, 534, "ready"),
    (105, "kiosk", [SPRING_ROLLS], 24, None, "voided"),
    (106, "preorder", [COMBO, SPRING_ROLLS], 14, 287, "ready"),
    (107, "qr", [KUNG_PAO], 5, None, "in_progress"),
    (108, "kiosk", [MILK_TEA], 1, None, "accepted"),
]
STORE2_DAY = [
    (31, "counter", [COMBO, MILK_TEA], 38, 420, "completed"),
    (32, "kiosk", [KUNG_PAO], 27, 250, "completed"),
    (33, "qr", [SPRING_ROLLS, MILK_TEA], 9, None, "in_progress"),
]


class Day:
    """A store's orders as its hub writes them to the outbox (the payloads
    of restobox/hub/), and the figures the dashboard must show for them."""

    def __init__(self, plan: list[tuple], now: float, business_date: str) -> None:
        self.events: list[tuple[str, str, str, dict, str]] = []  # event id, kind, order id, payload, at
        self.orders: dict[int, dict] = {}
        for number, channel, lines, ago_min, ready_s, end in plan:
            oid = str(uuid.uuid4())
            p = priced(lines)
            accepted = now - ago_min * 60
            reply = contract.OrderReply(order_id=oid, status="accepted", number=number, business_date=business_date,
                                        subtotal=p.subtotal, tax=p.tax, total=p.total, lines=p.lines,
                                        accepted_at=iso(accepted))
            self._event(f"{oid}:accepted", "order.accepted", oid, {
                "order": msgspec.to_builtins(reply), "device": f"{channel}-1", "channel": channel,
                "service": "takeaway", "table": None,
                "payment": {"method": "card", "status": "approved", "amount": p.total, "intent_id": "",
                            "reference": ""},
                "offline": False, "provisional_number": "", "menu_version": "2026-11-01.1", "state": "accepted"},
                accepted)
            steps = []
            if end == "voided":
                steps = [("voided", accepted + 90)]
            elif end != "accepted":
                steps = [("in_progress", accepted + 30)]
                if ready_s is not None:
                    steps.append(("ready", accepted + ready_s))
                    if end == "completed":
                        steps.append(("completed", accepted + ready_s + 40))
            for state, at in steps:
                self._event(f"{oid}:{state}:{iso(at)}", f"order.{state}", oid,
                            {"order_id": oid, "number": number, "state": state,
                             "reason": "customer left" if state == "voided" else None, "at": iso(at)}, at)
            self.orders[number] = {"order_id": oid, "total": p.total, "channel": channel, "state": end,
                                   "ticket_s": ready_s if end in ("ready", "completed") else None}
        self.events.sort(key=lambda e: e[4])

    def _event(self, event_id: str, kind: str, oid: str, payload: dict, at: float) -> None:
        self.events.append((event_id, kind, oid, payload, iso(at)))

    # what the dashboard must say
    def live(self) -> list[dict]:
        return [o for o in self.orders.values() if o["state"] != "voided"]

    @property
    def sales(self) -> int:
        return sum(o["total"] for o in self.live())

    @property
    def count(self) -> int:
        return len(self.live())

    @property
    def voided(self) -> int:
        return len(self.orders) - self.count

    @property
    def open(self) -> int:
        return sum(o["state"] in ("accepted", "in_progress") for o in self.live())

    def tickets(self) -> dict:
        t = sorted(o["ticket_s"] for o in self.live() if o["ticket_s"] is not None)
        rank = lambda p: t[math.ceil(p * len(t)) - 1]  # noqa: E731 -- nearest rank
        return {"count": len(t), "avg_s": round(sum(t) / len(t), 1), "p50_s": float(rank(0.5)),
                "p90_s": float(rank(0.9)), "max_s": float(t[-1])}

    def cloud_events(self, first_seq: int = 1) -> list[dict]:
        return [{"event_id": eid, "seq": first_seq + i, "kind": kind, "order_id": oid, "at": at, "payload": payload}
                for i, (eid, kind, oid, payload, at) in enumerate(self.events)]

    def write_outbox(self, path: Path) -> None:
        """Into the store's store.db, with the hub's own function."""
        database = db.open_store_db(path)
        with database.atomic():
            for eid, kind, oid, payload, at in self.events:
                db.insert_outbox(database, event_id=eid, kind=kind, order_id=oid,
                                 payload=msgspec.json.encode(payload).decode(), created_at=at)
        database.close()


def yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def mmss(s: float) -> str:
    s = round(s)
    return f"{s // 60}:{s % 60:02d}"


def post_events(url: str, store: str, token: str, events: list[dict]) -> None:
    r = httpx.post(f"{url}/v1/stores/{store}/events", json={"v": 1, "store_id": store, "events": events},
                   headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    assert r.json()["acked"] == [e["event_id"] for e in events]


def post_status(url: str, store: str, token: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/v1/stores/{store}/status", json=body, headers={"Authorization": f"Bearer {token}"},
                      timeout=5)


DISK_LOW = {"key": "disk_low:hub", "severity": "warning", "zh": "主机 的存储空间快满了（剩 7%）。",
            "en": "The store hub's disk is almost full (7% free)."}


def store2_status(now: float) -> dict:
    return {"v": 1, "backlog": 12, "oldest_pending_at": iso(now - 250),
            "alerts": [{**DISK_LOW, "since": iso(now - 600)}], "details": {"device": "sync"}}


def sync_config(path: Path, cloud: ChainCloud, workdir: Path, broker, store: str, **sync) -> Path:
    """A store's sync service on ``broker``, sending to ``cloud`` as ``store``
    (no menu or pre-orders: the heartbeat and the outbox)."""
    return store_sync_config(path, cloud, workdir, broker, store=store, **{
        "menu_poll_s": 0, "preorder_poll_s": 0, "health_interval_s": 1.0, **sync})


def printer(dev: Device, name: str, state: str, near_end: bool = False, queued: int = 0) -> None:
    s = PrinterStatus(printer=name, state=state, paper_near_end=near_end, queued=queued, at=iso(time.time()))
    dev.publish(topics.printer_status(name), contract.encode(s), retain=True)


def dashboard(cloud_url: str) -> dict:
    r = httpx.get(f"{cloud_url}/v1/dashboard/stores", headers=ChainCloud.owner(), timeout=10)
    r.raise_for_status()
    return r.json()


def store_of(board: dict, store: str) -> dict:
    return next(s for s in board["stores"] if s["store_id"] == store)


# -------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = ChainCloud(tmp_path_factory.mktemp("cloud"), "postgres", stores=tuple(NAMES),
                   config=f"[cloud]\noffline_after_s = {OFFLINE_AFTER_S}\n").start()
    try:
        for sid, name in NAMES.items():  # the stores' names, as the office gives them
            httpx.post(f"{c.url}/v1/admin/stores", json={"store_id": sid, "name": name}, headers=c.admin(),
                       timeout=10).raise_for_status()
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def now() -> float:
    return time.time()


@pytest.fixture(scope="module")
def store1(cloud, now, tmp_path_factory, standard_devices_dir):
    """A real store's sync service: its outbox holds the day (and one order
    of yesterday's), its receipt printer is out of paper."""
    work = tmp_path_factory.mktemp("store-1")
    day = Day(STORE1_DAY, now, chain_today(now))
    yesterday = Day([(99, "kiosk", [COMBO], 30, 300, "completed")], now - 86400, chain_today(now - 86400))
    yesterday.write_outbox(work / "store.db")
    day.write_outbox(work / "store.db")
    broker = broker_with_standard_devices(work / "broker", standard_devices_dir).start()
    monitor = printing = None
    svc = HubProcess(sync_config(work / "sync.toml", cloud, work, broker, "store-1", status_interval_s=0.5),
                     work / "sync.log", service="sync", device="sync")
    try:
        monitor = Device(broker, "monitor-1", ("restobox/v1/#",), role="monitor")
        printing = Device(broker, "printing", role="printing")
        printer(printing, "receipt", "paper_out", queued=2)
        printer(printing, "kitchen", "ready", near_end=True)
        svc.start(monitor)
        n = len(day.events) + len(yesterday.events)
        wait(lambda: len(cloud.events("store-1")) == n, 20, "store-1's outbox at the cloud")
        wait(lambda: {a["key"] for a in store_of(dashboard(cloud.url), "store-1")["alerts"]}
             >= {"printer_paper_out:receipt", "paper_near_end:kitchen"}, 10, "store-1's printer alerts at the cloud")
        yield day
    finally:
        svc.stop()
        for d in (printing, monitor):
            if d is not None:
                d.close()
        broker.stop()


@pytest.fixture(scope="module")
def store2(cloud, now):
    """A store whose events and heartbeat are posted over HTTP, the
    heartbeat every 0.5 s by a loop (it keeps the store online)."""
    day = Day(STORE2_DAY, now, chain_today(now))
    token = cloud.token_of("store-2")
    events = day.cloud_events()
    post_events(cloud.url, "store-2", token, events[:4])
    post_events(cloud.url, "store-2", token, events)  # a retry: the first four again, stored once
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                post_status(cloud.url, "store-2", token, store2_status(time.time()))
            except httpx.HTTPError:  # the cloud is down for a test: the store tries again, as a store does
                pass
            stop.wait(0.5)

    t = threading.Thread(target=beat, name="store-2-heartbeat", daemon=True)
    t.start()
    # online, and its first heartbeat in (the events alone make it online)
    wait(lambda: (lambda s: s["online"] and s["sync"]["backlog"] == 12)(store_of(dashboard(cloud.url), "store-2")),
         20, "store-2 online with its heartbeat")
    yield day
    stop.set()
    t.join(5)


class Phone:
    """A phone's browser (its own storage) on the dashboard."""

    def __init__(self, browser, cloud_url: str, locale: str = "zh-CN", token: str | None = OWNER_TOKEN) -> None:
        self.ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                       locale=locale)
        if token:
            self.ctx.add_init_script(f"localStorage.setItem('restobox.owner_token', {token!r})")
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.page.goto(f"{cloud_url}/dashboard")

    def card(self, store: str):
        return self.page.locator(f'[data-store="{store}"]')

    def shot(self, name: str, scroll_to: str = "") -> None:
        """The phone's screen, as the owner sees it (scrolled to ``scroll_to``, under the top bar)."""
        if scroll_to:
            self.page.evaluate("(sel) => window.scrollTo(0, document.querySelector(sel).getBoundingClientRect().top"
                               " + window.scrollY - document.querySelector('.top').offsetHeight - 8)", scroll_to)
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))
        self.page.evaluate("window.scrollTo(0, 0)")

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def phone(browser, cloud):
    phones: list[Phone] = []

    def make(**kw) -> Phone:
        phones.append(Phone(browser, cloud.url, **kw))
        return phones[-1]
    yield make
    for p in phones:
        p.close()


# ------------------------------------------------------------------ API
def check_today(s: dict, day: Day) -> None:
    assert s["today"]["sales"] == day.sales
    assert s["today"]["orders"] == day.count
    assert s["today"]["voided"] == day.voided
    assert s["today"]["open"] == day.open
    assert s["today"]["tickets"] == day.tickets()


def check_day(d: dict, day: Day, date: str) -> None:
    assert d["date"] == date and d["today"] is True
    assert d["totals"]["sales"] == day.sales and d["totals"]["orders"] == day.count
    assert d["totals"]["voided"] == day.voided
    assert d["tickets"] == day.tickets()
    assert sum(h["sales"] for h in d["by_hour"]) == day.sales and d["unplaced"]["orders"] == 0
    assert sum(h["orders"] for h in d["by_hour"]) == day.count
    by_number = {o["number"]: o for o in d["orders"]}
    assert set(by_number) == set(day.orders) and d["orders_total"] == len(day.orders)
    for number, o in day.orders.items():
        got = by_number[number]
        assert (got["total"], got["channel"], got["state"], got["ticket_s"]) == \
            (o["total"], o["channel"], o["state"], o["ticket_s"] and float(o["ticket_s"])), number
    accepted = [o["accepted_at"] for o in d["orders"]]
    assert accepted == sorted(accepted, reverse=True), "newest first"
    channels = {c["channel"]: c for c in d["by_channel"]}
    assert sum(c["sales"] for c in channels.values()) == day.sales


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_the_api_gives_each_store_today_sales_orders_ticket_times_lag_and_alerts(backend, cloud, store2, now,
                                                                                   tmp_path):
    own = None
    if backend == "sqlite":  # the demo's cloud (one process): the same figures from the same events
        demo = ChainCloud(tmp_path, "sqlite", stores=("store-2",))
        demo.prepare()
        own = CloudProcess(demo.database, tmp_path / "cloud.log").start()
        post_events(own.url, "store-2", demo.token_of("store-2"), store2.cloud_events())
        assert post_status(own.url, "store-2", demo.token_of("store-2"), store2_status(time.time())).status_code == 200
    c = own or cloud
    token = (demo if own else cloud).token_of("store-2")
    try:
        board = dashboard(c.url)
        today = chain_today()
        assert board["today"] == today and board["timezone"] == "Asia/Shanghai"
        assert board["refresh_s"] == REFRESH_S
        s = store_of(board, "store-2")
        check_today(s, store2)
        assert s["online"] is True and s["last_contact_s"] < 5
        assert s["sync"]["backlog"] == 12 and 245 <= s["sync"]["lag_s"] <= 300
        assert [(a["key"], a["severity"], a["en"], a["source"]) for a in s["alerts"]] == \
            [(DISK_LOW["key"], "warning", DISK_LOW["en"], "store")]
        assert board["totals"]["sales"] == sum(x["today"]["sales"] for x in board["stores"])
        d = httpx.get(f"{c.url}/v1/dashboard/stores/store-2/day", headers=ChainCloud.owner(), timeout=10).json()
        check_day(d, store2, today)

        # who may ask, and what a bad question gets
        def get(path: str, headers: dict | None = None) -> httpx.Response:
            return httpx.get(f"{c.url}{path}", headers=ChainCloud.owner() if headers is None else headers, timeout=10)
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {token}"}):
            r = get("/v1/dashboard/stores", headers)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", headers
        assert get("/v1/dashboard/stores", ChainCloud.admin()).status_code == 200
        r = get("/v1/dashboard/stores/store-2/day?date=2026-02-30")
        assert r.status_code == 400 and r.json()["error"] == "bad_date" and "YYYY-MM-DD" in r.json()["message"]
        r = get("/v1/dashboard/stores/store-404/day")
        assert r.status_code == 404 and r.json()["error"] == "unknown_store"
        other = get("/v1/dashboard/stores/store-2/day?date=2020-01-01").json()
        assert other["totals"]["orders"] == 0 and other["today"] is False and other["orders"] == []
    finally:
        if own is not None:
            own.stop()


def test_a_time_the_database_cannot_read_leaves_that_order_out_of_ticket_times_only(cloud, store1, store2, now):
    """2026-02-30 looks like a time to PostgreSQL's pattern and fails its
    cast: the dashboard still answers, with the same figures for every
    store, and counts it."""
    before = dashboard(cloud.url)
    oid = str(uuid.uuid4())
    bad = {"event_id": f"{oid}:accepted", "seq": 1, "kind": "order.accepted", "order_id": oid, "at": iso(now),
           "payload": {"order": {"order_id": oid, "number": 7, "business_date": chain_today(now), "total": 1800,
                                 "accepted_at": "2026-02-30T12:00:00+00:00"}, "channel": "kiosk"}}
    ready = {"event_id": f"{oid}:ready", "seq": 2, "kind": "order.ready", "order_id": oid, "at": iso(now),
             "payload": {"order_id": oid, "number": 7, "state": "ready", "reason": None, "at": iso(now)}}
    post_events(cloud.url, "store-4", cloud.token_of("store-4"), [bad, ready])
    after = dashboard(cloud.url)
    for sid in ("store-1", "store-2"):
        assert store_of(after, sid)["today"] == store_of(before, sid)["today"]
    s4 = store_of(after, "store-4")["today"]
    assert (s4["sales"], s4["orders"], s4["tickets"]["count"]) == (1800, 1, 0)
    day = httpx.get(f"{cloud.url}/v1/dashboard/stores/store-4/day", headers=cloud.owner(), timeout=10).json()
    assert day["unplaced"] == {"orders": 1, "sales": 1800} and day["orders"][0]["ticket_s"] is None
    assert cloud.stats().get("dashboard_bad_times", 0) >= 1


# ----------------------------------------------------------------- page
def test_the_phone_page_shows_every_store_with_its_sales_orders_and_alerts_in_chinese_and_english(
        phone, cloud, store1, store2):
    p = phone(token=None)
    page = p.page
    # the token, asked once; a wrong one is refused with a sentence
    page.fill("#token", "not-the-token")
    page.click("#login-go")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "令牌不正确" in page.inner_text("#login-error")
    page.fill("#token", OWNER_TOKEN)
    page.click("#login-go")

    one, two, three = p.card("store-1"), p.card("store-2"), p.card("store-3")
    page.wait_for_selector('[data-store="store-1"][data-online="true"]')
    page.wait_for_selector('[data-store="store-2"][data-online="true"]')
    assert page.evaluate("localStorage.getItem('restobox.owner_token')") == OWNER_TOKEN
    text = one.inner_text()
    assert NAMES["store-1"] in text and yuan(store1.sales) in text and f"{store1.count} 单" in text, text
    assert "在线" in text and "同步正常" in text
    paper = one.locator('[data-key="printer_paper_out:receipt"]')
    assert "sev-critical" in paper.get_attribute("class")
    assert "打印机 receipt 缺纸。（2 张待打印）" in paper.inner_text()
    assert "sev-info" in one.locator('[data-key="paper_near_end:kitchen"]').get_attribute("class")
    text = two.inner_text()
    assert yuan(store2.sales) in text and f"{store2.count} 单" in text and "待上传 12 条" in text, text
    assert "sev-warning" in two.locator('[data-key="disk_low:hub"]').get_attribute("class")
    assert three.get_attribute("data-online") == "false" and "离线" in three.inner_text()
    assert "门店离线" in three.locator('[data-key="offline"]').inner_text()
    board = dashboard(cloud.url)
    assert yuan(board["totals"]["sales"]) in page.inner_text("#totals")
    page.wait_for_function("document.getElementById('updated').textContent.includes('秒前更新')")
    p.shot("cloud-dashboard-stores-zh")

    # English: every text switches, the figures stay
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    text = one.inner_text()
    assert "Printer receipt is out of paper. 2 waiting to print." in text and "Online" in text
    assert yuan(store1.sales) in text and f"{store1.count} orders" in text, text
    assert "12 waiting to sync" in two.inner_text() and "Offline" in three.inner_text()
    assert "Sales today" in page.inner_text("#totals")
    assert "Updated" in page.inner_text("#updated")
    p.shot("cloud-dashboard-stores-en")


def test_a_store_day_shows_its_ticket_times_hours_and_orders(phone, cloud, store1):
    p = phone(locale="en-US")
    page = p.page
    page.wait_for_selector('[data-store="store-1"][data-online="true"]')
    p.card("store-1").locator("button").tap()
    page.wait_for_selector("#day:not([hidden]) [data-order]")
    t = store1.tickets()
    tickets = page.inner_text("#day-tickets")
    for label, key in (("Average", "avg_s"), ("Median", "p50_s"), ("p90", "p90_s"), ("Longest", "max_s")):
        assert f"{mmss(t[key])}\n{label}" in tickets, (label, tickets)
    assert yuan(store1.sales) in page.inner_text("#day-totals")
    rows = page.locator("#day-orders [data-order]")
    assert rows.count() == len(store1.orders)
    first = rows.first.inner_text()  # newest first: 108, only accepted
    assert first.startswith("#108") and "Accepted" in first
    o104 = page.locator(f'[data-order="{store1.orders[104]["order_id"]}"]').inner_text()
    assert "Ready" in o104 and mmss(534) in o104 and yuan(store1.orders[104]["total"]) in o104
    assert "Voided" in page.locator(f'[data-order="{store1.orders[105]["order_id"]}"]').inner_text()
    assert page.locator("#day-hours .hour").count() >= 1
    assert "Kiosk" in page.inner_text("#day-channels")
    p.shot("cloud-dashboard-day-en", scroll_to="#day-hours")

    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert f"{mmss(t['p90_s'])}\nP90" in page.inner_text("#day-tickets")
    assert "待取餐" in page.locator(f'[data-order="{store1.orders[104]["order_id"]}"]').inner_text()
    assert "自助点餐机" in page.inner_text("#day-channels")
    p.shot("cloud-dashboard-day-zh")
    page.click("#back")
    page.wait_for_selector("#list:not([hidden]) [data-store]")


def test_a_store_going_offline_shows_within_its_stated_time(phone, cloud):
    """store-3 is kept in contact by a request loop (its heartbeat every
    0.5 s, as a sync service with [sync] status_interval_s = 0.5 sends
    it); stopped, the page says offline no sooner than offline_after_s
    after its last contact, and no later than offline_after_s + the page's
    refresh: measured by the cloud's clock on the answer the page drew, and
    by the test's as it saw the page change."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            post_status(cloud.url, "store-3", cloud.token_of("store-3"),
                        {"v": 1, "backlog": 0, "alerts": [], "details": {}}).raise_for_status()
            stop.wait(0.5)

    t = threading.Thread(target=beat, name="store-3-heartbeat", daemon=True)
    t.start()
    try:
        wait(lambda: store_of(dashboard(cloud.url), "store-3")["online"], 10, "store-3 online")
        p = phone()
        p.page.wait_for_selector('[data-store="store-3"][data-online="true"]')
    finally:
        stop.set()
        t.join(5)
    last = datetime.fromisoformat(store_of(dashboard(cloud.url), "store-3")["last_contact"]).timestamp()
    p.page.wait_for_selector('[data-store="store-3"][data-online="false"]',
                             timeout=(OFFLINE_AFTER_S + REFRESH_S + 5) * 1000)
    seen = time.time() - last
    answered = datetime.fromisoformat(p.page.get_attribute("#stores", "data-now")).timestamp() - last
    print(f"store-3 offline on the page: answered {answered:.2f} s, seen {seen:.2f} s after its last contact "
          f"(offline_after_s {OFFLINE_AFTER_S:g} + refresh {REFRESH_S:g} s)")
    assert OFFLINE_AFTER_S - 0.01 <= answered <= OFFLINE_AFTER_S + REFRESH_S + REQUEST_S
    assert seen <= OFFLINE_AFTER_S + REFRESH_S + REQUEST_S
    assert "门店离线" in p.card("store-3").locator('[data-key="offline"]').inner_text()


def test_the_page_says_so_when_the_cloud_itself_does_not_answer_and_recovers(phone, cloud, store2):
    p = phone(locale="en-US")
    page = p.page
    page.wait_for_selector('[data-store="store-2"]')
    assert page.locator("#banner").is_hidden()
    cloud.balancer.stop()  # the cloud's address answers nothing
    try:
        page.wait_for_selector("#banner:not([hidden])", timeout=(REFRESH_S + 7) * 1000)
        assert "The cloud does not answer" in page.inner_text("#banner")
        assert page.locator('[data-store="store-2"]').count() == 1, "the last figures stay on the screen"
    finally:
        cloud.balancer = Balancer([pr.url for pr in cloud.procs], cloud.workdir / "balancer.log", cloud.port).start()
    page.wait_for_selector("#banner", state="hidden", timeout=(REFRESH_S + 7) * 1000)


# ------------------------------------------------------------ heartbeat
def test_the_heartbeat_carries_the_backlog_and_an_alert_at_once_when_it_changes(cloud, broker, tmp_path):
    """A StatusReporter reporting every 60 s: a printer running out of
    paper reaches the cloud in about a second all the same, and so does its
    refill; what it cannot use is counted; a refused token fails, counted."""
    from restobox.bus import Bus
    from restobox.store_status import StatusReporter

    t0 = time.time()
    Day([(1, "kiosk", [KUNG_PAO], 3, None, "accepted")], t0, chain_today(t0)).write_outbox(tmp_path / "store.db")
    cfg = config.load(sync_config(tmp_path / "sync.toml", cloud, tmp_path, broker, "store-4", status_interval_s=60))
    cred = broker.creds["sync"]
    bus = Bus(device="sync", role="sync", host=broker.host, port=broker.port, username=cred.username,
              password=cred.password, keepalive=5, persistent=False, reconnect_max_s=1)
    rep = StatusReporter(cfg, bus, cursor=lambda: 0)
    printing = None
    try:
        rep.start()
        bus.start()
        assert bus.wait_connected(10)
        s4 = wait(lambda: (s := store_of(dashboard(cloud.url), "store-4"))["sync"]["reported_at"] and s, 10,
                  "the first heartbeat")
        assert s4["sync"]["backlog"] == 1 and 150 <= s4["sync"]["lag_s"] <= 240
        assert all(a["key"] != "printer_paper_out:receipt" for a in s4["alerts"])

        printing = Device(broker, "printing", role="printing")
        started = time.monotonic()
        printer(printing, "receipt", "paper_out")
        wait(lambda: any(a["key"] == "printer_paper_out:receipt" and a["severity"] == "critical"
                         for a in store_of(dashboard(cloud.url), "store-4")["alerts"]), 10, "the alert at the cloud")
        took = time.monotonic() - started
        printer(printing, "receipt", "ready")
        wait(lambda: all(a["key"] != "printer_paper_out:receipt"
                         for a in store_of(dashboard(cloud.url), "store-4")["alerts"]), 10, "the alert gone")
        print(f"an alert reached the cloud {took:.2f} s after the printer's status (heartbeat every 60 s)")
        assert took < 5
        assert rep.counters["status.sent"] >= 3

        printing.publish(topics.ALERTS, b"{not json")
        wait(lambda: rep.counters["status.bad_messages"] == 1, 5, "the bad message counted")
        assert rep.tick() == "sent"

        (tmp_path / "cloud.token").write_text("wrong\n")
        refused = StatusReporter(config.load(tmp_path / "sync.toml"), bus, cursor=lambda: 0)
        try:
            assert refused.tick() == "failed"
            assert refused.counters["status.cloud_unauthorized"] == 1 and refused.last_error.reason == \
                "cloud_unauthorized"
        finally:
            refused.stop()
    finally:
        rep.stop()
        bus.stop()
        if printing is not None:
            printing.close()


# ------------------------------------------------ a chain of many stores
MANY = tuple(f"s-{k:02d}" for k in range(1, 61))


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A chain of 60 stores (the demo's SQLite cloud, one process): s-07
    reports a critical alert, s-08 reports nothing wrong, the rest were
    never heard from (offline)."""
    demo = ChainCloud(tmp_path_factory.mktemp("many"), "sqlite", stores=MANY)
    demo.prepare()
    c = CloudProcess(demo.database, demo.workdir / "cloud.log").start()
    try:
        for sid in MANY:
            httpx.post(f"{c.url}/v1/admin/stores", json={"store_id": sid, "name": f"门店{sid[2:]}"},
                       headers=ChainCloud.admin(), timeout=10).raise_for_status()
        paper = {"key": "printer_paper_out:receipt", "severity": "critical", "zh": "打印机 receipt 缺纸。",
                 "en": "Printer receipt is out of paper.", "since": iso(time.time())}
        for sid, alerts in (("s-07", [paper]), ("s-08", [])):
            r = post_status(c.url, sid, demo.token_of(sid),
                            {"v": 1, "backlog": 0, "oldest_pending_at": None, "alerts": alerts, "details": {}})
            assert r.status_code == 200, r.text
        yield c
    finally:
        c.stop()


def stores_page(url: str, query: str = "") -> httpx.Response:
    return httpx.get(f"{url}/v1/dashboard/stores{query}", headers=ChainCloud.owner(), timeout=10)


def test_a_chain_of_many_stores_comes_a_page_at_a_time_those_needing_attention_first(many):
    first = stores_page(many.url).json()
    ids = [s["store_id"] for s in first["stores"]]
    assert (first["matched"], first["offset"], first["limit"], len(ids)) == (60, 0, 50, 50)
    assert first["totals"]["stores"] == 60 and first["totals"]["offline"] == 58  # over every store, not the page
    everyone = [s["store_id"] for s in stores_page(many.url, "?limit=1000").json()["stores"]]
    # the offline stores first, by id; then s-07 (a critical alert) before s-08 (nothing)
    assert everyone == [s for s in MANY if s not in ("s-07", "s-08")] + ["s-07", "s-08"]
    assert ids == everyone[:50]
    page = stores_page(many.url, "?limit=5&offset=55").json()
    assert [s["store_id"] for s in page["stores"]] == everyone[55:] and page["matched"] == 60
    found = stores_page(many.url, "?q=%E9%97%A8%E5%BA%975").json()  # "门店5": 门店50 .. 门店59
    assert sorted(s["store_id"] for s in found["stores"]) == [f"s-{k}" for k in range(50, 60)]
    assert found["matched"] == 10 and found["q"] == "门店5" and found["totals"]["stores"] == 60
    assert stores_page(many.url, "?q=S-0").json()["matched"] == 9  # ids too, in any case
    for query, reason in (("?limit=abc", "bad_limit"), ("?limit=1001", "bad_limit"), ("?offset=-1", "bad_offset"),
                          ("?q=" + "x" * 65, "bad_q")):
        r = stores_page(many.url, query)
        assert r.status_code == 400 and r.json()["error"] == reason, (query, r.text)
        assert r.json()["message"]


def test_the_phone_page_shows_more_stores_on_a_tap_and_finds_a_store_by_name(browser, many):
    p = Phone(browser, many.url)
    try:
        page = p.page
        cards = page.locator("#stores > li")
        expect(cards).to_have_count(50)
        assert "显示 50 / 60 家门店" in page.inner_text("#list-count")
        assert page.inner_text("#more-stores") == "再显示 10 家"
        assert p.card("s-07").count() == 0  # online, so after the 58 offline ones
        page.click("#more-stores")
        expect(cards).to_have_count(60)
        assert page.is_hidden("#more-stores")
        assert "sev-critical" in p.card("s-07").locator('[data-key="printer_paper_out:receipt"]').get_attribute("class")
        page.fill("#store-search", "门店5")
        expect(cards).to_have_count(10)
        assert "“门店5”：10 家门店" in page.inner_text("#list-count")
        page.fill("#store-search", "没有这家")
        expect(cards).to_have_count(0)
        assert "没有名称或编号含“没有这家”的门店" in page.inner_text("#list-count")
        assert yuan(0) in page.inner_text("#totals")  # the chain's totals stay whole
    finally:
        p.close()
