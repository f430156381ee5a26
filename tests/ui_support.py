"""Real windows for UI tests: a screen process on a private Xvfb display,
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
from restobox.display import Xvfb  # noqa: F401  (tests import it from here)

REPO = Path(__file__).resolve().parent.parent


# How often a test reads the screen's state dump while it waits for a
# condition: a few hundredths of a second, so a test waits no longer than
# the screen takes (reading the dump costs about a millisecond).
POLL_S = 0.025


class ScreenProcess:
    """A Kivy screen (``python -m kds``) in its own process on an Xvfb."""

    MODULE = "kds"  # python -m <MODULE>; it writes its state where RESTOBOX_<MODULE>_STATE says
    NAME = "screen"  # in the error when it does not start
    args: tuple[str, ...] = ()

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
        env = {**self.x.env(), f"RESTOBOX_{self.MODULE.upper()}_STATE": str(self.state_file),
               "RESTOBOX_SCREENSHOT_DIR": str(self.workdir), **self.start_env(), **self.env}
        t0 = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", self.MODULE, "--config", str(self.config), *self.args],
                                         stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        while not self.state_file.exists():
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"the {self.NAME} did not start; log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return time.monotonic() - t0

    def start_env(self) -> dict[str, str]:
        """The screen's own environment at start."""
        return {}

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


class TouchAppProcess(ScreenProcess):
    """A selling screen's app (``python -m kiosk``, ``python -m counter``) on
    its own Xvfb, at ``size`` (RESTOBOX_<MODULE>_SIZE); taps buttons by their
    view-model id (the state dump's ``buttons``)."""

    def __init__(self, x: Xvfb, config: Path, workdir: Path, size: str, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        super().__init__(x, config, workdir, env)
        self.size = size
        self.args = args

    def start_env(self) -> dict[str, str]:
        return {f"RESTOBOX_{self.MODULE.upper()}_SIZE": self.size}

    def state(self) -> dict:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the {self.NAME} exited; log:\n{self.log.read_text()[-3000:]}")
        return super().state()

    def tap(self, target: str, timeout: float = 15.0) -> dict:
        """Wait until the button is on the screen, then click its middle."""
        # the dump is written 0.08 s after the last change, its layout done
        # (a later change writes it again): the button is where it says
        st = self.wait(lambda st: target in st["buttons"], timeout)
        x, y, w, h = st["buttons"][target]
        self.x.click(x + w / 2, y + h / 2)
        return st

    def keep(self, name: str) -> Path:
        """A screenshot named ``name``; with RESTOBOX_DOCS_SCREENSHOTS=<folder>
        a copy there too (the docs' pictures)."""
        time.sleep(0.6)  # the frame after the last change is drawn
        shot = self.screenshot(name)
        keep = os.environ.get("RESTOBOX_DOCS_SCREENSHOTS")
        if keep:
            shutil.copy(shot, REPO / keep / name)
        return shot
