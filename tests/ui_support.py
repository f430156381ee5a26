"""Real windows for UI tests: a screen process on a private Xvfb display,
driven with real X input (xdotool)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from restobox.brokerconf import terminate
from restobox.display import Xvfb  # noqa: F401  (tests import it from here)

REPO = Path(__file__).resolve().parent.parent


# How often a test reads the screen's state dump while it waits for a
# condition: a few hundredths of a second, so a test waits no longer than
# the screen takes (reading the dump costs about a millisecond).
POLL_S = 0.025


class ScreenProcess:
    """A Kivy screen (``python -m kds``) in its own process on an Xvfb."""

    def __init__(self, x: Xvfb, config: Path, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.x = x
        self.env = env or {}
        self.config = config
        self.state_file = workdir / "screen-state.json"
        self.log = workdir / "screen.log"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> float:
        """Start; return the seconds until the first frame was drawn."""
        self.state_file.unlink(missing_ok=True)
        env = {**self.x.env(), "RESTOBOX_KDS_STATE": str(self.state_file),
               "RESTOBOX_SCREENSHOT_DIR": str(self.workdir), **self.env}
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
            time.sleep(POLL_S)

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
