"""What the controllers of the store's selling screens (the kiosk and the
counter) share: their glue between the bus, a local SQLite file and a view
model, with no Kivy in it.

A subclass sets ``NOUN`` ("kiosk", "counter": also the name of its config
section, with ``database``, ``keep_days``, ``hub_device``) and ``log``; its
``__init__`` calls ``_init_device``, then sets ``bus``, ``vm``, ``counters``
and ``_threads`` (``_worker_threads()``). It writes ``_pump`` (send again
what waits, io thread) and ``_publish_health``.

Threads: the UI thread owns the view model; ``<noun>-io`` owns the local
file, publishing and the health; ``<noun>-pay`` the payment terminal. The
workers reach the view model only through ``post``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable

import msgspec

from restobox import contract, db
from restobox.bus import Bus, Incoming, refusal_log, refused
from restobox.contract import Presence, PrintJob, ReceiptData, Rejection, topics
from restobox.retention_common import Pruner, prune_step

RESEND_S = (2.0, 5.0, 10.0, 30.0)
"""Wait before sending something the hub has not answered again, by attempt
(then the last)."""
HEALTH_EVERY_S = 15.0
PROBE_EVERY_S = 5.0
"""How often the io thread checks that the local file takes a write."""
STALLED_S = 30.0
"""The io thread not back this long (a write waits at most the database's
busy timeout, 5 s): the device is unhealthy."""

# Correlation data tags of an order sent to the hub: which copy a reply
# answers (the first, or one sent again from the outbox).
ONLINE, OUTBOX = b"o:", b"q:"


def resend_wait(attempt: int) -> float:
    """Seconds to wait before sending again after ``attempt`` sends (0: the first)."""
    return RESEND_S[min(max(attempt, 0), len(RESEND_S) - 1)]


class TouchDeviceController:
    NOUN = "device"
    IO_WAIT_S = 0.5
    """How long the io thread waits for a job before its own round (pump, probe, health)."""
    WAITING = "ready (work waits to be sent)"
    """The watchdog's word while the hub cannot be reached."""

    log: logging.Logger
    bus: Bus
    _threads: list[threading.Thread]

    def _init_device(self, cfg, *, post: Callable[[Callable[[], None]], None],
                     changed: Callable[[], None], clock: Callable[[], float], store=None, terminal=None) -> None:
        self.cfg = cfg
        #: messages from the bus not used, by reason: those of contract.decode
        #: (paho's thread), ``bad_menu``, ``unusable`` (applying it raised)
        self.bad: dict[str, int] = {}
        self._health_soon = False
        self._ui_post = post
        self.changed = changed
        self.clock = clock
        self.device = cfg.device.id
        self._store = store
        self._terminal_device = terminal
        self.link_up = False
        self.hub_up: bool | None = None  # the hub's presence; None: not heard yet
        self.has_menu = False
        self._balance_asked: tuple[str, float] | None = None  # (query id, when): waiting for the hub
        self._flows: dict = {}  # pay thread: intent id -> PaymentFlow
        self._cancel: set[str] = set()
        self._io: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._pay: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._sent_at: dict[str, float] = {}  # io thread: what was sent -> last send (monotonic)
        self._pruner: Pruner | None = None  # io thread: retention of the local file
        self._ready = threading.Event()  # the store is open
        self._stopping = threading.Event()
        # io thread -> UI thread (the watchdog's check): plain attribute reads
        self.db_problem: str | None = None
        self._io_round = time.monotonic()

    @property
    def section(self):
        """This device's config section ([kiosk], [counter])."""
        return getattr(self.cfg, self.NOUN)

    def _worker_threads(self) -> list[threading.Thread]:
        return [threading.Thread(target=self._io_loop, name=f"{self.NOUN}-io", daemon=True),
                threading.Thread(target=self._pay_loop, name=f"{self.NOUN}-pay", daemon=True)]

    # ------------------------------------------------------------ helpers
    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the UI thread. What it raises (a message the device
        cannot use) is logged and counted, never raised into Kivy's clock,
        which would stop the app."""
        def run() -> None:
            try:
                fn()
            except Exception as exc:
                self._bad("(applied on the UI thread)", "unusable", repr(exc), exc_info=True)
        self._ui_post(run)

    def _bad(self, topic: str, reason: str, detail: str = "", *, exc_info: bool = False) -> None:
        """A message this device does not use: counted by reason, logged
        (rate-limited), in the health within a second or so."""
        self.bad[reason] = self.bad.get(reason, 0) + 1
        if exc_info:
            refusal_log.warn(self.log, f"messages the {self.NOUN} could not use ({reason})",
                             f"a message the {self.NOUN} could not use: %s", detail[:300], exc_info=True)
        else:
            refused(topic, reason, detail, logger=self.log)
        self._health_soon = True

    def _decode(self, m: Incoming, type_, **kw):
        try:
            return contract.decode(m.payload, type_, **kw)
        except Rejection as r:
            self._bad(m.topic, r.reason, r.detail)
            return None

    def _bad_sources(self) -> Iterable[dict[str, int]]:
        return (self.bad,)

    def bad_counters(self) -> dict[str, int]:
        """``bad_messages`` and ``bad_message_<reason>``, for the health."""
        out: dict[str, int] = {}
        for c in self._bad_sources():
            for k, n in dict(c).items():
                out[f"bad_message_{k}"] = out.get(f"bad_message_{k}", 0) + n
        out["bad_messages"] = sum(out.values())
        return out

    @property
    def store(self):
        self._ready.wait(10)
        if self._store is None:
            raise RuntimeError(f"{self.NOUN}.db could not be opened")
        return self._store

    @property
    def reachable(self) -> bool:
        """The broker is connected and the hub is not known to be down."""
        return self.link_up and self.hub_up is not False

    # ---------------------------------------------------------- lifecycle
    def _stop_device(self) -> None:
        """The workers joined, the bus stopped, the file closed (then the subclass's own)."""
        self._stopping.set()
        self._io.put(None)
        self._pay.put(None)
        for t in self._threads:
            t.join(timeout=3)
        self.bus.stop()

    def _io_loop(self) -> None:
        next_health = last_health = next_probe = 0.0
        while True:
            self._io_round = time.monotonic()
            try:
                job = self._io.get(timeout=self.IO_WAIT_S)
            except queue.Empty:
                job = False
            if job is None:
                return
            try:
                if job:
                    job()
                self._io_extra(time.monotonic())
                if self._ready.is_set() and self._store is not None:
                    if time.monotonic() >= next_probe:
                        next_probe = time.monotonic() + PROBE_EVERY_S
                        if self._probe():
                            next_health = 0.0
                    self._pump()
                    if not job and self._io.empty():  # idle: one batch of retention, if due
                        self._prune()
                    if self._health_soon and time.monotonic() - last_health >= 1.0:
                        next_health = 0.0  # a refusal: counted in the health at most once a second
                    if time.monotonic() >= next_health:
                        next_health = time.monotonic() + HEALTH_EVERY_S
                        last_health = time.monotonic()
                        self._health_soon = False
                        self._publish_health()
            except Exception:
                self.log.exception("%s io job failed", self.NOUN)

    def _io_extra(self, now: float) -> None:
        """The subclass's own work on each round of the io thread."""

    def _pump(self) -> None:
        raise NotImplementedError

    def _publish_health(self) -> None:
        raise NotImplementedError

    def _pay_loop(self) -> None:
        while True:
            job = self._pay.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                self.log.exception("%s payment job failed", self.NOUN)

    def _prune(self) -> None:
        """One batch of retention of the local file (``keep_days``; io
        thread, never the UI thread), counted in the health as ``pruned.<table>``."""
        if self._pruner is None:
            self._pruner = self._store.pruner(self.section.keep_days)
        prune_step(self._pruner, lambda: self._pruner.step(self._store.database, self.clock()), self.counters)

    def _probe(self) -> bool:
        """Does the local file take a write? True when the answer changed."""
        problem = db.write_problem(self._store.database)
        if problem == self.db_problem:
            return False
        if problem:
            self.log.error("%s unhealthy: %s", self.NOUN, problem)
        else:
            self.log.info("%s.db takes writes again", self.NOUN)
        self.db_problem = problem
        return True

    def health_check(self) -> tuple[bool, str]:
        """For the watchdog, on the UI thread: cheap, no I/O. The worker
        threads are alive and the io thread comes round, the local file takes
        writes. (A lost broker or hub is not this process's fault: the device
        keeps its work until the hub is back.)"""
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead:
            return False, f"thread {', '.join(dead)} has stopped"
        if not self.bus.network_alive:
            return False, "the MQTT network thread has stopped"
        stalled = time.monotonic() - self._io_round
        if stalled > STALLED_S:
            return False, f"the io thread has not come round for {stalled:.0f} s"
        if self.db_problem:
            return False, self.db_problem
        return True, "ready" if self.reachable else self.WAITING

    # ----------------------------------------------------- the hub's presence
    def _on_hub_presence(self, m: Incoming) -> None:
        p = self._decode(m, Presence)
        if p is None:
            return
        if p.device != self.section.hub_device:  # not the hub's word about itself
            self._bad(m.topic, "unusable", f"the presence of {p.device[:40]!r} on the hub's topic")
            return
        self.post(lambda: self._hub(p.state == "online"))

    def _hub(self, up: bool) -> None:
        self.hub_up = up
        self._reachability_changed()

    def _link(self, up: bool) -> None:
        self.link_up = up
        self._reachability_changed()

    def _reachability_changed(self) -> None:
        """UI thread: the broker or the hub came or went."""
        self.vm.hub_reachable = self.reachable
        self.changed()

    # ------------------------------------------------------------ io thread
    def _can_send(self) -> bool:
        """The broker is connected and the hub not known to be down."""
        return self.bus.connected and self.hub_up is not False

    def _submit_order(self, payload: bytes) -> None:
        """An order (contract.OrderSubmit, encoded and committed) to the hub, the first time."""
        self.bus.publish(topics.order_submit(self.device), payload, correlation=ONLINE + uuid.uuid4().bytes,
                         response_topic=topics.order_reply(self.device))

    def _resend_queued(self, rows, attempted: Callable[[str], None], now: float) -> None:
        """Send again the orders kept here with a provisional number (``rows``:
        the outbox's, each with ``order_id``, ``state``, ``payload``,
        ``provisional_number``, ``attempts``) whose wait is over; ``attempted``
        counts a send in the outbox."""
        for row in rows:
            if row.state != "queued" or not self._resend_due(row.order_id, row.attempts, now):
                continue
            self._sent_at[row.order_id] = now
            attempted(row.order_id)
            self.log.info("sending queued order %s (%s), attempt %d", row.order_id, row.provisional_number,
                          row.attempts + 1)
            self.bus.publish(topics.order_submit(self.device), row.payload, correlation=OUTBOX + uuid.uuid4().bytes,
                             response_topic=topics.order_reply(self.device))

    def _resend_due(self, key: str, attempt: int, now: float) -> bool:
        """Is it time to send ``key`` again (it was sent ``attempt`` times)?"""
        last = self._sent_at.get(key)
        return last is None or now - last >= resend_wait(attempt)

    def _print_provisional(self, printer: str, order_id: str, receipt: ReceiptData | None, number: str) -> bool:
        """The receipt of an order kept here with a provisional number, to
        ``printer`` (io thread). The printing service is reachable even when
        the hub is not."""
        if receipt is None or not printer or not self.bus.connected:
            return False
        job = PrintJob(job_id=f"{order_id}:receipt:{printer}", printer=printer, kind="receipt",
                       order_id=order_id, receipt=msgspec.structs.replace(receipt, provisional_number=number))
        self.bus.publish(topics.PRINT_JOB, contract.encode(job))
        return True
