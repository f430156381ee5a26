"""The counter's glue between the bus, the payment terminal, counter.db and
the view model.

No Kivy here: the app hands in ``post`` (run a function on the UI thread)
and ``changed`` (ask for a redraw). Threads, as the kiosk's:

- paho's network thread: incoming messages, decoded and handed on at once;
- ``counter-io``: counter.db, publishing, the sender of what the hub has not
  answered yet, the health;
- ``counter-pay``: the payment terminal (kiosk.payment.PaymentFlow).

Money is recorded before it is sent (invariant 5 and "nothing is lost"):
a TillRequest is committed to counter.db before it is published and
published again (the same request id; the hub answers a repeat as the
first) until the hub answers. A card payment's intent is committed before
the terminal is asked to charge, together with the payment it belongs to
(a ``draft`` until the card is approved): a counter killed between the
charge and the record asks the terminal after the restart and sends the
payment once. While the hub cannot be reached the cashier goes on: cash is
taken and recorded here, a walk-in order gets a provisional number, and
both go to the hub when it is back (the order first).

A group-buy voucher is asked of the sync service (voucher/<device>/request,
restobox/vouchers.py). Its redemption's request id is committed to
counter.db (``voucher:<code>``) before the request is sent and used for
every later request about that code until the hub has recorded a payment
with it: a lost answer, a timeout or a restart, then the same voucher
scanned again, is the same redemption at the platform, never a second.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone

import msgspec

from counter.store import CounterStore
from counter.viewmodel import (
    AskVoucher,
    CancelPayment,
    ChargeCard,
    CounterViewModel,
    OpenDrawer,
    OrderInfo,
    Reprint,
    SendTill,
    SubmitWalkin,
)
from kiosk.controller import offline_receipt
from kiosk.payment import PaymentTerminal, PaymentUpdate, TerminalPayments
from kiosk.store import offline_number
from kiosk.viewmodel.model import QueryBalance
from restobox import contract
from restobox.bus import Bus, Incoming, bus_from_config
from restobox.config import Config
from restobox.contract import (
    Health,
    LoyaltyBalance,
    LoyaltyQuery,
    MenuMessage,
    OrderReply,
    OrderSubmit,
    OrderUpdate,
    PayIntent,
    PaymentUpdate as LedgerUpdate,
    PrintJob,
    ReceiptData,
    SoldOut,
    StaffCommand,
    StaffReply,
    Tender,
    TillReply,
    TillRequest,
    UnpaidOrders,
    VoucherReply,
    VoucherRequest,
    topics,
)
from restobox.service import disk_details
from restobox.touchdevice import TouchDeviceController

log = logging.getLogger("restobox.counter")


class CounterController(TouchDeviceController, TerminalPayments):
    NOUN = "counter"
    log = log
    IO_WAIT_S = 0.25
    WAITING = "ready (payments wait to be sent)"

    def __init__(self, cfg: Config, *, post: Callable[[Callable[[], None]], None], changed: Callable[[], None],
                 bus: Bus | None = None, clock: Callable[[], float] = time.time,
                 terminal: PaymentTerminal | None = None) -> None:
        self._init_device(cfg, post=post, changed=changed, clock=clock, terminal=terminal)
        c = cfg.counter
        self.bus = bus or bus_from_config(cfg)
        methods = ("card", "qr") if (c.terminal is not None or terminal is not None) else ()
        self.vm = CounterViewModel(clock=clock, device=self.device, loyalty=c.loyalty,
                                   phone_patterns=tuple(c.phone_patterns), card_methods=methods,
                                   business_date=self.business_date, vouchers=cfg.vouchers.enabled)
        self.vm.hub_reachable = False  # until the broker is connected and the hub not known to be down
        self.counters: dict[str, int] = {"till_sent": 0, "till_answered": 0, "till_refused": 0, "drawer": 0,
                                         "walkin": 0, "offline_orders": 0, "recovered": 0, "voucher_asked": 0,
                                         "voucher_unanswered": 0}
        self._threads = self._worker_threads()
        self._asked: dict[str, float] = {}  # UI: request id -> when it was first sent (for the offline notice)
        self._saved_shift: dict | None | bool = False  # UI: the shift last written to counter.db
        self._walkin_at: dict[str, float] = {}  # UI: walk-in order id -> when submitted
        self._receipts: dict[str, ReceiptData | None] = {}  # UI: its provisional receipt, if the hub is away
        self._voucher_asked: tuple[str, float] | None = None  # UI: (code, when) waiting for the sync service

    # ------------------------------------------------------------ helpers
    def business_date(self) -> str:
        try:
            return self.cfg.store.business_date(datetime.fromtimestamp(self.clock(), timezone.utc))
        except Exception:
            return ""

    # ---------------------------------------------------------- lifecycle
    def start(self) -> None:
        for t in self._threads:
            t.start()
        self._io.put(self._open_store)
        self.bus.on_connection_change = lambda up, why: self.post(lambda: self._link(up))
        self.bus.subscribe(topics.MENU, self._on_menu)
        self.bus.subscribe(topics.SOLDOUT, self._on_soldout)
        self.bus.subscribe(topics.ORDER_UPDATE, self._on_order_update)
        self.bus.subscribe(topics.PAYMENT_UPDATE, self._on_payment_update)
        self.bus.subscribe(topics.TILL_UNPAID, self._on_unpaid)
        self.bus.subscribe(topics.PAY_INTENT, self._on_pay_intent)
        self.bus.subscribe(topics.till_reply(self.device), self._on_till_reply)
        self.bus.subscribe(topics.order_reply(self.device), self._on_order_reply)
        self.bus.subscribe(topics.loyalty_reply(self.device), self._on_balance)
        self.bus.subscribe(topics.staff_reply(self.device), self._on_staff_reply)
        self.bus.subscribe(topics.voucher_reply(self.device), self._on_voucher_reply)
        self.bus.subscribe(topics.presence(self.section.hub_device), self._on_hub_presence)
        self.bus.start()
        self.bus.announce()

    def stop(self) -> None:
        self._stop_device()
        if self._store is not None:
            self._store.close()
        if self._terminal_device is not None:
            self._terminal_device.close()

    # ------------------------------------------------------- io: the store
    def _open_store(self) -> None:
        try:
            if self._store is None:
                self._store = CounterStore(self.cfg.counter.database, clock=self.clock)
        finally:
            self._ready.set()
        s = self._store
        raw = s.get_value("shift")
        shift = json.loads(raw) if raw else None
        known = s.known()
        offline = {w.order_id: w.provisional_number for w in s.orders_waiting()}
        waiting = s.waiting()
        refused_n = len(s.refused_requests(self.clock() - 86400))

        def apply() -> None:
            self.vm.refused = refused_n
            self.vm.shift = shift
            self._saved_shift = shift
            for k in known:
                self.vm.on_known(OrderInfo(
                    order_id=k.order_id, number=k.number, total=k.total, paid=k.paid, payment=k.payment,
                    state=k.state, channel=k.channel, table=k.table,
                    provisional=k.provisional_number or offline.get(k.order_id, ""), lines=k.lines,
                    paid_by=k.paid_by, seen=k.updated_at))
            self.vm.waiting = waiting
            if shift is not None and self.vm.screen == "shift":
                self.vm.screen = "orders"
            self.changed()
        self.post(apply)
        self._pay.put(self._recover)

    def _publish(self, topic: str, payload: bytes, **kw) -> None:
        if self.bus.connected:
            self.bus.publish(topic, payload, **kw)

    def _send_till(self, req: TillRequest, due: int) -> None:
        """Commit, then publish (io thread)."""
        payload = contract.encode(req)
        self.store.record(req.request_id, req.kind, payload, order_id=req.order_id or "", due=due)
        if req.kind == "shift_open":
            self.store.put("shift", json.dumps({"shift_id": req.shift_id, "float": req.float_fen,
                                                "opened_at": req.at}).encode())
        if self._hold(req.order_id):
            return  # the walk-in order goes first
        self._sent_at[req.request_id] = time.monotonic()
        self.store.attempted(req.request_id)
        self.counters["till_sent"] += 1
        self._publish(topics.till_request(self.device), payload, correlation=req.request_id.encode(),
                      response_topic=topics.till_reply(self.device))
        self._count_waiting()

    def _hold(self, order_id: str | None) -> bool:
        """A payment for a walk-in order the hub does not have yet waits for it."""
        if not order_id:
            return False
        w = self.store.order(order_id)
        return w is not None and w.state in ("sending", "queued")

    def _count_waiting(self) -> None:
        n = self.store.waiting()
        refused_n = len(self.store.refused_requests(self.clock() - 86400))

        def apply() -> None:
            self.vm.waiting, self.vm.refused = n, refused_n
            self.changed()
        self.post(apply)

    def _pump(self) -> None:
        """Send again what the hub has not answered (walk-in orders first)."""
        if not self._can_send():
            return
        now = time.monotonic()
        self._resend_queued(self.store.orders_waiting(), self.store.order_attempted, now)
        for t in self.store.pending():
            if self._hold(t.order_id):
                continue
            if not self._resend_due(t.request_id, t.attempts - 1, now):
                continue
            payload = t.payload
            if t.request_id in self._sent_at or t.attempts:
                req = contract.decode(payload, TillRequest)
                if not req.offline and req.kind == "pay":
                    payload = contract.encode(msgspec.structs.replace(req, offline=True))
                    self.store.resend_offline(t.request_id, payload)
            self._sent_at[t.request_id] = now
            self.store.attempted(t.request_id)
            log.info("sending till request %s (%s) again, attempt %d", t.request_id, t.kind, t.attempts + 1)
            self.bus.publish(topics.till_request(self.device), payload, correlation=t.request_id.encode(),
                             response_topic=topics.till_reply(self.device))

    def _publish_health(self) -> None:
        if not self.bus.connected:
            return
        waiting = self.store.waiting()
        refused_n = len(self.store.refused_requests(self.clock() - 86400))
        state = "degraded" if refused_n or self.db_problem else "ready"
        out = {**self.counters, **self.bad_counters()}
        h = Health(device=self.device, role=self.cfg.device.role, state=state,
                   reason=f"{refused_n} payment request(s) refused by the hub today" if refused_n else "",
                   at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), counters=out,
                   details={"till_waiting": waiting, "till_refused_today": refused_n,
                            "vouchers_not_applied": self.store.vouchers_kept(),
                            **disk_details(self.cfg.counter.database)})
        self.bus.publish(topics.health(self.device), contract.encode(h), retain=True)

    # ------------------------------------------------------------ incoming
    def _on_menu(self, m: Incoming) -> None:
        msg = self._decode(m, MenuMessage, max_bytes=contract.MAX_MENU_BYTES)
        if msg is not None:
            def apply() -> None:
                try:
                    self.vm.on_menu(msg)
                except Exception as exc:  # breaks the menu's rules: the menu shown stays
                    self._bad(m.topic, "bad_menu", repr(exc)[:200])
                    return
                self.has_menu = bool(msg.menu.items)
                self.changed()
            self.post(apply)

    def _on_soldout(self, m: Incoming) -> None:
        msg = self._decode(m, SoldOut)
        if msg is not None:
            self.post(lambda: (self.vm.on_soldout(msg), self.changed()))

    def _on_order_update(self, m: Incoming) -> None:
        u = self._decode(m, OrderUpdate)
        if u is None:
            return

        def apply() -> None:
            o = self.vm.on_order_update(u)
            self._io.put(lambda: self.store.know(u.order_id, number=u.number, state=u.state, payment=u.payment,
                                                 paid=u.paid, total=o.total, channel=o.channel, table=o.table))
            self.changed()
        self.post(apply)

    def _on_payment_update(self, m: Incoming) -> None:
        u = self._decode(m, LedgerUpdate)
        if u is None:
            return

        def apply() -> None:
            o = self.vm.on_payment_update(u)
            if o is not None:
                self._io.put(lambda: self.store.know(u.order_id, number=u.number, payment=u.payment, paid=u.paid,
                                                     total=o.total, paid_by=o.paid_by[:80]))
            self.changed()
        self.post(apply)

    def _on_pay_intent(self, m: Incoming) -> None:
        """A phone payment at a table made or changed: the cashier sees it
        on the order, and is asked before taking money for it here."""
        i = self._decode(m, PayIntent)
        if i is None:
            return

        def apply() -> None:
            if self.vm.on_pay_intent(i):
                self.changed()
        self.post(apply)

    def _on_unpaid(self, m: Incoming) -> None:
        """The hub's list of the day's unpaid orders (retained): the orders
        to take money for, also those placed while this counter was off."""
        msg = self._decode(m, UnpaidOrders)
        if msg is None:
            return

        def apply() -> None:
            new = [(o.order_id, dict(number=o.number, state=o.state, payment=o.payment, paid=o.paid, total=o.total,
                                     channel=o.channel, table=o.table or None, provisional_number=o.provisional))
                   for o in self.vm.on_unpaid(msg)]
            if new:
                self._io.put(lambda: [self.store.know(order_id, **fields) for order_id, fields in new])
            self.changed()
        self.post(apply)

    def _on_till_reply(self, m: Incoming) -> None:
        r = self._decode(m, TillReply)
        if r is None:
            return

        def record() -> None:
            first = self.store.answered(r.request_id, contract.encode(r), ok=r.ok, reason=r.reason or "")
            self._sent_at.pop(r.request_id, None)
            if first:
                self.counters["till_answered" if r.ok else "till_refused"] += 1
                if not r.ok:
                    log.error("till request %s refused by the hub: %s", r.request_id, r.reason)
            t = self.store.till(r.request_id)
            if t is not None and t.kind == "shift_close" and r.ok:
                self.store.put("shift", None)
            if r.ok:  # a voucher the hub has recorded: the next request about its code is a new one
                for e in r.entries:
                    if e.kind == "payment" and e.method == "voucher":
                        self.store.voucher_applied(e.reference)
            self._count_waiting()
        self._io.put(record)

        def apply() -> None:
            self._asked.pop(r.request_id, None)
            self.vm.on_till_reply(r)
            o = self.vm.orders.get(r.order_id) if r.order_id else None
            if o is not None:
                self._io.put(lambda: self.store.know(o.order_id, number=o.number, payment=o.payment, paid=o.paid,
                                                     total=o.total, paid_by=o.paid_by[:80]))
            self._run_commands()
            self.changed()
        self.post(apply)

    def _on_order_reply(self, m: Incoming) -> None:
        r = self._decode(m, OrderReply)
        if r is None:
            return

        def record() -> None:
            if r.status == "accepted":
                self.store.order_delivered(r.order_id, r.number)
                self._sent_at.pop(r.order_id, None)
            elif r.reason not in ("storage_unavailable", "internal_error"):
                self.store.order_refused(r.order_id, r.reason or "")
        self._io.put(record)

        def apply() -> None:
            self._walkin_at.pop(r.order_id, None)
            self._receipts.pop(r.order_id, None)
            self.vm.on_order_reply(r)
            o = self.vm.orders.get(r.order_id)
            if o is not None and r.status == "accepted":
                self._io.put(lambda: self.store.know(o.order_id, number=o.number, total=o.total, channel="counter",
                                                     state="accepted", lines=o.lines))
            self.changed()
        self.post(apply)

    def _on_balance(self, m: Incoming) -> None:
        r = self._decode(m, LoyaltyBalance)
        if r is not None:
            self.post(lambda: (self.vm.on_balance(r), setattr(self, "_balance_asked", None), self.changed()))

    def _on_voucher_reply(self, m: Incoming) -> None:
        r = self._decode(m, VoucherReply)
        if r is None:
            return
        if r.kind == "redeem" and r.ok:
            self._io.put(lambda: self.store.voucher_redeemed(r.code, r.redemption_id))

        def apply() -> None:
            if self.vm.on_voucher_reply(r):
                self._voucher_asked = None
            self._run_commands()
            self.changed()
        self.post(apply)

    def _ask_voucher(self, cmd: AskVoucher) -> None:
        """io thread: a redemption's request id committed (or the one kept
        for the code), then the request published. A code this counter
        asked to redeem before is redeemed again with its kept id even when
        only checked: the cashier confirmed it then, and the platform answers
        that redemption."""
        kind, request_id = cmd.kind, cmd.request_id
        kept = self.store.voucher_kept_request(cmd.code)
        if kept is not None:
            kind, request_id = "redeem", kept
        elif kind == "redeem":
            request_id = self.store.voucher_request(cmd.code, cmd.order_id, request_id)
        req = VoucherRequest(request_id=request_id, kind=kind, code=cmd.code, order_id=cmd.order_id or None)
        self.counters["voucher_asked"] += 1
        log.info("voucher %s: %s (request %s, order %s)", cmd.code, kind, request_id, cmd.order_id)
        self._publish(topics.voucher_request(self.device), contract.encode(req), correlation=request_id.encode(),
                      response_topic=topics.voucher_reply(self.device))

    def _on_staff_reply(self, m: Incoming) -> None:
        r = self._decode(m, StaffReply)
        if r is not None and not r.ok:
            log.warning("staff command %s refused: %s", r.command_id, r.reason)

    # -------------------------------------------------------------- input
    def tap(self, target: str) -> bool:
        handled = self.vm.tap(target)
        self._after_input()
        return handled

    def key(self, ch: str) -> None:
        self.vm.key(ch)
        self.changed()

    def backspace(self) -> None:
        self.vm.backspace()
        self.changed()

    def enter(self) -> None:
        self.vm.enter()
        self._after_input()

    def _after_input(self) -> None:
        self._run_commands()
        self._save_shift()
        self.changed()

    def tick(self) -> None:
        now = self.clock()
        for rid, at in list(self._asked.items()):
            if now - at >= self.cfg.counter.reply_timeout_s or not self.reachable:
                self._asked.pop(rid)
                self.vm.on_offline()
        for oid, at in list(self._walkin_at.items()):
            if now - at >= self.cfg.counter.reply_timeout_s or not self.reachable:
                self._walkin_at.pop(oid)
                receipt = self._receipts.pop(oid, None)
                self._io.put(lambda oid=oid, r=receipt: self._queue_walkin(oid, r))
        if self._balance_asked is not None and (
                not self.reachable or now - self._balance_asked[1] >= self.cfg.kiosk.loyalty_timeout_s):
            qid, self._balance_asked = self._balance_asked[0], None
            self.vm.balance_unavailable(qid)
        if self._voucher_asked is not None and (not self.link_up or now - self._voucher_asked[1] >= (
                self.cfg.vouchers.timeout_s + self.cfg.counter.reply_timeout_s)):
            code, self._voucher_asked = self._voucher_asked[0], None
            self.counters["voucher_unanswered"] += 1
            self.vm.voucher_unavailable(code)
        self._save_shift()
        self.changed()

    def _save_shift(self) -> None:
        shift = self.vm.shift
        if self._saved_shift is False or shift == self._saved_shift:
            return  # not loaded from counter.db yet, or unchanged
        self._saved_shift = shift
        if shift is None:
            self._io.put(lambda: self.store.put("shift", None))

    def _run_commands(self) -> None:
        for cmd in self.vm.take_commands():
            if isinstance(cmd, SendTill):
                self._asked[cmd.request.request_id] = self.clock()
                if not self.reachable:
                    self._asked[cmd.request.request_id] = 0.0  # told at the next tick: kept here
                self._io.put(lambda c=cmd: self._send_till(c.request, c.due))
            elif isinstance(cmd, ChargeCard):
                self._io.put(lambda c=cmd: self._start_charge(c))
            elif isinstance(cmd, CancelPayment):
                self._cancel.add(cmd.intent_id)
            elif isinstance(cmd, OpenDrawer):
                self._io.put(lambda c=cmd: self._drawer(c.request_id))
            elif isinstance(cmd, SubmitWalkin):
                if self.cfg.counter.receipt_printer:
                    vm = self.vm
                    self._receipts[cmd.order.order_id] = offline_receipt(self.cfg.store, cmd.order, vm.idx, vm.menu,
                                                                         cmd.discount)
                self._submit_walkin(cmd.order)
            elif isinstance(cmd, Reprint):
                sc = StaffCommand(command_id=str(uuid.uuid4()), kind="reprint", order_id=cmd.order_id)
                self._io.put(lambda p=contract.encode(sc): self._publish(
                    topics.staff_command(self.device), p, response_topic=topics.staff_reply(self.device)))
            elif isinstance(cmd, AskVoucher):
                self._voucher_asked = (cmd.code, self.clock())
                if not self.link_up:
                    self._voucher_asked = (cmd.code, float("-inf"))  # told at the next tick
                    continue
                self._io.put(lambda c=cmd: self._ask_voucher(c))
            elif isinstance(cmd, QueryBalance):
                self._balance_asked = (cmd.query_id, self.clock())
                if self.reachable:
                    p = contract.encode(LoyaltyQuery(query_id=cmd.query_id, phone=cmd.phone))
                    self._io.put(lambda p=p: self._publish(topics.loyalty_query(self.device), p,
                                                           response_topic=topics.loyalty_reply(self.device)))

    # ------------------------------------------------------------ drawer
    def _drawer(self, request_id: str) -> None:
        """The receipt printer's drawer pulse (the printing service sends ESC p)."""
        printer = self.cfg.counter.receipt_printer
        if not printer:
            return
        job = PrintJob(job_id=f"{request_id}:drawer", printer=printer, kind="drawer",
                       drawer_pin=self.cfg.counter.drawer_pin)
        self.counters["drawer"] += 1
        self._publish(topics.PRINT_JOB, contract.encode(job))
        log.info("drawer opened (%s) on %s", request_id, printer)

    # ------------------------------------------------------------ walk-in
    def _submit_walkin(self, order: OrderSubmit) -> None:
        self.counters["walkin"] += 1
        payload = contract.encode(order)
        if not self.reachable:
            receipt = self._receipts.pop(order.order_id, None)
            self._io.put(lambda: (self.store.order_sending(order.order_id, payload, order.expected_total or 0),
                                  self._queue_walkin(order.order_id, receipt)))
            return
        self._walkin_at[order.order_id] = self.clock()

        def send() -> None:
            self.store.order_sending(order.order_id, payload, order.expected_total or 0)
            self._submit_order(payload)
        self._io.put(send)

    def _queue_walkin(self, order_id: str, receipt: ReceiptData | None = None) -> None:
        """No answer from the hub: the order stays here with a provisional number (io thread)."""
        w = self.store.order(order_id)
        if w is None or w.state in ("delivered", "refused"):
            return
        number = offline_number(w.provisional_number, self.store.next_provisional, self.device, prefix="C")
        order = contract.decode(w.payload, OrderSubmit)
        payload = contract.encode(msgspec.structs.replace(order, offline=True, provisional_number=number))
        self.store.order_queue(order_id, payload, number, w.total)
        self.store.know(order_id, total=w.total, channel="counter", provisional_number=number)
        self.counters["offline_orders"] += 1
        log.warning("walk-in order %s kept at the counter as %s until the hub is back", order_id, number)
        self._print_provisional(self.cfg.counter.receipt_printer, order_id, receipt, number)
        self.post(lambda: (self.vm.on_offline_order(order_id, number), self.changed()))

    # ------------------------------------------------------ card payments
    def _start_charge(self, c: ChargeCard) -> None:
        """io thread: the payment's draft committed, then the terminal asked (pay thread)."""
        self.store.record(c.draft.request_id, "pay", contract.encode(c.draft), order_id=c.draft.order_id or "",
                          due=c.due, state="draft", intent_id=c.intent_id)
        self._pay.put(lambda: self._charge(c))

    def _charge(self, c: ChargeCard) -> None:
        try:
            flow = self._flow(c.method)
            self._flows[c.intent_id] = flow
            u = flow.begin(c.intent_id, order_id=c.draft.request_id, amount=c.amount)
        except Exception as exc:
            log.exception("card payment %s could not start", c.intent_id)
            from kiosk.payment import REASON_WORDS

            u = PaymentUpdate(intent_id=c.intent_id, order_id=c.draft.request_id, method=c.method, amount=c.amount,
                              state="declined", reason="terminal_unavailable", final=True,
                              words=REASON_WORDS["terminal_unavailable"], actions=())
            self._report(u)
            return
        self._follow(flow, u)

    def _report(self, u: PaymentUpdate) -> None:
        def apply() -> None:
            self.vm.on_card(u)
            self._run_commands()
            self.changed()
        self.post(apply)

    def _recover(self) -> None:
        """After a restart (pay thread): ask the terminal about card payments
        left unfinished, and send the payments they complete."""
        s = self.store
        for intent in s.unresolved():
            if intent.state == "unknown":
                continue
            try:
                u = self._settle(intent)
                log.warning("card payment %s left unfinished by the last run: %s", intent.intent_id, u.state)
            except Exception:
                log.exception("card payment %s could not be checked after the restart", intent.intent_id)
        for d in s.drafts():
            intent = s.get(d.intent_id) if d.intent_id else None
            if intent is None or intent.state in ("declined", "cancelled"):
                s.drop_draft(d.request_id)
                continue
            if intent.state != "approved":
                continue  # unknown: staff check it with the terminal
            req = contract.decode(d.payload, TillRequest)
            tenders = req.tenders + (Tender(method=intent.method, amount=intent.amount,  # type: ignore[arg-type]
                                            intent_id=intent.intent_id, reference=intent.auth_ref),)
            if sum(t.amount for t in tenders) != d.due:
                log.error("payment %s: the card %s was approved but the payment does not cover what was due; "
                          "staff: finish it at the counter", d.request_id, intent.intent_id)
                continue
            full = msgspec.structs.replace(req, tenders=tenders, offline=True)
            self.counters["recovered"] += 1
            log.warning("payment %s (card %s approved before the restart) recorded now", d.request_id,
                        intent.intent_id)
            self._io.put(lambda full=full, due=d.due: self._send_till(full, due))
