"""The far end of a pseudo-terminal: the plumbing shared by the device
stand-ins that tests and the demo put on a real serial line (a thermal
printer, a payment terminal). Standard library only."""

from __future__ import annotations

import os
import threading
import tty


class Modes:
    """A stand-in whose behaviour (``mode``, one of ``MODES``) a test
    changes while it runs; setting it wakes the stand-in's thread
    (``_wake_for_mode``) to take it at once."""

    MODES: tuple[str, ...] = ()
    _mode: str

    @classmethod
    def _check_mode(cls, mode: str) -> None:
        if mode not in cls.MODES:
            raise ValueError(f"mode must be one of {', '.join(cls.MODES)}, not {mode!r}")

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self._check_mode(mode)
        self._mode = mode
        self._wake_for_mode()

    def _wake_for_mode(self) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError


class PtyDevice(Modes):
    """Opens a pty in raw mode and runs ``self._run`` in a thread.

    Subclasses set ``MODES`` and ``NAME``, call ``_open_pty(mode)`` in their
    ``__init__`` and ``_start()`` once their own state is ready; ``_run``
    waits on ``self._master`` and ``self._wake_r`` and ends when
    ``self._stop`` is set. ``.device`` is the path to give the code under test.
    """

    NAME = "pty device"

    def _open_pty(self, mode: str) -> None:
        self._check_mode(mode)
        self._mode = mode
        self._master, self._slave = os.openpty()
        try:
            # This end stays open for the device's whole life: with no slave
            # fd open, reading the master gives EIO.
            tty.setraw(self._slave)
            os.set_blocking(self._master, False)
            self.device = os.ttyname(self._slave)
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            os.close(self._master)
            os.close(self._slave)
            raise
        self._stop = False
        self._closed = False

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.NAME} {self.device}", daemon=True)
        self._thread.start()

    def _run(self) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    def _wake_for_mode(self) -> None:
        os.write(self._wake_w, b"m")

    def close(self) -> None:
        """Stop the thread and close every fd (the device path disappears)."""
        if self._closed:
            return
        self._closed = True
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        if self._thread.is_alive():
            raise RuntimeError(f"{self.NAME} {self.device}: the thread did not stop")
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
