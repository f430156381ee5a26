"""The services and the screens tell systemd they are ready and ping their
watchdog over a real NOTIFY_SOCKET (a datagram socket this test listens on),
only while their health check passes: with its database locked by another
process a service or a screen goes quiet and says why; once the lock is gone
it pings again."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import msgspec
import pytest

from restobox.brokerconf import terminate
from restobox.contract import topics
from restobox.service import Watchdog
from tests.support import KUNG_PAO, REPO, Kiosk, hub_config, new_order

pytestmark = pytest.mark.integration


class NotifySocket:
    """systemd's side: a datagram socket collecting what the service says."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.got.append((time.monotonic(), data.decode()))

    def lines(self, since: float = 0.0) -> list[str]:
        return [t for at, t in list(self.got) if at >= since]

    def pings(self, since: float = 0.0) -> int:
        return sum(1 for t in self.lines(since) if "WATCHDOG=1" in t)

    def wait(self, pred, timeout: float, what: str):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            time.sleep(0.05)
        raise TimeoutError(f"no {what}; got {self.lines()}")

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


def systemd_env(ns: NotifySocket) -> dict[str, str]:
    """What systemd gives a Type=notify unit with a 1 s watchdog."""
    return {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"}


def under_systemd(service: str, cfg, ns: NotifySocket, workdir) -> subprocess.Popen:
    """``restobox SERVICE`` as systemd starts a Type=notify unit with a 1 s watchdog."""
    env = {**os.environ, "NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    with open(workdir / f"{service}.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "restobox.cli", service, "--config", str(cfg)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def test_watchdog_settings_follow_systemd_env():
    assert Watchdog({}).enabled is False and Watchdog({}).interval_s is None
    w = Watchdog({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert w.interval_s == 30 and w.every(10) == 10 and w.every(60) == 15
    assert Watchdog({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).interval_s is None  # another process's


def test_the_hub_pings_only_while_healthy(broker, monitor, tmp_path):
    ns = NotifySocket(tmp_path / "notify.sock")
    db_path = tmp_path / "store.db"
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=db_path)
    proc = under_systemd("hub", cfg, ns, tmp_path)
    k = None
    lock = None
    try:
        ns.wait(lambda: any(t.startswith("READY=1") for t in ns.lines()), 20, "READY")
        t = time.monotonic()
        ns.wait(lambda: ns.pings(t) >= 3, 5, "watchdog pings")
        k = Kiosk(broker, "kiosk-1")
        assert k.submit(new_order(KUNG_PAO)).status == "accepted"
        # another process holds the store database: the hub cannot commit
        lock = sqlite3.connect(db_path, isolation_level=None, timeout=1)
        lock.execute("BEGIN EXCLUSIVE")
        r = k.submit(new_order(KUNG_PAO), timeout=20)
        assert (r.status, r.reason) == ("rejected", "storage_unavailable")
        ns.wait(lambda: any(x.startswith("STATUS=unhealthy: store database") for x in ns.lines()), 5,
                "an unhealthy status")
        quiet = time.monotonic()
        time.sleep(2.5)  # more than two watchdog intervals
        assert ns.pings(quiet) == 0
        # the lock goes: the next order is stored and the hub pings again
        lock.execute("ROLLBACK")
        lock.close()
        lock = None
        assert k.submit(new_order(KUNG_PAO), timeout=20).status == "accepted"
        back = time.monotonic()
        ns.wait(lambda: ns.pings(back) >= 2, 5, "pings after recovery")
        proc.terminate()
        proc.wait(15)
        assert any("STOPPING=1" in x for x in ns.lines())
    finally:
        if lock is not None:
            lock.close()
        if k is not None:
            k.close()
        terminate(proc, 10)
        ns.close()


@pytest.mark.parametrize("service", ["printing", "sync"])
def test_the_printing_and_sync_services_say_ready_and_ping(broker, monitor, tmp_path, service):
    from tests.test_print_spooler import printing_config
    from tests.test_sync import Cloud, fill_outbox, sync_config
    from restobox.dev.emulators import PtyPrinter, TcpPrinter

    ns = NotifySocket(tmp_path / "notify.sock")
    extra = []
    if service == "printing":
        kitchen, receipt = TcpPrinter(), PtyPrinter()
        extra += [kitchen, receipt]
        cfg = printing_config(tmp_path / "printing.toml", broker, tmp_path, kitchen, receipt)
    else:
        cloud = Cloud(tmp_path).start()
        extra.append(cloud)
        fill_outbox(tmp_path / "store.db", 10)
        cloud.mode("fail")  # the cloud errs: the service waits in backoff, still feeding the watchdog
        cfg = sync_config(tmp_path / "sync.toml", cloud, tmp_path, broker, backoff_min_s=3.0, backoff_max_s=3.0)
    proc = under_systemd(service, cfg, ns, tmp_path)
    try:
        ns.wait(lambda: any(t.startswith("READY=1") for t in ns.lines()), 20, "READY")
        t = time.monotonic()
        ns.wait(lambda: ns.pings(t) >= 4, 6, "watchdog pings")
        proc.terminate()
        proc.wait(15)
        assert any("STOPPING=1" in x for x in ns.lines())
    finally:
        terminate(proc, 10)
        ns.close()
        for x in extra:
            (x.stop if hasattr(x, "stop") else x.close)()


def _goes_quiet_while_locked(ns: NotifySocket, db_path, status: str, monitor, device: str) -> None:
    """Another process holds ``db_path``'s write lock: the pings stop, the
    status says why and so does the device's health; the lock goes and the
    pings and a healthy health come back."""
    health = topics.health(device)
    lock = sqlite3.connect(db_path, isolation_level=None, timeout=1)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        ns.wait(lambda: any(x.startswith(f"STATUS=unhealthy: {status}") for x in ns.lines()), 20,
                "an unhealthy status")
        quiet = time.monotonic()
        time.sleep(2.5)  # more than two watchdog intervals
        assert ns.pings(quiet) == 0
        h = monitor.wait_json(health, lambda h: h["state"] == "degraded", timeout=20)
        assert status in h["reason"]
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    back = time.monotonic()
    ns.wait(lambda: ns.pings(back) >= 2, 20, "pings after recovery")
    monitor.wait_for(lambda m: m.topic == health and m.received >= back
                     and msgspec.json.decode(m.payload)["state"] == "ready", timeout=20)


def _screen_under_systemd(ns, screen, monitor, device: str, database, health_ready) -> dict:
    """A screen process started under ``ns``: READY after its first frame,
    watchdog pings, quiet while ``database`` takes no writes and again
    after, STOPPING when it is stopped. Returns its health once
    ``health_ready`` accepts it."""
    screen.start()
    ns.wait(lambda: any(t.startswith("READY=1") for t in ns.lines()), 20, "READY")
    t = time.monotonic()
    ns.wait(lambda: ns.pings(t) >= 3, 5, "watchdog pings")
    h = monitor.wait_json(topics.health(device), health_ready, timeout=20)
    _goes_quiet_while_locked(ns, database, f"{database.name} takes no writes", monitor, device)
    screen.proc.terminate()
    screen.proc.wait(15)
    assert any("STOPPING=1" in x for x in ns.lines())
    return h


def test_a_kitchen_screen_is_ready_after_its_first_frame_and_pings_only_while_healthy(broker, monitor, tmp_path):
    """And its health (retained) says what it shows and how much room its disk has."""
    from tests.test_kds_station_ui import kds_config
    from tests.ui_support import ScreenProcess, Xvfb

    ns = NotifySocket(tmp_path / "notify.sock")
    x = Xvfb()
    s = ScreenProcess(x, kds_config(tmp_path / "kds.toml", broker, tmp_path), tmp_path, env=systemd_env(ns))
    try:
        h = _screen_under_systemd(ns, s, monitor, "kds-wok-1", tmp_path / "tickets.db",
                                  lambda h: h["state"] == "ready")
        assert h["role"] == "kds" and h["counters"]["open"] == 0 and "unacknowledged" in h["counters"]
        assert h["details"]["disk_free_mb"] > 0 and 0 < h["details"]["disk_free_pct"] <= 100
    finally:
        s.stop()
        x.close()
        ns.close()


def test_the_kiosk_is_ready_after_its_first_frame_and_pings_only_while_healthy(broker, monitor, tmp_path):
    from tests.support import kiosk_config
    from tests.test_kiosk_ui import KioskProcess
    from tests.ui_support import Xvfb

    ns = NotifySocket(tmp_path / "notify.sock")
    x = Xvfb(800, 1280)
    k = KioskProcess(x, kiosk_config(tmp_path / "kiosk.toml", broker), tmp_path, "800x1280", env=systemd_env(ns))
    try:
        h = _screen_under_systemd(ns, k, monitor, "kiosk-1", tmp_path / "kiosk.db",
                                  lambda h: "disk_free_pct" in h["details"])
        assert h["details"]["disk_free_mb"] > 0
    finally:
        k.stop()
        x.close()
        ns.close()
