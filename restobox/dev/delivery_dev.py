"""A delivery platform (外卖聚合), simulated, for the chain's cloud, its tests
and the demo (docs/delivery.md; the protocol is restobox/delivery.py).

    restobox delivery-dev [--port 8730] [--db delivery-dev.db] [--app-id chain-1] --secret-file FILE
                          --webhook-url URL [--accept-timeout 120] [--platform mt]
                          [--webhook-retry 1,2,4,8,15,30]

The platform side of the open API for one chain app: every API call's
signature and timestamp are checked (401 ``bad_signature`` /
``stale_timestamp``), the order calls follow the order's state rules and
are idempotent, shops are opened and closed and their skus marked sold out.
Diners' orders (made through ``/_dev/orders``) become ``order.created``
webhooks to the chain's ``--webhook-url``, signed, retried after each wait
of ``--webhook-retry`` until answered ``200 {"code": 0}``, then given up;
an order still ``new`` after ``--accept-timeout`` seconds from its creation
is cancelled (``merchant_timeout``) with an ``order.cancelled`` webhook.
Everything (shops, orders, webhooks and their attempts, API calls, the fault
mode, counters) is kept in SQLite, so a restart loses nothing: webhooks not
yet delivered resume and accept windows keep counting from ``created_at``.

For tests and the demo (unsigned):

- ``POST /_dev/orders`` ``{"shop_id", "items": [OrderItem...], "note"?,
  "pickup_in_s"?, "delivery_fee"?, "customer"?}``: a diner orders in the
  app (409 ``shop_closed``, 409 ``sold_out`` with ``skus``);
- ``POST /_dev/orders/{pid}/cancel`` ``{"reason": "diner_cancelled",
  "message"?}``: the diner (or ``rider_unavailable``) cancels;
- ``GET /_dev/orders``, ``GET /_dev/orders/{pid}``: orders, their states,
  times and webhooks with attempts; ``GET /_dev/shops``; ``GET /_dev/calls``
  (every API call received); ``GET /_dev/stats``; ``GET /`` a page for a
  person watching;
- ``POST /_dev/fault`` ``{"mode": ..., "count": n, "slow_s": s}``, ``GET
  /_dev/fault``. Modes and what ``count`` counts (0: until changed; ``ok``
  resets): webhooks made: ``webhook_lost`` (never sent), ``webhook_repeat``
  (delivered 3 times although acknowledged), ``bad_signature`` (every
  attempt signed with another secret); webhook attempts: ``webhook_down``
  (the attempt is not made, as if the chain could not be reached, and counts
  as failed); signed API calls: ``api_fail`` (HTTP 500, nothing done),
  ``api_slow`` (the work done, the answer after ``slow_s``).
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import msgspec

from restobox import delivery
from restobox.delivery import Customer, Order, OrderCancelled, OrderCreated, OrderItem
from restobox.dev import simkit
from restobox.dev.simkit import CST, iso_cst, now_cst

log = logging.getLogger("restobox.dev.delivery_dev")

FAULTS: dict[str, tuple[str, ...]] = {
    "webhook": ("webhook_lost", "webhook_repeat", "bad_signature"),
    "attempt": ("webhook_down",),
    "api": ("api_fail", "api_slow"),
}
MODES = ("ok", *(m for ms in FAULTS.values() for m in ms))

WEBHOOK_RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
WEBHOOK_TIMEOUT_S = 5.0
REPEAT_DELIVERIES = 3  # webhook_repeat
REPEAT_GAP_S = 0.1
ACCEPT_TIMEOUT_S = 120.0
WRONG_SECRET = b"not-the-app-secret"  # bad_signature

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

NAMES = ("王**", "李**", "张**", "刘**", "陈**", "杨**", "赵**", "黄**")


class Fault(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: str = "ok"
    count: int = 0
    slow_s: float = 2.0


class NewOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A diner's order in the platform's app (POST /_dev/orders)."""

    shop_id: str
    items: Annotated[list[OrderItem], msgspec.Meta(min_length=1, max_length=100)]
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""
    pickup_in_s: Annotated[int, msgspec.Meta(ge=0, le=86_400)] = 1800
    delivery_fee: delivery.Fen = 0
    customer: Customer | None = None


class Refused(Exception):
    """A call the platform refuses: HTTP ``status``, ``code``, ``message`` (and ``extra`` fields)."""

    def __init__(self, code: str, message: str, status: int = 409, **extra) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


def _shop(shop_id: object) -> str:
    if not isinstance(shop_id, str) or not _ID.fullmatch(shop_id):
        raise Refused("bad_request", f"shop_id {str(shop_id)[:70]!r} is not 1 to 64 letters, digits, '_', '.' "
                                     "or '-'", 400)
    return shop_id


# --------------------------------------------------------------- store
class PlatformStore(simkit.SimStore):
    """The platform's records (simkit.SimStore: SQLite, one connection, used from the event loop)."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS shop (
            shop_id TEXT PRIMARY KEY, open INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS shop_status (
            id INTEGER PRIMARY KEY AUTOINCREMENT, shop_id TEXT NOT NULL, at TEXT NOT NULL, open INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS sold_out (
            shop_id TEXT NOT NULL, sku TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (shop_id, sku));
        CREATE TABLE IF NOT EXISTS counter (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS orders (
            pid TEXT PRIMARY KEY, shop_id TEXT NOT NULL, day_seq INTEGER NOT NULL, body TEXT NOT NULL,
            state TEXT NOT NULL, created_ts REAL NOT NULL, created_at TEXT NOT NULL,
            accepted_at TEXT, refused_at TEXT, ready_at TEXT, cancelled_at TEXT,
            refuse_reason TEXT, refuse_message TEXT, cancel_reason TEXT, cancel_message TEXT, cancelled_by TEXT);
        CREATE INDEX IF NOT EXISTS orders_new ON orders (state, created_ts);
        CREATE TABLE IF NOT EXISTS webhook (
            id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, pid TEXT NOT NULL,
            type TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, want INTEGER NOT NULL,
            bad_signature INTEGER NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, created_at TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS webhook_pid ON webhook (pid);
        CREATE TABLE IF NOT EXISTS webhook_attempt (
            id INTEGER PRIMARY KEY AUTOINCREMENT, webhook INTEGER NOT NULL, at TEXT NOT NULL,
            http_status INTEGER NOT NULL, answer TEXT NOT NULL, delivered INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS webhook_attempt_webhook ON webhook_attempt (webhook);
        CREATE TABLE IF NOT EXISTS api_call (
            id INTEGER PRIMARY KEY AUTOINCREMENT, method TEXT NOT NULL, path TEXT NOT NULL, body TEXT NOT NULL,
            status INTEGER NOT NULL, code TEXT NOT NULL, at TEXT NOT NULL);
    """

    def next(self, key: str) -> int:
        """The next number of counter ``key`` (1, 2, ...)."""
        return self.con.execute("INSERT INTO counter (key, value) VALUES (?, 1) ON CONFLICT (key) "
                                "DO UPDATE SET value = value + 1 RETURNING value", (key,)).fetchone()[0]

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out["webhooks_pending"] = self.con.execute(
            "SELECT COUNT(*) FROM webhook WHERE state = 'pending'").fetchone()[0]
        out["orders_new"] = self.con.execute("SELECT COUNT(*) FROM orders WHERE state = 'new'").fetchone()[0]
        return out

    def order(self, pid: str) -> sqlite3.Row | None:
        return self.con.execute("SELECT * FROM orders WHERE pid = ?", (pid,)).fetchone()

    def update(self, pid: str, **cols) -> sqlite3.Row:
        sets = ", ".join(f"{k} = ?" for k in cols)
        self.con.execute(f"UPDATE orders SET {sets} WHERE pid = ?", (*cols.values(), pid))
        return self.order(pid)

    def shop(self, shop_id: str) -> sqlite3.Row:
        """The shop, made (open) when first named."""
        self.con.execute("INSERT OR IGNORE INTO shop (shop_id, open, created_at) VALUES (?, 1, ?)",
                         (shop_id, now_cst()))
        return self.con.execute("SELECT * FROM shop WHERE shop_id = ?", (shop_id,)).fetchone()

    def sold_out(self, shop_id: str) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT sku FROM sold_out WHERE shop_id = ? ORDER BY sku",
                                               (shop_id,))]

    def webhook(self, wid: int) -> sqlite3.Row | None:
        return self.con.execute("SELECT * FROM webhook WHERE id = ?", (wid,)).fetchone()


# ------------------------------------------------------------ platform
class Platform(simkit.Simulator):
    """The simulated platform: its records, its fault mode, its webhooks and accept windows."""

    store: PlatformStore

    def __init__(self, db_path: str | Path, secret: bytes, app_id: str, *, webhook_url: str,
                 accept_timeout_s: float = ACCEPT_TIMEOUT_S, platform: str = "mt",
                 webhook_retry: tuple[float, ...] = WEBHOOK_RETRY_S) -> None:
        super().__init__(PlatformStore(db_path), Fault, log)
        self.secret = secret
        self.app_id = app_id
        self.webhook_url = webhook_url
        self.accept_timeout_s = accept_timeout_s
        self.prefix = platform.upper()
        self.webhook_retry = tuple(webhook_retry)

    # ---- faults
    def take_fault(self, kind: str) -> str | None:
        """The fault mode that applies to this event of ``kind`` (webhook,
        attempt, api), if any; a counted one is spent by it."""
        f = self.fault
        if f.mode not in FAULTS[kind]:
            return None
        return self.spend_fault(f.mode, kind)

    # ---- orders
    def create(self, new: NewOrder) -> sqlite3.Row:
        """A diner's order: refused if the shop is closed or a sku sold out;
        else kept (state new) with its order.created webhook."""
        shop_id = _shop(new.shop_id)
        for item in new.items:
            for o in item.options:
                if not _ID.fullmatch(o.sku):
                    raise Refused("bad_request", f"option sku {o.sku[:70]!r} is not 1 to 64 letters, digits, "
                                                 "'_', '.' or '-'", 400)
            if not _ID.fullmatch(item.sku):
                raise Refused("bad_request", f"sku {item.sku[:70]!r} is not 1 to 64 letters, digits, '_', '.' "
                                             "or '-'", 400)
        store = self.store
        with store.tx():
            shop = store.shop(shop_id)
            if not shop["open"]:
                raise Refused("shop_closed", f"shop {shop_id} is closed: the app takes no orders for it")
            out = set(store.sold_out(shop_id))
            skus = sorted({i.sku for i in new.items if i.sku in out}
                          | {o.sku for i in new.items for o in i.options if o.sku in out})
            if skus:
                raise Refused("sold_out", f"sold out at shop {shop_id}: {', '.join(skus)}", skus=skus)
            ts = time.time()
            now = datetime.fromtimestamp(ts, CST).replace(microsecond=0)
            day = now.strftime("%Y%m%d")
            pid = f"{self.prefix}{day}{store.next(f'pid:{day}'):06d}"
            items_total = sum(i.line_total for i in new.items)
            order = Order(platform_order_id=pid, shop_id=shop_id, day_seq=store.next(f"seq:{shop_id}:{day}"),
                          items=new.items, items_total=items_total, delivery_fee=new.delivery_fee,
                          total=items_total + new.delivery_fee, note=new.note,
                          pickup_at=now + timedelta(seconds=new.pickup_in_s), created_at=now,
                          customer=new.customer or Customer(
                              name_masked=NAMES[secrets.randbelow(len(NAMES))],
                              phone_masked=f"1{secrets.randbelow(90) + 30}****{secrets.randbelow(10000):04d}"))
            store.con.execute(
                "INSERT INTO orders (pid, shop_id, day_seq, body, state, created_ts, created_at) "
                "VALUES (?, ?, ?, ?, 'new', ?, ?)",
                (pid, shop_id, order.day_seq, delivery.encode(order).decode(), ts, now.isoformat()))
            wid = self._webhook(pid, OrderCreated(event_id=_event_id(), shop_id=shop_id, order=order))
            store.count("orders.created")
        log.info("order %s for shop %s (#%d, %d fen)", pid, shop_id, order.day_seq, order.total)
        self._send(wid)
        return store.order(pid)

    def known(self, pid: str) -> sqlite3.Row:
        """The order (past its accept window: cancelled first), or 404 order_not_found."""
        o = self.store.order(pid)
        if o is None:
            raise Refused("order_not_found", f"no order {pid[:70]}", 404)
        return self.fresh(o)

    def fresh(self, o: sqlite3.Row) -> sqlite3.Row:
        if o["state"] == "new" and time.time() >= o["created_ts"] + self.accept_timeout_s:
            o = self.cancel_by_platform(o, "merchant_timeout",
                                        f"the shop did not accept the order within {self.accept_timeout_s:g} s")
            self.store.count("orders.timed_out")
        return o

    def cancel_by_platform(self, o: sqlite3.Row, reason: str, message: str) -> sqlite3.Row:
        """Cancelled by the platform (the diner, the rider, the accept
        window) with its order.cancelled webhook; already cancelled: as it is."""
        store = self.store
        with store.tx():
            o = store.order(o["pid"])
            if o["state"] == "cancelled":
                return o
            o = store.update(o["pid"], state="cancelled", cancelled_at=now_cst(), cancel_reason=reason,
                             cancel_message=message, cancelled_by="platform")
            wid = self._webhook(o["pid"], OrderCancelled(event_id=_event_id(), shop_id=o["shop_id"],
                                                         platform_order_id=o["pid"], reason=reason,
                                                         message=message))
            store.count(f"cancelled.{reason}")
        log.info("order %s cancelled: %s", o["pid"], reason)
        self._send(wid)
        return o

    async def expire_loop(self) -> None:
        """Cancels the orders still new past their accept window, from their created_at (restarts too)."""
        tick = min(0.2, max(0.02, self.accept_timeout_s / 10))
        while True:
            due = self.store.con.execute("SELECT * FROM orders WHERE state = 'new' AND created_ts <= ?",
                                         (time.time() - self.accept_timeout_s,)).fetchall()
            for o in due:
                try:
                    self.fresh(o)
                except Exception:  # noqa: BLE001 - logged, the loop goes on
                    log.exception("cancelling %s past its accept window", o["pid"])
            await asyncio.sleep(tick)

    # ---- API calls (signed; each returns the answer's fields or raises Refused)
    def accept(self, pid: str, f: dict) -> dict:
        o = self.known(pid)
        if o["state"] == "new":
            o = self.store.update(pid, state="accepted", accepted_at=now_cst())
            self.store.count("orders.accepted")
        elif o["state"] == "cancelled":
            raise Refused("order_cancelled", f"{pid} was cancelled ({o['cancel_reason']})", state=o["state"])
        elif o["state"] == "refused":
            raise Refused("order_refused", f"{pid} was refused ({o['refuse_reason']})", state=o["state"])
        return {"platform_order_id": pid, "state": o["state"]}

    def refuse(self, pid: str, f: dict) -> dict:
        reason = f.get("reason")
        if reason not in delivery.REFUSE_REASONS:
            raise Refused("bad_request", f"reason is one of {', '.join(delivery.REFUSE_REASONS)}", 400)
        message = _text(f, "message")
        o = self.known(pid)
        if o["state"] == "new":
            o = self.store.update(pid, state="refused", refused_at=now_cst(), refuse_reason=reason,
                                  refuse_message=message)
            self.store.count("orders.refused")
        elif o["state"] in ("accepted", "ready"):
            raise Refused("order_accepted", f"{pid} is {o['state']}: cancel it instead of refusing it",
                          state=o["state"])
        return {"platform_order_id": pid, "state": o["state"]}

    def ready(self, pid: str, f: dict) -> dict:
        o = self.known(pid)
        if o["state"] == "accepted":
            o = self.store.update(pid, state="ready", ready_at=now_cst())
            self.store.count("orders.ready")
        elif o["state"] == "new":
            raise Refused("order_not_accepted", f"{pid} is not accepted yet", state=o["state"])
        elif o["state"] == "cancelled":
            raise Refused("order_cancelled", f"{pid} was cancelled ({o['cancel_reason']})", state=o["state"])
        elif o["state"] == "refused":
            raise Refused("order_refused", f"{pid} was refused ({o['refuse_reason']})", state=o["state"])
        return {"platform_order_id": pid, "state": o["state"]}

    def cancel(self, pid: str, f: dict) -> dict:
        """The merchant cancels an accepted (or ready) order; no webhook: the chain made it."""
        reason = f.get("reason")
        if not isinstance(reason, str) or not _ID.fullmatch(reason):
            raise Refused("bad_request", "reason is a word of 1 to 64 letters, digits, '_', '.' or '-'", 400)
        message = _text(f, "message")
        o = self.known(pid)
        if o["state"] in ("accepted", "ready"):
            o = self.store.update(pid, state="cancelled", cancelled_at=now_cst(), cancel_reason=reason,
                                  cancel_message=message, cancelled_by="merchant")
            self.store.count("orders.cancelled_by_merchant")
        elif o["state"] == "new":
            raise Refused("order_not_accepted", f"{pid} is not accepted: refuse it instead", state=o["state"])
        elif o["state"] == "refused":
            raise Refused("order_refused", f"{pid} was refused ({o['refuse_reason']})", state=o["state"])
        return {"platform_order_id": pid, "state": o["state"]}

    def get_order(self, pid: str, f: dict) -> dict:
        o = self.known(pid)
        return {"order": msgspec.json.decode(o["body"]), "state": o["state"], "cancel_reason": o["cancel_reason"],
                "refuse_reason": o["refuse_reason"]}

    def shop_status(self, shop_id: str, f: dict) -> dict:
        shop_id = _shop(shop_id)
        is_open = f.get("open")
        if not isinstance(is_open, bool):
            raise Refused("bad_request", "open is true or false", 400)
        with self.store.tx():
            self.store.shop(shop_id)
            self.store.con.execute("UPDATE shop SET open = ? WHERE shop_id = ?", (int(is_open), shop_id))
            self.store.con.execute("INSERT INTO shop_status (shop_id, at, open) VALUES (?, ?, ?)",
                                   (shop_id, now_cst(), int(is_open)))
        return {"shop_id": shop_id, "open": is_open}

    def stock(self, shop_id: str, f: dict) -> dict:
        shop_id = _shop(shop_id)
        skus = f.get("skus")
        if not isinstance(skus, dict) or len(skus) > 1000 or not all(
                isinstance(k, str) and _ID.fullmatch(k) and isinstance(v, bool) for k, v in skus.items()):
            raise Refused("bad_request", 'skus is an object of sku -> true (on sale) or false (sold out), '
                                         'e.g. {"mt-rice": false}', 400)
        con = self.store.con
        with self.store.tx():
            self.store.shop(shop_id)
            at = now_cst()
            for sku, on_sale in skus.items():
                if on_sale:
                    con.execute("DELETE FROM sold_out WHERE shop_id = ? AND sku = ?", (shop_id, sku))
                else:
                    con.execute("INSERT OR IGNORE INTO sold_out (shop_id, sku, at) VALUES (?, ?, ?)",
                                (shop_id, sku, at))
        return {"shop_id": shop_id, "sold_out": self.store.sold_out(shop_id)}

    # ---- webhooks
    def _webhook(self, pid: str, msg: OrderCreated | OrderCancelled) -> int | None:
        """Keep the webhook of ``msg`` (in the caller's transaction); its id,
        or None when the fault mode loses it."""
        mode = self.take_fault("webhook")
        state = "lost" if mode == "webhook_lost" else "pending"
        cur = self.store.con.execute(
            "INSERT INTO webhook (event_id, pid, type, body, state, want, bad_signature, next_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (msg.event_id, pid, type(msg).__struct_config__.tag, delivery.encode(msg).decode(), state,
             REPEAT_DELIVERIES if mode == "webhook_repeat" else 1, int(mode == "bad_signature"), time.time(),
             now_cst()))
        self.store.count("webhooks.made")
        if mode == "webhook_lost":
            self.store.count("webhooks.lost")
            return None
        return cur.lastrowid

    def _send(self, wid: int | None) -> None:
        if wid is not None:
            self.spawn(f"webhook-{wid}", self.deliver(wid))

    async def deliver(self, wid: int) -> None:
        while True:
            w = self.store.webhook(wid)
            if w is None or w["state"] != "pending":
                return
            delay = w["next_at"] - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.attempt(wid)
            except Exception:  # noqa: BLE001 - logged; tried again after a second
                log.exception("webhook %d", wid)
                await asyncio.sleep(1)

    async def attempt(self, wid: int) -> None:
        """One attempt: delivered when answered HTTP 200 {"code": 0};
        otherwise the next one is scheduled, or it is given up."""
        import httpx

        w = self.store.webhook(wid)
        if self.take_fault("attempt") == "webhook_down":
            status, answer, ok = 0, "webhook_down: not sent (the chain could not be reached)", False
        else:
            body = w["body"].encode()
            headers = delivery.signed_headers(self.app_id, WRONG_SECRET if w["bad_signature"] else self.secret,
                                              body)
            headers["Content-Type"] = "application/json"
            try:
                r = await self.http.post(self.webhook_url, content=body, headers=headers)
                status, answer = r.status_code, r.text[:200]
                try:
                    got = msgspec.json.decode(r.content)
                    ok = status == 200 and isinstance(got, dict) and got.get("code") == 0 \
                        and not isinstance(got.get("code"), bool)
                except msgspec.DecodeError:
                    ok = False
            except httpx.HTTPError as exc:
                status, answer, ok = 0, f"{type(exc).__name__}: {exc}"[:200], False
        store, con = self.store, self.store.con
        now = time.time()
        with store.tx():
            con.execute("INSERT INTO webhook_attempt (webhook, at, http_status, answer, delivered) "
                        "VALUES (?, ?, ?, ?, ?)", (wid, iso_cst(now), status, answer, int(ok)))
            store.count("webhook.attempts")
            if ok:
                store.count("webhook.deliveries")
                done = w["deliveries"] + 1 >= w["want"]
                con.execute("UPDATE webhook SET deliveries = deliveries + 1, failures = 0, state = ?, next_at = ? "
                            "WHERE id = ?", ("delivered" if done else "pending", now + REPEAT_GAP_S, wid))
                if done:
                    store.count("webhook.delivered")
                return
            failures = w["failures"] + 1
            if failures > len(self.webhook_retry):
                con.execute("UPDATE webhook SET failures = ?, state = 'given_up' WHERE id = ?", (failures, wid))
                store.count("webhook.given_up")
                log.warning("webhook %s (%s of %s) given up after %d attempts (last: %s %s)", w["event_id"],
                            w["type"], w["pid"], failures, status, answer[:80])
                return
            con.execute("UPDATE webhook SET failures = ?, next_at = ? WHERE id = ?",
                        (failures, now + self.webhook_retry[failures - 1], wid))

    def resume(self) -> None:
        """After a start: the webhooks still to deliver, the accept windows watched."""
        for (wid,) in self.store.con.execute("SELECT id FROM webhook WHERE state = 'pending'").fetchall():
            self._send(wid)
        self.spawn("expire", self.expire_loop())

    # ---- the dev views
    def dev_order(self, o: sqlite3.Row) -> dict:
        con = self.store.con
        hooks = []
        for w in con.execute("SELECT * FROM webhook WHERE pid = ? ORDER BY id", (o["pid"],)).fetchall():
            attempts = [dict(a) for a in con.execute(
                "SELECT at, http_status, answer, delivered FROM webhook_attempt WHERE webhook = ? ORDER BY id",
                (w["id"],))]
            hooks.append({"event_id": w["event_id"], "type": w["type"], "state": w["state"], "want": w["want"],
                          "deliveries": w["deliveries"], "bad_signature": bool(w["bad_signature"]),
                          "created_at": w["created_at"], "attempts": attempts})
        return {"platform_order_id": o["pid"], "shop_id": o["shop_id"], "day_seq": o["day_seq"],
                "state": o["state"], "order": msgspec.json.decode(o["body"]), "created_at": o["created_at"],
                "accepted_at": o["accepted_at"], "refused_at": o["refused_at"], "ready_at": o["ready_at"],
                "cancelled_at": o["cancelled_at"], "refuse_reason": o["refuse_reason"],
                "refuse_message": o["refuse_message"], "cancel_reason": o["cancel_reason"],
                "cancel_message": o["cancel_message"], "cancelled_by": o["cancelled_by"], "webhooks": hooks}

    def dev_shops(self) -> dict:
        con = self.store.con
        out = {}
        for s in con.execute("SELECT * FROM shop ORDER BY shop_id").fetchall():
            out[s["shop_id"]] = {
                "open": bool(s["open"]), "sold_out": self.store.sold_out(s["shop_id"]),
                "status_log": [[r[0], bool(r[1])] for r in con.execute(
                    "SELECT at, open FROM shop_status WHERE shop_id = ? ORDER BY id", (s["shop_id"],))]}
        return out


def _event_id() -> str:
    return "evt-" + secrets.token_hex(12)


def _text(f: dict, name: str, max_len: int = 200) -> str:
    v = f.get(name, "")
    if v is None:
        return ""
    if not isinstance(v, str) or len(v) > max_len:
        raise Refused("bad_request", f"{name} is a text of at most {max_len} characters", 400)
    return v


# ---------------------------------------------------------------- page
_STYLE = """body{font-family:system-ui,"PingFang SC","Noto Sans CJK SC",sans-serif;margin:1rem;color:#222}
table{border-collapse:collapse;margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f2f2f2}.new{background:#fff6d5}.accepted{background:#dff0ff}.ready{background:#dcf5dc}
.refused,.cancelled{background:#f4dede}.closed{color:#a00}.muted{color:#777}"""


def page(p: Platform) -> str:
    e = html.escape
    rows = []
    for shop_id, s in p.dev_shops().items():
        state = "open 营业" if s["open"] else '<span class="closed">closed 休息</span>'
        rows.append(f"<tr><td>{e(shop_id)}</td><td>{state}</td><td>{e(', '.join(s['sold_out'])) or '—'}</td></tr>")
    shops = ("<table id=shops><tr><th>shop</th><th>status</th><th>sold out 售罄</th></tr>"
             + "".join(rows) + "</table>") if rows else '<p class="muted">no shops yet</p>'
    rows = []
    for o in p.store.con.execute("SELECT * FROM orders ORDER BY created_ts DESC, pid DESC LIMIT 200").fetchall():
        order = msgspec.json.decode(o["body"])
        items = ", ".join(f"{i['name'] or i['sku']} ×{i['qty']}" for i in order["items"])
        why = o["cancel_reason"] or o["refuse_reason"] or ""
        hooks = p.store.con.execute("SELECT type, state FROM webhook WHERE pid = ? ORDER BY id",
                                    (o["pid"],)).fetchall()
        sent = "; ".join(f"{h['type']}: {h['state']}" for h in hooks)
        rows.append(f'<tr class="{e(o["state"])}"><td>{e(o["pid"])}</td><td>{e(o["shop_id"])}</td>'
                    f'<td>#{o["day_seq"]}</td><td>{e(o["created_at"][11:19])}</td><td>{e(items)}</td>'
                    f'<td>¥{order["total"] // 100}.{order["total"] % 100:02d}</td><td>{e(o["state"])}</td>'
                    f'<td>{e(why)}</td><td class="muted">{e(sent)}</td></tr>')
    orders = ("<table id=orders><tr><th>order</th><th>shop</th><th>#</th><th>at</th><th>items</th><th>total</th>"
              "<th>state</th><th>why</th><th>webhooks</th></tr>" + "".join(rows) + "</table>") \
        if rows else '<p class="muted">no orders yet</p>'
    fault = p.fault.mode if p.fault.mode == "ok" else f"{p.fault.mode} ({p.fault.count or '∞'})"
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">'
            f"<title>{e(p.prefix)} delivery platform (dev)</title><style>{_STYLE}</style></head><body>"
            f"<h1>{e(p.prefix)} 外卖平台 delivery platform (dev)</h1>"
            f'<p class="muted">app {e(p.app_id)} · webhooks to {e(p.webhook_url)} · accept window '
            f"{p.accept_timeout_s:g} s · fault {e(fault)}</p><h2>Shops</h2>{shops}<h2>Orders</h2>{orders}"
            f"</body></html>")


# ----------------------------------------------------------------- app
def make_app(db_path: str | Path, secret: bytes, app_id: str = "chain-1", *, webhook_url: str,
             accept_timeout_s: float = ACCEPT_TIMEOUT_S, platform: str = "mt",
             webhook_retry: tuple[float, ...] = WEBHOOK_RETRY_S):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    p = Platform(db_path, secret, app_id, webhook_url=webhook_url, accept_timeout_s=accept_timeout_s,
                 platform=platform, webhook_retry=webhook_retry)
    store = p.store

    def api(name: str, handler, arg: str):
        async def endpoint(request: Request):
            store.count(f"api.{name}")
            body = await request.body()
            reason = delivery.verify(secret, request.headers, body, app_id=app_id)
            mode, slow_s = None, p.fault.slow_s
            if reason is not None:
                status, fields = 401, {"code": reason, "message": delivery.REASONS[reason]}
            elif (mode := p.take_fault("api")) == "api_fail":
                status, fields = 500, {"code": "internal_error", "message": "the platform failed (api_fail): "
                                                                            "nothing was done, try again"}
            else:
                try:
                    f: dict = {}
                    if request.method == "POST":
                        try:
                            f = msgspec.json.decode(body) if body.strip() else {}
                        except msgspec.DecodeError as exc:
                            raise Refused("bad_request", f"the body is not JSON: {exc}", 400) from None
                        if not isinstance(f, dict):
                            raise Refused("bad_request", "the body is not a JSON object", 400)
                    status, fields = 200, {"code": 0, **handler(request.path_params[arg], f)}
                except Refused as exc:
                    status, fields = exc.status, {"code": exc.code, "message": exc.message, **exc.extra}
            if status != 200:
                store.count(f"refused.{fields['code']}")
            store.con.execute("INSERT INTO api_call (method, path, body, status, code, at) VALUES (?, ?, ?, ?, ?, ?)",
                              (request.method, request.url.path, body[:2000].decode("utf-8", "replace"), status,
                               str(fields["code"]), now_cst()))
            if mode == "api_slow":
                await asyncio.sleep(slow_s)
            return JSONResponse(fields, status)
        return endpoint

    def dev_refused(exc: Refused):
        store.count(f"refused.dev_{exc.code}")
        return JSONResponse({"code": exc.code, "message": exc.message, **exc.extra}, exc.status)

    async def dev_new_order(request: Request):
        try:
            o = p.create(await simkit.dev_body(request, NewOrder, Refused))
        except Refused as exc:
            return dev_refused(exc)
        return JSONResponse(p.dev_order(o))

    async def dev_cancel(request: Request):
        pid = request.path_params["pid"]
        try:
            got = await simkit.dev_body(request, dict, Refused)
            reason = got.get("reason", "diner_cancelled")
            if reason not in ("diner_cancelled", "rider_unavailable"):
                raise Refused("bad_request", "reason is diner_cancelled or rider_unavailable", 400)
            message = _text(got, "message")
            o = p.known(pid)
            if o["state"] == "refused":
                raise Refused("order_refused", f"{pid} was refused ({o['refuse_reason']})", state=o["state"])
        except Refused as exc:
            return dev_refused(exc)
        o = p.cancel_by_platform(o, reason, message or ("the diner cancelled" if reason == "diner_cancelled"
                                                        else "no rider could take the order"))
        return JSONResponse(p.dev_order(o))

    async def dev_orders(request: Request):
        rows = store.con.execute("SELECT * FROM orders ORDER BY created_ts, pid").fetchall()
        return JSONResponse([p.dev_order(p.fresh(o)) for o in rows])

    async def dev_one_order(request: Request):
        try:
            return JSONResponse(p.dev_order(p.known(request.path_params["pid"])))
        except Refused as exc:
            return dev_refused(exc)

    async def dev_shops(request: Request):
        return JSONResponse(p.dev_shops())

    async def dev_calls(request: Request):
        return JSONResponse([{**r, "code": 0 if r["code"] == "0" else r["code"]} for r in map(dict, store.con.execute(
            "SELECT method, path, body, status, code, at FROM api_call ORDER BY id"))])

    async def dev_stats(request: Request):
        return JSONResponse(store.stats())

    async def get_fault(request: Request):
        return JSONResponse(msgspec.to_builtins(p.fault))

    async def set_fault(request: Request):
        try:
            f = await simkit.fault_body(request, Fault, MODES, Refused)
        except Refused as exc:
            return dev_refused(exc)
        p.set_fault(f if f.mode != "ok" else Fault())
        log.info("fault mode %s", msgspec.to_builtins(p.fault))
        return JSONResponse(msgspec.to_builtins(p.fault))

    async def home(request: Request):
        return HTMLResponse(page(p))

    lifespan = p.lifespan(timeout_s=WEBHOOK_TIMEOUT_S, user_agent="restobox-delivery-dev/1")
    o = delivery.API_PREFIX
    app = Starlette(lifespan=lifespan, routes=[
        Route(o + "/orders/{pid}/accept", api("accept", p.accept, "pid"), methods=["POST"]),
        Route(o + "/orders/{pid}/refuse", api("refuse", p.refuse, "pid"), methods=["POST"]),
        Route(o + "/orders/{pid}/ready", api("ready", p.ready, "pid"), methods=["POST"]),
        Route(o + "/orders/{pid}/cancel", api("cancel", p.cancel, "pid"), methods=["POST"]),
        Route(o + "/orders/{pid}", api("order", p.get_order, "pid"), methods=["GET"]),
        Route(o + "/shops/{shop_id}/status", api("shop_status", p.shop_status, "shop_id"), methods=["POST"]),
        Route(o + "/shops/{shop_id}/stock", api("stock", p.stock, "shop_id"), methods=["POST"]),
        Route("/_dev/orders", dev_new_order, methods=["POST"]),
        Route("/_dev/orders", dev_orders, methods=["GET"]),
        Route("/_dev/orders/{pid}", dev_one_order, methods=["GET"]),
        Route("/_dev/orders/{pid}/cancel", dev_cancel, methods=["POST"]),
        Route("/_dev/shops", dev_shops, methods=["GET"]),
        Route("/_dev/calls", dev_calls, methods=["GET"]),
        Route("/_dev/stats", dev_stats, methods=["GET"]),
        Route("/_dev/fault", get_fault, methods=["GET"]),
        Route("/_dev/fault", set_fault, methods=["POST"]),
        Route("/", home, methods=["GET"]),
    ])
    app.state.platform = p
    return app


def serve(port: int, db_path: str, secret: bytes, app_id: str, *, webhook_url: str, host: str = "127.0.0.1",
          accept_timeout_s: float = ACCEPT_TIMEOUT_S, platform: str = "mt",
          webhook_retry: tuple[float, ...] = WEBHOOK_RETRY_S) -> int:
    app = make_app(db_path, secret, app_id, webhook_url=webhook_url, accept_timeout_s=accept_timeout_s,
                   platform=platform, webhook_retry=webhook_retry)
    log.info("delivery platform %s (dev) on http://%s:%d for app %s: webhooks to %s, accept window %g s (%s)",
             platform.upper(), host, port, app_id, webhook_url, accept_timeout_s, db_path)
    return simkit.run(app, host, port)
