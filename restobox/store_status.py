"""The store's heartbeat to the chain's cloud: ``POST /v1/stores/<store>/status``.

The sync service tells the cloud every ``[sync] status_interval_s`` (30 s;
0: never) how far behind its outbox is and which alerts the store's staff
see now, and at once when those alerts change (one more, one fewer, or a
severity), so the owner's dashboard (docs/cloud.md) shows a printer out of
paper while it is out of paper. The alerts are :class:`StoreWatch`'s
(restobox/alerts.py): the same ones, in the same words, as the kitchen
screens and ``restobox status`` show.

    StatusReporter.for_forwarder(cfg, bus, forwarder).start()   # in SyncService
    reporter.tick()                                             # one report now (tests)

Nothing here is kept: a report that fails is counted (``status.<reason>``
in the sync service's health, with the outbox's reason codes) and tried
again after the backoff, then every interval. The heartbeat is also what
keeps a store "online" on the dashboard while it has no order to send.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from typing import Callable

import msgspec

from restobox import db
from restobox.alerts import StoreAlert, StoreWatch
from restobox.runtime import Backoff

log = logging.getLogger("restobox.store_status")

SETTLE_S = 1.0
"""The first report waits this long for the retained state that arrives
right after the subscriptions (or the interval, if shorter)."""
CHECK_S = 1.0
"""How often the alerts are looked at again without a message (some change
with time alone: an unsent order growing old, a one-off alert expiring)."""
CHANGE_GAP_S = 1.0
"""Reports caused by a change are at least this far apart (a printer
flapping sends one a second, not one a message)."""
MAX_LISTED = 200
"""Devices and printers listed in a report's details at most."""


def alert_key(a: StoreAlert) -> str:
    return f"{a.code}:{a.subject}" if a.subject else a.code


class StatusReporter:
    """Reads what StoreWatch needs from the bus (presence, health, printer
    status, alerts: subscribe before or after ``bus.start()``) and reports
    it with the outbox's backlog on a thread of its own (``status``)."""

    def __init__(self, cfg, bus, *, cursor: Callable[[], int], last_success: Callable[[], float | None] = lambda: None,
                 counters: Counter | None = None, clock: Callable[[], float] = time.time, transport=None) -> None:
        from restobox.sync import CloudClient

        self.cfg = cfg
        self.bus = bus
        self.every = cfg.sync.status_interval_s
        self.cursor = cursor
        self.last_success = last_success
        self.clock = clock
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.watch = StoreWatch.from_config(cfg, me=cfg.device.id, clock=clock)
        self.cloud = CloudClient(cfg, transport=transport)
        self.backoff = Backoff(cfg.sync.backoff_min_s, max(cfg.sync.backoff_min_s, self.every or 1.0))
        self.failures = 0
        self.last_error = None
        self.sent_alerts: tuple | None = None
        """(key, severity) of each alert in the last report the cloud took."""
        self._store = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)

    @classmethod
    def for_forwarder(cls, cfg, bus, fw, *, transport=None) -> "StatusReporter":
        """The sync service's: the backlog is its forwarder's (read on a
        connection of the reporter's own), the counters its health's."""
        return cls(cfg, bus, cursor=lambda: fw.cursor, last_success=lambda: fw.last_success_at, counters=fw.counters,
                   clock=fw.clock, transport=transport)

    # ---------------------------------------------------------- lifecycle
    def start(self) -> "StatusReporter":
        if self.every <= 0:
            log.info("status: no heartbeat to the cloud ([sync] status_interval_s = 0)")
            return self
        for t in StoreWatch.TOPICS:
            self.bus.subscribe(t, self.on_message)
        self._thread.start()
        log.info("status: the store's backlog and alerts to the cloud every %g s and when the alerts change",
                 self.every)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """The thread ends after the report in flight, waited ``timeout`` at most."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.cloud.close()
            if self._store is not None:
                self._store.close()
                self._store = None

    # ------------------------------------------------------ paho's thread
    def on_message(self, m) -> None:
        bad = self.watch.bad
        if self.watch.feed(m.topic, m.payload):
            self._wake.set()
        elif self.watch.bad != bad:  # logged by StoreWatch, with its reason
            self.counters["status.bad_messages"] += 1

    # ------------------------------------------------------------ reports
    def backlog(self) -> tuple[int, str | None]:
        """(events the cloud has not acknowledged, the oldest one's time)."""
        if self._store is None:
            self._store = db.open_store_readonly(self.cfg.sync.store_database)
        return db.outbox_backlog(self._store, self.cursor())

    def report(self, alerts: list[StoreAlert] | None = None) -> dict:
        """The body of one report (restobox/cloud/app.py ``StoreStatus``)."""
        from restobox.sync import iso

        alerts = self.watch.alerts() if alerts is None else alerts
        n, oldest = self.backlog()
        last = self.last_success()
        return {
            "v": 1, "backlog": n, "oldest_pending_at": oldest if n else None,
            "alerts": [{"key": alert_key(a), "severity": a.severity, "zh": a.message.zh, "en": a.message.en,
                        "since": a.since or None} for a in alerts],
            "details": {
                "device": self.cfg.device.id, "at": iso(self.clock()),
                "last_success_at": iso(last) if last else None,
                "devices": [{"device": d.device, "role": d.role, "online": d.online}
                            for d in self.watch.devices()[:MAX_LISTED]],
                "printers": [{"printer": p.printer, "state": p.state, "paper_near_end": p.paper_near_end,
                              "queued": p.queued} for p in self.watch.printers()[:MAX_LISTED]],
                "bad_messages": self.watch.bad,
            },
        }

    def tick(self) -> str:
        """Report now: 'sent' or 'failed' (counted, with its reason)."""
        from restobox.sync import REASONS, CloudError, _warn

        alerts = self.watch.alerts()
        try:
            body = msgspec.json.encode(self.report(alerts))
            self.cloud.request("POST", "status", content=body, headers={"Content-Type": "application/json"})
        except CloudError as exc:
            self.failures += 1
            self.last_error = exc
            self.counters["status.failures"] += 1
            self.counters[f"status.{exc.reason}"] += 1
            _warn(f"status.{exc.reason}", "status: the report to the cloud failed (%s): %s",
                  REASONS.get(exc.reason, exc.reason), exc.detail)
            return "failed"
        if self.failures:
            log.info("status: the cloud takes reports again after %d failures", self.failures)
        self.failures = 0
        self.last_error = None
        self.sent_alerts = _keys(alerts)
        self.counters["status.sent"] += 1
        return "sent"

    def _run(self) -> None:
        next_at = time.monotonic() + min(SETTLE_S, self.every)
        last_try = -math.inf
        while not self._stop.is_set():
            self._wake.wait(max(0.0, min(CHECK_S, next_at - time.monotonic())))
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            changed = (self.sent_alerts is not None and not self.failures and now - last_try >= CHANGE_GAP_S
                       and _keys(self.watch.alerts()) != self.sent_alerts)
            if now < next_at and not changed:
                continue
            last_try = now
            try:
                ok = self.tick() == "sent"
            except Exception:  # the store.db went away, a surprise: the next round tries again
                log.exception("status: a report failed")
                self.failures += 1
                self.counters["status.failures"] += 1
                ok = False
            next_at = time.monotonic() + (self.every if ok else min(self.every, self.backoff.delay(self.failures)))


def _keys(alerts: list[StoreAlert]) -> tuple:
    return tuple(sorted((alert_key(a), a.severity) for a in alerts))
