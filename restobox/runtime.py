"""The runtime every store service runs in: the hub, printing and sync.

One object per process holds the service's state, with a name from a short
list (:data:`STATES`):

- ``starting``: opening its database, reaching the broker;
- ``ready``: doing its work;
- ``degraded``: running, but something needs attention; a reason code
  (``broker_lost``, ``store_database_error``, ``cloud_unreachable``...) and
  a sentence say what;
- ``stopping``: asked to stop (SIGTERM from systemd, Ctrl-C).

The state goes into the service's health record (``state``, ``reason_code``,
``reason``; docs/protocol.md §3.11), and each change is logged once. The
runtime also does the rest every service needs and none should write again:
SIGTERM and SIGINT turn into ``stopping``; systemd hears ``READY=1`` once the
service is up, ``STATUS=`` when its condition changes and ``WATCHDOG=1`` only
while its own health check passes (:class:`restobox.service.Watchdog`); the
health record is published every ``health_every_s`` while the service waits.

:class:`Backoff` is the one way a Restobox service waits before trying again
(the cloud, a printer, printing.db, the store database): exponential, with
full jitter, capped.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Literal

from restobox.service import Watchdog

log = logging.getLogger("restobox.runtime")

State = Literal["starting", "ready", "degraded", "stopping"]
STATES: tuple[str, ...] = ("starting", "ready", "degraded", "stopping")


class Backoff:
    """Exponential backoff with full jitter and a cap.

    The wait before try ``n + 1`` after ``n`` failures in a row is uniform
    in ``[first_s, min(cap_s, first_s * 2**n)]``: the first retry comes
    after ``first_s``, later ones spread out (so many devices that lost the
    same thing do not come back in step) and never wait longer than
    ``cap_s``. ``failures`` counts the failures in a row; :meth:`failed`
    adds one and gives the wait, :meth:`succeeded` starts again.
    """

    def __init__(self, first_s: float, cap_s: float, *, rng: random.Random | None = None) -> None:
        if first_s <= 0:
            raise ValueError("a backoff starts above 0 s")
        self.first_s = first_s
        self.cap_s = max(first_s, cap_s)
        self.rng = rng or random.Random()
        self.failures = 0

    def delay(self, failures: int | None = None) -> float:
        """The wait after ``failures`` failures in a row (default: so far)."""
        n = self.failures if failures is None else failures
        top = min(self.cap_s, self.first_s * (2 ** min(max(n, 0), 30)))
        return self.rng.uniform(self.first_s, max(self.first_s, top))

    def failed(self) -> float:
        """One more failure in a row: how long to wait before the next try."""
        self.failures += 1
        return self.delay()

    def succeeded(self) -> None:
        self.failures = 0


class Runtime:
    """A service's lifecycle: its state, its signals, its talk with systemd
    and the periodic publication of its health.

    ``check`` is the service's health check (``(healthy, why)``; cheap, run
    at every watchdog ping); ``publish_health`` publishes its health record
    (it reads :attr:`state`, :attr:`code` and :attr:`reason`); ``on_change``
    is called after each change of state (the hub publishes its health at
    once). ``env`` is where systemd's variables are read (tests pass their
    own).
    """

    def __init__(self, role: str, *, check: Callable[[], tuple[bool, str]] | None = None,
                 publish_health: Callable[[], None] | None = None, health_every_s: float = 10.0,
                 on_change: Callable[[], None] | None = None, env: Mapping[str, str] = os.environ) -> None:
        self.role = role
        self.log = logging.getLogger(f"restobox.{role}")
        self.state: State = "starting"
        self.code = ""
        self.reason = ""
        self.check = check or (lambda: (True, self.status_line()))
        self.publish_health = publish_health
        self.health_every_s = health_every_s
        self.on_change = on_change
        self._env = env
        self._wd: Watchdog | None = None
        self.done = threading.Event()
        self._stop_hooks: list[Callable[[], None]] = []
        self._next_health = 0.0
        self._lock = threading.Lock()

    # -------------------------------------------------------------- state
    def enter(self, state: State, reason: str = "", code: str = "") -> bool:
        """Go to ``state`` (``code``: a reason code, for ``degraded``;
        ``reason``: a sentence). Logged when the state or the code changed
        (a new sentence alone at debug level); True if anything changed.
        Once stopping, a service stays stopping."""
        if state not in STATES:
            raise ValueError(f"unknown service state {state!r}")
        with self._lock:
            if self.state == "stopping" and state != "stopping":
                return False
            code = code if state == "degraded" else ""
            if (state, code, reason) == (self.state, self.code, self.reason):
                return False
            # a new state or code is news; a new sentence for the same is detail
            level = logging.INFO if (state, code) != (self.state, self.code) else logging.DEBUG
            if reason:
                self.log.log(level, "%s %s -> %s: %s", self.role, self.state, state, reason)
            else:
                self.log.log(level, "%s %s -> %s", self.role, self.state, state)
            self.state, self.code, self.reason = state, code, reason
        if self.on_change is not None:
            self.on_change()
        return True

    def ready(self, reason: str) -> bool:
        return self.enter("ready", reason)

    def degraded(self, code: str, reason: str) -> bool:
        return self.enter("degraded", reason, code)

    @property
    def stopping(self) -> bool:
        return self.done.is_set()

    def status_line(self) -> str:
        return f"{self.state}: {self.reason}" if self.reason else self.state

    # ---------------------------------------------------------- processes
    def on_stop(self, hook: Callable[[], None]) -> None:
        """``hook`` runs (on the signal's thread) when the service is asked
        to stop, e.g. to wake a loop that waits on its own event."""
        self._stop_hooks.append(hook)

    def request_stop(self, *_) -> None:
        """SIGTERM, SIGINT, or a caller: the service is to stop."""
        self.done.set()
        for hook in self._stop_hooks:
            try:
                hook()
            except Exception:
                self.log.exception("a stop hook failed")

    def install_signals(self) -> None:
        """SIGTERM (systemd stop) and SIGINT (Ctrl-C) ask the service to
        stop. Only the main thread can set handlers; elsewhere (a test
        running the service on a thread) nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.request_stop)

    @property
    def watchdog(self) -> Watchdog:
        if self._wd is None:
            self._wd = Watchdog(self._env)
        return self._wd

    def _checked(self) -> tuple[bool, str]:
        try:
            return self.check()
        except Exception as exc:  # a broken check is a failed one, never a silent pass
            self.log.exception("the health check raised")
            return False, f"health check raised {exc!r}"

    def announce_ready(self, status: str | None = None) -> None:
        """Tell systemd the service is up (``READY=1``), then ping."""
        self.watchdog.ready(status if status is not None else self.status_line())
        self.feed()
        self._next_health = time.monotonic() + self.health_every_s

    def feed(self) -> None:
        """Ping the watchdog if the health check passes (else say why)."""
        self.watchdog.alive(*self._checked())

    def publish_health_if_due(self, force: bool = False) -> None:
        if self.publish_health is None:
            return
        now = time.monotonic()
        if force or now >= self._next_health:
            self._next_health = now + self.health_every_s
            try:
                self.publish_health()
            except Exception:
                self.log.exception("publishing the health failed")

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` in steps that keep the watchdog fed and the
        health published on time; True as soon as the service is asked to
        stop."""
        end = time.monotonic() + seconds
        while not self.done.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            step = min(left, self.watchdog.every(left))
            if self.publish_health is not None:
                step = min(step, max(0.05, self._next_health - time.monotonic()))
            if self.done.wait(step):
                break
            self.feed()
            self.publish_health_if_due()
        return True

    def serve(self, start: Callable[[], None], stop: Callable[[], None], *,
              ready_status: Callable[[], str] | None = None,
              main: Callable[[], None] | None = None) -> None:
        """Run the service until it is asked to stop: signals installed,
        ``start()``, systemd told READY, then ``main()`` if given (a loop
        that waits with :meth:`wait`) or the runtime's own loop (watchdog
        and health), then ``stopping``, ``STOPPING=1`` and ``stop()``."""
        self.install_signals()
        start()
        self.announce_ready(ready_status() if ready_status is not None else None)
        try:
            if main is not None:
                main()
            else:
                while not self.wait(max(self.health_every_s, 0.05)):
                    pass
        finally:
            self.watchdog.stopping()
            stop()
