"""The kitchen screen's glue between the bus, the cache and the view model.

No Kivy here: the app hands in ``post`` (run a function on the UI thread) and
``changed`` (ask for a redraw, coalesced by the app). MQTT callbacks arrive on
paho's thread and are posted to the UI thread, so the view model is only ever
touched from one thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from kds.health import ScreenMonitor, guarded, ignored, not_from_topic
from kds.viewmodel import ActionRefused, StationViewModel, Thresholds, ticket_problem
from restobox import contract, db
from restobox.bus import Bus, Incoming, bus_from_config, decode_or_none, refused
from restobox.config import Config
from restobox.contract import OrderUpdate, Presence, StationTicket, topics

log = logging.getLogger("restobox.kds")


class StationController:
    def __init__(self, cfg: Config, *, post: Callable[[Callable[[], None]], None],
                 changed: Callable[[], None], bus: Bus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        #: messages not used, by reason: those of contract.decode (paho's
        #: thread), ``unusable`` (a ticket the hub cannot have made, or one
        #: whose applying raised on the UI thread)
        self.rejected: dict[str, int] = {}
        self.post = guarded(post, self.rejected, log, on_refusal=lambda: self.monitor.refused_soon())
        self.changed = changed
        self.clock = clock
        self.station = cfg.kds.station
        self.bus = bus or bus_from_config(cfg)
        self.cache_key = f"station:{self.station}"
        self.notice: contract.Words | None = None
        self._dirty = False
        self.notice_until = 0.0
        k = cfg.kds
        self._vm_kwargs = dict(
            clock=clock, thresholds=Thresholds(warn_s=k.warn_s, late_s=k.late_s, flash=k.flash_late),
            page_size=k.columns * k.rows, undo_s=k.undo_s,
        )
        self.cache_db = db.open_cache_db(k.cache)
        # the last screen, at once, even with the broker down
        self.vm = StationViewModel.restore(db.cache_get(self.cache_key), self.station, cfg.device.id,
                                           **self._vm_kwargs)
        if getattr(self.vm, "cache_problem", None):
            log.warning("ticket cache not used: %s", self.vm.cache_problem)
        #: what this screen sent, by event kind (bump, ack, recall, undo...), for its health
        self.sent: dict[str, int] = {}
        self.monitor = ScreenMonitor(cfg, self.bus, post=self.post, changed=changed, figures=self._figures,
                                     cache=self.cache_db)
        # the cache is written on a thread of its own: a slow or locked SD
        # card must not hold up the screen (the UI thread only takes the snapshot)
        self._pending: tuple[bytes, float] | None = None
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._save_wake = threading.Event()
        self._saver_stop = threading.Event()
        self._saver = threading.Thread(target=self._save_loop, name="kds-cache", daemon=True)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.bus.on_connection_change = lambda up, why: self.post(lambda: self._link(up))
        self.bus.subscribe(topics.station_ticket(self.station), self._on_ticket)
        self.bus.subscribe(topics.ORDER_UPDATE, self._on_update)
        self.bus.subscribe(topics.presence("hub"), self._on_hub_presence)
        self.monitor.subscribe()
        self.bus.start()
        self.bus.announce()
        self.monitor.start()
        self._saver.start()

    def stop(self) -> None:
        self.monitor.stop()
        self.save()
        self._saver_stop.set()
        self._save_wake.set()
        if self._saver.is_alive():
            self._saver.join(10)
        self._flush()  # whatever the cache thread did not get to
        self.bus.stop()

    def health_check(self) -> tuple[bool, str]:
        """For the watchdog (UI thread)."""
        return self.monitor.check()

    def _figures(self):
        vm = self.vm
        counters = {"open": vm.open_count, "unacknowledged": vm.unacked_count,
                    **{f"sent_{k}": n for k, n in self.sent.items()},
                    **ignored(vm.counters, self.rejected)}
        details = {"station": self.station, "page": vm.page + 1, "pages": vm.pages,
                   "hub_online": vm.link.hub_online, "cache_problem": vm.cache_problem}
        return counters, details

    def save(self) -> None:
        """Take the screen's snapshot (UI thread); the cache thread writes it."""
        self._dirty = False
        with self._pending_lock:
            self._pending = (self.vm.snapshot(), self.clock())
        self._save_wake.set()

    def _flush(self) -> None:
        """Write the latest snapshot not yet written (one write at a time)."""
        with self._pending_lock:
            job, self._pending = self._pending, None
        if job is None:
            return
        with self._write_lock:
            try:
                db.cache_put(self.cache_key, *job)
            except Exception:
                log.exception("could not save the ticket cache")

    def _save_loop(self) -> None:
        while not self._saver_stop.is_set():
            self._save_wake.wait()
            self._save_wake.clear()
            self._flush()

    def save_soon(self) -> None:
        """Mark the cache stale; the app saves it every few seconds, so a
        burst of bumps costs one write, not one per bump."""
        self._dirty = True

    def save_if_dirty(self) -> None:
        if self._dirty:
            self.save()

    # ------------------------------------------------------------- incoming
    def _decode(self, m: Incoming, type_):
        msg = decode_or_none(m, type_, self.rejected)
        if msg is None:
            self.monitor.refused_soon()
        return msg

    def _on_ticket(self, m: Incoming) -> None:
        t = self._decode(m, StationTicket)
        if t is None:
            return
        problem = ticket_problem(t)
        if problem is not None:
            refused(m.topic, "unusable", problem, self.rejected, logger=log)
            self.monitor.refused_soon()
            return
        self.post(lambda: self._apply(lambda: self.vm.on_ticket(t)))

    def _on_update(self, m: Incoming) -> None:
        u = self._decode(m, OrderUpdate)
        if u is not None:  # a redraw only when a shown ticket's payment changed
            self.post(lambda: self._apply(lambda: self.vm.on_update(u)))

    def _on_hub_presence(self, m: Incoming) -> None:
        p = self._decode(m, Presence)
        if p is None:
            return
        problem = not_from_topic(m.topic, p.device)
        if problem is not None:
            refused(m.topic, "unusable", problem, self.rejected, logger=log)
            self.monitor.refused_soon()
            return
        self.post(lambda: self._apply(lambda: self.vm.on_hub_presence(p.state == "online")))

    def _link(self, up: bool) -> None:
        self.vm.on_link(up)
        if up:
            self.monitor.publish_soon()
            # every open ticket again (fills in what was missed while away)
            self.bus.publish(topics.station_sync(self.station), contract.encode(
                contract.SyncRequest(device=self.cfg.device.id)))
            # actions the hub may not have seen: same ids, applied once
            self._send(self.vm.unconfirmed_events())
        self.changed()

    def _apply(self, fn) -> None:
        if fn() is not False:  # on_ticket says whether the grid changed
            self.save_soon()
            self.changed()

    # -------------------------------------------------------------- actions
    def _send(self, events) -> None:
        for ev in events:
            self.sent[ev.kind] = self.sent.get(ev.kind, 0) + 1
            self.bus.publish(topics.station_event(self.station), contract.encode(ev))

    def act(self, fn: Callable[[], list]) -> bool:
        """Run a view-model action; publish its events; show a refusal."""
        try:
            events = fn()
        except ActionRefused as r:
            self.notice, self.notice_until = r.words, self.clock() + 4
            self.changed()
            return False
        self._send(events)
        self.save_soon()
        self.changed()
        return True

    def drawn(self, ticket_ids) -> None:
        """Proof of receipt: acknowledge tickets the screen has drawn."""
        events = self.vm.drawn(ticket_ids)
        if events:
            self._send(events)
            self.save_soon()

    def current_notice(self) -> contract.Words | None:
        if self.notice and self.clock() < self.notice_until:
            return self.notice
        return None
