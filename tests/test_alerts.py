"""StoreWatch: what staff are shown, from presence, health, printer status
and one-off alerts (unit tests; the screens and ``restobox status`` are
tested against the real broker elsewhere)."""

from __future__ import annotations

from datetime import datetime, timezone

from restobox import contract
from restobox.alerts import StoreWatch
from restobox.config import Config
from restobox.contract import Alert, Health, Presence, PrinterStatus, topics

T0 = 1_800_000_000.0


def at(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def watch(**kw) -> tuple[StoreWatch, Clock]:
    c = Clock()
    return StoreWatch(clock=c, **kw), c


def presence(w, device, role, state):
    return w.feed(topics.presence(device), contract.encode(Presence(device=device, role=role, state=state, at=at(T0))))


def health(w, device, role, state="ready", when=T0, reason="", **details):
    return w.feed(topics.health(device), contract.encode(
        Health(device=device, role=role, state=state, at=at(when), reason=reason, details=details)))


def printer(w, name, state, **kw):
    return w.feed(topics.printer_status(name), contract.encode(PrinterStatus(printer=name, state=state, at=at(T0), **kw)))


def codes(w):
    return [(a.code, a.subject, a.severity) for a in w.alerts()]


def test_a_quiet_store_has_no_alerts():
    w, _ = watch()
    presence(w, "hub", "hub", "online")
    health(w, "hub", "hub", disk_free_pct=55.0)
    printer(w, "receipt", "ready")
    assert w.alerts() == []


def test_printer_out_of_paper_is_critical_and_clears_when_ready():
    w, _ = watch()
    assert printer(w, "kitchen", "paper_out", queued=3)
    [a] = w.alerts()
    assert (a.code, a.subject, a.severity) == ("printer_paper_out", "kitchen", "critical")
    assert a.message.en == "Printer kitchen is out of paper. 3 waiting to print."
    assert "缺纸" in a.message.zh
    printer(w, "kitchen", "ready", paper_near_end=True)
    assert codes(w) == [("paper_near_end", "kitchen", "info")]
    printer(w, "kitchen", "ready")
    assert w.alerts() == []


def test_devices_offline_by_role_and_quiet_roles_ignored():
    w, _ = watch(me="kds-wok-1")
    presence(w, "hub", "hub", "offline")
    presence(w, "kiosk-2", "kiosk", "offline")
    presence(w, "kds-wok-1", "kds", "offline")  # the screen showing the alerts
    presence(w, "staff-1", "staff", "offline")  # the staff command came and went
    assert codes(w) == [("device_offline", "hub", "critical"), ("device_offline", "kiosk-2", "warning")]
    assert w.alerts()[0].message.en == "The store hub is offline."
    presence(w, "hub", "hub", "online")
    assert codes(w) == [("device_offline", "kiosk-2", "warning")]


def test_a_screen_sees_its_own_disk_alert():
    w, _ = watch(me="kds-wok-1", disk_free_pct=10)
    health(w, "kds-wok-1", "kds", disk_free_pct=3.0)
    assert codes(w) == [("disk_low", "kds-wok-1", "critical")]


def test_sync_backlog_alert_counts_the_time_since_its_health():
    w, c = watch(sync_backlog_alert_s=600)
    health(w, "sync", "sync", backlog=12, oldest_unsent_s=300.0)
    assert w.alerts() == []
    c.t += 301  # no newer health: the backlog has aged with the clock
    [a] = w.alerts()
    assert (a.code, a.severity) == ("sync_backlog", "warning")
    assert a.message.en == "The chain's cloud has not received orders for 10 minutes (12 waiting)."
    health(w, "sync", "sync", when=c.t, backlog=0, oldest_unsent_s=0.0)
    assert w.alerts() == []


def test_disk_low_warning_then_critical():
    w, _ = watch(disk_free_pct=10)
    health(w, "kiosk-1", "kiosk", disk_free_pct=8.0)
    assert codes(w) == [("disk_low", "kiosk-1", "warning")]
    health(w, "kiosk-1", "kiosk", disk_free_pct=4.5)
    assert codes(w) == [("disk_low", "kiosk-1", "critical")]
    assert w.alerts()[0].message.en == "Kiosk kiosk-1's disk is almost full (4.5% free)."


def test_degraded_service_shows_its_reason_but_printing_defers_to_printer_alerts():
    w, _ = watch()
    health(w, "sync", "sync", state="degraded", reason="The cloud does not answer.")
    health(w, "printing", "printing", state="degraded", reason="a printer needs attention")
    assert codes(w) == [("service_degraded", "sync", "warning")]
    assert w.alerts()[0].message.en == "Cloud sync has a problem: The cloud does not answer."


def test_one_off_alerts_are_kept_for_a_while_and_printer_ones_left_to_the_status():
    w, c = watch(alert_keep_s=600)
    msg = contract.REASONS["ticket_not_acknowledged"]
    w.feed(topics.ALERTS, contract.encode(Alert(source="hub", code="ticket_not_acknowledged", message=msg,
                                                subject="wok", at=at(T0))))
    w.feed(topics.ALERTS, contract.encode(Alert(source="printing", code="paper_out",
                                                message=contract.REASONS["paper_out"], subject="kitchen",
                                                severity="critical", at=at(T0))))
    assert codes(w) == [("ticket_not_acknowledged", "wok", "warning")]
    c.t += 601
    assert w.alerts() == []


def test_bad_messages_are_counted_and_change_nothing():
    w, _ = watch()
    printer(w, "kitchen", "paper_out")
    before = w.alerts()
    assert not w.feed(topics.printer_status("kitchen"), b"{not json")
    assert not w.feed(topics.printer_status("kitchen"), contract.encode(
        PrinterStatus(printer="receipt", state="ready", at=at(T0))))  # another printer's status
    assert not w.feed(topics.health("hub"), b'{"v": 1, "device": "hub"}')
    assert not w.feed("restobox/v1/somewhere/else", b"{}")
    assert w.bad == 4
    assert w.alerts() == before


def test_an_empty_retained_message_forgets_the_device():
    w, _ = watch()
    presence(w, "kiosk-9", "kiosk", "offline")
    assert w.alerts()
    assert w.feed(topics.presence("kiosk-9"), b"")
    assert w.alerts() == [] and w.devices() == []


def test_thresholds_come_from_the_config():
    cfg = msgspec_config({"device": {"id": "kds-wok-1", "role": "kds"},
                          "alerts": {"sync_backlog_minutes": 2, "disk_free_pct": 20, "keep_minutes": 1}})
    w = StoreWatch.from_config(cfg, me="kds-wok-1")
    assert (w.sync_backlog_alert_s, w.disk_free_pct, w.alert_keep_s, w.me) == (120, 20, 60, "kds-wok-1")


def msgspec_config(d) -> Config:
    import msgspec

    return msgspec.convert(d, Config)
