"""The store hub: the single writer of the order book.

Threads: paho's network thread only queues; one worker thread owns the
database. The worker takes every message waiting (up to ``batch_max``) and
commits them in one transaction (group commit): one fsync for many orders,
which is what lets a Pi's SD card take a lunch rush. Messages are
acknowledged to the broker only after that commit, so a hub killed
mid-batch gets them again when it comes back.

One bad message never holds up the others. Each kind of message has its
handler (restobox/hub/: submit, kitchen, staff, till, points, printing,
catalog), listed once in :data:`ROUTES`; :meth:`Hub._one` is the one place
that reads a message, runs its handler in a savepoint of its own, and
answers, announces and counts a refusal. A message whose handler raises —
a refusal, a bug, a statement SQLite will not run — is rolled back alone,
answered (requests) or announced, and acknowledged; the rest of the batch
commits. Only the database refusing writes (locked, full, I/O error) keeps
messages unacknowledged for a retry.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from datetime import datetime
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import peewee as pw

from restobox import contract, db
from restobox.bus import Bus, Incoming, bus_from_config, refusal_log
from restobox.config import Config
from restobox.contract import UNPAID_MAX, Board, Health, Rejection, RejectNotice, SoldOut, UnpaidOrder, UnpaidOrders, \
    topics
from restobox.hub import catalog, kitchen, phonepay, points, printing, staff, submit, till
from restobox.hub.common import Batch, Request, Route, iso, stored_ticket_msg, ticket_topic, unpaid_entry, utcnow
from restobox.hub.retention import Retention
from restobox.retention_common import prune_step
from restobox.menu import Menu, MenuIndex
from restobox.orders import HELD_STATES, OPEN_STATES
from restobox.photos import MenuPhotos, source_dir
from restobox.runtime import Backoff, Runtime
from restobox.service import disk_details

log = logging.getLogger("restobox.hub")

#: Every kind of message the hub reads (docs/protocol.md §2 and §3).
ROUTES: dict[str, Route] = {r.kind: r for r in (
    Route("submit", topics.ORDER_SUBMIT_ALL, "order/submit", contract.OrderSubmit, submit.handle,
          answer=submit.refusal, reply_topic=topics.order_reply, id_field="order_id"),
    Route("station", topics.STATION_EVENT_ALL, "station/event", contract.StationEvent, kitchen.handle_event,
          id_field="order_id"),
    Route("sync", topics.STATION_SYNC_ALL, "station/sync", contract.SyncRequest, kitchen.handle_sync),
    Route("staff", topics.STAFF_COMMAND_ALL, "staff/command", contract.StaffCommand, staff.handle,
          answer=staff.refusal, reply_topic=topics.staff_reply, id_field="command_id"),
    Route("till", topics.TILL_REQUEST_ALL, "till/request", contract.TillRequest, till.handle,
          answer=till.refusal, reply_topic=topics.till_reply, id_field="request_id"),
    Route("pay", topics.PAY_REQUEST_ALL, "pay/request", contract.PayRequest, phonepay.handle_request,
          answer=phonepay.refusal, reply_topic=topics.pay_reply, id_field="request_id"),
    Route("pay_result", topics.PAY_RESULT, None, contract.PayResult, phonepay.handle_result),
    Route("loyalty", topics.LOYALTY_QUERY_ALL, "loyalty/query", contract.LoyaltyQuery, points.handle_query,
          answer=points.refusal, reply_topic=topics.loyalty_reply, id_field="query_id"),
    Route("print_state", topics.PRINT_JOB_STATE, None, contract.PrintJobState, printing.handle_state,
          id_field="job_id"),
    Route("menu", topics.CLOUD_MENU, None, contract.MenuMessage, catalog.handle_menu, max_bytes=contract.MAX_MENU_BYTES),
    Route("stock", topics.CLOUD_STOCK, None, contract.StockLevels, catalog.handle_stock, max_bytes=contract.MAX_STOCK_BYTES),
)}

#: Numbers in each list of the pickup board (docs/protocol.md §3.7).
BOARD_MAX = 1000

#: The till's unpaid list goes out at most this often (s): in a rush each
#: batch changes it, and it is the largest message the hub sends often. A
#: counter hears each new order at once on order/update anyway.
UNPAID_EVERY_S = 0.5

#: What the hub subscribes to: message kind -> topic filter.
SUBSCRIPTIONS: dict[str, str] = {k: r.topic for k, r in ROUTES.items()}


class Hub:
    def __init__(
        self,
        cfg: Config,
        menu: Menu,
        *,
        bus: Bus | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.cfg = cfg
        self.menu = menu
        self.idx = MenuIndex(menu)
        # menus replaced lately: version -> (index, monotonic s when replaced)
        self.previous_menus: dict[str, tuple[MenuIndex, float]] = {}
        self.stock_limited = False  # any StockLevel rows (skip the lookup per order when none)
        self.clock = clock
        self.tz = ZoneInfo(cfg.store.timezone)
        self.bus = bus or bus_from_config(cfg, manual_ack=True)
        self.q: queue.Queue[tuple[str, Incoming]] = queue.Queue()
        # the process's lifecycle: state, signals, systemd, periodic health (restobox/runtime.py)
        self.runtime = Runtime("hub", check=self.health_check, publish_health=self._publish_health,
                               health_every_s=cfg.hub.health_interval_s)
        self.counters: Counter = Counter()
        self.last_errors: deque[RejectNotice] = deque(maxlen=20)
        self.sold_out: set[str] = set()
        self.board: dict[str, tuple[int, str]] = {}
        # the till's list (topics.TILL_UNPAID): the business day's unpaid
        # orders, oldest number first (loaded so, new ones added at the end)
        self.unpaid: dict[str, UnpaidOrder] = {}
        self.unpaid_date = ""
        self._unpaid_due = False  # changed since last published
        self._unpaid_sent = float("-inf")  # when last published (monotonic)
        self.print_sent: dict[str, float] = {}  # job id -> when last sent or heard of (monotonic)
        self.print_rechecked = float("-inf")  # when the jobs not yet done were last looked at
        self.print_recheck_at: float | None = None  # look at them again then (after a connect)
        self.member_key = cfg.hub.loyalty.member_key()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._db: pw.SqliteDatabase | None = None
        self._last_tick = 0.0
        self._served_connect = 0
        self._beat = time.monotonic()  # the worker's last round (health_check)
        # waits before the store database is tried again with the messages it refused
        self._retry = Backoff(0.5, 2.0)
        self.retention = Retention(cfg.hub.retention, cfg.store)
        # the menu's photos: prepared and published on a thread of their own
        self.photos = MenuPhotos(
            source_dir(cfg.hub.menu, cfg.hub.menu_images),
            Path(cfg.hub.database).resolve().parent / "menu-photos",
            publish=lambda topic, payload, retain: self.bus.publish(topic, payload, retain=retain),
            now=lambda: iso(self.clock()), count=self._photo_counted)

    @property
    def state(self) -> str:
        return self.runtime.state

    @state.setter
    def state(self, state: str) -> None:
        self.runtime.enter(state, self.runtime.reason)  # type: ignore[arg-type]

    @property
    def state_reason(self) -> str:
        return self.runtime.reason

    def business_date(self, now: datetime) -> str:
        """Orders before the day start (e.g. 04:00) belong to the previous day."""
        return self.cfg.store.business_date(now)

    # ============================================================ lifecycle
    def start(self) -> None:
        self._set_state("starting", "opening the store database")
        self._db = db.open_store_db(self.cfg.hub.database)
        self._load()
        self.bus.on_connection_change = self._on_link
        for kind, topic_filter in SUBSCRIPTIONS.items():
            self.bus.subscribe(topic_filter, lambda m, kind=kind: self.q.put((kind, m)))
        self.bus.start()
        self._worker = threading.Thread(target=self._run, name="hub-worker", daemon=True)
        self._worker.start()
        self.photos.start()
        if not self.bus.wait_connected(10):
            self._set_state("degraded", f"cannot reach the broker ({self.bus.last_refusal or 'no answer'})",
                            "broker_unreachable")
        else:
            self._after_connect()

    def _after_connect(self) -> None:
        # Once per connection: start() and the link callback may both ask.
        if self._served_connect == self.bus.connects:
            return
        self._served_connect = self.bus.connects
        self._publish_retained_state()
        self._republish_unacked_tickets()
        self.bus.announce()
        self._set_state("ready", "serving")

    def _on_link(self, up: bool, why: str) -> None:
        if up:
            # the print jobs not done yet are asked about again a second after
            # (re)connecting, once this connection's subscriptions are in place:
            # an answer sent before them would be lost with a session that was
            self.print_recheck_at = time.monotonic() + 1.0
            if self.state in ("degraded", "starting") and self._worker is not None:
                self.q.put(("reconnected", None))  # type: ignore[arg-type]
        else:
            self._set_state("degraded", f"lost the broker: {why}", "broker_lost")

    def stop(self) -> None:
        self._set_state("stopping", "asked to stop")
        self._stop.set()
        if self._worker:
            self._worker.join(5)
        self.photos.stop()
        try:
            self._publish_health()
        except Exception:  # the broker may be gone; stopping anyway
            pass
        self.bus.stop()
        if self._db is not None:
            self._db.close()

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT (systemd stop, Ctrl-C), telling systemd
        READY once started, pinging its watchdog while healthy and
        publishing the health every ``[hub] health_interval_s``."""
        self.runtime.serve(self.start, self.stop)

    def health_check(self) -> tuple[bool, str]:
        """Can this process do its work? Its worker is alive and turning, and
        the store database takes its writes. (A lost broker is not this
        process's fault: a restart would not bring it back.)"""
        if self._worker is None or not self._worker.is_alive():
            return False, "the worker thread has stopped"
        stalled = time.monotonic() - self._beat
        if stalled > 30:
            return False, f"the worker has not come round for {stalled:.0f} s"
        if self.runtime.code == "store_database_error":
            return False, self.state_reason
        return True, f"{self.state}: {self.state_reason}"

    def _set_state(self, state: str, reason: str, code: str = "") -> None:
        self.runtime.enter(state, reason, code)  # type: ignore[arg-type]
        if self.bus.connected:
            self._publish_health()

    # =============================================================== worker
    def _run(self) -> None:
        cap = self.cfg.hub.batch_max
        while not self._stop.is_set():
            self._beat = time.monotonic()
            self._maybe_tick()
            self._flush_unpaid()
            try:
                first = self.q.get(timeout=0.05 if self.retention.busy else 0.2)
            except queue.Empty:
                self._prune()
                continue
            items = [first]
            while len(items) < cap:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            msgs = [(k, m) for k, m in items if k != "reconnected"]
            try:
                if len(msgs) != len(items):
                    self._after_connect()
                if msgs:
                    self._process(msgs)
            except Exception:
                # Not one message's fault (those are isolated in _one): a
                # bug around the batch. Acknowledge, or the broker's
                # in-flight window fills and nothing reaches the hub again.
                log.exception("batch of %d failed", len(msgs))
                self.counters["batch_failures"] += 1
                for _, m in msgs:
                    self._ack(m)

    def _process(self, msgs: list[tuple[str, Incoming]]) -> None:
        self._check_day()
        batch = self._batch()
        stock_before = self.stock_limited
        retry: list[tuple[str, Incoming]] = []
        try:
            with self._db.atomic():
                for kind, m in msgs:
                    self._one(batch, kind, m)
        except pw.PeeweeException as exc:
            # The database refused the batch (a failure inside a message that
            # is the database's, or the commit): nothing of it is stored.
            # Ordering devices are told (their outbox sends again); events,
            # commands and queries are kept, unacknowledged, and tried again.
            log.error("store database refused the batch: %s", exc)
            self._set_state("degraded", f"store database error: {exc}", "store_database_error")
            if batch.menu_before is not None:  # the new menu was not stored: keep pricing with the old
                self.menu, self.idx, self.previous_menus = batch.menu_before
            self.stock_limited = stock_before
            batch = self._batch()
            for kind, m in msgs:
                self.counters["storage_errors"] += 1
                if kind == "submit":
                    self._refuse(batch, ROUTES[kind], m, Rejection("storage_unavailable", str(exc)))
                else:
                    retry.append((kind, m))
        else:
            self.sold_out, self.board = batch.sold_out, batch.board
            for order_id, entry in batch.unpaid.items():
                if entry is None:
                    self.unpaid.pop(order_id, None)
                else:
                    self.unpaid[order_id] = entry
            self._retry.succeeded()
            if self.runtime.code == "store_database_error":
                self._set_state("ready", "store database writable again")
        self._deliver(batch)
        kept = {id(m) for _, m in retry}
        for _, m in msgs:
            if id(m) not in kept:
                self._ack(m)
        if retry:
            self._stop.wait(self._retry.failed())
            for item in retry:
                self.q.put(item)

    def _batch(self) -> Batch:
        return Batch(sold_out=set(self.sold_out), board=dict(self.board), unpaid_of=self.unpaid,
                     unpaid_date=self.unpaid_date)

    def _one(self, batch: Batch, kind: str, m: Incoming) -> None:
        """One message, in a savepoint of its own: decoded once, handled by
        its route, its effects kept only if it went through. A refusal or a
        failure is rolled back alone and answered or announced here; a
        failure that is the database's goes up to fail the batch."""
        route = ROUTES[kind]
        fx = batch.begin()
        try:
            with self._db.atomic():
                device = ""
                if route.scope is not None:
                    parsed = contract.parse_topic(m.topic)
                    if parsed is None or parsed[0] != route.scope:
                        raise Rejection("bad_topic", m.topic)
                    device = parsed[1]
                msg = contract.decode(m.payload, route.type,
                                      max_bytes=route.max_bytes or self.cfg.hub.max_payload_bytes)
                route.handle(self, fx, Request(m, device, msg))
        except Rejection as r:
            self._refuse(batch, route, m, r)
            return
        except pw.PeeweeException as exc:
            if db.storage_failure(exc):
                raise
            refusal_log.warn(log, "internal_error (database)", "processing %s failed in the database",
                             m.topic[:200], exc_info=True, level=logging.ERROR)
            self._refuse(batch, route, m, Rejection("internal_error", f"{type(exc).__name__}: {exc}"))
            return
        except Exception as exc:
            refusal_log.warn(log, "internal_error", "processing %s failed", m.topic[:200], exc_info=True,
                             level=logging.ERROR)
            self._refuse(batch, route, m, Rejection("internal_error", f"{type(exc).__name__}: {exc}"))
            return
        batch.merge(fx)
        if fx.menu is not None:
            if batch.menu_before is None:
                batch.menu_before = (self.menu, self.idx, dict(self.previous_menus))
            self.previous_menus[self.menu.version] = (self.idx, time.monotonic())
            while len(self.previous_menus) > 5:
                self.previous_menus.pop(next(iter(self.previous_menus)))
            self.menu, self.idx = fx.menu
            batch.menu_changed = True
        if fx.stock_limited is not None:
            self.stock_limited = fx.stock_limited

    def _refuse(self, batch: Batch, route: Route, m: Incoming, r: Rejection) -> None:
        """Answer a refused request on its device's own reply topic (with its
        correlation data, if any), announce every refusal on hub/reject, and
        count it. Never raises: it reads only what the topic and a safe peek
        at the payload give."""
        try:
            parsed = contract.parse_topic(m.topic)
            device = parsed[1] if parsed and parsed[0] == route.scope else ""
            order_id = contract.peek(m.payload, "order_id")
            fx = batch.begin()
            fx.counters[f"rejected.{r.reason}"] += 1
            fx.counters["rejected"] += 1
            # a device sending thousands of bad messages must not fill the SD card with the log
            refusal_log.warn(log, r.reason, "refused %s from %s: %s", m.topic[:200], device or "?", str(r)[:300])
            fx.rejects.append(RejectNotice(reason=r.reason, message=r.words, topic=m.topic, device=device,
                                           order_id=order_id, at=iso(self.clock())))
            if route.answer is not None and device:
                ident = order_id if route.id_field == "order_id" else contract.peek(m.payload, route.id_field)
                fx.publish(route.reply_topic(device), route.answer(ident, r), correlation=m.correlation, answer=True)
            batch.merge(fx)
        except Exception:
            log.exception("could not answer the refusal of %s", m.topic)
            batch.counters["rejected"] += 1

    def _deliver(self, batch: Batch) -> None:
        """Publish what the batch made, then wait until the broker has every
        answer (below)."""
        answers = []
        for o in batch.out:
            try:
                info = self.bus.publish(o.topic, o.payload, retain=o.retain, correlation=o.correlation)
            except Exception:  # e.g. paho refusing a packet: the others still go
                log.exception("could not publish on %s", o.topic)
                self.counters["publish_errors"] += 1
                continue
            if o.answer:
                answers.append(info)
        self.counters.update(batch.counters)
        try:
            if batch.board_changed:
                self._publish_board()
            if batch.unpaid:
                self._unpaid_due = True
                self._flush_unpaid()
            if batch.sold_out_changed:
                self._publish_soldout()
            if batch.menu_changed:
                self._publish_menu()
            for r in batch.rejects:
                self.last_errors.append(r)
                self.bus.publish(topics.REJECTS, contract.encode(r))
        except Exception:  # the answers below still count; the retained state goes again on reconnect
            log.exception("could not publish the batch's retained state or notices")
            self.counters["publish_errors"] += 1
        # Acknowledge only after this: committed (or refused for good), and
        # the answers are at the broker. paho sends an acknowledgement at
        # once but holds a PUBLISH while its in-flight window is full, so
        # without this wait a hub killed here would leave an order
        # acknowledged, committed and never answered; with it, the broker
        # sends the order again and the kiosk gets the original answer.
        self._wait_published(answers, timeout=5.0)

    def _ack(self, m: Incoming) -> None:
        try:
            self.bus.ack(m)
        except Exception:  # not connected: the broker sends it again
            log.warning("could not acknowledge %s (mid %s)", m.topic, m.mid)

    def _wait_published(self, infos, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for info in infos:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                info.wait_for_publish(left)
            except (RuntimeError, ValueError):  # not connected: the broker resends
                break

    # ======================================================== periodically
    def _maybe_tick(self) -> None:
        t = time.monotonic()
        if t - self._last_tick < 1.0:
            return
        self._last_tick = t
        self._check_day()
        try:
            printing.resend_unconfirmed(self, t)
            if any(c.mode == "fallback" for c in self.cfg.hub.printing.stations.values()):
                batch = Batch(sold_out=self.sold_out, board=self.board, unpaid_of=self.unpaid,
                              unpaid_date=self.unpaid_date)
                fx = batch.begin()
                with self._db.atomic():
                    printing.fallbacks(self, fx)
                for o in fx.out:
                    self.bus.publish(o.topic, o.payload)
                self.counters.update(fx.counters)
        except Exception:
            log.exception("periodic print checks failed")

    def _prune(self) -> None:
        """One batch of retention (restobox/hub/retention.py), only while
        no message waits: an order waits at most one short transaction."""
        if self.q.empty():
            prune_step(self.retention, lambda: self.retention.step(self._db, self.clock(), self.menu.version),
                       self.counters)

    # ===================================================== retained state
    def _load(self) -> None:
        latest = db.MenuVersion.select().order_by(db.MenuVersion.applied_at.desc()).first()
        if latest is not None and latest.source != "config":
            try:
                menu = Menu.from_json(latest.body)
                if menu.currency != self.cfg.store.currency:
                    raise ValueError(f"it is in {menu.currency}, the store sells in {self.cfg.store.currency}")
                self.menu, self.idx = menu, MenuIndex(menu)
                log.info("menu %s from the store database (received %s)", menu.version, latest.applied_at)
            except Exception as exc:
                log.error("the stored menu %s cannot be used (%s); keeping %s",
                          latest.version, exc, self.menu.version)
        elif latest is None or latest.version != self.menu.version:
            db.MenuVersion.insert(version=self.menu.version, body=self.menu.to_json().decode(), source="config",
                                  applied_at=iso(self.clock())).on_conflict_replace().execute()
        self.sold_out = {r.item_id for r in db.SoldOutItem.select()}
        self.stock_limited = db.StockLevel.select().exists()
        self.board = {
            o.id: (o.number, o.state)
            for o in db.Order.select(db.Order.id, db.Order.number, db.Order.state).where(
                db.Order.state.in_(sorted(OPEN_STATES)))
        }
        self._turn_day()
        log.info("loaded %d open orders (%d unpaid), %d sold-out items", len(self.board), len(self.unpaid),
                 len(self.sold_out))

    def _check_day(self) -> None:
        """The business day turned over: the till's unpaid list starts again
        (yesterday's unpaid orders stay in the day's report)."""
        if self.business_date(self.clock()) == self.unpaid_date:
            return
        try:
            self._turn_day()
            self._publish_unpaid()
        except Exception:  # tried again on the next round
            log.exception("could not turn the till's unpaid list to the new business day")

    def _turn_day(self) -> None:
        """The till's unpaid list for the business day now (at start, and
        when the day turns over): one query, then kept by the handlers."""
        bdate = self.business_date(self.clock())
        q = (db.Order.select().where(db.Order.business_date == bdate, db.Order.payment == "unpaid",
                                     db.Order.state.not_in(("voided", "rejected")))
             .order_by(db.Order.number))
        self.unpaid = {o.id: e for o in q if (e := unpaid_entry(o)) is not None}
        self.unpaid_date = bdate

    def _publish_retained_state(self) -> None:
        self._publish_menu(again=True)
        self._publish_soldout()
        self._publish_board()
        self._publish_unpaid()

    def _publish_menu(self, *, again: bool = False) -> None:
        self.bus.publish(topics.MENU, contract.encode(
            contract.MenuMessage(menu=self.menu, at=iso(self.clock()))), retain=True)
        # its photos follow from their own thread (decoding a photo here
        # would hold up the orders behind it); ``again`` after a (re)connect
        self.photos.offer(self.menu, again=again)

    def _photo_counted(self, reason: str) -> None:
        """A photo of the menu not published (the photos' thread): told once
        per photo file, counted here."""
        if reason == "image_missing":
            self.counters["image_missing"] += 1
        elif reason == "image_broken":
            self.counters["image_broken"] += 1
        else:
            self.counters["image_publish_errors"] += 1

    def _publish_soldout(self) -> None:
        self.bus.publish(topics.SOLDOUT, contract.encode(
            SoldOut(items=tuple(sorted(self.sold_out)), at=iso(self.clock()))), retain=True)

    def _publish_board(self) -> None:
        # the newest BOARD_MAX of each: more than any board shows, and within
        # the contract's limits (contract.MAX_ITEMS) however many are open
        prep = sorted(n for n, s in self.board.values() if s in ("accepted", "in_progress"))[-BOARD_MAX:]
        ready = sorted(n for n, s in self.board.values() if s == "ready")[-BOARD_MAX:]
        self.bus.publish(topics.BOARD, contract.encode(Board(
            business_date=self.business_date(self.clock()), preparing=tuple(prep), ready=tuple(ready),
            at=iso(self.clock()))), retain=True)

    def _flush_unpaid(self) -> None:
        """Publish the unpaid list if it changed, once ``UNPAID_EVERY_S`` has
        passed since it last went (the worker's next round sends it otherwise)."""
        if self._unpaid_due and time.monotonic() - self._unpaid_sent >= UNPAID_EVERY_S:
            try:
                self._publish_unpaid()
            except Exception:  # tried again on the worker's next round
                log.exception("could not publish the till's unpaid list")
                self.counters["publish_errors"] += 1

    def _publish_unpaid(self) -> None:
        self._unpaid_sent = time.monotonic()
        newest = []
        for entry in reversed(self.unpaid.values()):
            if len(newest) == UNPAID_MAX:
                break
            newest.append(entry)
        while True:
            payload = contract.encode(UnpaidOrders(
                business_date=self.unpaid_date, orders=tuple(newest), more=len(self.unpaid) - len(newest),
                at=iso(self.clock())))
            if len(payload) <= contract.MAX_PAYLOAD_BYTES or not newest:
                break
            del newest[-(len(newest) // 4 or 1):]  # long tables or numbers: fewer, so every reader takes it
        self.bus.publish(topics.TILL_UNPAID, payload, retain=True)
        self._unpaid_due = False

    def _republish_unacked_tickets(self) -> None:
        """Tickets no KDS has acknowledged may have died with a previous hub
        process before reaching the broker; send them again (a KDS shows each
        ticket id once), and the held orders' tickets to the expo screen."""
        q = (db.Ticket.select(db.Ticket, db.Order).join(db.Order)
             .where(db.Ticket.acked_at.is_null(), db.Ticket.state == "open",
                    db.Order.state.in_(sorted(OPEN_STATES))))
        n = 0
        for t in q:
            self.bus.publish(topics.station_ticket(t.station), contract.encode(stored_ticket_msg(t.order, t)))
            n += 1
        # held orders' tickets: the expo screen shows them (a screen keeps one copy per revision)
        for t in (db.Ticket.select(db.Ticket, db.Order).join(db.Order)
                  .where(db.Ticket.state == "held", db.Order.state.in_(sorted(HELD_STATES)))):
            self.bus.publish(ticket_topic(t.station, t.state), contract.encode(stored_ticket_msg(t.order, t)))
            n += 1
        if n:
            log.info("re-sent %d unacknowledged tickets", n)

    def _publish_health(self) -> None:
        c = dict(self.counters)
        accepted = c.get("accepted", 0)
        details = {
            "open_orders": len(self.board),
            "sold_out": len(self.sold_out),
            "queue": self.q.qsize(),
            "menu_version": self.menu.version,
            "menu_images": len(self.photos.index.images) if self.photos.index is not None else None,
            "mean_accept_ms": round(c.get("accept_us_total", 0) / accepted / 1000, 3) if accepted else None,
            **disk_details(self.cfg.hub.database),
        }
        if self._db is not None and self.state != "stopping":
            try:
                # how far the cloud has it is the sync service's (its health: backlog, cursor)
                details["outbox_last_seq"] = db.Outbox.select(pw.fn.MAX(db.Outbox.seq)).scalar() or 0
                details["print_unconfirmed"] = (db.PrintRequest.select()
                                                .where(db.PrintRequest.confirmed_at.is_null()).count())
            except pw.PeeweeException:
                pass
        h = Health(
            device=self.cfg.device.id, role="hub", state=self.state, at=iso(self.clock()),
            reason_code=self.runtime.code, reason=self.state_reason, counters={k: v for k, v in c.items() if k != "accept_us_total"},
            details=details, last_errors=tuple(self.last_errors)[-5:],
        )
        self.bus.publish(topics.health(self.cfg.device.id), contract.encode(h), retain=True)
