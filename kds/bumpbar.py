"""Serial bump bars: each key press arrives as one byte on a serial line.

The bytes are mapped to actions by config (``[kds] serial_bump_keys``), the
same actions as a keyboard-style bump bar. The reader runs in its own thread
and hands each action to ``on_action`` (the app posts it to the UI thread);
an unplugged bump bar is retried every two seconds, and said so once in the
log, never crashing the screen.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import serial  # pyserial

from kds.viewmodel import BumpBarMap

log = logging.getLogger("restobox.kds.bumpbar")


class SerialBumpBar:
    def __init__(self, device: str, keys: BumpBarMap, on_action: Callable[[str], None], *,
                 baudrate: int = 9600, retry_s: float = 2.0) -> None:
        self.device = device
        self.keys = keys
        self.on_action = on_action
        self.baudrate = baudrate
        self.retry_s = retry_s
        self.connected = False
        self.ignored = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bumpbar {device}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        warned = False
        while not self._stop.is_set():
            try:
                with serial.Serial(self.device, self.baudrate, timeout=0.2) as port:
                    if not self.connected:
                        log.info("bump bar on %s connected", self.device)
                    self.connected, warned = True, False
                    while not self._stop.is_set():
                        data = port.read(64)
                        for b in data:
                            self._key(chr(b))
            except (serial.SerialException, OSError) as exc:
                self.connected = False
                if not warned:
                    log.warning("bump bar on %s unavailable (%s); trying again every %.0f s",
                                self.device, exc, self.retry_s)
                    warned = True
                self._stop.wait(self.retry_s)

    def _key(self, ch: str) -> None:
        if ch in "\r\n\x00":
            return
        action = self.keys.action_for(ch)
        if action is None:
            self.ignored += 1
            log.warning("bump bar sent %r, which no action is mapped to", ch)
            return
        self.on_action(action)
