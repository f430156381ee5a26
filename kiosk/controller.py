"""The kiosk's glue between the bus, the payment terminal, its database and
the view model.

No Kivy here: the app hands in ``post`` (run a function on the UI thread) and
``changed`` (ask for a redraw, coalesced by the app). Three threads besides
the UI's, none of which ever touches the view model directly:

- paho's network thread: incoming messages, handed on at once;
- ``kiosk-io``: kiosk.db (menu cache, order outbox, provisional numbers),
  publishing, the outbox sender and the kiosk's health;
- ``kiosk-pay``: the payment terminal (a PaymentFlow per intent, the intents
  in kiosk.db).

Their results reach the view model through ``post``, so it is only ever
touched from the UI thread, and the UI thread never waits on a disk, a
socket or a serial line.

Orders: every order is committed to the outbox (``sending``) before it is
published. When the hub answers, it is ``delivered``. When the broker or the
hub cannot be reached, or the hub has not answered within
``[kiosk] reply_timeout_s``, the order is committed ``queued`` with a
provisional number, and only then does the diner see that number. The sender
publishes queued orders (marked ``offline``) until the hub answers; the hub
answers a resent order as a duplicate of the first, so each order is
accepted exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from kiosk.payment import PaymentFlow, PaymentIntentStore, PaymentTerminal, PaymentUpdate, TerminalPayments
from kiosk.store import Backlog, KioskStore, offline_number
from kiosk.viewmodel import (
    CancelPayment,
    CheckPaymentAgain,
    KioskViewModel,
    QueryBalance,
    StartPayment,
    SubmitOrder,
)
from restobox import contract
from restobox.alerts import StoreAlert, StoreWatch
from restobox.bus import Bus, Incoming, bus_from_config
from restobox.config import Config
from restobox.contract import (
    REASONS,
    Health,
    LoyaltyBalance,
    LoyaltyQuery,
    LoyaltyResult,
    MenuMessage,
    OrderReply,
    OrderSubmit,
    ReceiptData,
    Rejection,
    SoldOut,
    StoreHeader,
    Words,
    topics,
)
from restobox.loyalty import mask
from restobox.menu import Menu
from restobox.orders import price_order
from restobox.photos import PhotoShelf
from restobox.service import disk_details
from restobox.touchdevice import OUTBOX, TouchDeviceController

log = logging.getLogger("restobox.kiosk")

EMPTY_MENU = Menu(version="none", currency="CNY", tax_rate_bp=0, tax_inclusive=True, stations=(),
                  categories=(), modifier_groups=(), items=())

NO_MENU = Words("菜单正在加载，请稍候……", "The menu is loading, one moment…")

ALERTS_EVERY_S = 60.0
PHOTO_TILE = (480, 360)
"""Pixels of a menu photo as the kiosk keeps it (a tile's picture, 4:3)."""
PHOTO_CACHE_MB = 32.0


@dataclass(frozen=True, slots=True)
class Staff:
    """What the kiosk tells staff (a line on the attract screen, and health)."""

    backlog: Backlog
    unresolved_payments: int
    orphan_payments: int = 0  # approved after a restart, with no order placed

    def words(self) -> Words | None:
        b = self.backlog
        parts_zh, parts_en = [], []
        if b.waiting:
            parts_zh.append(f"{b.waiting} 单等待送到门店主机")
            parts_en.append(f"{b.waiting} order(s) waiting for the store hub")
        if b.refused:
            parts_zh.append(f"{b.refused} 单被主机拒收，请处理")
            parts_en.append(f"{b.refused} order(s) refused by the hub: staff please check")
        if self.unresolved_payments:
            parts_zh.append(f"{self.unresolved_payments} 笔付款待核对")
            parts_en.append(f"{self.unresolved_payments} payment(s) to check")
        if self.orphan_payments:
            parts_zh.append(f"{self.orphan_payments} 笔已扣款但未下单，请退款或补单")
            parts_en.append(f"{self.orphan_payments} payment(s) taken without an order: refund or serve")
        if not parts_zh:
            return None
        return Words("；".join(parts_zh), "; ".join(parts_en))


def offline_receipt(s, order: OrderSubmit, idx, menu: Menu, discount: int = 0) -> ReceiptData | None:
    """The receipt of an order the hub cannot number yet (a kiosk's or a
    counter's, while the hub is away), priced with the menu the diner saw;
    ``s`` is the store's config. Its provisional number is added when it is
    given. None if the order cannot be priced."""
    try:
        priced = price_order(order, idx, discount=discount)
    except Rejection as exc:
        log.error("no provisional receipt for %s: %s", order.order_id, exc)
        return None
    try:
        local = datetime.now(ZoneInfo(s.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        local = datetime.now().astimezone()
    return ReceiptData(
        store=StoreHeader(name_zh=s.name_zh, name_en=s.name_en, address=s.address, phone=s.phone,
                          tax_id=s.tax_id),
        order_id=order.order_id, number=0, business_date=local.date().isoformat(),
        accepted_at=local.strftime("%Y-%m-%d %H:%M"), channel=order.channel, service=order.service,
        table=order.table, lang=order.lang, lines=priced.lines, subtotal=priced.subtotal, tax=priced.tax,
        total=priced.total, currency=priced.currency, tax_rate_bp=menu.tax_rate_bp,
        tax_inclusive=menu.tax_inclusive, payment_method=order.payment.method,
        payment_status=order.payment.status, payment_reference=order.payment.reference, offline=True,
        note=order.note,
        # the masked number only; the hub counts the points when it has the order
        loyalty=LoyaltyResult(member=mask(order.loyalty.phone), redeemed=order.loyalty.redeem_points,
                              discount=priced.discount) if order.loyalty else None,
    )


class KioskController(TouchDeviceController, TerminalPayments):
    NOUN = "kiosk"
    log = log
    WAITING = "ready (orders wait in the outbox)"

    def __init__(self, cfg: Config, *, post: Callable[[Callable[[], None]], None],
                 changed: Callable[[], None], bus: Bus | None = None,
                 clock: Callable[[], float] = time.time, store: KioskStore | None = None,
                 terminal: PaymentTerminal | None = None, **vm_kwargs) -> None:
        self._init_device(cfg, post=post, changed=changed, clock=clock, store=store, terminal=terminal)
        self.bus = bus or bus_from_config(cfg)
        k = cfg.kiosk
        vm_kwargs.setdefault("payment_methods", tuple(k.payment_methods))
        vm_kwargs.setdefault("idle_s", k.idle_s)
        vm_kwargs.setdefault("still_there_s", k.still_there_s)
        vm_kwargs.setdefault("loyalty", k.loyalty)
        vm_kwargs.setdefault("phone_patterns", tuple(k.phone_patterns))
        self.vm = KioskViewModel(EMPTY_MENU, clock=clock, device=self.device, **vm_kwargs)
        self.reply_timeout_s = k.reply_timeout_s
        # UI-thread state
        self.staff: Staff | None = None
        self.notice: Words | None = None
        self.notice_until = 0.0
        self._submit_started: float | None = None  # the VM's order is out, waiting for the hub
        self._going_offline: str | None = None  # order id being committed as queued
        self._live_menu = False
        # worker state
        self._orphans: list[str] = []  # pay thread: intents approved after a restart, no order
        self._threads = self._worker_threads()
        self.counters: dict[str, int] = {"submitted": 0, "offline": 0, "delivered": 0, "refused": 0,
                                         "late_replies": 0}
        # the store's alerts, for staff (fed on paho's thread; ``alerts`` is the UI thread's)
        self.watch = StoreWatch.from_config(cfg, me=self.device)
        self.alerts: list[StoreAlert] = []
        self._next_alerts = time.monotonic() + ALERTS_EVERY_S  # io thread
        # the menu's photos, cut once to the tile's size on a thread of their
        # own and kept beside kiosk.db (a restart shows them at once)
        self.photos = PhotoShelf(Path(cfg.kiosk.database).resolve().parent / "photos", tile=PHOTO_TILE,
                                 bound_mb=PHOTO_CACHE_MB, on_change=self._photos_changed,
                                 on_bad=lambda topic, reason, detail: self._bad(topic, reason, detail))

    def _bad_sources(self):
        """This kiosk's topics and the alert sources (StoreWatch's)."""
        return (self.bad, self.watch.rejected)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        for t in self._threads:
            t.start()
        self._io.put(self._open_store)
        self.bus.on_connection_change = lambda up, why: self.post(lambda: self._link(up))
        for topic, key, type_, apply in self._retained():
            self.bus.subscribe(topic, self._on_retained(key, type_, apply))
        self.bus.subscribe(topics.order_reply(self.device), self._on_reply)
        self.bus.subscribe(topics.loyalty_reply(self.device), self._on_balance)
        self.bus.subscribe(topics.presence(self.section.hub_device), self._on_hub_presence)
        for topic in self.watch.TOPICS:
            self.bus.subscribe(topic, self._on_store)
        self.photos.start()
        for topic in self.photos.TOPICS:
            self.bus.subscribe(topic, lambda m: self.photos.feed(m.topic, m.payload))
        self.bus.start()
        self.bus.announce()
        self._pay.put(self._resume_payments)

    def stop(self) -> None:
        self._stop_device()
        self.photos.stop()
        if self._store is not None:
            self._store.close()
        if isinstance(self._terminal_device, PaymentTerminal):
            self._terminal_device.close()

    def _io_extra(self, now: float) -> None:
        if now >= self._next_alerts:
            self._next_alerts = now + ALERTS_EVERY_S
            self.post(self._refresh_alerts)  # an alert's age is part of it

    def _on_store(self, m: Incoming) -> None:
        bad = self.watch.bad
        if self.watch.feed(m.topic, m.payload):  # paho's thread
            self.post(self._refresh_alerts)
        elif self.watch.bad != bad:
            self._health_soon = True

    def _photos_changed(self, photos: dict[str, str]) -> None:
        """The shelf's thread: the photos on disk changed; the view model
        takes them on the UI thread (and asks for a redraw only if they
        differ from its own)."""
        self.post(lambda: self.vm.set_photos(photos))

    def _refresh_alerts(self) -> None:
        now = self.watch.alerts()
        if now != self.alerts:
            self.alerts = now
            self.changed()

    # ------------------------------------------------------- io: the store
    def _open_store(self) -> None:
        try:
            if self._store is None:
                self._store = KioskStore(self.cfg.kiosk.database, clock=self.clock)
            queued, dropped = self._store.recover()
            if queued or dropped:
                log.warning("kiosk restarted with orders in flight: %d paid ones queued for the hub, "
                            "%d unpaid ones dropped", queued, dropped)
        finally:
            self._ready.set()
        for _, key, type_, apply in self._retained():
            raw = self._store.get_value(key)
            if raw is None:
                continue
            try:
                msg = contract.decode(raw, type_, max_bytes=contract.MAX_MENU_BYTES)
            except Rejection as exc:
                log.error("the cached %s is not usable: %s", key, exc)
                continue
            self.post(lambda msg=msg, apply=apply: apply(msg, cached=True))
        self._refresh_staff()

    def _staff_now(self) -> Staff:
        """The outbox and payment figures (io thread: kiosk.db)."""
        s = self._store
        return Staff(s.backlog(), len(s.unresolved()), len(self._orphans))

    def _refresh_staff(self, *, publish: bool = False) -> None:
        """Show staff the figures; with ``publish``, in the kiosk's health too."""
        staff = self._staff_now()
        if publish:
            self._publish_health(staff)

        def apply() -> None:
            self.staff = staff
            self.changed()
        self.post(apply)

    # ------------------------------------------------------------- incoming
    def _retained(self):
        """What the hub keeps retained and the kiosk caches to start without
        it: (topic, cache key, message type, apply on the UI thread)."""
        return ((topics.MENU, "menu", MenuMessage, self._apply_menu),
                (topics.SOLDOUT, "soldout", SoldOut, self._apply_soldout))

    def _on_retained(self, key: str, type_, apply):
        def on_message(m: Incoming) -> None:  # paho's thread: decoded once, here
            msg = self._decode(m, type_, max_bytes=contract.MAX_MENU_BYTES)
            if msg is None:
                return

            def use() -> None:  # UI thread; cached only once used: a bad one never replaces a good one
                if apply(msg, cached=False):
                    self._io.put(lambda: self.store.put(key, m.payload))
                else:
                    self._bad(m.topic, "bad_menu" if key == "menu" else "unusable", f"the {key} was not used")
            self.post(use)
        return on_message

    @property
    def menu_from_cache(self) -> bool:
        """The menu shown is the cached one (the hub's has not come yet)."""
        return self.has_menu and not self._live_menu

    def _apply_menu(self, msg: MenuMessage, cached: bool) -> bool:
        """UI thread. False: the menu was not used (it breaks the menu's rules)."""
        if cached and self._live_menu:
            return True  # the hub's own came first
        try:
            self.vm.on_menu(msg)
        except Exception as exc:
            log.error("menu %.64s not used (%s): %r", msg.menu.version, "cached" if cached else "from the hub", exc)
            return False
        self._live_menu = self._live_menu or not cached
        self.has_menu = bool(msg.menu.items)
        log.info("menu %s (%d items)%s", msg.menu.version, len(msg.menu.items), " from the cache" if cached else "")
        self.changed()
        return True

    def _apply_soldout(self, msg: SoldOut, cached: bool) -> bool:
        if cached and self._live_menu:
            return True
        try:
            self.vm.on_soldout(msg)
        except Exception as exc:
            log.error("86 list not used: %r", exc)
            return False
        self.changed()
        return True

    def _reachability_changed(self) -> None:
        self.vm.hub_reachable = self.reachable
        self._check_balance()
        self._check_submission()
        self.changed()

    def _on_balance(self, m: Incoming) -> None:
        reply = self._decode(m, LoyaltyBalance)
        if reply is not None:
            self.post(lambda: self._apply_balance(reply))

    def _apply_balance(self, reply: LoyaltyBalance) -> None:
        if self.vm.on_balance(reply):
            self._balance_asked = None
            self.changed()

    def _check_balance(self) -> None:
        """No balance from the hub in time (or no hub): go on without one."""
        asked = self._balance_asked
        if asked is None:
            return
        if not self.reachable or self.clock() - asked[1] >= self.cfg.kiosk.loyalty_timeout_s:
            log.info("no points balance from the hub (%s)", "unreachable" if not self.reachable else "timeout")
            self._balance_asked = None
            self.vm.balance_unavailable(asked[0])
            self.changed()

    def _on_reply(self, m: Incoming) -> None:
        reply = self._decode(m, OrderReply)
        if reply is not None:
            corr = m.correlation or b""
            self._io.put(lambda: self._record_reply(reply, corr))
            if not corr.startswith(OUTBOX):
                self.post(lambda: self._apply_reply(reply))

    def _apply_reply(self, reply: OrderReply) -> None:
        before = self.vm.order_id
        if not self.vm.on_reply(reply):
            self.counters["late_replies"] += 1
            log.info("reply for order %s came after the kiosk stopped waiting (%s %s)",
                     reply.order_id, reply.status, reply.number or reply.reason)
            return
        log.info("order %s: %s %s", reply.order_id, reply.status, reply.number or reply.reason)
        self._submit_started = None
        if reply.status == "rejected":
            if self.vm.screen == "cart" or self.vm.order_id != before:
                # back to the cart: nothing to deliver; the next attempt commits again
                self._io.put(lambda: self.store.drop(reply.order_id))
            elif self.vm.screen == "help":
                said = REASONS.get(reply.reason or "") or reply.message or REASONS["internal_error"]
                self._io.put(lambda: (self.store.refused(reply.order_id, reply.reason or "", said.en),
                                      self._refresh_staff()))
        self._run_commands()
        self.changed()

    # -------------------------------------------------------------- actions
    def tap(self, target: str) -> bool:
        """A diner's touch, from the UI thread."""
        if target == "start" or (self.vm.screen == "attract" and target.startswith("lang:")):
            if not self.has_menu:
                self.notice, self.notice_until = NO_MENU, self.clock() + 4
                self.changed()
                return False
        order_id, submitted = self.vm.order_id, self.vm.submitted
        handled = self.vm.tap(target)
        if submitted is not None and self.vm.order_id != order_id and self.vm.screen == "attract" \
                and self.vm.provisional is None and self.vm.number is None:
            # an order refused by the hub and then cancelled by the diner
            self._io.put(lambda oid=submitted.order_id: self.store.drop(oid))
        self._run_commands()
        self.changed()
        return handled

    def current_notice(self) -> str | None:
        """The controller's own notice (menu not there yet), else the VM's."""
        if self.notice is not None and self.clock() < self.notice_until:
            return self.vm.text(self.notice)
        return self.vm.notice

    def tick(self) -> None:
        self.vm.tick()
        self._check_balance()
        self._check_submission()
        self._run_commands()
        self.changed()

    def _check_submission(self) -> None:
        """The VM's order is out: go offline when the hub cannot answer."""
        vm = self.vm
        if self._submit_started is None or vm.screen != "pay" or vm.pay_phase != "submitting":
            return
        if self._going_offline == vm.order_id:
            return
        waited = self.clock() - self._submit_started
        if not self.reachable or waited >= self.reply_timeout_s:
            why = "no broker" if not self.link_up else ("the hub is offline" if self.hub_up is False
                                                        else f"no answer in {waited:.0f} s")
            self._go_offline(vm.submitted, why)

    def _run_commands(self) -> None:
        for cmd in self.vm.take_commands():
            if isinstance(cmd, StartPayment):
                self._pay.put(lambda c=cmd: self._run_payment(c))
            elif isinstance(cmd, CancelPayment):
                self._cancel.add(cmd.intent_id)
            elif isinstance(cmd, CheckPaymentAgain):
                self._pay.put(lambda c=cmd: self._check_again(c.intent_id))
            elif isinstance(cmd, SubmitOrder):
                self._submit(cmd.order)
            elif isinstance(cmd, QueryBalance):
                self._ask_balance(cmd)

    def _ask_balance(self, cmd: QueryBalance) -> None:
        """The phone number goes to the hub only (loyalty/query/<device>)."""
        self._balance_asked = (cmd.query_id, self.clock())
        if not self.reachable:
            self._check_balance()
            return
        payload = contract.encode(LoyaltyQuery(query_id=cmd.query_id, phone=cmd.phone))
        self._io.put(lambda: self.bus.publish(topics.loyalty_query(self.device), payload,
                                              response_topic=topics.loyalty_reply(self.device)))

    def _submit(self, order: OrderSubmit) -> None:
        self.counters["submitted"] += 1
        if not self.reachable:
            self._go_offline(order, "no broker" if not self.link_up else "the hub is offline")
            return
        self._submit_started = self.clock()
        payload = contract.encode(order)
        total, status = order.expected_total or 0, order.payment.status
        self._io.put(lambda: self._publish_online(order.order_id, payload, total, status))

    def _go_offline(self, order: OrderSubmit | None, why: str) -> None:
        if order is None:
            return
        self._going_offline = order.order_id
        log.warning("order %s: %s; keeping it in the kiosk's outbox with a provisional number", order.order_id, why)
        receipt = self._offline_receipt(order)
        self._io.put(lambda: self._queue_offline(order, receipt))

    def _offline_receipt(self, order: OrderSubmit) -> ReceiptData | None:
        """The diner's receipt while the hub cannot number the order (UI
        thread: priced with the menu the diner saw)."""
        if not self.cfg.kiosk.receipt_printer:
            return None
        vm = self.vm
        return offline_receipt(self.cfg.store, order, vm.idx, vm.menu, vm.discount if order.loyalty else 0)

    # ------------------------------------------------------- io-thread side
    def _publish_online(self, order_id: str, payload: bytes, total: int, status: str) -> None:
        self.store.sending(order_id, payload, total=total, payment_status=status)  # committed before it is sent
        log.info("submitting order %s", order_id)
        self._submit_order(payload)

    def _queue_offline(self, order: OrderSubmit, receipt: ReceiptData | None = None) -> None:
        row = self.store.get_order(order.order_id)
        if row is not None and row.state == "delivered":
            # the hub's answer came in the meantime: the diner gets its number from it
            return
        kept = row.provisional_number if row is not None and row.state in ("queued", "refused") else ""
        number = offline_number(kept, self.store.next_provisional, self.device)
        offline = msgspec.structs.replace(order, offline=True, provisional_number=number)
        self.store.queue(order.order_id, contract.encode(offline), number, total=order.expected_total or 0,
                         payment_status=order.payment.status)
        self._sent_at.pop(order.order_id, None)
        self.counters["offline"] += 1
        self._refresh_staff()
        printer = self.cfg.kiosk.receipt_printer
        if self._print_provisional(printer, order.order_id, receipt, number):
            log.info("provisional receipt %s for order %s sent to %s", number, order.order_id, printer)

        def show() -> None:  # committed: now the diner may see the number
            self._going_offline = None
            vm = self.vm
            if vm.screen == "pay" and vm.pay_phase == "submitting" and vm.order_id == order.order_id:
                vm.confirm_offline(offline)
                self._submit_started = None
                self.changed()
        self.post(show)

    def _pump(self) -> None:
        """Send queued orders again while the hub is reachable."""
        if self._can_send():
            self._resend_queued(self.store.waiting(limit=50), self.store.attempted, time.monotonic())

    def _record_reply(self, reply: OrderReply, corr: bytes) -> None:
        row = self.store.get_order(reply.order_id)
        if row is None or row.state in ("delivered", "refused"):
            return
        from_outbox = corr.startswith(OUTBOX)
        if row.state == "queued" and not from_outbox:
            # an answer to the first copy: the queued copy (with the number
            # the diner holds) still goes, and is answered as a duplicate
            return
        if reply.status == "accepted":
            if self.store.delivered(reply.order_id, reply.number):
                self.counters["delivered"] += 1
                self._sent_at.pop(reply.order_id, None)
                log.info("order %s%s is at the hub as number %s", reply.order_id,
                         f" ({row.provisional_number})" if row.provisional_number else "", reply.number)
        elif reply.reason == "duplicate_conflict":
            # the hub holds this order id with other contents: it has the order
            number = reply.detail.get("number")
            ok = number is not None and number.isdecimal() and len(number) <= 9  # "²".isdigit(), int("²") fails
            self.store.delivered(reply.order_id, int(number) if ok else None)
            self.counters["delivered"] += 1
        elif from_outbox and reply.reason in ("storage_unavailable", "internal_error"):
            return  # sent again later
        elif from_outbox:
            said = REASONS.get(reply.reason or "") or reply.message or REASONS["internal_error"]
            log.error("queued order %s (%s) refused by the hub: %s (%s)", reply.order_id, row.provisional_number,
                      reply.reason, said.en)
            self.store.refused(reply.order_id, reply.reason or "", said.en)
            self.counters["refused"] += 1
        else:
            return  # the diner is answering it on the screen (see _apply_reply)
        self._refresh_staff(publish=True)

    def _publish_health(self, staff: Staff | None = None) -> None:
        if not self.bus.connected:
            return
        staff = staff or self._staff_now()
        b, unresolved, orphans = staff.backlog, staff.unresolved_payments, staff.orphan_payments
        words = staff.words()
        state = "degraded" if b.refused or unresolved or orphans or b.oldest_s > 300 else "ready"
        reason = words.en if words is not None else ""
        if self.db_problem:
            state, reason = "degraded", "; ".join(x for x in (self.db_problem, reason) if x)
        h = Health(
            device=self.device, role=self.cfg.device.role, state=state, reason=reason,
            at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            counters={**self.counters, **self.bad_counters()},
            details={"outbox_waiting": b.waiting, "outbox_queued": b.queued, "outbox_refused": b.refused,
                     "outbox_oldest_s": round(b.oldest_s, 1), "payments_to_check": unresolved,
                     "payments_without_order": orphans, **disk_details(self.cfg.kiosk.database)},
        )
        self.bus.publish(topics.health(self.device), contract.encode(h), retain=True)

    # ------------------------------------------------------ payment thread
    def _run_payment(self, cmd: StartPayment) -> None:
        try:
            flow = self._flow(cmd.method)
        except Exception as exc:
            log.error("payment %s: %s", cmd.intent_id, exc)
            return
        self._flows[cmd.intent_id] = flow
        try:
            update = flow.begin(cmd.intent_id, order_id=cmd.order_id, amount=cmd.amount)
        except Exception:
            log.exception("payment %s could not start", cmd.intent_id)
            self._io.put(self._refresh_staff)  # kiosk.db is the io thread's
            raise
        self._follow(flow, update)

    def _follow(self, flow: PaymentFlow, update: PaymentUpdate) -> PaymentUpdate:
        update = super()._follow(flow, update)
        if update.state == "unknown":
            self._io.put(self._refresh_staff)
        return update

    def _check_again(self, intent_id: str) -> None:
        flow = self._flows.get(intent_id)
        if flow is not None:
            self._follow(flow, flow.check_again())

    def _resume_payments(self) -> None:
        """After a restart: ask the terminal about intents left unfinished."""
        for intent in self.store.unresolved():
            if intent.state == "unknown":
                continue  # staff check these (shown on the attract screen)
            try:
                u = self._settle(intent)
            except Exception:
                log.exception("payment %s could not be checked after the restart", intent.intent_id)
                continue
            if u.state == "approved":
                self._orphans.append(intent.intent_id)
            level = logging.ERROR if u.state == "approved" else logging.WARNING
            log.log(level, "payment %s for order %s (%s) left unfinished by the last run: %s — staff: %s",
                    intent.intent_id, intent.order_id, intent.amount, u.state,
                    "refund or serve it" if u.state == "approved" else "nothing was charged")
        self._io.put(self._refresh_staff)

    def _report(self, update: PaymentUpdate) -> None:
        def apply() -> None:
            self.vm.on_payment(update)
            self._run_commands()
            self.changed()
        self.post(apply)


__all__ = ["KioskController", "Staff", "PaymentIntentStore"]
