"""A private virtual display (Xvfb) for the screens: the demo on a machine
without a display, the UI tests and the benchmarks."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import time
from pathlib import Path

from restobox.brokerconf import terminate


def _lock_pid(n: int) -> int | None:
    """The pid of the X server holding display ``n`` (its lock file)."""
    try:
        return int(Path(f"/tmp/.X{n}-lock").read_text().strip())
    except (OSError, ValueError):
        return None


class Xvfb:
    """A virtual display of its own (never :0 or another test's)."""

    def __init__(self, width: int = 1920, height: int = 1080) -> None:
        if shutil.which("Xvfb") is None:
            raise RuntimeError("Xvfb is not installed (apt-get install xvfb); ./run test installs it")
        # the lowest free display from 120 (never :0); another process may
        # take the same number at the same moment (tests run side by side):
        # its Xvfb then exits at once, and the next number is tried
        n = 120
        for _ in range(50):
            while n < 400 and (Path(f"/tmp/.X{n}-lock").exists() or Path(f"/tmp/.X11-unix/X{n}").exists()):
                n += 1
            self.display = f":{n}"
            self.proc = subprocess.Popen(["Xvfb", self.display, "-screen", "0", f"{width}x{height}x24",
                                          "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while self.proc.poll() is None and time.monotonic() < deadline:
                if Path(f"/tmp/.X11-unix/X{n}").exists() and _lock_pid(n) == self.proc.pid:
                    return  # this display is ours (its lock names our server)
                time.sleep(0.05)
            self.close()
            if time.monotonic() >= deadline:
                break
            n += 1
        raise RuntimeError(f"Xvfb {self.display} did not start")

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env(), check=True, timeout=10)

    def click(self, x: float, y: float) -> None:
        # move first and let SDL see the pointer enter before the press (a
        # few of its frames)
        self.xdotool("mousemove", str(int(x)), str(int(y)), "sleep", "0.06", "mousedown", "1",
                     "sleep", "0.05", "mouseup", "1")

    def key(self, name: str) -> None:
        self.xdotool("key", name)

    def keyboard(self) -> "Keyboard":
        return Keyboard(self.display)

    def close(self) -> None:
        terminate(self.proc)


class Keyboard:
    """Key presses through one X connection (the XTEST extension, as xdotool
    uses): for the benchmarks, where a process started per key would compete
    on the machine's cores with the very frame it measures."""

    def __init__(self, display: str) -> None:
        self._x11 = x11 = ctypes.CDLL("libX11.so.6")
        self._xtst = xtst = ctypes.CDLL("libXtst.so.6")
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XStringToKeysym.restype = ctypes.c_ulong
        x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
        x11.XKeysymToKeycode.restype = ctypes.c_ubyte
        x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x11.XFlush.argtypes = [ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self._dpy = x11.XOpenDisplay(display.encode())
        if not self._dpy:
            raise RuntimeError(f"cannot open the X display {display}")
        self._codes: dict[str, int] = {}

    def key(self, name: str) -> None:
        """Press and release the key ``name`` (an X keysym name: Return, Right, F12)."""
        code = self._codes.get(name)
        if code is None:
            code = self._x11.XKeysymToKeycode(self._dpy, self._x11.XStringToKeysym(name.encode()))
            if not code:
                raise ValueError(f"no key {name!r} on this display")
            self._codes[name] = code
        self._xtst.XTestFakeKeyEvent(self._dpy, code, 1, 0)
        self._xtst.XTestFakeKeyEvent(self._dpy, code, 0, 0)
        self._x11.XFlush(self._dpy)

    def close(self) -> None:
        if self._dpy:
            self._x11.XCloseDisplay(self._dpy)
            self._dpy = None
