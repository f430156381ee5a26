"""What the bad-message tests share: poison payloads, a UI thread that
stops on the first exception (as a Kivy app does), and waiting helpers.

No tests here; the tests are in tests/test_bad_messages_*.py, one file per
receiver, each on the real broker.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter

from tests.support import Device

# Payloads every receiver must survive on every topic it takes, with the
# reason code each is refused for (contract.decode's).
POISON: list[tuple[bytes, str]] = [
    (b"[" * 1000 + b"]" * 1000, "too_deep"),
    (b'{"v":1,"x":"\xff\xfe\xfd"}', "bad_json"),  # not UTF-8
    (b"", "bad_json"),
    (b"[1,2,3]", "bad_schema"),  # JSON, but not an object
    (b'"a string"', "bad_schema"),
    (b"{}", "bad_schema"),  # no "v"
    (b'{"v":2}', "unsupported_version"),
    (b'{"v":1,"x":"' + b"a" * 200_000 + b'"}', "payload_too_large"),
    (b'{"v":1,"x":"' + b"a" * 9_000 + b'"}', "string_too_long"),
    (b'{"v":1,"x":1e400}', "number_out_of_range"),
    (b'{"v":1,"x":123456789012345678901234567890}', "number_out_of_range"),
    (b'{"v":1,"x":[' + b"0," * 10_000 + b"0]}", "too_many_items"),
    (b'{"v":1,"x":' + b'{"a":' * 20 + b"1" + b"}" * 20 + b"}", "too_deep"),
]
# An empty retained payload clears a retained topic: on the topics whose
# messages are kept by topic (presence, health, printer status) it is not bad.
POISON_NOT_EMPTY = [(p, r) for p, r in POISON if p]


def expected(poison=POISON, times: int = 1, *, large_ok: bool = False) -> Counter:
    """How many of each reason ``poison`` sent ``times`` makes. ``large_ok``:
    on a topic that takes payloads over 64 KiB (the menu), the large one is
    refused for its one long string instead."""
    c: Counter = Counter()
    for _, reason in poison:
        c["string_too_long" if large_ok and reason == "payload_too_large" else reason] += times
    return c


def flood(device: Device, topic: str, poison=POISON) -> None:
    for payload, _ in poison:
        device.publish(topic, payload)


class UIThread:
    """Runs posted functions one at a time, like Kivy's clock; the first one
    that raises stops it, as an exception in a Clock callback stops a Kivy
    app. ``errors`` says what stopped it."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.errors: list[BaseException] = []
        self.tick = None  # called every 0.2 s, as the app's timers
        self._t = threading.Thread(target=self._run, name="ui", daemon=True)
        self._t.start()

    def post(self, fn) -> None:
        self.q.put(fn)

    def call(self, fn, timeout: float = 10.0):
        done = threading.Event()
        box: list = []

        def run() -> None:
            try:
                box.append(fn())
            finally:
                done.set()
        self.q.put(run)
        assert done.wait(timeout), f"the UI thread is stuck or stopped: {self.errors!r}"
        return box[0] if box else None

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
            except BaseException as exc:  # what Kivy would do: the app stops
                self.errors.append(exc)
                return

    def close(self) -> None:
        self.q.put(None)
        self._t.join(5)


def wait(pred, timeout: float = 10.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"no {what} within {timeout:g} s")
        time.sleep(0.05)


def counted(counters: dict, want: Counter, fmt: str) -> bool:
    """Every reason of ``want`` counted at least as often in ``counters``
    under the name ``fmt.format(reason)``."""
    return all(counters.get(fmt.format(r), 0) >= n for r, n in want.items())
