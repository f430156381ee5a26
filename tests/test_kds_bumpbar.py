"""A serial bump bar on a real pty: bytes become actions; unknown bytes are
counted, not crashing; the reader keeps trying when the device is missing."""

from __future__ import annotations

import os
import threading
import time
import tty

from kds.bumpbar import SerialBumpBar
from kds.viewmodel import BumpBarMap
from restobox.config import DEFAULT_SERIAL_BUMP_KEYS


def wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.02)


def test_key_bytes_become_actions_in_order():
    master, slave = os.openpty()
    tty.setraw(slave)
    got: list[str] = []
    lock = threading.Lock()
    bar = SerialBumpBar(os.ttyname(slave), BumpBarMap(DEFAULT_SERIAL_BUMP_KEYS),
                        lambda a: (lock.acquire(), got.append(a), lock.release()))
    bar.start()
    try:
        wait(lambda: bar.connected)
        os.write(master, b">>B?r\r\n")
        wait(lambda: len(got) == 4)
        assert got == ["select_next", "select_next", "bump", "recall"]
        assert bar.ignored == 1  # "?" is no key of this bar
    finally:
        bar.stop()
        os.close(master)
        os.close(slave)


def test_a_missing_bump_bar_is_retried_without_crashing(tmp_path):
    bar = SerialBumpBar(str(tmp_path / "no-such-tty"), BumpBarMap(DEFAULT_SERIAL_BUMP_KEYS), lambda a: None,
                        retry_s=0.1)
    bar.start()
    try:
        time.sleep(0.5)
        assert not bar.connected and bar._thread.is_alive()
    finally:
        bar.stop()
    assert not bar._thread.is_alive()
