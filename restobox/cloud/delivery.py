"""Delivery platforms' orders, routed to the store's kitchen (外卖聚合).

A platform posts its orders and cancellations to
``POST /v1/delivery/<platform>/webhook`` (signed: restobox/delivery.py).
The cloud keeps each webhook once (by the platform's ``event_id``), finds the
store by the platform's shop id (``delivery_shop``) and our items by its skus
(``delivery_sku``), and puts the order, as an ``OrderSubmit`` of channel
``delivery``, in the store's delivery stream. The store's sync service
long-polls that stream (``GET /v1/stores/<store>/delivery``), submits the
order to its hub like any ordering device, and posts the hub's answer
(``POST /v1/stores/<store>/delivery/<order_id>/answer``). Only then does the
cloud accept the order at the platform: **no platform order is accepted that
the kitchen cannot see**. What the hub refuses (an item sold out, a price it
does not agree with) is refused at the platform with the reason.

The cloud refuses at once an order for a store it has not heard from for
``offline_after_s`` (and closes the store's shops on every platform until it
is back), and refuses an order the store has not answered within the
platform's ``accept_within_s``; if the store then accepts it after all, its
answer tells it to void the order (the kitchen stops making it).

The store's events drive the rest: ``order.ready`` of a delivery order tells
the platform it is ready for the rider, ``order.voided`` cancels it there,
``menu.eighty_six`` / ``menu.un_eighty_six`` mark the item's skus sold out or
back on every platform the store sells on (库存同步). A cancellation from the
platform goes down the same stream; the sync service voids the order at the
hub.

Calls to platforms are rows of ``platform_call``, made by whichever cloud
process claims them (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), in order per
platform order, retried with backoff until the platform answers.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

import msgspec

from restobox import delivery as dp
from restobox.cloud.chain import Chain, Refused
from restobox.cloud.config import CloudSection

log = logging.getLogger("restobox.cloud.delivery")

ORDER_NS = uuid.UUID("6f1c2a4e-6d2b-4f58-9a57-0b2c1d7e5a10")
"""A platform order's id in the store: uuid5 of ``<platform>:<platform order id>``
(the same order is the same id everywhere, however often it comes)."""
STREAM_BATCH = 50
CALL_BATCH = 20
CALL_LEASE_S = 30.0
"""A claimed call not finished within this is claimed again (its process died)."""
SWEEP_S = 0.5

# the hub's refusal reasons as a platform's (restobox/contract.py REASONS)
REFUSE_AS = {"sold_out": "sold_out", "item_unavailable": "sold_out", "out_of_stock": "sold_out",
             "unknown_item": "sold_out", "unknown_modifier": "sold_out", "price_mismatch": "price_mismatch",
             "store_closed": "closed", "offline": "closed", "timeout": "busy", "busy": "busy"}


def order_id_for(platform: str, pid: str) -> str:
    return str(uuid.uuid5(ORDER_NS, f"{platform}:{pid}"))


class Answer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/stores/<store>/delivery/<order_id>/answer``: what the hub said."""

    accepted: bool
    number: int | None = None
    reason: str = ""
    message: str = ""


class Hooks:
    """The delivery side of one cloud process: the webhook, the stores'
    stream and answers, the events' consequences, and two background
    threads (deadlines and shops' status; calls to platforms)."""

    def __init__(self, chain: Chain, cfg: CloudSection, local_wake: Callable[[str], None]) -> None:
        self.chain = chain
        self.cfg = cfg
        self.local_wake = local_wake
        self.platforms = {p.name: p for p in cfg.platform}
        self._secrets: dict[str, bytes] = {}
        self._clients: dict[str, dp.PlatformClient] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        for name in self.platforms:  # a secret that cannot be read stops the cloud at start, with the file named
            self.secret(name)

    # ------------------------------------------------------------ plumbing
    def secret(self, platform: str) -> bytes:
        s = self._secrets.get(platform)
        if s is None:
            s = self._secrets[platform] = self.platforms[platform].secret()
        return s

    def client(self, platform: str) -> dp.PlatformClient:
        c = self._clients.get(platform)
        if c is None:
            p = self.platforms[platform]
            c = self._clients[platform] = dp.PlatformClient(p.url, p.app_id, self.secret(platform),
                                                            timeout=p.timeout_s)
        return c

    def _message(self, store_id: str, kind: str, body: dict) -> None:
        """Inside a transaction: the next message of the store's delivery stream."""
        ch = self.chain
        (seq,) = ch.sql("UPDATE chain_store SET down_seq = down_seq + 1 WHERE store_id = ? RETURNING down_seq",
                        (store_id,))[0]
        ch.sql("INSERT INTO store_message (store_id, seq, kind, body, created_at) VALUES (?, ?, ?, ?, ?)",
               (store_id, seq, kind, msgspec.json.encode(body).decode(), ch.clock()))
        ch.wake(store_id)

    def _call(self, platform: str, action: str, target: str, body: dict) -> None:
        """Inside a transaction: a call the platform must get."""
        now = self.chain.clock()
        self.chain.sql("INSERT INTO platform_call (platform, action, target, body, due_at, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (platform, action, target, msgspec.json.encode(body).decode(),
                                                    now, now))

    def _online(self, last_contact: float | None) -> bool:
        return last_contact is not None and self.chain.clock() - last_contact <= self.cfg.offline_after_s

    # ------------------------------------------------------------- webhook
    def webhook(self, platform: str, headers, body: bytes) -> tuple[int, dict]:
        """(HTTP status, answer) for a platform's webhook. 200 only once it
        is kept; a webhook seen before is answered 200 again."""
        if platform not in self.platforms:
            self.chain.count("delivery.unknown_platform")
            return 404, {"code": "unknown_platform", "message": f"no platform {platform!r} in this cloud's config"}
        why = dp.verify(self.secret(platform), headers, body, self.chain.clock(),
                        app_id=self.platforms[platform].app_id)
        if why:
            self.chain.count(f"delivery.{why}")
            log.warning("platform %s: a webhook refused: %s", platform, dp.REASONS.get(why, why))
            return 401, {"code": why, "message": dp.REASONS.get(why, why)}
        try:
            msg = dp.decode_webhook(body)
        except dp.BadMessage as exc:
            self.chain.count(f"delivery.{exc.reason}")
            log.warning("platform %s: a webhook that cannot be used: %s", platform, exc)
            # answered 200: the same body would be refused forever; counted and logged for people
            return 200, {"code": 0, "ignored": exc.reason, "message": exc.words}
        with self.chain.tx():
            fresh = self.chain.sql("INSERT INTO delivery_webhook (platform, event_id, received_at) VALUES (?, ?, ?) "
                                   "ON CONFLICT (platform, event_id) DO NOTHING RETURNING event_id",
                                   (platform, msg.event_id, self.chain.clock()))
            if not fresh:
                self.chain.count("delivery.webhook_repeat")
                return 200, {"code": 0}
            if isinstance(msg, dp.OrderCreated):
                store = self._created(platform, msg)
            else:
                store = self._cancelled(platform, msg)
        if store:
            self.local_wake(store)
        return 200, {"code": 0}

    def _created(self, platform: str, msg: dp.OrderCreated) -> str | None:
        ch, o = self.chain, msg.order
        pid = o.platform_order_id
        shop = ch.sql("SELECT s.store_id, c.last_contact FROM delivery_shop s JOIN chain_store c "
                      "ON c.store_id = s.store_id WHERE s.platform = ? AND s.shop_id = ?", (platform, o.shop_id))
        now = ch.clock()
        oid = order_id_for(platform, pid)
        if ch.sql("SELECT 1 FROM delivery_order WHERE platform = ? AND platform_order_id = ?", (platform, pid)):
            ch.count("delivery.order_repeat")
            return None
        if not shop:
            self._refuse_now(platform, pid, "", oid, msg, "closed", f"shop {o.shop_id} is not one of the chain's stores")
            ch.count("delivery.unknown_shop")
            return None
        store_id, contact = shop[0]
        if not self._online(contact):
            self._refuse_now(platform, pid, store_id, oid, msg, "closed",
                             "the store cannot be reached now: its kitchen would not see the order")
            ch.count("delivery.refused_offline")
            return None
        skus = {s for i in o.items for s in [i.sku, *(x.sku for x in i.options)]}
        marks = ", ".join("?" * len(skus))
        mapped = dict(ch.sql(f"SELECT sku, item_id FROM delivery_sku WHERE platform = ? AND sku IN ({marks})",
                             (platform, *skus)))
        missing = sorted(skus - set(mapped))
        if missing:
            self._refuse_now(platform, pid, store_id, oid, msg, "sold_out",
                             f"not on the store's menu: {', '.join(missing)}")
            ch.count("delivery.unknown_sku")
            return None
        submit = {
            "v": 1, "order_id": oid, "channel": "delivery", "service": "takeaway", "lang": "zh",
            "placed_at": o.created_at.isoformat(), "expected_total": o.items_total,
            "payment": {"method": "platform", "status": "approved", "amount": o.items_total,
                        "intent_id": pid[:64], "reference": platform[:64]},
            "note": f"{platform.upper()} #{o.day_seq} {o.note}".strip()[:200],
            "lines": [{"item_id": mapped[i.sku], "qty": i.qty, "modifiers": [mapped[x.sku] for x in i.options]}
                      for i in o.items],
        }
        deadline = now + self.platforms[platform].accept_within_s
        ch.sql("INSERT INTO delivery_order (platform, platform_order_id, store_id, order_id, state, body, created_at, "
               "deadline) VALUES (?, ?, ?, ?, 'sent', ?, ?, ?)",
               (platform, pid, store_id, oid, msgspec.json.encode(o).decode(), now, deadline))
        self._message(store_id, "order", {"order": submit, "platform": platform, "platform_order_id": pid,
                                          "day_seq": o.day_seq, "pickup_at": o.pickup_at.isoformat(),
                                          "answer_by": deadline})
        ch.count("delivery.orders")
        return store_id

    def _refuse_now(self, platform: str, pid: str, store_id: str, oid: str, msg: dp.OrderCreated, reason: str,
                    words: str) -> None:
        now = self.chain.clock()
        self.chain.sql("INSERT INTO delivery_order (platform, platform_order_id, store_id, order_id, state, body, "
                       "created_at, deadline, answered_at, reason, message) VALUES (?, ?, ?, ?, 'refused', ?, ?, ?, ?, "
                       "?, ?)", (platform, pid, store_id, oid, msgspec.json.encode(msg.order).decode(), now, now, now,
                                 reason, words))
        self._call(platform, "refuse", pid, {"reason": reason, "message": words})
        log.info("platform %s order %s refused: %s (%s)", platform, pid, reason, words)

    def _cancelled(self, platform: str, msg: dp.OrderCancelled) -> str | None:
        ch = self.chain
        got = ch.sql("UPDATE delivery_order SET state = 'cancelled', reason = ?, message = ? WHERE platform = ? "
                     "AND platform_order_id = ? AND state IN ('sent', 'accepted', 'ready') "
                     "RETURNING store_id, order_id", (msg.reason, msg.message, platform, msg.platform_order_id))
        ch.count("delivery.cancelled")
        if not got:
            # not known yet (its order.created may still be on its way): kept, so it is refused when it comes
            ch.sql("INSERT INTO delivery_order (platform, platform_order_id, store_id, order_id, state, body, "
                   "created_at, deadline, reason, message) VALUES (?, ?, '', ?, 'cancelled', '{}', ?, ?, ?, ?) "
                   "ON CONFLICT (platform, platform_order_id) DO NOTHING",
                   (platform, msg.platform_order_id, order_id_for(platform, msg.platform_order_id), ch.clock(),
                    ch.clock(), msg.reason, msg.message))
            return None
        store_id, oid = got[0]
        self._message(store_id, "cancel", {"order_id": oid, "platform": platform,
                                           "platform_order_id": msg.platform_order_id,
                                           "reason": f"{platform} cancelled: {msg.reason} {msg.message}".strip()})
        return store_id

    # --------------------------------------------------- the store's side
    def stream(self, store_id: str, after: int) -> list[dict]:
        with self.chain.tx():
            rows = self.chain.sql("SELECT seq, kind, body FROM store_message WHERE store_id = ? AND seq > ? "
                                  "ORDER BY seq LIMIT ?", (store_id, after, STREAM_BATCH))
        return [{"seq": s, "kind": k, "body": msgspec.json.decode(b)} for s, k, b in rows]

    def answer(self, store_id: str, order_id: str, a: Answer) -> dict:
        """The hub's answer. ``{"state": ..., "void": bool}``: void is true
        when the store accepted an order the platform no longer has (refused
        for being late, or cancelled meanwhile): the store must void it."""
        ch = self.chain
        with ch.tx():
            row = ch.sql("SELECT platform, platform_order_id, state FROM delivery_order WHERE order_id = ? "
                         "AND store_id = ?", (order_id, store_id))
            if not row:
                raise Refused(404, "unknown_order", f"no delivery order {order_id} for store {store_id}")
            platform, pid, state = row[0]
            now = ch.clock()
            if state == "sent":
                if a.accepted:
                    ch.sql("UPDATE delivery_order SET state = 'accepted', number = ?, answered_at = ? "
                           "WHERE order_id = ?", (a.number, now, order_id))
                    self._call(platform, "accept", pid, {})
                    ch.count("delivery.accepted")
                    return {"state": "accepted", "void": False}
                reason = REFUSE_AS.get(a.reason, "other")
                ch.sql("UPDATE delivery_order SET state = 'refused', reason = ?, message = ?, answered_at = ? "
                       "WHERE order_id = ?", (reason, a.message or a.reason, now, order_id))
                self._call(platform, "refuse", pid, {"reason": reason, "message": (a.message or a.reason)[:200]})
                ch.count("delivery.refused_by_store")
                return {"state": "refused", "void": False}
            if a.accepted and state in ("refused", "cancelled"):
                ch.count("delivery.void_late")
                return {"state": state, "void": True}
            return {"state": state, "void": False}

    def on_new_events(self, store_id: str):
        """The consequences of a store's new events, in their transaction."""
        def hook(rows: list[dict]) -> None:
            ready = [r["order_id"] for r in rows if r["kind"] in ("order.ready", "order.voided") and r["order_id"]]
            if ready:
                self._order_events(store_id, rows, set(ready))
            sold = [r for r in rows if r["kind"] in ("menu.eighty_six", "menu.un_eighty_six")]
            if sold:
                self._stock_events(store_id, sold)
        return hook if self.platforms else None

    def _order_events(self, store_id: str, rows: list[dict], oids: set[str]) -> None:
        ch = self.chain
        marks = ", ".join("?" * len(oids))
        known = {oid: (platform, pid) for oid, platform, pid in ch.sql(
            f"SELECT order_id, platform, platform_order_id FROM delivery_order WHERE store_id = ? "
            f"AND order_id IN ({marks})", (store_id, *oids))}
        for r in rows:
            if r["order_id"] not in known:
                continue
            platform, pid = known[r["order_id"]]
            if r["kind"] == "order.ready":
                if ch.sql("UPDATE delivery_order SET state = 'ready' WHERE order_id = ? AND state = 'accepted' "
                          "RETURNING order_id", (r["order_id"],)):
                    self._call(platform, "ready", pid, {})
            elif r["kind"] == "order.voided":
                if ch.sql("UPDATE delivery_order SET state = 'cancelled', reason = 'store_voided' WHERE order_id = ? "
                          "AND state IN ('accepted', 'ready') RETURNING order_id", (r["order_id"],)):
                    p = msgspec.json.decode(r["payload"]) if r["payload"] else {}
                    self._call(platform, "cancel", pid, {"reason": "store_voided",
                                                         "message": str(p.get("reason") or "")[:200]})

    def _stock_events(self, store_id: str, rows: list[dict]) -> None:
        ch = self.chain
        shops = ch.sql("SELECT platform, shop_id FROM delivery_shop WHERE store_id = ?", (store_id,))
        if not shops:
            return
        changes: dict[str, bool] = {}
        for r in rows:
            p = msgspec.json.decode(r["payload"])
            if isinstance(p.get("item_id"), str):
                changes[p["item_id"]] = r["kind"] == "menu.un_eighty_six"
        if not changes:
            return
        marks = ", ".join("?" * len(changes))
        for platform, shop_id in shops:
            skus = {sku: changes[item] for sku, item in ch.sql(
                f"SELECT sku, item_id FROM delivery_sku WHERE platform = ? AND item_id IN ({marks})",
                (platform, *changes))}
            if skus and platform in self.platforms:
                self._call(platform, "stock", shop_id, {"skus": skus})
                ch.count("delivery.stock_pushed")

    # ------------------------------------------------------------- admin
    def map_shop(self, platform: str, shop_id: str, store_id: str) -> None:
        with self.chain.tx():
            self.chain.sql("INSERT INTO delivery_shop (platform, shop_id, store_id) VALUES (?, ?, ?) "
                           "ON CONFLICT (platform, shop_id) DO UPDATE SET store_id = excluded.store_id",
                           (platform, shop_id, store_id))

    def map_skus(self, platform: str, skus: dict[str, str]) -> None:
        with self.chain.tx():
            for sku, item in skus.items():
                self.chain.sql("INSERT INTO delivery_sku (platform, sku, item_id) VALUES (?, ?, ?) "
                               "ON CONFLICT (platform, sku) DO UPDATE SET item_id = excluded.item_id",
                               (platform, sku, item))

    def orders(self, store_id: str | None = None) -> list[dict]:
        q = ("SELECT platform, platform_order_id, store_id, order_id, state, number, reason, message, created_at, "
             "answered_at FROM delivery_order")
        args: tuple = ()
        if store_id:
            q, args = q + " WHERE store_id = ?", (store_id,)
        with self.chain.tx():
            rows = self.chain.sql(q + " ORDER BY created_at", args)
        keys = ("platform", "platform_order_id", "store_id", "order_id", "state", "number", "reason", "message",
                "created_at", "answered_at")
        return [dict(zip(keys, r)) for r in rows]

    def calls(self) -> list[dict]:
        with self.chain.tx():
            rows = self.chain.sql("SELECT id, platform, action, target, body, state, attempts, last_error "
                                  "FROM platform_call ORDER BY id")
        keys = ("id", "platform", "action", "target", "body", "state", "attempts", "last_error")
        return [dict(zip(keys, r)) for r in rows]

    # ---------------------------------------------------- background work
    def start(self, loop=None) -> None:
        if not self.platforms or self._threads:
            return
        for name, fn in (("delivery-sweep", self._sweep_loop), ("delivery-calls", self._call_loop)):
            t = threading.Thread(target=fn, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    async def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for c in self._clients.values():
            c.close()

    def _loop(self, step: Callable[[], int], what: str) -> None:
        while not self._stop.is_set():
            try:
                busy = step()
            except Exception:
                log.exception("delivery: %s failed; again shortly", what)
                busy = 0
            if not busy:
                self._stop.wait(SWEEP_S)

    def _sweep_loop(self) -> None:
        self._loop(self.sweep, "the sweep")

    def _call_loop(self) -> None:
        self._loop(self.make_calls, "calling a platform")

    def sweep(self) -> int:
        """Orders past their answer time refused; shops closed on the
        platforms for stores offline, opened again when they are back."""
        ch = self.chain
        now = ch.clock()
        woken = set()
        with ch.tx():
            late = ch.sql("UPDATE delivery_order SET state = 'refused', reason = 'busy', message = ?, answered_at = ? "
                          "WHERE state = 'sent' AND deadline < ? RETURNING platform, platform_order_id, store_id, "
                          "order_id", ("the store did not answer in time", now, now))
            for platform, pid, store_id, oid in late:
                self._call(platform, "refuse", pid, {"reason": "busy", "message": "the store did not answer in time"})
                # the store may have it and accept it yet: its answer is then told to void it
                self._message(store_id, "cancel", {"order_id": oid, "platform": platform, "platform_order_id": pid,
                                                   "reason": "not answered in time: refused at the platform"})
                ch.count("delivery.refused_late")
                woken.add(store_id)
            shops = ch.sql("SELECT s.platform, s.shop_id, s.open_at_platform, c.last_contact FROM delivery_shop s "
                           "JOIN chain_store c ON c.store_id = s.store_id")
            changed = 0
            for platform, shop_id, is_open, contact in shops:
                want = 1 if self._online(contact) else 0
                if is_open == want or platform not in self.platforms:
                    continue
                if ch.sql("UPDATE delivery_shop SET open_at_platform = ?, status_at = ? WHERE platform = ? "
                          "AND shop_id = ? AND (open_at_platform IS NULL OR open_at_platform <> ?) RETURNING shop_id",
                          (want, now, platform, shop_id, want)):
                    self._call(platform, "status", shop_id, {"open": bool(want)})
                    log.info("platform %s shop %s: %s", platform, shop_id, "opened" if want else
                             "closed (its store cannot be reached)")
                    changed += 1
        for s in woken:
            self.local_wake(s)
        return len(late) + changed

    def make_calls(self) -> int:
        """Claim the due calls (the oldest of each platform order first) and
        make them."""
        ch = self.chain
        now = ch.clock()
        with ch.tx():
            skip = " FOR UPDATE SKIP LOCKED" if ch.pg else ""
            rows = ch.sql(
                "SELECT id, platform, action, target, body, attempts FROM platform_call c WHERE state = 'due' "
                "AND due_at <= ? AND NOT EXISTS (SELECT 1 FROM platform_call e WHERE e.platform = c.platform "
                "AND e.target = c.target AND e.state = 'due' AND e.id < c.id) ORDER BY id LIMIT ?" + skip,
                (now, CALL_BATCH))
            for r in rows:
                ch.sql("UPDATE platform_call SET due_at = ?, attempts = attempts + 1 WHERE id = ?",
                       (now + CALL_LEASE_S, r[0]))
        for cid, platform, action, target, body, attempts in rows:
            self._make(cid, platform, action, target, msgspec.json.decode(body), attempts + 1)
        return len(rows)

    def _make(self, cid: int, platform: str, action: str, target: str, body: dict, attempt: int) -> None:
        ch = self.chain
        c = self.client(platform)
        try:
            if action == "accept":
                c.accept(target)
            elif action == "refuse":
                c.refuse(target, body.get("reason", "other"), body.get("message", ""))
            elif action == "ready":
                c.ready(target)
            elif action == "cancel":
                c.cancel(target, body.get("reason", "other"), body.get("message", ""))
            elif action == "status":
                c.shop_status(target, bool(body.get("open")))
            elif action == "stock":
                c.stock(target, body.get("skus", {}))
        except dp.PlatformError as exc:
            if exc.retry:
                wait = min(60.0, 0.5 * 2 ** min(attempt, 7))
                ch.count(f"delivery.call_retry.{exc.reason}")
                with ch.tx():
                    ch.sql("UPDATE platform_call SET due_at = ?, last_error = ? WHERE id = ?",
                           (ch.clock() + wait, str(exc)[:300], cid))
                log.warning("platform %s: %s %s failed (%s); again in %.0f s", platform, action, target, exc, wait)
                return
            self._refused_call(cid, platform, action, target, exc)
            return
        with ch.tx():
            ch.sql("UPDATE platform_call SET state = 'done', done_at = ? WHERE id = ?", (ch.clock(), cid))
        ch.count(f"delivery.call.{action}")

    def _refused_call(self, cid: int, platform: str, action: str, target: str, exc: dp.PlatformError) -> None:
        """The platform refused a call for good. An accept refused because
        the order is no longer there (cancelled, past its window): the store
        voids it — the kitchen must not make an order nobody will fetch."""
        ch = self.chain
        ch.count(f"delivery.call_refused.{exc.reason}")
        log.error("platform %s refused %s %s: %s", platform, action, target, exc)
        store = None
        with ch.tx():
            ch.sql("UPDATE platform_call SET state = 'failed', last_error = ?, done_at = ? WHERE id = ?",
                   (str(exc)[:300], ch.clock(), cid))
            if action == "accept":
                got = ch.sql("UPDATE delivery_order SET state = 'cancelled', reason = ?, message = ? WHERE platform = ? "
                             "AND platform_order_id = ? AND state IN ('accepted', 'ready') RETURNING store_id, order_id",
                             (exc.reason, exc.detail[:200], platform, target))
                if got:
                    store, oid = got[0]
                    self._message(store, "cancel", {"order_id": oid, "platform": platform, "platform_order_id": target,
                                                    "reason": f"{platform} refused the acceptance: {exc.reason}"})
        if store:
            self.local_wake(store)


def routes(hooks: Hooks, guarded, store_auth, long_poll, after_param, body_of, json_of) -> list:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.routing import Route

    from restobox.cloud.app import _json

    chain = hooks.chain

    async def webhook(request: Request):
        body = await body_of(request, 256 * 1024)
        status, answer = await run_in_threadpool(hooks.webhook, request.path_params["platform"], request.headers, body)
        return _json(answer, status)

    async def stream(request: Request):
        store_id = await store_auth(request)
        after = after_param(request)
        got = await long_poll(request, store_id, lambda: hooks.stream(store_id, after))
        return _json({"v": 1, "messages": got, "cursor": str(got[-1]["seq"] if got else after)})

    async def answer(request: Request):
        store_id = await store_auth(request)
        try:
            a = msgspec.json.decode(await body_of(request, 16 * 1024), type=Answer)
        except msgspec.DecodeError as exc:
            raise Refused(400, "bad_answer", f"the answer does not fit: {exc}") from None
        got = await run_in_threadpool(hooks.answer, store_id, request.path_params["order"], a)
        return _json(got)

    async def admin_auth(request: Request) -> None:
        await run_in_threadpool(chain.authenticate, request.headers.get("authorization"), "admin")

    async def mapping(request: Request, what: str, shape: str, limit: int) -> dict[str, str]:
        """An office's ``{"<platform's id>": "<ours>"}`` (400 ``bad_<what>`` otherwise)."""
        await admin_auth(request)
        body = json_of(await body_of(request, limit), f"the {what}")
        try:
            return msgspec.convert(body, dict[str, str])
        except msgspec.ValidationError as exc:
            raise Refused(400, f"bad_{what}", f"give {shape}: {exc}") from None

    async def admin_shops(request: Request):
        shops = await mapping(request, "shops", '{"<shop id>": "<store id>"}', 64 * 1024)
        for shop, store in shops.items():
            await run_in_threadpool(hooks.map_shop, request.path_params["platform"], shop, store)
        return _json({"shops": len(shops)})

    async def admin_skus(request: Request):
        skus = await mapping(request, "skus", '{"<sku>": "<item or option id>"}', 1024 * 1024)
        await run_in_threadpool(hooks.map_skus, request.path_params["platform"], skus)
        return _json({"skus": len(skus)})

    async def admin_orders(request: Request):
        await admin_auth(request)
        return _json(await run_in_threadpool(hooks.orders, request.query_params.get("store")))

    async def admin_calls(request: Request):
        await admin_auth(request)
        return _json(await run_in_threadpool(hooks.calls))

    return [
        Route("/v1/delivery/{platform}/webhook", guarded(webhook), methods=["POST"]),
        Route("/v1/stores/{store}/delivery", guarded(stream), methods=["GET"]),
        Route("/v1/stores/{store}/delivery/{order}/answer", guarded(answer), methods=["POST"]),
        Route("/v1/admin/delivery/{platform}/shops", guarded(admin_shops), methods=["PUT", "POST"]),
        Route("/v1/admin/delivery/{platform}/skus", guarded(admin_skus), methods=["PUT", "POST"]),
        Route("/v1/admin/delivery/orders", guarded(admin_orders), methods=["GET"]),
        Route("/v1/admin/delivery/calls", guarded(admin_calls), methods=["GET"]),
    ]
