"""Staff alerts on the screens, in real Kivy windows under Xvfb against the
real broker: a printer out of paper (its retained status), a kitchen screen
gone offline (its retained presence), the chain's cloud without orders for
too long (the sync service's retained health). Each alert appears on the
station and expo screens' alert strip and on the kiosk's attract screen
(never while a diner orders), and goes when what caused it is resolved.

RESTOBOX_DOCS_SCREENSHOTS=docs/screenshots keeps the station screen's
picture for the README.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone

import pytest

from restobox import contract
from restobox.contract import Health, Presence, PrinterStatus, topics
from tests.support import KUNG_PAO, REPO, Device, kiosk_config, new_order
from tests.test_kds_expo_board_ui import start_screen
from tests.test_kds_station_ui import kds_config
from tests.test_kiosk_ui import KioskProcess
from tests.ui_support import ScreenProcess, Xvfb

pytestmark = pytest.mark.integration


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def codes(st) -> list[tuple[str, str]]:
    return [(a["code"], a["subject"]) for a in st["alerts"]]


class Store:
    """The devices whose retained messages raise and clear the alerts."""

    def __init__(self, broker) -> None:
        self.printing = Device(broker, "printing", role="printing")
        self.fryer = Device(broker, "kds-fryer-1", role="kds")
        self.sync = Device(broker, "sync", role="sync")

    def printer(self, state: str, queued: int = 0) -> None:
        s = PrinterStatus(printer="kitchen", state=state, queued=queued, at=now())
        self.printing.publish(topics.printer_status("kitchen"), contract.encode(s), retain=True)

    def fryer_screen(self, state: str) -> None:
        p = Presence(device="kds-fryer-1", role="kds", state=state, at=now())
        self.fryer.publish(topics.presence("kds-fryer-1"), contract.encode(p), retain=True)

    def cloud_backlog(self, backlog: int, oldest_s: float) -> None:
        h = Health(device="sync", role="sync", state="ready", at=now(), reason="sending",
                   details={"backlog": backlog, "oldest_unsent_s": oldest_s})
        self.sync.publish(topics.health("sync"), contract.encode(h), retain=True)

    def raise_all(self) -> None:
        self.printer("paper_out", queued=3)
        self.fryer_screen("offline")
        self.cloud_backlog(42, 900)

    def resolve_all(self) -> None:
        self.printer("ready")
        self.fryer_screen("online")
        self.cloud_backlog(0, 0)

    def close(self) -> None:
        for d in (self.printing, self.fryer, self.sync):
            d.close()


RAISED = [("printer_paper_out", "kitchen"), ("device_offline", "kds-fryer-1"), ("sync_backlog", "sync")]


@pytest.fixture
def store(broker):
    s = Store(broker)
    yield s
    s.close()


def test_the_station_screen_shows_alerts_above_its_tickets_until_resolved(broker, hub, kiosk, store, tmp_path):
    x = Xvfb()
    screen = ScreenProcess(x, kds_config(tmp_path / "kds.toml", broker, tmp_path), tmp_path)
    try:
        screen.start()
        for _ in range(3):
            kiosk.submit(new_order(KUNG_PAO))
        screen.wait(lambda st: len(st["tickets"]) == 3 and st["alerts"] == [] and st["alert_strip"] == "")
        store.raise_all()
        st = screen.wait(lambda st: sorted(codes(st)) == sorted(RAISED))
        # most severe first: the printer is critical, the others warnings
        assert codes(st)[0] == ("printer_paper_out", "kitchen")
        assert "打印机 kitchen 缺纸" in st["alert_strip"] and "Printer kitchen is out of paper" in st["alert_strip"]
        assert "+2 more" in st["alert_strip"]
        # the strip is a band of its own above the grid: no ticket under it
        ax, ay, aw, ah = st["alert_rect"]
        assert ah > 0 and ay + ah <= st["grid_rect"][1]
        assert all(t["rect"][1] >= ay + ah for t in st["tickets"])
        time.sleep(0.5)
        shot = screen.screenshot("kds-station-alert.png")
        keep = os.environ.get("RESTOBOX_DOCS_SCREENSHOTS")
        if keep:
            shutil.copy(shot, REPO / keep / "kds-station-alert.png")
        store.resolve_all()
        st = screen.wait(lambda st: st["alerts"] == [] and st["alert_strip"] == "")
        assert st["alert_rect"][3] == 0 and len(st["tickets"]) == 3
    finally:
        screen.stop()
        x.close()


def test_the_expo_screen_shows_alerts_until_resolved(broker, hub, store, tmp_path):
    from tests.test_kds_expo_board_ui import Display

    d = Display()
    expo = None
    try:
        expo = start_screen(d, broker, tmp_path, "expo")
        expo.wait(lambda st: st["banner"] == "")
        store.printer("cover_open")
        store.fryer_screen("offline")
        # the dump reads the alert list as it stands and the strip as last drawn: wait for both
        st = expo.wait(lambda st: sorted(codes(st)) == sorted([("printer_cover_open", "kitchen"),
                                                               ("device_offline", "kds-fryer-1")])
                       and st["alert_strip"] != "")
        assert "Printer kitchen has its cover open" in st["alert_strip"]
        ax, ay, aw, ah = st["alert_rect"]
        assert ah > 0 and ay + ah <= st["grid_rect"][1]
        store.printer("ready")
        store.fryer_screen("online")
        expo.wait(lambda st: st["alerts"] == [] and st["alert_strip"] == "")
    finally:
        if expo is not None:
            expo.stop()
        d.close()


def test_the_kiosk_shows_alerts_to_staff_on_its_attract_screen_only(broker, hub, store, tmp_path):
    x = Xvfb(800, 1280)
    k = KioskProcess(x, kiosk_config(tmp_path / "kiosk.toml", broker), tmp_path, "800x1280")
    try:
        k.start()
        k.wait(lambda st: st["screen"] == "attract" and st["menu"] and st["alerts"] == [] and st["staff"] == "")
        store.raise_all()
        st = k.wait(lambda st: sorted(codes(st)) == sorted(RAISED) and "out of paper" in st["staff"])
        assert "打印机 kitchen 缺纸" in st["staff"]
        k.keep("kiosk-staff-alert.png")
        # a diner starts ordering: the staff line is gone from the screen
        k.tap("start")
        st = k.wait(lambda st: st["screen"] != "attract")
        assert st["staff"] == "" and len(st["alerts"]) == 3
        store.resolve_all()
        k.wait(lambda st: st["alerts"] == [])
    finally:
        k.stop()
        x.close()

