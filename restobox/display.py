"""A private virtual display (Xvfb) for the screens: the demo on a machine
without a display, the UI tests and the benchmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from restobox.brokerconf import terminate


class Xvfb:
    """A virtual display of its own (never :0 or another test's)."""

    def __init__(self, width: int = 1920, height: int = 1080) -> None:
        if shutil.which("Xvfb") is None:
            raise RuntimeError("Xvfb is not installed (apt-get install xvfb); ./run test installs it")
        for n in range(120, 400):
            if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
                break
        self.display = f":{n}"
        self.proc = subprocess.Popen(["Xvfb", self.display, "-screen", "0", f"{width}x{height}x24",
                                      "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Xvfb {self.display} did not start")
            time.sleep(0.05)

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

    def close(self) -> None:
        terminate(self.proc)
