"""What every kitchen screen does besides its tickets: it publishes its
health, answers its watchdog's health check, and keeps the store's alerts
for staff.

No Kivy here. A thread of its own (``kds-health``) does what touches the
disk: every few seconds it checks that the ticket cache takes a write and
reads the free room on the data disk. What it finds reaches the UI thread
through ``post``, which adds the screen's own figures (open tickets, bumps,
tickets not yet acknowledged) and publishes ``contract.Health`` (retained)
every ``HEALTH_EVERY_S`` and at once when the state changes.

The alerts are :class:`restobox.alerts.StoreWatch`'s: fed on paho's thread,
read on the UI thread when a message changed them, and once a minute (an
alert's age is part of it: the cloud backlog grows older).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from restobox import contract, db
from restobox.alerts import StoreAlert, StoreWatch
from restobox.bus import Bus, Incoming, refusal_log
from restobox.config import Config
from restobox.contract import Health, topics
from restobox.service import disk_details

log = logging.getLogger("restobox.kds")

HEALTH_EVERY_S = 15.0
PROBE_EVERY_S = 5.0
REFUSED_GAP_S = 1.0
ALERTS_EVERY_S = 60.0
STALLED_S = 30.0
"""The health thread not back this long after its last round (a probe waits
at most the database's busy timeout, 5 s): the screen is unhealthy."""

Figures = Callable[[], tuple[dict[str, int], dict[str, str | int | float | bool | None]]]


class ScreenMonitor:
    """A screen's health, its watchdog check and the store's alerts.

    ``figures`` (called on the UI thread) gives the screen's counters and
    details for its health; ``cache`` is the screen's SQLite cache, if it
    keeps one; ``alerts`` says whether the screen shows staff alerts (the
    customers' pickup board does not).
    """

    def __init__(self, cfg: Config, bus: Bus, *, post: Callable[[Callable[[], None]], None],
                 changed: Callable[[], None], figures: Figures, cache=None, alerts: bool = True) -> None:
        self.cfg = cfg
        self.bus = bus
        self.post = post
        self.changed = changed
        self.figures = figures
        self.cache = cache
        self.disk_path = cfg.kds.cache
        self.watch = StoreWatch.from_config(cfg, me=cfg.device.id) if alerts else None
        #: UI thread: what the screen shows, most severe first
        self.alerts: list[StoreAlert] = []
        # health thread -> UI thread (plain attribute reads: the GIL is enough)
        self.problem: str | None = None
        self._round = time.monotonic()
        self._published_at = 0.0
        self._refused = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._now = False
        self._thread = threading.Thread(target=self._run, name="kds-health", daemon=True)

    # ------------------------------------------------------------- lifecycle
    def subscribe(self) -> None:
        """Before ``bus.start()``: the topics the alerts come from."""
        if self.watch is not None:
            for t in self.watch.TOPICS:
                self.bus.subscribe(t, self._on_store)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(PROBE_EVERY_S + 2)

    def publish_soon(self) -> None:
        """Publish health at the next round (the link just came up)."""
        self._now = True
        self._wake.set()

    def refused_soon(self) -> None:
        """A message was not used: its count goes out within a second, and a
        flood of them publishes at most once a second (and probes the disk
        no more often than ever)."""
        self._refused = True
        self._wake.set()

    # ---------------------------------------------------------- UI thread
    def check(self) -> tuple[bool, str]:
        """The watchdog's question, asked on the UI thread: cheap, no I/O."""
        if not self.bus.network_alive:
            return False, "the MQTT network thread has stopped"
        if not self._thread.is_alive():
            return False, "the health thread has stopped"
        stalled = time.monotonic() - self._round
        if stalled > STALLED_S:
            return False, f"the health thread has not come round for {stalled:.0f} s"
        if self.problem:
            return False, self.problem
        return True, "ready" if self.bus.connected else "ready (waiting for the broker)"

    def refresh_alerts(self) -> None:
        if self.watch is None:
            return
        now = self.watch.alerts()
        if now != self.alerts:
            self.alerts = now
            self.changed()

    def _publish(self, disk: dict, problem: str | None) -> None:
        if not self.bus.connected:
            return
        counters, details = self.figures()
        h = Health(
            device=self.cfg.device.id, role=self.cfg.device.role,
            state="degraded" if problem else "ready", reason=problem or "",
            at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            counters=counters,
            details={**details, **disk, "alerts_shown": len(self.alerts),
                     "bad_messages": self.watch.bad if self.watch is not None else 0},
        )
        self.bus.publish(topics.health(self.cfg.device.id), contract.encode(h), retain=True)

    # -------------------------------------------------------- paho thread
    def _on_store(self, m: Incoming) -> None:
        bad = self.watch.bad
        if self.watch.feed(m.topic, m.payload):
            self.post(self.refresh_alerts)
        elif self.watch.bad != bad:
            self.refused_soon()

    # ------------------------------------------------------- health thread
    def _probe(self) -> None:
        problem = db.write_problem(self.cache) if self.cache is not None else None
        if problem != self.problem:
            if problem:
                log.error("screen unhealthy: %s", problem)
            else:
                log.info("screen healthy again")
            self.problem = problem
            self._now = True
        self._round = time.monotonic()

    def _run(self) -> None:
        next_health = 0.0
        next_probe = 0.0
        next_alerts = time.monotonic() + ALERTS_EVERY_S
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    now = time.monotonic()
                    if now >= next_probe:
                        next_probe = now + PROBE_EVERY_S
                        self._probe()
                        now = time.monotonic()
                    refusals = self._refused and now - self._published_at >= REFUSED_GAP_S
                    if self.bus.connected and (self._now or refusals or now >= next_health):
                        self._now = self._refused = False
                        next_health = now + HEALTH_EVERY_S
                        self._published_at = now
                        disk, problem = disk_details(self.disk_path), self.problem
                        self.post(lambda: self._publish(disk, problem))
                    if now >= next_alerts:
                        next_alerts = now + ALERTS_EVERY_S
                        self.post(self.refresh_alerts)
                except Exception:
                    log.exception("screen health round failed")
                # the next probe; sooner when refusals wait to be published
                # (at most once a second, however many come)
                wait = next_probe - time.monotonic()
                if self._refused:
                    wait = min(wait, REFUSED_GAP_S - (time.monotonic() - self._published_at))
                self._wake.wait(max(0.05, wait))
        finally:
            if self.cache is not None:
                self.cache.close()  # this thread's connection only


# =========================================================================
# Messages a screen does not use
# =========================================================================


def guarded(post: Callable[[Callable[[], None]], None], rejected: dict[str, int],
            logger: logging.Logger = log, on_refusal: Callable[[], None] | None = None,
            ) -> Callable[[Callable[[], None]], None]:
    """``post`` for functions that apply a message on the UI thread: one
    that raises (a value the screen cannot use) is logged with its
    traceback (rate-limited) and counted as ``rejected["unusable"]``,
    never raised into Kivy's clock, which would stop the app."""
    def post_guarded(fn: Callable[[], None]) -> None:
        def run() -> None:
            try:
                fn()
            except Exception as exc:
                rejected["unusable"] = rejected.get("unusable", 0) + 1
                refusal_log.warn(logger, "messages the screen could not use",
                                 "a message the screen could not use: %r", exc, exc_info=True)
                if on_refusal is not None:
                    on_refusal()
        post(run)
    return post_guarded


def not_from_topic(topic: str, device: str) -> str | None:
    """Why a presence or health naming ``device`` cannot be the one its
    topic's device sent (None: it can)."""
    parsed = contract.parse_topic(topic)
    if parsed is None or parsed[1] != device:
        return f"the presence of {device[:40]!r} on {topic[:100]}"
    return None


def ignored(*counts: dict[str, int]) -> dict[str, int]:
    """``ignored_<reason>`` for a screen's health, summed over ``counts``
    (each copied first: paho's thread may add a reason meanwhile)."""
    out: dict[str, int] = {}
    for c in counts:
        for k, n in dict(c).items():
            out[f"ignored_{k}"] = out.get(f"ignored_{k}", 0) + n
    return out


# =========================================================================
# What the staff see (plain functions: the .kv files only lay them out)
# =========================================================================

SEVERITY_MARK = {"critical": "▲", "warning": "▲", "info": "ⓘ"}


def alert_strip(alerts: list[StoreAlert], *, shown: int = 1, sep: str = "     ") -> tuple[str, str]:
    """The text of a screen's alert strip: the most severe ``shown`` alerts
    in Chinese and English, and how many more there are, joined by ``sep``;
    and the severity that colours the strip. ``("", "")`` without alerts."""
    if not alerts:
        return "", ""
    parts = [f"{SEVERITY_MARK.get(a.severity, '▲')} {a.message.zh}  {a.message.en}" for a in alerts[:shown]]
    more = len(alerts) - shown
    if more > 0:
        parts.append(f"(另有 {more} 条 +{more} more)")
    return sep.join(parts), alerts[0].severity


def alert_rows(alerts: list[StoreAlert]) -> list[dict[str, str]]:
    """The alerts as a screen's state file lists them (tests, diagnostics)."""
    return [{"code": a.code, "subject": a.subject, "severity": a.severity, "zh": a.message.zh, "en": a.message.en}
            for a in alerts]
