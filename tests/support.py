"""Test helpers: a real hub process and test devices on the real broker."""

from __future__ import annotations

import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Callable

import msgspec
import pytest

from restobox import contract
from restobox.brokerconf import terminate
from restobox.bus import Bus, Incoming
from restobox.contract import OrderReply, OrderSubmit, SubmitLine, topics
from restobox.dev.terminal_sim import TerminalSim

REPO = Path(__file__).resolve().parent.parent


def wait(pred, timeout: float = 10.0, what: str = "condition"):
    """``pred()``'s first true value, asked every 50 ms; TimeoutError after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"no {what} within {timeout:g} s")
        time.sleep(0.05)


def hub_config(path: Path, *, port: int, password_file: Path, database: Path, device: str = "hub",
               extra: str = "") -> Path:
    path.write_text(
        f"""
[device]
id = "{device}"
role = "hub"

[store]
timezone = "Asia/Shanghai"

[mqtt]
host = "127.0.0.1"
port = {port}
password_file = "{password_file}"
keepalive_s = 5
reconnect_max_s = 1

[hub]
database = "{database}"
health_interval_s = 0.25
{extra}
""",
        encoding="utf-8",
    )
    return path


def device_config(path: Path, broker, device: str, role: str, sections: str, *, mqtt: str | None = None) -> Path:
    """A screen's or kiosk's config on the test broker: [device], the demo
    store's name, [mqtt] with the device's credentials and quick reconnects,
    then ``sections``. ``mqtt``: [mqtt] lines saying where the broker is
    (host, port, TLS), instead of the test broker's port on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    where = mqtt if mqtt is not None else f"port = {broker.port}\n"
    path.write_text(f"""
[device]
id = "{device}"
role = "{role}"

[store]
name_zh = "川味小馆"
name_en = "Sichuan Kitchen"

[mqtt]
{where}password_file = "{broker.creds[device].password_file}"
keepalive_s = 5
reconnect_max_s = 1

{sections}
""", encoding="utf-8")
    return path


def tcp_printer(printer_id: str, port: int) -> str:
    """A [[printing.printers]] table: a network printer on this machine (a
    restobox.dev.emulators.TcpPrinter at ``port``), with quick timeouts."""
    return f"""
[[printing.printers]]
id = "{printer_id}"
port = "network"
host = "127.0.0.1"
tcp_port = {port}
connect_timeout_s = 1
write_timeout_s = 2
status_timeout_s = 0.5
"""


def printing_service_config(path: Path, broker, workdir: Path, printers: str, *, printing: str = "") -> Path:
    """The printing service's config on the test broker, its printing.db in
    ``workdir``. ``printing``: more lines for [printing]; ``printers``: its
    [[printing.printers]] tables (``tcp_printer``)."""
    path.write_text(f"""
[device]
id = "printing"
role = "printing"

[store]
timezone = "Asia/Shanghai"

[mqtt]
port = {broker.port}
password_file = "{broker.creds['printing'].password_file}"
keepalive_s = 5
reconnect_max_s = 1

[printing]
database = "{workdir / 'printing.db'}"
retry_max_s = 1
{printing}
{printers}""", encoding="utf-8")
    return path


def ledger_rows(db: Path, order_id: str, *columns: str) -> list[tuple]:
    """An order's rows of the hub's payment ledger (store.db's ``payment``),
    in the order recorded: the ``columns`` asked for."""
    cols = ", ".join(f'"{c}"' for c in columns)
    con = sqlite3.connect(db)
    try:
        return con.execute(f'SELECT {cols} FROM "payment" WHERE "order_id" = ? ORDER BY "seq"',
                           (order_id,)).fetchall()
    finally:
        con.close()


@pytest.fixture
def sim():
    """A payment terminal simulator on a real pty, approving (import it
    into a test module to use it)."""
    s = TerminalSim(mode="approve")
    yield s
    s.close()


def kiosk_config(path: Path, broker, *, kiosk: str = "", more: str = "", device: str = "kiosk-1") -> Path:
    """A kiosk's config, its kiosk.db next to ``path``. ``kiosk``: more lines
    for [kiosk]; ``more``: more sections."""
    return device_config(path, broker, device, "kiosk",
                         f'[kiosk]\ndatabase = "{path.parent / "kiosk.db"}"\n{kiosk}\n{more}')


class HubProcess:
    """``restobox hub`` (or another service) in its own process, so tests
    can SIGKILL it. Ready means: it published retained health "ready"."""

    def __init__(self, config: Path, log: Path, service: str = "hub", device: str = "hub") -> None:
        self.config = config
        self.log = log
        self.service = service
        self.device = device
        self.proc: subprocess.Popen | None = None

    def start(self, watcher: "Device", timeout: float = 15.0) -> None:
        since = time.monotonic()
        logf = open(self.log, "ab")
        env = {k: v for k, v in os.environ.items() if k != "RESTOBOX_MQTT_PASSWORD"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "restobox.cli", self.service, "--config", str(self.config)],
            stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )
        logf.close()
        # Ready means: this process published retained health "ready".
        def ready(m: Incoming) -> bool:
            if m.topic != topics.health(self.device):
                return False
            h = msgspec.json.decode(m.payload)
            return h.get("state") == "ready" and m.received >= since
        try:
            watcher.wait_for(ready, timeout)
        except TimeoutError:
            self.kill()
            raise TimeoutError(f"{self.service} did not become ready; log:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc:
            terminate(self.proc, 10)
        return self.proc.returncode if self.proc else None


class Device:
    """A test device on the real broker: records what it receives."""

    def __init__(self, broker, name: str, subscribe: tuple[str, ...] = (), *, role: str = "test",
                 persistent: bool = False) -> None:
        cred = broker.creds[name]
        self.name = name
        self.bus = Bus(device=name, role=role, host=broker.host, port=broker.port,
                       username=cred.username, password=cred.password, keepalive=5,
                       persistent=persistent, reconnect_max_s=1)
        self.received: list[Incoming] = []
        self.by_topic: dict[str, list[Incoming]] = defaultdict(list)
        self._cv = threading.Condition()
        for t in subscribe:
            self.bus.subscribe(t, self._got)
        self.bus.start()
        if not self.bus.wait_connected(10):
            raise TimeoutError(f"{name} could not connect: {self.bus.last_refusal}")

    def _got(self, m: Incoming) -> None:
        with self._cv:
            self.received.append(m)
            self.by_topic[m.topic].append(m)
            self._cv.notify_all()

    def mark(self) -> int:
        """Where the record stands now: pass as ``after`` to wait only for
        what arrives from here on."""
        with self._cv:
            return len(self.received)

    def wait_for(self, pred: Callable[[Incoming], bool], timeout: float = 10.0, *, after: int = 0) -> Incoming:
        """The first message received (from ``after`` on) that ``pred``
        accepts, waiting up to ``timeout`` for it."""
        deadline = time.monotonic() + timeout
        seen = after
        with self._cv:
            while True:
                for m in self.received[seen:]:
                    if pred(m):
                        return m
                seen = len(self.received)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching message")
                self._cv.wait(left)

    def wait_json(self, topic: str, pred: Callable[[dict], bool] = lambda d: True,
                  timeout: float = 10.0, *, after: int = 0) -> dict:
        m = self.wait_for(lambda m: m.topic == topic and pred(msgspec.json.decode(m.payload)), timeout, after=after)
        return msgspec.json.decode(m.payload)

    def all_json(self, topic: str) -> list[dict]:
        with self._cv:
            return [msgspec.json.decode(m.payload) for m in self.by_topic.get(topic, [])]

    def publish(self, topic: str, payload: bytes, **kw) -> None:
        self.bus.publish_wait(topic, payload, **kw)

    def close(self) -> None:
        self.bus.stop()


class Kiosk(Device):
    """An ordering device: submits and waits for the hub's answer."""

    def __init__(self, broker, name: str = "kiosk-1") -> None:
        super().__init__(broker, name, (topics.order_reply(name),), role="kiosk")

    def submit_raw(self, payload: bytes, timeout: float = 10.0) -> dict:
        corr = uuid.uuid4().bytes
        self.publish(topics.order_submit(self.name), payload, correlation=corr,
                     response_topic=topics.order_reply(self.name))
        m = self.wait_for(lambda m: m.correlation == corr, timeout)
        return msgspec.json.decode(m.payload)

    def submit(self, order: OrderSubmit, timeout: float = 10.0) -> OrderReply:
        d = self.submit_raw(contract.encode(order), timeout)
        return msgspec.convert(d, OrderReply)


def new_order(*lines: tuple, service: str = "takeaway", channel: str = "kiosk", **kw) -> OrderSubmit:
    """``new_order(("kung-pao-chicken", 1, ("spice-mild", "rice-white")))``"""
    return OrderSubmit(
        order_id=str(uuid.uuid4()), channel=channel, service=service,
        lines=tuple(SubmitLine(item_id=i, qty=q, modifiers=tuple(m)) for i, q, *rest in lines
                    for m in [rest[0] if rest else ()]),
        **kw,
    )


# A few orders that the sample menu accepts.
KUNG_PAO = ("kung-pao-chicken", 1, ("spice-mild", "rice-white"))
COMBO = ("combo-kung-pao-chicken", 1, ("spice-hot", "combo-side-fries", "combo-drink-milk-tea"))
MILK_TEA = ("bubble-milk-tea", 2, ("sugar-half", "ice-less"))
SPRING_ROLLS = ("spring-rolls", 1)


def in_process_hub(broker, tmp_path: Path, clock, extra: str = ""):
    """A Hub in the test's own process with a settable ``clock`` (business
    days, reports): the store's day starting at 04:00 in Asia/Shanghai;
    ``extra`` adds config sections (e.g. [hub.loyalty])."""
    from restobox import config
    from restobox.data import load_sample_menu
    from restobox.hub import Hub

    cfg = config.parse(hub_config_text(tmp_path / "store.db", broker=broker, extra=extra))
    return Hub(cfg, load_sample_menu(), clock=clock)


def hub_config_text(database: Path, *, broker=None, extra: str = "") -> str:
    """A hub's config for a Hub made in a test's own process: its database,
    the store in Asia/Shanghai with its day starting at 04:00, on
    ``broker`` when given; ``extra`` adds sections."""
    mqtt = (f'[mqtt]\nport = {broker.port}\npassword_file = "{broker.creds["hub"].password_file}"\n'
            if broker is not None else "")
    return f"""
[device]
id = "hub"
role = "hub"
[store]
timezone = "Asia/Shanghai"
business_day_start = "04:00"
{mqtt}[hub]
database = "{database}"
{extra}"""


class UIThread:
    """A headless stand-in for Kivy's clock: runs posted functions one at a
    time on a thread of its own and calls ``tick`` every 0.2 s (the app's
    timers). ``stop_on_error`` (the default): the first function that raises
    stops it, as an exception in a Clock callback stops a Kivy app;
    otherwise it is logged and the thread goes on. ``errors`` lists them."""

    def __init__(self, name: str = "ui", *, tick: Callable[[], None] | None = None,
                 stop_on_error: bool = True) -> None:
        self.q: queue.Queue = queue.Queue()
        self.tick = tick
        self.stop_on_error = stop_on_error
        self.errors: list[BaseException] = []
        self._t = threading.Thread(target=self._run, name=name, daemon=True)
        self._t.start()

    def post(self, fn: Callable[[], None]) -> None:
        self.q.put(fn)

    def call(self, fn, timeout: float = 10.0):
        """Run ``fn`` on the thread and return what it returned (or raise what it raised)."""
        done = threading.Event()
        box: list = []

        def run() -> None:
            try:
                box.append(fn())
            except Exception as exc:  # handed back to the caller, not the thread's failure
                box.append(exc)
            finally:
                done.set()
        self.q.put(run)
        if not done.wait(timeout):
            raise TimeoutError(f"the UI thread is stuck or stopped: {self.errors!r}")
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    @property
    def alive(self) -> bool:
        return self._t.is_alive()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while True:
            try:
                fn = self.q.get(timeout=0.05)
            except queue.Empty:
                fn = False
            if fn is None:
                return
            try:
                if fn:
                    fn()
                if self.tick is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + 0.2
                    self.tick()
            except BaseException as exc:
                self.errors.append(exc)
                if self.stop_on_error:
                    return
                logging.getLogger("tests.ui").exception("a posted function failed")

    def close(self) -> None:
        self.q.put(None)
        self._t.join(5)
