"""Table QR ordering: the page diners open from the QR code on their table.

    restobox web [--config FILE]

A small ASGI app (Starlette, served by uvicorn) that is also a broker device
of role ``web``. The page (``restobox/webpage/``: plain HTML, CSS and
JavaScript, everything served from here, no CDN) shows the menu the hub
publishes (retained ``menu/current`` and ``menu/soldout``, live), and the
diner orders to the table of the QR code. Orders reach the hub exactly as a
kiosk's do: an ``OrderSubmit`` (channel ``qr``, dine-in, the table, pay at
the counter) on ``order/submit/<device>`` with a response topic, so the hub
validates, prices, numbers and deduplicates them; the diner then follows the
order's state from ``order/update``.

The order id is made in the browser at the first tap and sent with every
attempt: a request that times out is sent again with the same id, and the
hub answers the repeat with the first answer. This service stores nothing:
what it knows (the menu, the 86 list, the orders it placed and their
states) lives in memory and comes back from the broker after a restart.

With ``[web] loyalty`` the cart has an optional phone number field: the
page checks it with the rule of restobox/loyalty.py (given with the menu),
the number goes to the hub in the order's ``loyalty`` claim, and the hub
checks it again (``phone_invalid``) and answers the points with the number
masked. This service keeps, logs and answers only that masked form.

HTTP API (JSON):

- ``GET /t/<table>``: the page for that table (404 for a table not in
  ``[web] tables``).
- ``GET /api/menu``: the hub's menu, the sold-out list, the store's name, and
  whether the hub takes orders now.
- ``POST /api/orders``: a :class:`WebOrder`. Answers ``accepted`` (with the
  hub's number and priced order), ``rejected`` (the hub's reason code and
  sentence in zh and en), ``pending`` (HTTP 202: sent, no answer yet: send
  the same again) or ``unavailable`` (HTTP 503: not sent, the hub is
  offline). A body that is too large (413) or does not decode (400) is
  refused with a reason code and a sentence, counted in the service's health
  and never sent on.
- ``GET /api/orders/<id>``: an order placed here (polling); one placed
  before this service restarted is learnt from the hub.
- ``POST /api/orders/<id>/pay`` (optional JSON ``{"phone": ...}``, for the
  wallet): pay on the phone ([paygate]). ``redirect`` with the wallet's
  ``cashier_url`` (the hub's intent for the order, created at the gateway:
  the same payment on every retry), ``paid``/``checking``, or
  ``unavailable`` with the reason and a sentence (no internet, the gateway
  did not answer, the hub is away: pay at the counter).
- ``POST /api/orders/<id>/pay/check``: back from the wallet: the gateway is
  asked at once and its answer passed to the hub.
- ``GET /api/events?orders=<id>,<id>``: server-sent events: ``menu`` (a new
  menu version: fetch it again), ``soldout``, ``hub``, ``pay`` (can phone
  payment be offered now), ``order`` (an order's state, its payment and its
  phone payment's).
- ``GET /photos/<sha256>.jpg``: a menu photo as the hub published it
  (``menu/image/<sha256>``), cached by browsers for good (its name is the
  hash of its bytes); ``/api/menu`` gives each image name's URL.
- ``GET /healthz``: this service's health (the watchdog asks it too).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import threading
import time
from collections import Counter, OrderedDict, deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import msgspec

from restobox import contract, loyalty, paygate, photos
from restobox.bus import Bus, Incoming, bus_from_config, refused
from restobox.config import Config
from restobox.contract import (
    Board,
    Health,
    LoyaltyClaim,
    MenuImages,
    MenuMessage,
    OrderReply,
    OrderSubmit,
    OrderUpdate,
    PayIntent,
    PayReply,
    PayRequest,
    PayResult,
    PayStatus,
    Presence,
    RejectNotice,
    SoldOut,
    SubmitLine,
    SubmitPayment,
    Words,
    topics,
)

log = logging.getLogger("restobox.web")

PAGE_DIR = Path(__file__).resolve().parent / "webpage"
MAX_ORDERS_KEPT = 5000
"""Orders placed here whose state is kept for the diners (oldest forgotten first)."""
MAX_STREAM_ORDERS = 20
GATEWAY_THREADS = 32
"""Calls to the payment gateway at once (diners paying at the same moment); each waits at most [paygate] timeout_s."""
GATEWAY_GRACE_S = 120
"""A phone payment's limit at the gateway is this much later than the store's [paygate] expire_s."""
KEEPALIVE_S = 15.0
HEALTH_MIN_GAP_S = 1.0
PHOTOS_PENDING_MAX = 64
"""Photos kept that the index does not list (yet: a photo comes before its index)."""
"""Bad requests publish the health at most this often (a flood is one message a second)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------- requests
class WebOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What the page sends. The rest of the OrderSubmit (channel qr, dine-in,
    pay at the counter) is this service's to fill in, not the browser's."""

    order_id: contract.OrderId
    table: Annotated[str, msgspec.Meta(pattern=contract.TABLE_PATTERN)]
    lang: contract.Lang = "zh"
    lines: Annotated[tuple[SubmitLine, ...], msgspec.Meta(min_length=1, max_length=100)]
    expected_total: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None = None
    menu_version: Annotated[str, msgspec.Meta(max_length=64)] = ""
    note: contract.Text = ""
    phone: Annotated[str, msgspec.Meta(max_length=24)] = ""
    """A member's phone number for points (``[web] loyalty``); empty: none.
    Passed to the hub only, never logged nor answered back (only masked)."""


class PayBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What the page may send with "pay on the phone": the diner's mobile
    number, for the wallet (optional)."""

    phone: Annotated[str, msgspec.Meta(max_length=24)] = ""


_web_order = msgspec.json.Decoder(WebOrder)
_pay_body = msgspec.json.Decoder(PayBody)
_json = msgspec.json.Encoder()

# This service's own refusals (the hub's are contract.REASONS).
WEB_REASONS: dict[str, Words] = {
    "bad_json": contract.REASONS["bad_json"],
    "bad_schema": contract.REASONS["bad_schema"],
    "payload_too_large": contract.REASONS["payload_too_large"],
    "unknown_table": Words("没有这张桌子，请扫描桌上的二维码。", "There is no such table; please scan the code on your table."),
    "unknown_order": contract.REASONS["unknown_order"],
    "hub_offline": Words("厨房系统暂时无法接单，请稍后再试或到柜台点餐。",
                         "The kitchen cannot take orders right now; try again in a moment or order at the counter."),
    "pending": Words("订单已发出，正在等待厨房确认……", "Your order is on its way; waiting for the kitchen to confirm…"),
    "loyalty_disabled": contract.REASONS["loyalty_disabled"],
    "pay_disabled": contract.REASONS["pay_disabled"],
    "pay_unavailable": Words("手机支付暂时不可用（网络中断），请到柜台付款。",
                             "Payment on the phone is not available right now (no internet); please pay at the counter."),
    "pay_gateway_failed": Words("支付平台没有响应。请再试一次（不会重复扣款），或到柜台付款。",
                                "The payment service did not answer. Try again (you will not be charged twice), "
                                "or pay at the counter."),
    "pay_pending": Words("正在准备支付，请稍候再试……", "Getting your payment ready; please try again in a moment…"),
    "already_paid": contract.REASONS["already_paid"],
}


class BadRequest(Exception):
    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.status, self.reason, self.detail = status, reason, detail


# ------------------------------------------------------------ order views
class LineView(msgspec.Struct, kw_only=True):
    name_zh: str
    name_en: str
    qty: int
    line_total: int
    modifiers: tuple[Words, ...] = ()
    note: str = ""


class OrderView(msgspec.Struct, kw_only=True):
    """An order placed here, as the diner sees it."""

    order_id: str
    table: str | None
    number: int
    business_date: str
    state: str
    subtotal: int
    tax: int
    total: int
    currency: str
    lines: tuple[LineView, ...]
    accepted_at: str
    updated_at: str
    payment: str = "unpaid"
    """The ledger's word (contract.PaymentState): unpaid, paid, partly_refunded, refunded."""
    paid: int = 0
    loyalty: contract.LoyaltyResult | None = None
    """The order's points, with the masked number only (as the hub answered)."""
    pay: "PayView | None" = None
    """Its latest phone payment, if one was started."""


class PayView(msgspec.Struct, kw_only=True):
    """An order's phone payment as the diner sees it: ``state`` is the
    hub's (contract.PayIntentState), ``expired`` once an open one is past
    its time (it is being closed; a new one may start)."""

    state: str
    amount: int
    attempt: int
    expires_at: str
    expired: bool = False
    reason: str = ""


def _view(reply: OrderReply, table: str | None) -> OrderView:
    lines = tuple(LineView(name_zh=pl.name_zh, name_en=pl.name_en, qty=pl.qty, line_total=pl.line_total,
                           modifiers=tuple(Words(m.name_zh, m.name_en) for m in pl.modifiers), note=pl.note)
                  for pl in reply.lines)
    at = reply.accepted_at or _now()
    return OrderView(order_id=reply.order_id, table=table, number=reply.number or 0,
                     business_date=reply.business_date or "", state="accepted", subtotal=reply.subtotal,
                     tax=reply.tax, total=reply.total, currency=reply.currency, lines=lines, accepted_at=at,
                     updated_at=at, loyalty=reply.loyalty)


# ---------------------------------------------------------------- service
class WebService:
    """The broker side and the state the page reads. paho's thread writes
    under ``_lock`` and wakes the event loop; the ASGI handlers read."""

    def __init__(self, cfg: Config, *, bus: Bus | None = None) -> None:
        self.cfg = cfg
        self.device = cfg.device.id
        self.tables = cfg.web.table_ids()
        self._table_set = frozenset(self.tables)
        self.bus = bus or bus_from_config(cfg)
        self._lock = threading.Lock()
        self.menu: MenuMessage | None = None
        self._menu_json: bytes | None = None
        self.soldout: tuple[str, ...] = ()
        self.hub_online: bool | None = None
        self.board: Board | None = None
        self.orders: OrderedDict[str, OrderView] = OrderedDict()
        self._tables_of: dict[str, str] = {}  # order id -> table, for requests in flight
        self._early: OrderedDict[str, OrderUpdate] = OrderedDict()  # updates that came before their answer
        self.counters: Counter = Counter()
        self.last_errors: deque[RejectNotice] = deque(maxlen=20)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self.stopping = False
        self._health_dirty = False
        self._health_at = 0.0
        self.streams = 0
        # the menu's photos as the hub prepared them (at most 640 px): held
        # in memory, served at /photos/<sha256>.jpg, never changing
        self.photo_index: MenuImages | None = None
        self.photo_bytes: OrderedDict[str, bytes] = OrderedDict()
        # phone payment ([paygate]): each order's latest intent, the hub's
        # answers awaited, whether the gateway can be reached (the sync
        # service's retained pay/status), and the gateway client
        self.intents: OrderedDict[str, PayIntent] = OrderedDict()
        self._pay_waiters: dict[str, asyncio.Future] = {}
        self.pay_status: PayStatus | None = None
        self._gateway: paygate.PaygateClient | None = None
        self._gateway_pool = None

    # ------------------------------------------------------------ lifecycle
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the ASGI app runs in (paho's thread wakes it)."""
        self.loop = loop
        self._changed = asyncio.Event()

    def start(self) -> None:
        self.bus.on_connection_change = lambda up, why: self._mark_changed(health=True)
        self.bus.subscribe(topics.MENU, self._on_menu)
        self.bus.subscribe(topics.SOLDOUT, self._on_soldout)
        self.bus.subscribe(topics.order_reply(self.device), self._on_reply)
        self.bus.subscribe(topics.ORDER_UPDATE, self._on_update)
        self.bus.subscribe(topics.BOARD, self._on_board)
        self.bus.subscribe(topics.presence(self.cfg.web.hub_device), self._on_hub_presence)
        self.bus.subscribe(topics.MENU_IMAGES, self._on_photo_index)
        self.bus.subscribe(topics.MENU_IMAGE_ALL, self._on_photo)
        if self.cfg.paygate.enabled:
            self.bus.subscribe(topics.pay_reply(self.device), self._on_pay_reply)
            self.bus.subscribe(topics.PAY_INTENT, self._on_intent)
            self.bus.subscribe(topics.PAY_STATUS, self._on_pay_status)
        self.bus.start()
        self.bus.announce()

    def stop(self) -> None:
        self.stopping = True
        self._mark_changed()
        try:
            if self.bus.connected:
                self.publish_health("stopping", "asked to stop")
        finally:
            self.bus.stop()
            if self._gateway_pool is not None:
                self._gateway_pool.shutdown(wait=False, cancel_futures=True)
            if self._gateway is not None:
                self._gateway.close()

    # ------------------------------------------------------- incoming (paho)
    def _mark_changed(self, *, health: bool = False) -> None:
        if health:
            self._health_dirty = True
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed in between
                pass

    def _wake(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        if ev is not None:
            ev.set()

    def _bad(self, m: Incoming, reason: str, detail: str = "") -> None:
        """A message from the bus this service does not use: counted
        (``bad_messages``, ``bad_message_<reason>``), logged (rate-limited),
        in the health within a second."""
        self.counters["bad_messages"] += 1
        self.counters[f"bad_message_{reason}"] += 1
        refused(m.topic, reason, detail, logger=log)
        self._health_dirty = True

    def _decode(self, m: Incoming, type_, **kw):
        try:
            return contract.decode(m.payload, type_, **kw)
        except contract.Rejection as r:
            self._bad(m, r.reason, r.detail)
            return None

    def _on_menu(self, m: Incoming) -> None:
        msg = self._decode(m, MenuMessage, max_bytes=contract.MAX_MENU_BYTES)
        if msg is None:
            return
        try:  # the page and the hub must agree on the menu: one the hub would not use is not shown
            msg.menu.check()
        except Exception as exc:
            self._bad(m, "bad_menu", repr(exc))
            return
        with self._lock:
            self.menu, self._menu_json = msg, None
        log.info("menu %s (%d items)", msg.menu.version, len(msg.menu.items))
        self._mark_changed(health=True)

    def _on_photo_index(self, m: Incoming) -> None:
        if not m.payload:
            return
        msg = self._decode(m, MenuImages)
        if msg is None:
            return
        with self._lock:
            self.photo_index, self._menu_json = msg, None
            wanted = {r.sha256 for r in msg.images.values()}
            for sha in [s for s in self.photo_bytes if s not in wanted]:
                del self.photo_bytes[sha]
        self._mark_changed()

    def _on_photo(self, m: Incoming) -> None:
        if not m.payload:  # cleared by the hub: it goes with the index that no longer lists it
            return
        try:
            sha = photos.check_photo(m.topic, m.payload)
        except photos.PhotoRefused as r:
            self._bad(m, r.reason, r.detail)
            return
        with self._lock:
            self.photo_bytes[sha] = m.payload
            wanted = {r.sha256 for r in self.photo_index.images.values()} if self.photo_index else set()
            extra = [s for s in self.photo_bytes if s not in wanted]
            for s in extra[:max(0, len(extra) - PHOTOS_PENDING_MAX)]:
                del self.photo_bytes[s]
            if sha in wanted:
                self._menu_json = None
        self._mark_changed()

    def photo(self, sha: str) -> bytes | None:
        with self._lock:
            return self.photo_bytes.get(sha)

    def _photo_urls(self) -> dict[str, str]:
        """Under ``_lock``: image name -> the URL of its photo, for those held."""
        if self.photo_index is None:
            return {}
        return {name: f"/photos/{r.sha256}.jpg" for name, r in self.photo_index.images.items()
                if r.sha256 in self.photo_bytes}

    def _on_soldout(self, m: Incoming) -> None:
        msg = self._decode(m, SoldOut)
        if msg is not None:
            with self._lock:
                self.soldout = tuple(msg.items)
            self._mark_changed()

    def _on_board(self, m: Incoming) -> None:
        msg = self._decode(m, Board)
        if msg is not None:
            with self._lock:
                self.board = msg
            self._mark_changed()

    def _on_hub_presence(self, m: Incoming) -> None:
        p = self._decode(m, Presence)
        if p is not None and p.device != self.cfg.web.hub_device:  # not the hub's word about itself
            self._bad(m, "unusable", f"the presence of {p.device[:40]!r} on the hub's topic")
            return
        if p is not None:
            with self._lock:
                self.hub_online = p.state == "online"
            self._mark_changed(health=True)

    def _on_reply(self, m: Incoming) -> None:
        reply = self._decode(m, OrderReply)
        if reply is None:
            return
        with self._lock:
            ours = reply.order_id in self._tables_of or reply.order_id in self.orders
        if not ours:  # not placed here (or forgotten): it must not push out the diners' orders
            self._bad(m, "unknown_order", f"a reply for {reply.order_id[:64]!r}")
            return
        if reply.status == "accepted":
            with self._lock:
                view = self.orders.get(reply.order_id)
                if view is None:
                    view = _view(reply, self._tables_of.get(reply.order_id))
                    early = self._early.pop(reply.order_id, None)
                    if early is not None:  # its update came first (e.g. held for its payment)
                        view = msgspec.structs.replace(view, state=early.state, updated_at=early.at,
                                                       payment=early.payment, paid=early.paid)
                    self.orders[reply.order_id] = view
                    while len(self.orders) > MAX_ORDERS_KEPT:
                        self.orders.popitem(last=False)
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._answer, reply)
        self._mark_changed()

    def _answer(self, reply: OrderReply) -> None:
        for fut in self._waiters.pop(reply.order_id, []):
            if not fut.done():
                fut.set_result(reply)

    def _on_update(self, m: Incoming) -> None:
        u = self._decode(m, OrderUpdate)
        if u is None:
            return
        with self._lock:
            view = self.orders.get(u.order_id)
            if view is None:
                if u.order_id in self._tables_of:  # placed here, its answer still on its way
                    self._early[u.order_id] = u
                    while len(self._early) > MAX_STREAM_ORDERS * 10:
                        self._early.pop(next(iter(self._early)))
                return  # not ordered here
            self.orders[u.order_id] = msgspec.structs.replace(view, state=u.state, updated_at=u.at,
                                                              payment=u.payment, paid=u.paid)
        self._mark_changed()

    # ------------------------------------------------------ phone payment
    def _on_pay_reply(self, m: Incoming) -> None:
        reply = self._decode(m, PayReply)
        if reply is None:
            return
        if reply.intent is not None:
            self._keep_intent(reply.intent)
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._pay_answer, reply)

    def _pay_answer(self, reply: PayReply) -> None:
        fut = self._pay_waiters.pop(reply.request_id, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def _on_intent(self, m: Incoming) -> None:
        intent = self._decode(m, PayIntent)
        if intent is not None:
            self._keep_intent(intent)

    def _keep_intent(self, intent: PayIntent) -> None:
        with self._lock:
            if intent.order_id not in self.orders and intent.order_id not in self._tables_of:
                return  # not ordered here
            now = self.intents.get(intent.order_id)
            if now is not None and (now.attempt, _STATE_RANK[now.state]) > (intent.attempt, _STATE_RANK[intent.state]):
                return  # an older word
            self.intents[intent.order_id] = intent
            self.intents.move_to_end(intent.order_id)
            while len(self.intents) > MAX_ORDERS_KEPT:
                self.intents.popitem(last=False)
        self._mark_changed()

    def _on_pay_status(self, m: Incoming) -> None:
        if not m.payload:
            return
        st = self._decode(m, PayStatus)
        if st is not None:
            with self._lock:
                self.pay_status = st
            self._mark_changed(health=True)

    def pay_available(self) -> tuple[bool, str]:
        """(phone payment can be offered now, the reason code if not)."""
        if not self.cfg.paygate.enabled:
            return False, "pay_disabled"
        if not self.can_order():
            return False, "hub_offline"
        st = self.pay_status
        if st is not None and not st.available:
            return False, "pay_unavailable"
        return True, ""

    async def _off_loop(self, fn, *args, **kw):
        """A call to the gateway in a thread of the page's own: a gateway
        that hangs holds at most these threads, never the event loop nor
        the threads anything else uses."""
        if self._gateway_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._gateway_pool = ThreadPoolExecutor(GATEWAY_THREADS, thread_name_prefix="paygate")
        import functools

        return await asyncio.get_running_loop().run_in_executor(self._gateway_pool, functools.partial(fn, *args, **kw))

    def gateway(self) -> paygate.PaygateClient:
        if self._gateway is None:
            self._gateway = paygate.PaygateClient.from_config(self.cfg)
        return self._gateway

    async def _ask_hub_pay(self, order_id: str, *, lookup: bool = False) -> PayReply | None:
        """The hub's answer to a PayRequest for ``order_id`` (None: no answer in time)."""
        import uuid

        assert self.loop is not None
        rid = str(uuid.uuid4())
        fut = self.loop.create_future()
        self._pay_waiters[rid] = fut
        self.bus.publish(topics.pay_request(self.device),
                         contract.encode(PayRequest(request_id=rid, order_id=order_id, lookup=lookup)),
                         correlation=rid.encode(), response_topic=topics.pay_reply(self.device))
        try:
            return await asyncio.wait_for(fut, self.cfg.web.reply_timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            self._pay_waiters.pop(rid, None)

    async def learn(self, order_id: str) -> OrderView | None:
        """An order this service does not hold (placed before it restarted:
        it stores nothing), as the hub has it; kept from then on. None if
        the hub does not know it, does not answer, or it is not a table
        order of this store's page."""
        if not self.cfg.paygate.enabled or not self.bus.connected or self.loop is None:
            return None
        reply = await self._ask_hub_pay(order_id, lookup=True)
        if reply is None or not reply.ok or reply.order is None or reply.table not in self._table_set:
            return None
        view = msgspec.structs.replace(_view(reply.order, reply.table), state=reply.state or "accepted",
                                       payment=reply.payment, paid=reply.paid)
        with self._lock:
            view = self.orders.setdefault(order_id, view)
            while len(self.orders) > MAX_ORDERS_KEPT:
                self.orders.popitem(last=False)
        if reply.intent is not None:
            self._keep_intent(reply.intent)
        self.counters["orders_learnt"] += 1
        self._mark_changed()
        return view

    def _result(self, source: str, fields: dict) -> None:
        """Pass what the gateway said (signed) to the hub, which records it once."""
        self.bus.publish(topics.PAY_RESULT, contract.encode(PayResult(source=source, fields=fields, at=_now())))

    def _pay_refusal(self, reason: str, status: int = 503, **more) -> tuple[int, dict[str, Any]]:
        self.counters[f"pay_{reason}"] += 1
        return status, {"status": "unavailable", "reason": reason, "message": WEB_REASONS.get(reason) or
                        contract.REASONS.get(reason) or WEB_REASONS["pay_gateway_failed"], **more}

    async def pay(self, order_id: str, base_url: str, phone: str = "") -> tuple[int, dict[str, Any]]:
        """Start (or go on with) the phone payment of an order placed here:
        (HTTP status, body). ``redirect`` gives the wallet's address; the
        same payment (merchant number) on every retry while it is open.
        ``phone``: the diner's mobile number, if they gave one, for the
        wallet (passed to the gateway only: never kept nor logged here)."""
        if not self.cfg.paygate.enabled:
            raise BadRequest(400, "pay_disabled", "[paygate] enabled is false")
        with self._lock:
            view = self.orders.get(order_id)
        if view is None:
            view = await self.learn(order_id)
        if view is None:
            raise BadRequest(404, "unknown_order", order_id)
        self.counters["pay_requested"] += 1
        if view.payment != "unpaid":
            return 200, {"status": "paid", "payment": view.payment}
        ok, why = self.pay_available()
        if not ok:
            return self._pay_refusal(why)
        reply = await self._ask_hub_pay(order_id)
        if reply is None:
            return self._pay_refusal("pay_pending")
        if not reply.ok:
            if reply.reason == "already_paid":
                return 200, {"status": "paid", "payment": reply.payment}
            return 200, {"status": "rejected", "reason": reply.reason,
                         "message": reply.message or contract.REASONS["internal_error"]}
        intent = reply.intent
        assert intent is not None
        left = int((datetime.fromisoformat(intent.expires_at) - datetime.now(timezone.utc)).total_seconds())
        s = self.cfg.store
        try:
            trade, fields = await self._off_loop(
                self.gateway().create, intent.merchant_no, intent.amount,
                description=f"{s.name_zh} {intent.number}号 · {s.name_en} #{intent.number}",
                notify_url=self.cfg.paygate.notify_url_for(self.cfg.sync.cloud_url, s.id),
                return_url=f"{base_url.rstrip('/')}/t/{view.table or ''}?paid={order_id}",
                payer_phone=phone,
                # the store closes it at its time (the sync service); the
                # gateway's own limit comes later, so that close is what ends it
                expire_s=max(1, left) + GATEWAY_GRACE_S)
        except paygate.GatewayError as exc:
            if exc.reason == "order_paid" and exc.answer:
                self._result("return", exc.answer)
                return 200, {"status": "checking"}
            log.warning("phone payment %s of order %s: %s", intent.merchant_no, view.number, exc)
            self.counters[f"pay_gateway.{exc.reason}"] += 1
            return self._pay_refusal("pay_gateway_failed", detail=exc.reason)
        except Exception as exc:  # the key file, a surprise: the diner pays at the counter
            log.exception("phone payment %s of order %s failed", intent.merchant_no, view.number)
            return self._pay_refusal("pay_gateway_failed", detail=type(exc).__name__)
        if trade.status == "SUCCESS":
            self._result("return", fields)
            return 200, {"status": "checking"}
        self.counters["pay_redirects"] += 1
        return 200, {"status": "redirect", "cashier_url": trade.cashier_url, "amount": intent.amount,
                     "expires_at": intent.expires_at}

    async def pay_check(self, order_id: str) -> tuple[int, dict[str, Any]]:
        """The diner came back from the wallet: ask the gateway about the
        order's payment at once and pass the answer to the hub."""
        with self._lock:
            view = self.orders.get(order_id)
            intent = self.intents.get(order_id)
        if view is None and await self.learn(order_id) is not None:
            with self._lock:
                view, intent = self.orders.get(order_id), self.intents.get(order_id)
        if view is None:
            raise BadRequest(404, "unknown_order", order_id)
        if view.payment != "unpaid":
            return 200, {"status": "paid", "payment": view.payment}
        if intent is None or not self.cfg.paygate.enabled:
            return 200, {"status": "none"}
        self.counters["pay_checks"] += 1
        try:
            trade, fields = await self._off_loop(self.gateway().query, intent.merchant_no)
        except paygate.GatewayError as exc:
            self.counters[f"pay_gateway.{exc.reason}"] += 1
            return 200, {"status": "unknown", "reason": exc.reason}
        if trade.status in ("SUCCESS", "CLOSED", "REFUND"):
            self._result("return", fields)
        return 200, {"status": trade.status.lower()}

    # ----------------------------------------------------------- for the page
    def menu_payload(self) -> bytes | None:
        with self._lock:
            if self.menu is None:
                return None
            if self._menu_json is None:
                s = self.cfg.store
                w = self.cfg.web
                self._menu_json = _json.encode({
                    "menu": self.menu.menu, "store": {"zh": s.name_zh, "en": s.name_en},
                    "photos": self._photo_urls(),
                    # the page checks a phone number with loyalty.valid_phone's rule
                    "loyalty": {"patterns": [loyalty.CN_MOBILE, *w.phone_patterns]} if w.loyalty else None,
                    "phone_pay": self.cfg.paygate.enabled,
                })
            return self._menu_json

    def snapshot(self, order_ids: tuple[str, ...] = ()) -> dict[str, Any]:
        with self._lock:
            return {
                "menu": self.menu.menu.version if self.menu else None,
                # changes when the page should fetch the photos' URLs again: a
                # new index, and once every photo it lists is here
                "photos": f"{self.photo_index.at}:{len(self._photo_urls()) == len(self.photo_index.images)}"
                if self.photo_index else None,
                "soldout": {"items": list(self.soldout)},
                "hub": {"online": self.can_order()},
                "pay": self.pay_offer(),
                **{f"order:{oid}": self.order_view(oid) for oid in order_ids},
            }

    def order_view(self, order_id: str) -> OrderView | None:
        view = self.orders.get(order_id)
        if view is not None and view.state in ("accepted", "in_progress") and self.board is not None \
                and self.board.business_date == view.business_date and view.number in self.board.ready:
            # an update this service missed while it was away; the board is retained
            view = msgspec.structs.replace(view, state="ready")
        intent = self.intents.get(order_id) if view is not None else None
        if intent is not None:
            try:
                expired = intent.state == "open" and datetime.fromisoformat(intent.expires_at) <= datetime.now(timezone.utc)
            except ValueError:
                expired = True
            view = msgspec.structs.replace(view, pay=PayView(
                state=intent.state, amount=intent.amount, attempt=intent.attempt, expires_at=intent.expires_at,
                expired=expired, reason=intent.reason))
        return view

    def pay_offer(self) -> dict[str, Any] | None:
        """Under ``_lock``: what the page offers for payment (None: the counter only)."""
        if not self.cfg.paygate.enabled:
            return None
        ok, why = self.pay_available()
        return {"available": ok, "reason": why,
                "message": _words_json(WEB_REASONS.get(why) or contract.REASONS[why]) if why else None}

    def can_order(self) -> bool:
        return self.bus.connected and self.hub_online is not False and self.menu is not None

    def count_bad(self, path: str, r: BadRequest) -> None:
        self.counters["bad_requests"] += 1
        self.counters[f"bad_request_{r.reason}"] += 1
        words = WEB_REASONS.get(r.reason) or contract.REASONS.get(r.reason) or contract.REASONS["bad_schema"]
        self.last_errors.append(RejectNotice(reason=r.reason, message=words, topic=f"http {path}",
                                             device=self.device, at=_now()))
        log.warning("refused a request to %s: %s %s", path, r.reason, r.detail[:200])
        self._health_dirty = True

    # ----------------------------------------------------------- ordering
    async def place(self, order: WebOrder) -> tuple[int, dict[str, Any]]:
        """Send the order to the hub and wait for its answer: (HTTP status, body)."""
        if order.table not in self._table_set:
            raise BadRequest(400, "unknown_table", f"table {order.table!r}")
        if order.phone and not self.cfg.web.loyalty:
            raise BadRequest(400, "loyalty_disabled", "a phone number, and [web] loyalty is off")
        self.counters["orders_requested"] += 1
        if not self.bus.connected or self.hub_online is False:
            # Not sent: the page may change the cart. (A copy sent earlier may
            # still be on its way to the hub; the page knows it sent one.)
            self.counters["orders_unavailable"] += 1
            why = WEB_REASONS["hub_offline"]
            return 503, {"status": "unavailable", "reason": "hub_offline", "message": why}
        sub = OrderSubmit(
            order_id=order.order_id, channel="qr", service="dine_in", table=order.table, lines=order.lines,
            # no placed_at of our own: a retry must be the very same order (the
            # hub then answers it as a duplicate); the hub records its own time
            lang=order.lang, expected_total=order.expected_total,
            payment=SubmitPayment(method="counter"), menu_version=order.menu_version, note=order.note,
            # the hub checks the number (phone_invalid) and answers it masked
            loyalty=LoyaltyClaim(phone=loyalty.normalise(order.phone)) if order.phone else None,
        )
        assert self.loop is not None
        fut = self.loop.create_future()
        self._waiters.setdefault(order.order_id, []).append(fut)
        with self._lock:
            self._tables_of[order.order_id] = order.table
            if len(self._tables_of) > MAX_ORDERS_KEPT:
                self._tables_of.pop(next(iter(self._tables_of)))
        self.counters["orders_sent"] += 1
        self.bus.publish(topics.order_submit(self.device), contract.encode(sub),
                         correlation=order.order_id.encode(), response_topic=topics.order_reply(self.device))
        try:
            reply: OrderReply = await asyncio.wait_for(fut, self.cfg.web.reply_timeout_s)
        except asyncio.TimeoutError:
            self.counters["orders_pending"] += 1
            return 202, {"status": "pending", "reason": "pending", "message": WEB_REASONS["pending"]}
        finally:
            waiting = self._waiters.get(order.order_id)
            if waiting and fut in waiting:
                waiting.remove(fut)
                if not waiting:
                    del self._waiters[order.order_id]
        if reply.status == "accepted":
            self.counters["orders_accepted"] += 1
            with self._lock:
                view = self.order_view(order.order_id) or _view(reply, order.table)
            return 200, {"status": "accepted", "duplicate": reply.duplicate, "order": view}
        self.counters["orders_refused"] += 1
        words = reply.message or contract.REASONS.get(reply.reason or "") or contract.REASONS["internal_error"]
        return 200, {"status": "rejected", "reason": reply.reason, "message": words, "detail": reply.detail}

    # -------------------------------------------------------------- health
    def state(self) -> tuple[str, str]:
        if self.stopping:
            return "stopping", "asked to stop"
        if not self.bus.connected:
            return "degraded", f"cannot reach the broker ({self.bus.last_refusal or 'no answer'})"
        if self.menu is None:
            return "degraded", "no menu from the hub yet"
        if self.hub_online is False:
            return "degraded", "the hub is offline: diners cannot order"
        return "ready", "serving"

    def health(self, state: str | None = None, reason: str | None = None) -> Health:
        st, why = self.state()
        return Health(
            device=self.device, role=self.cfg.device.role, state=state or st, reason=reason or why, at=_now(),
            counters=dict(self.counters),
            details={"menu_version": self.menu.menu.version if self.menu else None,
                     "sold_out": len(self.soldout), "orders_kept": len(self.orders), "streams": self.streams,
                     "tables": len(self.tables), "listen": f"{self.cfg.web.host}:{self.cfg.web.port}"},
            last_errors=tuple(self.last_errors)[-5:],
        )

    def publish_health(self, state: str | None = None, reason: str | None = None) -> None:
        if not self.bus.connected:
            return
        self._health_dirty = False
        self._health_at = time.monotonic()
        self.bus.publish(topics.health(self.device), contract.encode(self.health(state, reason)), retain=True)

    def health_due(self, every_s: float) -> bool:
        since = time.monotonic() - self._health_at
        return since >= every_s or (self._health_dirty and since >= HEALTH_MIN_GAP_S)

    async def health_check(self) -> tuple[bool, str]:
        """For the watchdog: paho's network thread runs, and this very
        server answers its own /healthz (the event loop turns, the socket
        accepts). A lost broker or hub is not this process's fault."""
        if not self.bus.network_alive:
            return False, "the MQTT network thread has stopped"
        host = self.cfg.web.host
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, self.cfg.web.port), 3)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                line = await asyncio.wait_for(reader.readline(), 3)
            finally:
                writer.close()
        except (OSError, asyncio.TimeoutError) as exc:
            return False, f"the page does not answer on {host}:{self.cfg.web.port}: {exc!r}"
        if b" 200 " not in line:
            return False, f"/healthz answered {line.decode(errors='replace').strip()!r}"
        st, why = self.state()
        return True, f"{st}: {why}"


# ------------------------------------------------------------------- app
def _words_json(w: Words) -> dict[str, str]:
    return {"zh": w.zh, "en": w.en}


def make_app(service: WebService):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    max_body = service.cfg.web.max_body_bytes

    def js(body: Any, status: int = 200) -> Response:
        return Response(_json.encode(body), status_code=status, media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    def refuse(request: Request, r: BadRequest) -> Response:
        service.count_bad(request.url.path, r)
        words = WEB_REASONS.get(r.reason) or contract.REASONS["bad_schema"]
        return js({"status": "bad_request", "reason": r.reason, "message": _words_json(words),
                   "detail": r.detail[:300]}, r.status)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequest(400, "bad_schema", "Content-Length is not a number")
            if int(declared) > max_body:
                raise BadRequest(413, "payload_too_large", f"{declared} bytes, limit {max_body}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise BadRequest(413, "payload_too_large", f"more than {max_body} bytes")
        return bytes(body)

    async def post_order(request: Request) -> Response:
        try:
            body = await read_body(request)
            try:
                order = _web_order.decode(body)
            except msgspec.ValidationError as exc:
                raise BadRequest(400, "bad_schema", str(exc)) from None
            except msgspec.DecodeError as exc:
                raise BadRequest(400, "bad_json", str(exc)) from None
            status, out = await service.place(order)
        except BadRequest as r:
            return refuse(request, r)
        if "message" in out and isinstance(out["message"], Words):
            out["message"] = _words_json(out["message"])
        return js(out, status)

    async def get_order(request: Request) -> Response:
        oid = request.path_params["order_id"]
        with service._lock:
            view = service.order_view(oid)
        if view is None and _UUID.fullmatch(oid) and await service.learn(oid) is not None:
            with service._lock:
                view = service.order_view(oid)
        if view is None:
            return js({"status": "unknown", "reason": "unknown_order",
                       "message": _words_json(WEB_REASONS["unknown_order"])}, 404)
        return js({"status": "accepted", "order": view})

    async def post_pay(request: Request) -> Response:
        try:
            oid = request.path_params["order_id"]
            if not _UUID.fullmatch(oid):
                raise BadRequest(400, "bad_schema", "not an order id")
            check = request.url.path.endswith("/check")
            phone = ""
            if not check:
                body = await read_body(request)
                if body.strip():
                    try:
                        phone = loyalty.normalise(_pay_body.decode(body).phone)
                    except msgspec.ValidationError as exc:
                        raise BadRequest(400, "bad_schema", str(exc)) from None
                    except msgspec.DecodeError as exc:
                        raise BadRequest(400, "bad_json", str(exc)) from None
                    if phone and not loyalty.valid_phone(phone, service.cfg.web.phone_patterns):
                        phone = ""  # not a number the wallet could use: left out, the payment goes on
            status, out = await (service.pay_check(oid) if check else service.pay(oid, str(request.base_url), phone))
        except BadRequest as r:
            return refuse(request, r)
        if isinstance(out.get("message"), Words):
            out["message"] = _words_json(out["message"])
        return js(out, status)

    async def get_menu(request: Request) -> Response:
        body = service.menu_payload()
        if body is None:
            return js({"status": "unavailable", "message": _words_json(WEB_REASONS["hub_offline"])}, 503)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def events(request: Request) -> Response:
        raw = request.query_params.get("orders", "")
        ids = tuple(i for i in raw.split(",") if i)[:MAX_STREAM_ORDERS]
        if any(not _UUID.fullmatch(i) for i in ids):
            return refuse(request, BadRequest(400, "bad_schema", "orders must be order ids"))

        async def stream():
            service.streams += 1
            last: dict[str, Any] = {}
            try:
                yield "retry: 2000\n\n"
                with service._lock:
                    unknown = [i for i in ids if i not in service.orders]
                for oid in unknown:  # placed before this service restarted
                    await service.learn(oid)
                while not service.stopping:
                    changed = service._changed
                    snap = service.snapshot(ids)
                    for key, value in snap.items():
                        if key not in last or last[key] != value:
                            kind = key.split(":", 1)[0]
                            if value is None and kind == "order":
                                continue
                            data = {"version": value} if kind == "menu" else value
                            yield f"event: {kind}\ndata: {_json.encode(data).decode()}\n\n"
                    last = snap
                    try:
                        await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
            finally:
                service.streams -= 1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def get_photo(request: Request) -> Response:
        m = _PHOTO.fullmatch(request.path_params["name"])
        data = service.photo(m.group(1)) if m else None
        if data is None:
            return Response(b"", status_code=404, headers={"Cache-Control": "no-store"})
        # named by the hash of its bytes: it never changes
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})

    async def table_page(request: Request) -> Response:
        if request.path_params["table"] not in service._table_set:
            return HTMLResponse(_NO_TABLE, status_code=404)
        return FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def home(request: Request) -> Response:
        return HTMLResponse(_NO_TABLE)

    async def healthz(request: Request) -> Response:
        st, why = service.state()
        return js({"state": st, "reason": why, "counters": dict(service.counters)})

    return Starlette(routes=[
        Route("/", home),
        Route("/t/{table}", table_page),
        Route("/api/menu", get_menu),
        Route("/api/orders", post_order, methods=["POST"]),
        Route("/api/orders/{order_id}", get_order),
        Route("/api/orders/{order_id}/pay", post_pay, methods=["POST"]),
        Route("/api/orders/{order_id}/pay/check", post_pay, methods=["POST"]),
        Route("/api/events", events),
        Route("/photos/{name}", get_photo),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=PAGE_DIR), name="static"),
    ])


_UUID = re.compile(contract.UUID_PATTERN)
# an intent's word that comes later in its life wins over an earlier one arriving late
_STATE_RANK = {"open": 0, "closed": 1, "paid": 2, "refund_due": 3, "refunded": 4}
_PHOTO = re.compile(r"([0-9a-f]{64})\.jpg")

_NO_TABLE = """<!doctype html><html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>扫码点餐 · Order from your table</title><link rel="stylesheet" href="/static/app.css"></head>
<body class="plain"><main class="plain-card"><h1>请扫描桌上的二维码点餐</h1>
<p>Please scan the QR code on your table to order.</p></main></body></html>"""


# ------------------------------------------------------------------ run
def table_url(cfg: Config, table: str) -> str:
    """The address a table's QR code holds."""
    base = cfg.web.public_url.rstrip("/")
    if not base:
        from restobox.service import lan_address

        base = f"http://{lan_address()}:{cfg.web.port}"
    return f"{base}/t/{table}"


def serve(cfg: Config) -> int:
    """Run until SIGTERM/SIGINT, telling systemd READY once the page is
    served and pinging its watchdog after each health check that passes."""
    import uvicorn

    service = WebService(cfg)
    config = uvicorn.Config(make_app(service), host=cfg.web.host, port=cfg.web.port, log_level="warning",
                            timeout_graceful_shutdown=1, access_log=False)
    server = uvicorn.Server(config)
    # uvicorn takes SIGTERM/SIGINT while it serves and raises them again
    # once it has stopped, into the handlers found before: these, so that
    # the bus still says goodbye (presence and health) after it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    return asyncio.run(_run(service, server))


async def _run(service: WebService, server) -> int:
    from restobox.service import Watchdog

    wd = Watchdog()
    service.attach(asyncio.get_running_loop())
    service.start()
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if task.done():
        service.stop()
        log.error("the page could not be served on %s:%s (see above)", service.cfg.web.host, service.cfg.web.port)
        return 1
    service.bus.wait_connected(0)  # no wait: health says what is missing
    log.info("table ordering page on %s:%s for %d tables", service.cfg.web.host, service.cfg.web.port,
             len(service.tables))
    every = service.cfg.web.health_interval_s
    ping_every = wd.every(every)
    healthy, why = await service.health_check()
    wd.ready(why)
    wd.alive(healthy, why)
    next_ping = time.monotonic() + ping_every
    while not task.done():
        await asyncio.wait({task}, timeout=min(ping_every, HEALTH_MIN_GAP_S))
        if time.monotonic() >= next_ping and not task.done():
            next_ping = time.monotonic() + ping_every
            wd.alive(*await service.health_check())
        if service.health_due(every):
            service.publish_health()
    wd.stopping()
    service.stop()
    return 0
