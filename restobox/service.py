"""What a Restobox service tells systemd (sd_notify, with the sdnotify library).

A unit with ``Type=notify`` and ``WatchdogSec=`` hears ``READY=1`` once the
service is up, a ``STATUS=`` line whenever its condition changes, and
``WATCHDOG=1`` from the service's main loop, but only while its own health
check passes: a service that is wedged (its worker stuck, its database
locked) goes quiet, and systemd restarts it. Without ``NOTIFY_SOCKET`` (run
by hand, in tests) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger("restobox.service")

# The store's services, by the name staff use (``restobox restart hub``):
# (systemd unit, the device it speaks as on the bus; None: this Pi's own screen)
SERVICES: dict[str, tuple[str, str | None]] = {
    "broker": ("restobox-broker.service", None),
    "hub": ("restobox-hub.service", "hub"),
    "printing": ("restobox-printing.service", "printing"),
    "sync": ("restobox-sync.service", "sync"),
    "kiosk": ("restobox-kiosk.service", None),
    "kds": ("restobox-kds.service", None),
    "web": ("restobox-web.service", "web"),
}


class Watchdog:
    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self._n = None
        if self.enabled:
            from sdnotify import SystemdNotifier

            self._n = SystemdNotifier()
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or (pid.isdigit() and int(pid) == os.getpid())
        self.interval_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._status = ""
        self.pings = 0
        self.withheld = 0

    def every(self, default_s: float) -> float:
        """How long the main loop may sleep: half the watchdog interval at most."""
        return min(default_s, self.interval_s / 2) if self.interval_s else default_s

    def _send(self, text: str) -> None:
        if self._n is not None:
            self._n.notify(text)

    def ready(self, status: str) -> None:
        self._status = status
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self._send(f"STATUS={status}")

    def alive(self, healthy: bool, why: str) -> None:
        """Ping if the service's health check passed; otherwise say why and
        stay quiet, so systemd restarts the service once the interval ends."""
        if healthy:
            self.pings += 1
            self.status(why)
            if self.interval_s:
                self._send("WATCHDOG=1")
        else:
            self.withheld += 1
            if self.withheld == 1 or self._status != f"unhealthy: {why}":
                log.error("health check failed, not telling the watchdog: %s", why)
            self.status(f"unhealthy: {why}")

    def stopping(self) -> None:
        self._send("STOPPING=1")


class ScreenWatchdog:
    """The same for a Kivy screen, driven by its UI loop.

    ``READY=1`` once the window has drawn its first frame, then the health
    check and the ping from a Kivy Clock interval, so they run on the UI
    thread: a screen frozen in a callback goes quiet like a wedged service.
    ``check`` must be cheap (no disk, no socket): it reads what the app's
    worker threads found.
    """

    def __init__(self, check: Callable[[], tuple[bool, str]], env: Mapping[str, str] = os.environ,
                 every_s: float = 5.0) -> None:
        self.wd = Watchdog(env)
        self.check = check
        self.every_s = self.wd.every(every_s)
        self.drawn = False

    def _check(self) -> tuple[bool, str]:
        try:
            return self.check()
        except Exception as exc:  # a broken check is a failed one, never a silent pass
            log.exception("the screen's health check raised")
            return False, f"health check raised {exc!r}"

    def first_frame(self) -> None:
        if not self.drawn:
            self.drawn = True
            healthy, why = self._check()
            self.wd.ready(why)
            self.wd.alive(healthy, why)

    def tick(self) -> None:
        if self.drawn:
            self.wd.alive(*self._check())

    def attach(self, app) -> ScreenWatchdog:
        """Drive it from a running Kivy ``app``: its window's first flip, a
        Clock interval, its stop."""
        from kivy.clock import Clock
        from kivy.core.window import Window

        def flipped(*_) -> None:
            Window.unbind(on_flip=flipped)
            self.first_frame()

        Window.bind(on_flip=flipped)
        Clock.schedule_interval(lambda dt: self.tick(), self.every_s)
        app.bind(on_stop=lambda *_: self.wd.stopping())
        return self


def disk_details(path: str | os.PathLike) -> dict[str, int | float]:
    """Room left on the filesystem holding ``path`` (or its nearest existing
    parent), for a service's health: ``disk_free_mb`` and ``disk_free_pct``.
    Empty when it cannot be read."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        u = shutil.disk_usage(p)
    except OSError:
        return {}
    return {"disk_free_mb": u.free // (1024 * 1024),
            "disk_free_pct": round(100.0 * u.free / u.total, 1) if u.total else 0.0}


def lan_address() -> str:
    """This machine's address on the store network, as devices and phones
    reach it (the route a packet would take; no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()
