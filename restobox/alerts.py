"""What staff must see, folded from what the store's devices say on the bus.

Every device publishes its presence (retained, with a last will) and its
health (retained); the printing service publishes each printer's status
(retained) and one-off alerts. ``StoreWatch`` reads those four kinds of
message and answers one question: which alerts should a person see now?
The kitchen screens, the kiosk's staff view and ``restobox status`` all ask
it, so they all say the same thing in the same words.

    printer out of paper, cover open, not answering, in error   critical
    paper running low                                            info
    a device offline (hub, printing: critical; others: warning)
    a service degraded (its own reason)                          warning
    orders the chain's cloud has not received for N minutes      warning
    a data disk almost full                                      warning; critical under half of it
    a one-off alert (a ticket no screen confirmed)               as sent, for ``keep`` minutes

Nothing here talks to the bus; ``feed`` is called from paho's thread and
``alerts`` from a UI thread, so both hold a lock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from restobox import contract
from restobox.bus import refused
from restobox.contract import Alert, Health, Presence, PrinterStatus, Words, topics

log = logging.getLogger("restobox.alerts")

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}

ROLE_NAMES: dict[str, Words] = {
    "hub": Words("主机", "The store hub"),
    "printing": Words("打印服务", "The printing service"),
    "sync": Words("总部同步", "Cloud sync"),
    "kiosk": Words("自助点餐机", "Kiosk"),
    "kds": Words("厨房屏", "Kitchen screen"),
    "expo": Words("出餐屏", "Expo screen"),
    "board": Words("取餐屏", "Pickup board"),
}
# devices that come and go by design: the staff command, a dashboard
QUIET_ROLES = {"staff", "monitor"}
CRITICAL_ROLES = {"hub", "printing"}

PRINTER_ALERTS: dict[str, tuple[str, str, Words]] = {
    # printer state -> (code, severity, words)
    "paper_out": ("printer_paper_out", "critical", Words("打印机 {p} 缺纸。", "Printer {p} is out of paper.")),
    "cover_open": ("printer_cover_open", "critical", Words("打印机 {p} 盖子开着。", "Printer {p} has its cover open.")),
    "offline": ("printer_offline", "critical", Words("打印机 {p} 没有响应。", "Printer {p} does not answer.")),
    "error": ("printer_error", "critical", Words("打印机 {p} 报告错误。", "Printer {p} reports an error.")),
}
# Bounds: what one device flooding the bus can make this watch hold.
MAX_DEVICES = 500
MAX_PRINTERS = 100
MAX_ONEOFF = 200
MAX_TEXT = 300
"""Characters of an alert's sentence shown (more is cut, with "…")."""

# one-off alerts that the printer's retained status already says
_COVERED_BY_STATUS = {"paper_out", "cover_open", "printer_offline", "printer_error", "printer_ready"}


@dataclass(frozen=True)
class StoreAlert:
    code: str
    subject: str
    severity: str
    message: Words
    since: str

    def line(self, lang: str = "en") -> str:
        return self.message.en if lang == "en" else self.message.zh


@dataclass
class DeviceState:
    device: str
    role: str = ""
    online: bool | None = None
    presence_at: str = ""
    health: Health | None = None

    @property
    def name(self) -> Words:
        r = ROLE_NAMES.get(self.role)
        if r and self.device == self.role:  # "The store hub", not "The store hub hub"
            return r
        return Words(f"{r.zh} {self.device}", f"{r.en} {self.device}") if r else Words(self.device, self.device)


@dataclass
class _OneOff:
    alert: Alert
    heard: float


@dataclass
class StoreWatch:
    sync_backlog_alert_s: float = 600.0
    disk_free_pct: float = 10.0
    alert_keep_s: float = 600.0
    clock: Callable[[], float] = time.time
    me: str = ""
    bad: int = 0
    #: messages not used, by reason code (those of contract.decode, and ``unusable``)
    rejected: dict[str, int] = field(default_factory=dict)
    _devices: dict[str, DeviceState] = field(default_factory=dict)
    _printers: dict[str, PrinterStatus] = field(default_factory=dict)
    _oneoff: dict[tuple[str, str], _OneOff] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    TOPICS = (topics.PRESENCE_ALL, topics.HEALTH_ALL, topics.PRINTER_STATUS_ALL, topics.ALERTS)

    @classmethod
    def from_config(cls, cfg, me: str = "", clock: Callable[[], float] = time.time) -> "StoreWatch":
        a = cfg.alerts
        return cls(sync_backlog_alert_s=a.sync_backlog_minutes * 60, disk_free_pct=a.disk_free_pct,
                   alert_keep_s=a.keep_minutes * 60, clock=clock, me=me)

    # ----------------------------------------------------------- input
    def feed(self, topic: str, payload: bytes) -> bool:
        """Take one message; True when ``alerts()`` may have changed. A
        message that does not decode, or that this watch cannot use, is
        counted in ``bad`` (and by reason in ``rejected``), logged
        (rate-limited) and changes nothing; this never raises (an empty
        retained payload clears what the topic held)."""
        try:
            with self._lock:
                return self._feed(topic, payload)
        except contract.Rejection as r:
            reason, detail = r.reason, r.detail
        except Exception as exc:  # _Unusable, or a surprise: the watch goes on
            reason, detail = "unusable", str(exc)
        self.bad += 1
        refused(topic, reason, detail, self.rejected, logger=log)
        return False

    def _feed(self, topic: str, payload: bytes) -> bool:
        if topic == topics.ALERTS:
            a = contract.decode(payload, Alert)
            if a.code == "printer_ready":
                return False
            key = (a.code, a.subject)
            self._oneoff.pop(key, None)  # newest last: the oldest go first when there are too many
            self._oneoff[key] = _OneOff(a, self.clock())
            while len(self._oneoff) > MAX_ONEOFF:
                del self._oneoff[next(iter(self._oneoff))]
            return a.code not in _COVERED_BY_STATUS
        prefix = f"{contract.ROOT}/print/printer/"
        if topic.startswith(prefix):
            printer = topic[len(prefix):]
            if not payload:
                return self._printers.pop(printer, None) is not None
            s = contract.decode(payload, PrinterStatus)
            if s.printer != printer:
                raise _Unusable(f"status of {s.printer} on the topic of {printer}")
            if printer not in self._printers and len(self._printers) >= MAX_PRINTERS:
                raise _Unusable(f"more than {MAX_PRINTERS} printers")
            self._printers[printer] = s
            return True
        parsed = contract.parse_topic(topic)
        if parsed is None or parsed[0] not in ("presence", "health"):
            raise _Unusable(f"not a topic StoreWatch reads: {topic[:200]}")
        kind, device = parsed
        if not payload:
            return self._devices.pop(device, None) is not None
        d = self._devices.get(device)
        if d is None:
            if len(self._devices) >= MAX_DEVICES:
                raise _Unusable(f"more than {MAX_DEVICES} devices")
            d = DeviceState(device)
        if kind == "presence":
            p = contract.decode(payload, Presence)
            if p.device != device:
                raise _Unusable(f"presence of {p.device[:64]} on the topic of {device}")
            d.role, d.online, d.presence_at = p.role, p.state == "online", p.at
        else:
            h = contract.decode(payload, Health)
            if h.device != device:
                raise _Unusable(f"health of {h.device[:64]} on the topic of {device}")
            d.role = d.role or h.role
            d.health = h
        self._devices[device] = d
        return True

    # ---------------------------------------------------------- output
    def devices(self) -> list[DeviceState]:
        with self._lock:
            return [DeviceState(d.device, d.role, d.online, d.presence_at, d.health)
                    for _, d in sorted(self._devices.items())]

    def printers(self) -> list[PrinterStatus]:
        with self._lock:
            return [p for _, p in sorted(self._printers.items())]

    def alerts(self) -> list[StoreAlert]:
        """Every alert to show now, most severe first, then oldest first."""
        now = self.clock()
        out: list[StoreAlert] = []
        with self._lock:
            # One odd message must not hide the others' alerts, nor stop the
            # screen that asks (a UI thread): each source on its own.
            for p in self._printers.values():
                self._collect(out, self._printer_alerts, p)
            for d in self._devices.values():
                self._collect(out, self._device_alerts, d, now)
            for key, o in list(self._oneoff.items()):
                if now - o.heard > self.alert_keep_s:
                    del self._oneoff[key]
                elif o.alert.code not in _COVERED_BY_STATUS:
                    a = o.alert
                    out.append(StoreAlert(a.code[:64], a.subject[:64], a.severity, a.message, a.at[:40]))
        out = [dataclasses.replace(a, message=_clip(a.message)) for a in out]
        out.sort(key=lambda a: (SEVERITY_RANK.get(a.severity, 9), a.since, a.subject))
        return out

    def _collect(self, out: list[StoreAlert], fn, *args) -> None:
        try:
            out.extend(fn(*args))
        except Exception as exc:
            refused(getattr(args[0], "device", None) or getattr(args[0], "printer", "?"), "unusable",
                    f"no alert from it: {exc!r}", logger=log)

    def _printer_alerts(self, p: PrinterStatus) -> list[StoreAlert]:
        if p.state in PRINTER_ALERTS:
            code, sev, w = PRINTER_ALERTS[p.state]
            queued = f"（{p.queued} 张待打印）" if p.queued else ""
            queued_en = f" {p.queued} waiting to print." if p.queued else ""
            return [StoreAlert(code, p.printer, sev,
                               Words(w.zh.format(p=p.printer) + queued, w.en.format(p=p.printer) + queued_en),
                               p.at)]
        if p.paper_near_end:
            return [StoreAlert("paper_near_end", p.printer, "info",
                               Words(f"打印机 {p.printer} 纸快用完了。", f"Printer {p.printer} is running low on paper."),
                               p.at)]
        return []

    def _device_alerts(self, d: DeviceState, now: float) -> list[StoreAlert]:
        if d.role in QUIET_ROLES:
            return []
        name = d.name
        if d.online is False:
            if d.device == self.me:  # we are reading this: the broker's last word about us is out of date
                return []
            sev = "critical" if d.role in CRITICAL_ROLES else "warning"
            return [StoreAlert("device_offline", d.device, sev,
                               Words(f"{name.zh} 离线。", f"{name.en} is offline."), d.presence_at)]
        h = d.health
        if h is None:
            return []
        out: list[StoreAlert] = []
        if h.state == "degraded" and d.role != "printing":  # a printer's own alert says more
            why = h.reason or "needs attention"
            out.append(StoreAlert("service_degraded", d.device, "warning",
                                  Words(f"{name.zh} 有问题：{why}", f"{name.en} has a problem: {why}"), h.at))
        age = _num(h.details.get("oldest_unsent_s"))
        if d.role == "sync" and age is not None and h.details.get("backlog"):
            sent = epoch(h.at)
            age += max(0.0, now - sent) if sent is not None else 0.0
            if age >= self.sync_backlog_alert_s:
                minutes = int(age // 60)
                backlog = h.details.get("backlog")
                out.append(StoreAlert(
                    "sync_backlog", d.device, "warning",
                    Words(f"总部已有 {minutes} 分钟没有收到订单（{backlog} 条待发送）。",
                          f"The chain's cloud has not received orders for {minutes} minutes ({backlog} waiting)."),
                    h.at))
        free = _num(h.details.get("disk_free_pct"))
        if free is not None and free < self.disk_free_pct:
            out.append(StoreAlert(
                "disk_low", d.device, "critical" if free < self.disk_free_pct / 2 else "warning",
                Words(f"{name.zh} 的存储空间快满了（剩 {free:g}%）。",
                      f"{name.en}'s disk is almost full ({free:g}% free)."), h.at))
        return out


class _Unusable(Exception):
    """A message that decodes but that this watch cannot use."""


def _clip(w: Words, n: int = MAX_TEXT) -> Words:
    """A sentence short enough for a screen's alert strip (a message may hold 8 KiB)."""
    if len(w.zh) <= n and len(w.en) <= n:
        return w
    return Words(w.zh if len(w.zh) <= n else w.zh[:n - 1] + "…", w.en if len(w.en) <= n else w.en[:n - 1] + "…")


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def epoch(at: str) -> float | None:
    """A message's ISO time as seconds since the epoch (None when it is
    missing or not a time)."""
    try:
        return datetime.fromisoformat(at).timestamp()
    except (TypeError, ValueError):
        return None
