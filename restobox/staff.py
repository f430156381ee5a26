"""The staff's ``restobox`` commands: see what is wrong, and fix it.

    restobox status                 every service, the broker, printers, sync, disks, alerts
    restobox restart SERVICE        restart one service and wait until it is up again
    restobox logs SERVICE [-n N] [-f]
    restobox reprint ORDER [--station S]
    restobox 86 ITEM / un86 ITEM
    restobox test-print PRINTER
    restobox devices                what is online
    restobox add-device NAME ROLE [--station S] [--rotate]

They run on the hub Pi as the staff device (``/etc/restobox/staff.toml``).
What happens in the store they learn from the bus (presence, health, printer
status: the same ``StoreWatch`` the kitchen screens use); services they
start and stop with systemd; anything that changes the order book they ask
the hub for, with a staff command the hub checks and records.

Every mistake gets one sentence saying what is wrong and what to do, and an
exit status: 0 done, 1 done but something needs a person (a test page held
for paper, a critical alert), 2 the command could not be carried out.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from restobox import contract
from restobox.alerts import StoreWatch, epoch
from restobox.bus import Bus, decode_or_none
from restobox.contract import MenuMessage, PrintJobState, StaffCommand, StaffReply, topics
from restobox.service import SERVICES, disk_details, lan_address  # noqa: F401  (SERVICES: staff.SERVICES)

DEVICE_RE = re.compile(contract.DEVICE_PATTERN)

ROLES_WITH_STATION = {"kds"}
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
STATE_STYLE = {"ready": "green", "online": "green", "active": "green", "done": "green",
               "degraded": "yellow", "starting": "yellow", "activating": "yellow", "reloading": "yellow",
               "offline": "red", "failed": "bold red", "inactive": "red", "stopping": "yellow"}


class StaffError(Exception):
    """A command cannot be carried out; ``str()`` says why and what to do."""

    def __init__(self, sentence: str, status: int = 2) -> None:
        super().__init__(sentence)
        self.status = status


def rb() -> str:
    """The staff command as staff must type it: ``sudo restobox``, unless
    they work as root itself (staff-1's password and the broker's files are
    root's; someone who ran this with sudo needs sudo again)."""
    return "restobox" if os.geteuid() == 0 and not os.environ.get("SUDO_USER") else "sudo restobox"


def _styled(value: str) -> Text:
    return Text(value, style=STATE_STYLE.get(value, ""))


def _ago(iso_at: str, now: float) -> str:
    at = epoch(iso_at)
    if at is None:
        return ""
    s = max(0.0, now - at)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def suggest(word: str, choices, what: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    if close:
        return f"Did you mean {' or '.join(repr(c) for c in close)}?"
    return f"{what}: {', '.join(sorted(choices))}." if choices else ""


# ======================================================================= bus
# What a busy bus (or a flood) can make one visit hold: the oldest go first.
KEPT_REPLIES = 100
KEPT_JOBS = 1000
KEPT_STATES = 20


def _bound(d: dict, n: int) -> None:
    while len(d) > n:
        del d[next(iter(d))]


class StoreLink:
    """A short visit to the store's broker as the staff device: retained
    state comes in, commands go to the hub, answers and print progress come
    back."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.device = cfg.device.id
        self.watch = StoreWatch.from_config(cfg, me=self.device)
        self.menu: MenuMessage | None = None
        self._cv = threading.Condition()
        self._replies: dict[bytes, StaffReply] = {}
        self._jobs: dict[str, list[PrintJobState]] = {}
        self.bus = Bus(device=self.device, role=cfg.device.role, host=cfg.mqtt.host, port=cfg.mqtt.port,
                       username=cfg.mqtt_username(), password=cfg.mqtt_password(),
                       keepalive=cfg.mqtt.keepalive_s, persistent=False, reconnect_max_s=2,
                       tls=cfg.mqtt.tls, ca_file=cfg.mqtt_ca_file())
        for t in StoreWatch.TOPICS:
            self.bus.subscribe(t, self._on_watch)
        self.bus.subscribe(topics.MENU, self._on_menu)
        self.bus.subscribe(topics.staff_reply(self.device), self._on_reply)
        self.bus.subscribe(topics.PRINT_JOB_STATE, self._on_job)

    def connect(self, timeout: float = 5.0) -> "StoreLink":
        self.bus.start()
        if not self.bus.wait_connected(timeout):
            refusal = self.bus.last_refusal
            self.bus.stop()
            where = f"{self.cfg.mqtt.host}:{self.cfg.mqtt.port}"
            if refusal:
                raise StaffError(f"The broker at {where} refused {self.device}: {refusal}. Check the password "
                                 f"file in the config, or add the device again: {rb()} add-device "
                                 f"{self.device} staff --rotate")
            raise StaffError(f"The broker at {where} does not answer. Restart it: {rb()} restart broker")
        # retained messages arrive right after the subscriptions; give them a moment
        deadline = time.monotonic() + 0.6
        last = -1
        while time.monotonic() < deadline:
            n = len(self.watch.devices()) + len(self.watch.printers()) + (self.menu is not None)
            if n == last and n > 0:
                break
            last = n
            time.sleep(0.15)
        return self

    def close(self) -> None:
        self.bus.stop()

    def __enter__(self) -> "StoreLink":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ handlers
    def _on_watch(self, m) -> None:
        self.watch.feed(m.topic, m.payload)

    def _on_menu(self, m) -> None:
        self.menu = decode_or_none(m, MenuMessage, max_bytes=contract.MAX_MENU_BYTES) or self.menu

    def _on_reply(self, m) -> None:
        r = decode_or_none(m, StaffReply)
        if r is not None:
            with self._cv:
                self._replies[m.correlation or b""] = r
                _bound(self._replies, KEPT_REPLIES)
                self._cv.notify_all()

    def _on_job(self, m) -> None:
        s = decode_or_none(m, PrintJobState)
        if s is not None:
            with self._cv:
                states = self._jobs.pop(s.job_id, [])  # newest last: the oldest go first
                self._jobs[s.job_id] = (states + [s])[-KEPT_STATES:]
                _bound(self._jobs, KEPT_JOBS)
                self._cv.notify_all()

    # ------------------------------------------------------------ commands
    def command(self, kind: str, **fields) -> StaffReply:
        """Ask the hub; its answer, or StaffError if it does not answer."""
        cmd = StaffCommand(command_id=str(uuid.uuid4()), kind=kind, **fields)
        corr = uuid.uuid4().bytes
        timeout = self.cfg.staff.timeout_s
        try:
            self.bus.publish_wait(topics.staff_command(self.device), contract.encode(cmd), correlation=corr,
                                  response_topic=topics.staff_reply(self.device))
        except Exception as exc:  # PublishError: refused by the ACL or the broker went away
            raise StaffError(f"The broker did not take the command ({exc}). Is {self.device} a staff "
                             f"device? restobox devices lists them.") from None
        with self._cv:
            if not self._cv.wait_for(lambda: corr in self._replies, timeout):
                raise StaffError(f"The hub did not answer within {timeout:g} s. Check it with "
                                 f"{rb()} status, or restart it: {rb()} restart hub")
            return self._replies.pop(corr)

    def job_outcome(self, job_id: str, timeout: float) -> PrintJobState | None:
        """The job's last state once it is done, held or failed; else the
        last state heard within ``timeout`` (None: nothing at all)."""
        final = ("done", "held", "failed")
        with self._cv:
            self._cv.wait_for(lambda: any(s.state in final for s in self._jobs.get(job_id, ())), timeout)
            states = self._jobs.get(job_id, [])
            for s in states:
                if s.state in final:
                    return s
            return states[-1] if states else None


def _print_outcome(console: Console, what: str, s: PrintJobState | None, timeout: float) -> int:
    if s is None:
        console.print(f"[yellow]{what} was sent, but the printing service said nothing within {timeout:g} s.[/] "
                      f"Check it with {rb()} status, or restart it: {rb()} restart printing")
        return 1
    if s.state == "done":
        console.print(f"[green]{what} printed on {s.printer}.[/]")
        return 0
    why = s.message.en if s.message else (s.reason or "")
    if s.state == "held":
        console.print(f"[yellow]{what} is waiting on printer {s.printer}: {why}[/] It prints by itself once "
                      "the printer is ready.")
        return 1
    if s.state == "failed":
        console.print(f"[red]{what} could not be printed on {s.printer}: {why}[/]")
        return 2
    console.print(f"[yellow]{what} is {s.state} on {s.printer} ({why or 'not printed yet'}).[/] "
                  f"{rb()} status shows the printer.")
    return 1


# =================================================================== systemd
@dataclass
class Unit:
    name: str
    load: str = ""
    active: str = ""
    sub: str = ""
    restarts: str = ""
    since: str = ""
    status: str = ""


class Systemd:
    """The services, through systemctl and journalctl."""

    def __init__(self) -> None:
        self.systemctl = shutil.which("systemctl")
        self.journalctl = shutil.which("journalctl")

    def units(self, names: list[str]) -> tuple[dict[str, Unit], str]:
        """Each unit's state, and a sentence when systemd cannot be asked."""
        if not self.systemctl:
            return {}, "systemctl is not installed here"
        r = subprocess.run([self.systemctl, "show", *names, "--no-pager",
                            "--property=Id,LoadState,ActiveState,SubState,NRestarts,"
                            "ActiveEnterTimestamp,StatusText"], capture_output=True, text=True, timeout=15)
        if r.returncode != 0:
            return {}, (r.stderr.strip().splitlines() or ["systemctl failed"])[-1]
        out: dict[str, Unit] = {}
        for block in r.stdout.strip().split("\n\n"):
            kv = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if kv.get("Id"):
                out[kv["Id"]] = Unit(kv["Id"], kv.get("LoadState", ""), kv.get("ActiveState", ""),
                                     kv.get("SubState", ""), kv.get("NRestarts", ""),
                                     kv.get("ActiveEnterTimestamp", ""), kv.get("StatusText", ""))
        return out, ""

    def restart(self, unit: str) -> None:
        if not self.systemctl:
            raise StaffError("systemctl is not installed here; restobox restart works on the store's Pi.")
        r = subprocess.run([self.systemctl, "restart", unit], capture_output=True, text=True, timeout=90)
        if r.returncode != 0:
            err = r.stderr.strip()
            if "Access denied" in err or "authentication required" in err.lower() or "Permission" in err:
                raise StaffError(f"Only an administrator may restart services. Run: sudo restobox restart "
                                 f"{_staff_name(unit)}")
            if "not found" in err or "not loaded" in err:
                raise StaffError(f"{unit} is not installed on this Pi. {rb()} status lists what is.")
            raise StaffError(f"systemd could not restart {unit}: {err or 'no reason given'}. "
                             f"See what it said: {rb()} logs {_staff_name(unit)}")

    def logs_command(self, unit: str, lines: int, follow: bool) -> list[str]:
        if not self.journalctl:
            raise StaffError("journalctl is not installed here; restobox logs works on the store's Pi.")
        cmd = [self.journalctl, "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-iso"]
        return cmd + ["-f"] if follow else cmd


def _staff_name(unit: str) -> str:
    for name, (u, _) in SERVICES.items():
        if u == unit:
            return name
    return unit


def service_unit(name: str) -> tuple[str, str, str | None]:
    key = name.removeprefix("restobox-").removesuffix(".service")
    if key not in SERVICES:
        raise StaffError(f"There is no service called {name!r}. {suggest(key, SERVICES, 'Services')}".strip())
    unit, device = SERVICES[key]
    return key, unit, device


# ================================================================== commands
def cmd_status(cfg, console: Console, sd: Systemd | None = None) -> int:
    sd = sd or Systemd()
    now = time.time()
    units, why_not = sd.units([u for u, _ in SERVICES.values()])
    link: StoreLink | None = None
    bus_error = ""
    try:
        link = StoreLink(cfg).connect()
    except StaffError as exc:
        bus_error = str(exc)
    try:
        return _status(cfg, console, now, units, why_not, link, bus_error)
    finally:
        if link is not None:
            link.close()


def _status(cfg, console, now, units, why_not, link, bus_error) -> int:
    problems = 0
    console.print(f"[bold]Restobox · {cfg.store.name_en} {cfg.store.name_zh}[/]  "
                  f"{datetime.now().astimezone().strftime('%Y-%m-%d %H:%M:%S')}")
    devices = {d.device: d for d in link.watch.devices()} if link else {}

    t = Table(title="Services", title_justify="left", expand=False)
    for c in ("service", "systemd", "on the bus", "since", "note"):
        t.add_column(c)
    for name, (unit, dev) in SERVICES.items():
        u = units.get(unit)
        installed = u is not None and u.load == "loaded"
        if u is not None and not installed and not (dev and dev in devices) and name != "broker":
            continue  # not on this Pi and not heard of on the bus
        sysd = _styled(u.active) if installed else Text("not here" if u is not None else "?", style="dim")
        if installed and u.restarts not in ("", "0"):
            sysd.append(f" ({u.restarts} restarts)", style="yellow")
        bus_state, since, note = Text("-"), "", ""
        if name == "broker":
            bus_state = _styled("online" if link else "offline")
            note = "" if link else "does not answer"
        elif dev and dev in devices:
            d = devices[dev]
            state = "offline" if d.online is False else (d.health.state if d.health else "online")
            bus_state = _styled(state)
            since = _ago(d.health.at, now) if d.health and d.online is not False else _ago(d.presence_at, now)
            note = d.health.reason if d.health and state not in ("offline", "ready") else ""
        elif dev and link:
            bus_state, note = _styled("offline"), "never heard from"
        if installed and u.active in ("failed", "inactive"):
            problems += 1
        t.add_row(name, sysd, bus_state, since, note)
    console.print(t)
    if why_not:
        console.print(f"[dim]systemd: {why_not}; the states above are what the services say on the bus.[/]")
    if link is None:
        console.print(f"[bold red]{bus_error}[/]")
        _local_disk(cfg, console)
        return 1

    printers = link.watch.printers()
    if printers:
        t = Table(title="Printers", title_justify="left")
        for c in ("printer", "state", "paper", "queued", "held", "updated"):
            t.add_column(c)
        for p in printers:
            paper = ("[red]out[/]" if p.state == "paper_out" else "[yellow]low[/]" if p.paper_near_end else "ok")
            t.add_row(p.printer, _styled(p.state), paper, str(p.queued), str(p.held), _ago(p.at, now))
        console.print(t)

    sync = devices.get("sync")
    if sync and sync.health:
        d = sync.health.details
        oldest = d.get("oldest_unsent_s") or 0
        console.print(f"[bold]Sync to the chain's cloud:[/] {d.get('backlog', '?')} waiting"
                      + (f", oldest {float(oldest) / 60:.0f} min" if d.get("backlog") else "")
                      + (f", last sent {_ago(str(d.get('last_success')), now)}" if d.get("last_success") else "")
                      + (f" — {sync.health.reason}" if sync.health.state != "ready" else ""))

    t = Table(title="Disks", title_justify="left")
    for c in ("device", "free", "free %"):
        t.add_column(c)
    local = disk_details(cfg.staff.data_dir)
    if local:
        t.add_row(f"this Pi ({cfg.staff.data_dir})", f"{local['disk_free_mb']} MB", f"{local['disk_free_pct']:g}")
    for d in devices.values():
        h = d.health
        if h and "disk_free_pct" in h.details and d.online is not False:
            t.add_row(d.device, f"{h.details.get('disk_free_mb')} MB", f"{h.details['disk_free_pct']:g}")
    console.print(t)

    alerts = link.watch.alerts()
    if alerts:
        console.print("[bold]Needs a person:[/]")
        for a in alerts:
            console.print(Text(f"  ● {a.message.en}  {a.message.zh}", style=SEVERITY_STYLE.get(a.severity, "")))
        problems += sum(1 for a in alerts if a.severity == "critical")
    else:
        console.print("[green]Nothing needs a person.[/]")

    errors = [(dev, e) for dev, d in devices.items() if d.health for e in d.health.last_errors]
    if errors:
        console.print("[bold]Last refused messages:[/]")
        for dev, e in sorted(errors, key=lambda x: x[1].at)[-5:]:
            who = f" from {e.device}" if e.device else ""
            console.print(f"  {_ago(e.at, now):>12}  {e.reason}{who}: {e.message.en}")
    return 1 if problems else 0


def _local_disk(cfg, console) -> None:
    local = disk_details(cfg.staff.data_dir)
    if local:
        console.print(f"This Pi's disk ({cfg.staff.data_dir}): {local['disk_free_mb']} MB free "
                      f"({local['disk_free_pct']:g}%).")


def cmd_restart(cfg, console: Console, name: str, sd: Systemd | None = None) -> int:
    sd = sd or Systemd()
    key, unit, device = service_unit(name)
    if key in ("kiosk", "kds"):
        device = None  # this Pi's own screen: systemd says when it is up
    link = None
    if cfg is None:  # no staff config on this Pi: systemd alone
        if key == "broker":
            raise StaffError(f"No staff config ({_staff_config_hint()}): restart the broker with "
                             "sudo systemctl restart restobox-broker")
        device = None
    if device:
        try:
            link = StoreLink(cfg).connect()
        except StaffError:
            link = None  # the broker is down: restart anyway, report from systemd
    try:
        started = time.time()
        console.print(f"Restarting {key} ({unit})…")
        sd.restart(unit)
        if key == "broker":
            return _wait_broker(cfg, console, started)
        if link is None or not device:
            console.print(f"[green]systemd restarted {unit}.[/]")
            return 0
        return _wait_ready(cfg, console, link, key, device, started)
    finally:
        if link is not None:
            link.close()


def _staff_config_hint() -> str:
    return os.environ.get("RESTOBOX_CONFIG") or "/etc/restobox/staff.toml"


def _wait_ready(cfg, console, link: StoreLink, key: str, device: str, started: float) -> int:
    deadline = time.monotonic() + cfg.staff.restart_wait_s
    while time.monotonic() < deadline:
        d = next((d for d in link.watch.devices() if d.device == device), None)
        h = d.health if d else None
        if d and d.online and h and h.state in ("ready", "degraded") and (epoch(h.at) or 0.0) >= started - 0.5:
            took = time.time() - started
            if h.state == "ready":
                console.print(f"[green]{key} is running again ({took:.1f} s).[/]")
                return 0
            console.print(f"[yellow]{key} is running again ({took:.1f} s) but says: {h.reason}[/]")
            return 1
        time.sleep(0.2)
    console.print(f"[red]{key} did not say it is up within {cfg.staff.restart_wait_s:g} s.[/] "
                  f"See why: {rb()} logs {key}")
    return 2


def _wait_broker(cfg, console, started: float) -> int:
    from restobox.brokerconf import mqtt_connect_rc

    deadline = time.monotonic() + cfg.staff.restart_wait_s
    pw = cfg.mqtt_password() or ""
    while time.monotonic() < deadline:
        if mqtt_connect_rc(cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt_username(), pw) == 0:
            console.print(f"[green]The broker is taking connections again ({time.time() - started:.1f} s).[/]")
            return 0
        time.sleep(0.2)
    console.print(f"[red]The broker does not take connections.[/] See why: {rb()} logs broker")
    return 2


def cmd_logs(cfg, console: Console, name: str, lines: int, follow: bool, sd: Systemd | None = None) -> int:
    sd = sd or Systemd()
    if lines < 1 or lines > 100_000:
        raise StaffError("-n takes a number of lines from 1 to 100000.")
    _, unit, _ = service_unit(name)
    cmd = sd.logs_command(unit, lines, follow)
    try:
        r = subprocess.run(cmd, timeout=None if follow else 60)
    except KeyboardInterrupt:
        return 0
    return 0 if r.returncode == 0 else 2


def parse_order(spec: str) -> dict:
    s = spec.strip().lstrip("#")
    if s.isdigit() and 1 <= int(s) <= 99_999:
        return {"order_number": int(s)}
    if re.fullmatch(contract.UUID_PATTERN, s.lower()):
        return {"order_id": s.lower()}
    raise StaffError(f"{spec!r} is not an order. Give today's order number (e.g. 42 or #42) or an order id.")


def cmd_reprint(cfg, console: Console, order: str, station: str | None) -> int:
    which = parse_order(order)
    if station is not None and not DEVICE_RE.fullmatch(station):
        raise StaffError(f"{station!r} is not a station name.")
    with StoreLink(cfg) as link:
        if station and link.menu is not None:
            stations = {s.id for s in link.menu.menu.stations}
            if station not in stations:
                raise StaffError(f"There is no station called {station!r}. {suggest(station, stations, 'Stations')}")
        r = link.command("reprint", item_id=station, **which)
        what = f"order {order}" if "order_id" in which else f"order #{which['order_number']}"
        if not r.ok:
            raise _refused(r, what)
        label = f"The {station} ticket of {what}" if station else f"The receipt of {what}"
        timeout = cfg.staff.timeout_s
        return _print_outcome(console, label, link.job_outcome(r.job_id, timeout), timeout)


def _refused(r: StaffReply, what: str) -> StaffError:
    words = r.message.en if r.message else r.reason
    hint = {"unknown_order": " restobox reprint takes today's number; older orders need their id.",
            "unknown_printer": " Check [hub.printing] in the hub's config."}.get(r.reason or "", "")
    return StaffError(f"The hub refused {what}: {words}{hint}")


def resolve_item(link: StoreLink, spec: str) -> list[tuple[str, str]]:
    """Menu items and options by id or name (either language): [(id, name)].
    A name several things share exactly (the item "Fries" and a combo's
    side "Fries") means all of them; a partial name must fit one only."""
    if link.menu is None:
        raise StaffError(f"The hub has not published its menu; is it running? {rb()} status")
    menu = link.menu.menu
    entries = [(i.id, i.name.en, i.name.zh) for i in menu.items]
    entries += [(o.id, o.name.en, o.name.zh) for g in menu.modifier_groups for o in g.options]
    want = spec.strip().lower()
    if not want:
        raise StaffError("Give the item's id or name, e.g. restobox 86 \"Kung Pao Chicken\"")
    found = {e[0]: e for e in entries if want in (e[0], e[1].lower(), e[2])}
    if not found:
        found = {e[0]: e for e in entries if want in e[1].lower() or want in e[2] or want in e[0]}
        if len(found) > 1:
            ids = sorted(found)
            raise StaffError(f"{spec!r} matches {len(ids)} things on the menu: {', '.join(ids[:8])}"
                             f"{' …' if len(ids) > 8 else ''}. Give the id or the whole name.")
    if found:
        return [(e[0], f"{e[1]} {e[2]}") for e in found.values()]
    keys = {}
    for e in entries:
        keys.setdefault(e[1].lower(), e)
        keys.setdefault(e[0], e)
    seen: dict[str, str] = {}
    for k in difflib.get_close_matches(want, list(keys), n=6, cutoff=0.5):
        e = keys[k]
        seen.setdefault(e[0], f"{e[1]} ({e[0]})")
    hint = f" Did you mean {' or '.join(list(seen.values())[:3])}?" if seen else ""
    raise StaffError(f"Nothing on the menu is called {spec!r}.{hint}")


def cmd_eighty_six(cfg, console: Console, item: str, off: bool) -> int:
    with StoreLink(cfg) as link:
        things = resolve_item(link, item)
        for iid, _ in things:
            r = link.command("eighty_six" if off else "un_eighty_six", item_id=iid)
            if not r.ok:
                raise _refused(r, iid)
    names = "; ".join(f"{name} ({iid})" for iid, name in things)
    if off:
        console.print(f"[green]{names}: sold out now; kiosks stop offering it.[/] "
                      f"Back on: restobox un86 {things[0][0] if len(things) == 1 else repr(item)}")
    else:
        console.print(f"[green]{names}: can be ordered again.[/]")
    return 0


def cmd_test_print(cfg, console: Console, printer: str) -> int:
    if not DEVICE_RE.fullmatch(printer):
        raise StaffError(f"{printer!r} is not a printer name.")
    with StoreLink(cfg) as link:
        known = {p.printer for p in link.watch.printers()}
        if not known:
            raise StaffError(f"The printing service has not reported any printer; is it running? {rb()} status")
        if printer not in known:
            raise StaffError(f"There is no printer called {printer!r}. {suggest(printer, known, 'Printers')}")
        r = link.command("test_print", item_id=printer)
        if not r.ok:
            raise _refused(r, f"a test page on {printer}")
        timeout = cfg.staff.timeout_s
        return _print_outcome(console, "The test page", link.job_outcome(r.job_id, timeout), timeout)


def cmd_devices(cfg, console: Console) -> int:
    now = time.time()
    registered = _registered(cfg)
    with StoreLink(cfg) as link:
        seen = {d.device: d for d in link.watch.devices()}
    t = Table(title="Devices", title_justify="left")
    for c in ("device", "role", "state", "since", "note"):
        t.add_column(c)
    for name in sorted(set(seen) | set(registered)):
        d = seen.get(name)
        role = (d.role if d and d.role else registered.get(name, ""))
        if name == cfg.device.id:
            t.add_row(name, role, _styled("online"), "", "this command")
            continue
        if d is None:
            t.add_row(name, role, _styled("offline"), "", "never connected")
            continue
        state = "online" if d.online else "offline" if d.online is False else "?"
        if d.online and d.health and d.health.state != "ready":
            state = d.health.state
        note = d.health.reason if d.health and d.online and d.health.state != "ready" else ""
        t.add_row(name, role, _styled(state), _ago(d.presence_at or (d.health.at if d.health else ""), now), note)
    console.print(t)
    return 0


def _registered(cfg) -> dict[str, str]:
    """Devices the broker knows (restobox-broker-user list), if readable here."""
    from restobox.brokerconf import BROKER_USER_SCRIPT

    d = Path(cfg.staff.broker_dir)
    if not (d / "acl.d").is_dir():
        return {}
    r = subprocess.run([str(BROKER_USER_SCRIPT), "list", "--dir", str(d)], capture_output=True, text=True,
                       timeout=30)
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def _available_roles() -> list[str]:
    from restobox.brokerconf import BROKER_CONFIG_DIR

    return sorted(p.stem for p in (BROKER_CONFIG_DIR / "roles").glob("*.acl"))


def cmd_add_device(cfg, console: Console, name: str, role: str, station: str | None, rotate: bool,
                   out_dir: str | None) -> int:
    from restobox.brokerconf import BROKER_CONFIG_DIR, BROKER_USER_SCRIPT

    if not DEVICE_RE.fullmatch(name):
        raise StaffError(f"{name!r} cannot be a device name: use 1-32 characters a-z, 0-9 and '-', "
                         "not starting with '-' (e.g. kiosk-3).")
    roles = _available_roles()
    if role not in roles:
        raise StaffError(f"There is no role called {role!r}. {suggest(role, roles, 'Roles')}")
    if role in ROLES_WITH_STATION and not station:
        raise StaffError(f"A {role} device needs its station: {rb()} add-device {name} {role} --station wok")
    if station and not DEVICE_RE.fullmatch(station):
        raise StaffError(f"{station!r} is not a station name.")
    if station and role not in ROLES_WITH_STATION:
        raise StaffError(f"Only kds devices have a station; leave --station out for a {role}.")
    bdir = Path(cfg.staff.broker_dir)
    if not (bdir / "acl.base").exists() and not os.access(bdir.parent, os.W_OK):
        raise StaffError(f"The broker directory {bdir} is not here or not writable. Run this on the hub, as "
                         f"an administrator: sudo restobox add-device {name} {role}")
    ca = bdir / "tls" / "ca.crt"
    host = cfg.staff.hub_address or lan_address()
    tls_port = cfg.staff.broker_tls_port
    if not ca.is_file():
        raise StaffError(f"The store CA {ca} is missing, and a device reaches the broker only over TLS with it. "
                         "The hub's first boot makes it: sudo /opt/restobox/firmware_scripts/firstboot "
                         "(docs/operations.md, \"TLS on the store network\").")
    _check_server_names(bdir / "tls" / "server.crt", host)
    exists = (bdir / "credentials" / f"{name}.secret").exists()
    if exists and not rotate:
        raise StaffError(f"{name} already exists. To give it a new password (the old one stops working at "
                         f"once), run: {rb()} add-device {name} {role} --rotate")
    cmd = [str(BROKER_USER_SCRIPT), "add", name, role, "--dir", str(bdir)]
    if station:
        cmd += ["--station", station]
    if Path(cfg.staff.broker_pid_file).exists():
        cmd += ["--pid-file", cfg.staff.broker_pid_file]
    env = {**os.environ, "RESTOBOX_BROKER_CONFIG": str(BROKER_CONFIG_DIR)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    if r.returncode != 0:
        raise StaffError(f"The broker could not add {name}: {r.stderr.strip() or r.stdout.strip()}")
    secret = (bdir / "credentials" / f"{name}.secret").read_text(encoding="utf-8").strip()
    folder = Path(out_dir or cfg.staff.enroll_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    conf = (f"RESTOBOX_DEVICE={name}\nRESTOBOX_ROLE={role}\nRESTOBOX_STATION={station or ''}\n"
            f"RESTOBOX_HUB_HOST={host}\nRESTOBOX_HUB_PORT={tls_port}\n")
    (folder / "restobox-device.conf").write_text(conf, encoding="utf-8")
    # The device trusts this CA only: with it, it knows it talks to this hub.
    shutil.copyfile(ca, folder / STORE_CA_NAME)
    sf = folder / f"{name}.secret"
    fd = os.open(sf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    os.chmod(sf, 0o600)
    verb = "has a new password" if exists else "is added"
    console.print(f"[green]{name} ({role}{', station ' + station if station else ''}) {verb}.[/]")
    console.print(f"Copy the folder {folder} to the new device's SD card as /boot/firmware/restobox/ "
                  f"(it holds the password: delete it from anywhere else once copied). "
                  f"The device reaches the broker at {host}:{tls_port} over TLS, trusting the store CA "
                  f"({STORE_CA_NAME} in the folder).")
    return 0


STORE_CA_NAME = "store-ca.crt"
"""The store CA's certificate in an enrollment folder (firmware_scripts/firstboot installs it)."""


def _check_server_names(server_crt: Path, host: str) -> None:
    """A device checks that the broker's certificate names the address it was
    given: refuse to hand out one the certificate lacks."""
    import ipaddress
    import ssl

    if not server_crt.is_file():
        return
    try:
        names = ssl._ssl._test_decode_cert(str(server_crt)).get("subjectAltName", ())  # noqa: SLF001
    except (ssl.SSLError, OSError, AttributeError):
        return
    try:
        want = ("IP Address", str(ipaddress.ip_address(host)))
    except ValueError:
        want = ("DNS", host.lower())
    if want not in {(k, v.lower() if k == "DNS" else v) for k, v in names}:
        listed = ", ".join(v for _, v in names)
        raise StaffError(f"The broker's certificate {server_crt} does not name {host} (it names {listed}), so a "
                         f"device would refuse it. Make it again for this machine's addresses: "
                         f"sudo /opt/restobox/firmware_scripts/firstboot, then {rb()} restart broker; or set "
                         f"\\[staff] hub_address to one of those names.")

