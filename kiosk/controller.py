"""The kiosk's glue between the bus, the payment terminal and the view model.

No Kivy here: the app hands in ``post`` (run a function on the UI thread) and
``changed`` (ask for a redraw, coalesced by the app). MQTT callbacks arrive on
paho's thread and payments run on a worker thread; both hand their results to
the UI thread through ``post``, so the view model is only ever touched from
one thread. Publishing happens on the worker too: nothing here blocks the UI.

Not here yet (issue 5): the SQLite intent store and menu cache, the offline
outbox with provisional numbers, the serial card / QR terminal.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable

from kiosk.payment import CounterPayment, InMemoryIntentStore, PaymentFlow, PaymentIntentStore
from kiosk.viewmodel import CancelPayment, CheckPaymentAgain, KioskViewModel, StartPayment, SubmitOrder
from restobox import contract
from restobox.bus import Bus, Incoming, bus_from_config, decode_or_none
from restobox.config import Config
from restobox.contract import MenuMessage, OrderReply, SoldOut, Words, topics
from restobox.menu import Menu

log = logging.getLogger("restobox.kiosk")

EMPTY_MENU = Menu(version="none", currency="CNY", tax_rate_bp=0, tax_inclusive=True, stations=(),
                  categories=(), modifier_groups=(), items=())

NO_MENU = Words("菜单正在加载，请稍候……", "The menu is loading, one moment…")


class KioskController:
    def __init__(self, cfg: Config, *, post: Callable[[Callable[[], None]], None],
                 changed: Callable[[], None], bus: Bus | None = None,
                 clock: Callable[[], float] = time.time, store: PaymentIntentStore | None = None,
                 **vm_kwargs) -> None:
        self.cfg = cfg
        self.post = post
        self.changed = changed
        self.clock = clock
        self.device = cfg.device.id
        self.bus = bus or bus_from_config(cfg)
        self.store = store or InMemoryIntentStore()
        vm_kwargs.setdefault("payment_methods", ("counter",))  # card and QR come with the serial terminal
        vm_kwargs.setdefault("idle_s", cfg.kiosk.idle_s)
        vm_kwargs.setdefault("still_there_s", cfg.kiosk.still_there_s)
        self.vm = KioskViewModel(EMPTY_MENU, clock=clock, device=self.device, **vm_kwargs)
        self.has_menu = False
        self.link_up = False
        self.notice: Words | None = None
        self.notice_until = 0.0
        self._flows: dict[str, PaymentFlow] = {}
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="kiosk-worker", daemon=True)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._worker.start()
        self.bus.on_connection_change = lambda up, why: self.post(lambda: self._link(up))
        self.bus.subscribe(topics.MENU, self._on_menu)
        self.bus.subscribe(topics.SOLDOUT, self._on_soldout)
        self.bus.subscribe(topics.order_reply(self.device), self._on_reply)
        self.bus.start()
        self.bus.announce()

    def stop(self) -> None:
        self._jobs.put(None)
        self._worker.join(timeout=3)
        self.bus.stop()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("kiosk worker job failed")

    # ------------------------------------------------------------- incoming
    def _decode(self, m: Incoming, type_):
        return decode_or_none(m, type_)

    def _on_menu(self, m: Incoming) -> None:
        msg = self._decode(m, MenuMessage)
        if msg is not None:
            self.post(lambda: self._apply_menu(msg))

    def _apply_menu(self, msg: MenuMessage) -> None:
        try:
            self.vm.on_menu(msg)
        except Exception:
            log.exception("menu %s not used", getattr(msg.menu, "version", "?"))
            return
        self.has_menu = bool(msg.menu.items)
        self.changed()

    def _on_soldout(self, m: Incoming) -> None:
        msg = self._decode(m, SoldOut)
        if msg is not None:
            self.post(lambda: (self.vm.on_soldout(msg), self.changed()))

    def _on_reply(self, m: Incoming) -> None:
        reply = self._decode(m, OrderReply)
        if reply is not None:
            self.post(lambda: self._apply_reply(reply))

    def _apply_reply(self, reply: OrderReply) -> None:
        if self.vm.on_reply(reply):
            log.info("order %s: %s %s", reply.order_id, reply.status, reply.number or reply.reason)
        self._run_commands()
        self.changed()

    def _link(self, up: bool) -> None:
        self.link_up = up
        self.changed()

    # -------------------------------------------------------------- actions
    def tap(self, target: str) -> bool:
        """A diner's touch, from the UI thread."""
        if target == "start" or (self.vm.screen == "attract" and target.startswith("lang:")):
            if not self.has_menu:
                self.notice, self.notice_until = NO_MENU, self.clock() + 4
                self.changed()
                return False
        handled = self.vm.tap(target)
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
        self._run_commands()
        self.changed()

    def _run_commands(self) -> None:
        for cmd in self.vm.take_commands():
            if isinstance(cmd, StartPayment):
                self._jobs.put(lambda c=cmd: self._pay(c))
            elif isinstance(cmd, CancelPayment):
                self._jobs.put(lambda c=cmd: self._flow_step(c.intent_id, "cancel"))
            elif isinstance(cmd, CheckPaymentAgain):
                self._jobs.put(lambda c=cmd: self._flow_step(c.intent_id, "check_again"))
            elif isinstance(cmd, SubmitOrder):
                payload = contract.encode(cmd.order)
                self._jobs.put(lambda p=payload, oid=cmd.order.order_id: self._publish_order(oid, p))

    # ------------------------------------------------- worker-thread side
    def _publish_order(self, order_id: str, payload: bytes) -> None:
        log.info("submitting order %s", order_id)
        self.bus.publish(topics.order_submit(self.device), payload, correlation=uuid.uuid4().bytes,
                         response_topic=topics.order_reply(self.device))

    def _terminal(self, method: str):
        if method == "counter":
            return CounterPayment()
        raise ValueError(f"payment method {method!r} is not set up on this kiosk")

    def _pay(self, cmd: StartPayment) -> None:
        flow = PaymentFlow(self._terminal(cmd.method), self.store)
        self._flows[cmd.intent_id] = flow
        update = flow.begin(cmd.intent_id, order_id=cmd.order_id, amount=cmd.amount)
        self._report(update)
        while not update.final:
            time.sleep(0.1)
            last, update = update, flow.poll()
            if update != last:
                self._report(update)

    def _flow_step(self, intent_id: str, what: str) -> None:
        flow = self._flows.get(intent_id)
        if flow is None:
            return
        update = getattr(flow, what)()
        self._report(update)
        while not update.final and what == "check_again":
            time.sleep(0.1)
            last, update = update, flow.poll()
            if update != last:
                self._report(update)

    def _report(self, update) -> None:
        def apply() -> None:
            self.vm.on_payment(update)
            self._run_commands()
            self.changed()
        self.post(apply)
