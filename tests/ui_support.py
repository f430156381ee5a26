"""Real windows for UI tests: a private Xvfb display and a screen process
driven with real X input (xdotool)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from restobox.brokerconf import terminate

REPO = Path(__file__).resolve().parent.parent


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
        # move first and let SDL see the pointer enter before the press
        self.xdotool("mousemove", str(int(x)), str(int(y)), "sleep", "0.15", "mousedown", "1",
                     "sleep", "0.05", "mouseup", "1")

    def key(self, name: str) -> None:
        self.xdotool("key", name)

    def close(self) -> None:
        terminate(self.proc)


class ScreenProcess:
    """A Kivy screen (``python -m kds``) in its own process on an Xvfb."""

    def __init__(self, x: Xvfb, config: Path, workdir: Path) -> None:
        self.x = x
        self.config = config
        self.state_file = workdir / "screen-state.json"
        self.log = workdir / "screen.log"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> float:
        """Start; return the seconds until the first frame was drawn."""
        self.state_file.unlink(missing_ok=True)
        env = {**self.x.env(), "RESTOBOX_KDS_STATE": str(self.state_file),
               "RESTOBOX_SCREENSHOT_DIR": str(self.workdir)}
        t0 = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "kds", "--config", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        while not self.state_file.exists():
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"the screen did not start; log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return time.monotonic() - t0

    def state(self) -> dict:
        for _ in range(20):
            try:
                return json.loads(self.state_file.read_text())
            except (json.JSONDecodeError, FileNotFoundError):
                time.sleep(0.05)
        raise RuntimeError("no screen state")

    def wait(self, pred, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"screen never got there; last state: {st}")
            time.sleep(0.1)

    def ticket(self, number: int) -> dict | None:
        for t in self.state()["tickets"]:
            if t["number"] == f"#{number}":
                return t
        return None

    def tap_header(self, number: int) -> None:
        t = self.ticket(number)
        assert t is not None, f"ticket #{number} is not on the screen"
        x, y, w, h = t["header"]
        self.x.click(x + w / 2, y + h / 2)

    def screenshot(self, name: str) -> Path:
        """F12 makes the app save a screenshot (Kivy appends a counter)."""
        before = set(self.workdir.glob("*.png"))
        self.x.key("F12")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = set(self.workdir.glob("*.png")) - before
            if new:
                time.sleep(0.3)
                target = self.workdir / name
                shutil.move(str(new.pop()), target)
                return target
            time.sleep(0.05)
        raise TimeoutError("no screenshot")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 10)
