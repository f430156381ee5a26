"""The staff's ``restobox`` commands against a real broker, a real hub and
a real printing service with a network printer (TCP) and a serial one (a
pty): status, restart, logs, reprint, 86/un86, test-print, devices and
add-device, with a service down, a printer out of paper, the broker gone and
every kind of wrong input.

systemd is not running in the test machine: tests/fake_systemd/ stands in
for systemctl and journalctl. Its ``restart`` stops the real service process
and the supervisor here starts it again, as systemd does; ``show`` says
whether the real process is alive; ``journalctl`` prints the real log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from restobox.brokerconf import mqtt_connect_rc, terminate
from restobox.contract import topics
from restobox.dev.emulators import PtyPrinter, TcpPrinter
from tests.support import KUNG_PAO, REPO, Device, Kiosk, hub_config, new_order
from tests.test_print_spooler import HUB_PRINTING, printing_config

pytestmark = pytest.mark.integration

FAKE_BIN = REPO / "tests" / "fake_systemd"


class Supervised:
    """A service process, started again after ``systemctl restart`` (as
    systemd would); a crash leaves it down."""

    def __init__(self, service: str, config: Path, log: Path, state: Path, unit: str) -> None:
        self.service, self.config, self.log, self.state, self.unit = service, config, log, state, unit
        self.pidfile = state / f"{unit}.pid"
        self.proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)

    def _spawn(self) -> None:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([sys.executable, "-m", "restobox.cli", self.service, "--config",
                                          str(self.config)], stdout=logf, stderr=subprocess.STDOUT, cwd=REPO)
        self.pidfile.write_text(str(self.proc.pid))

    def start(self, watcher: Device, device: str) -> "Supervised":
        self._spawn()
        watcher.wait_json(topics.health(device), lambda h: h["state"] == "ready", 20)
        self._t.start()
        return self

    def _watch(self) -> None:
        marker = self.state / f"{self.unit}.restart"
        while not self._stop.wait(0.05):
            if self.proc.poll() is not None and marker.exists():
                marker.unlink()
                self._spawn()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5) if self._t.is_alive() else None
        if self.proc:
            terminate(self.proc, 10)


@dataclass
class Shop:
    broker: object
    monitor: Device
    kitchen: TcpPrinter
    receipt: PtyPrinter
    hub: Supervised
    printing: Supervised
    staff_cfg: Path
    state: Path
    tmp: Path

    def cli(self, *args: str, env: dict | None = None, timeout: float = 60) -> tuple[int, str, str]:
        e = {**os.environ, "PATH": f"{FAKE_BIN}:{os.environ['PATH']}", "FAKE_SYSTEMD_DIR": str(self.state),
             "COLUMNS": "200", **(env or {})}
        e.pop("RESTOBOX_MQTT_PASSWORD", None)
        e.pop("SUDO_USER", None)  # as root itself: the hints say "restobox …"
        r = subprocess.run([sys.executable, "-m", "restobox.cli", *args, "--config", str(self.staff_cfg)],
                           capture_output=True, text=True, env=e, cwd=REPO, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def calls(self) -> list[str]:
        p = self.state / "calls"
        return p.read_text().splitlines() if p.exists() else []


def staff_config(path: Path, broker, tmp: Path, timeout_s: float = 4) -> Path:
    path.write_text(f"""
[device]
id = "staff-1"
role = "staff"

[store]
name_en = "Lotus House"
name_zh = "莲花小馆"
timezone = "Asia/Shanghai"

[mqtt]
port = {broker.port}
password_file = "{broker.creds['staff-1'].password_file}"

[staff]
broker_dir = "{broker.dir}"
broker_pid_file = "{broker.pid_file}"
enroll_dir = "{tmp / 'enroll'}"
hub_address = "192.168.8.10"
data_dir = "{tmp}"
timeout_s = {timeout_s}
restart_wait_s = 20
""", encoding="utf-8")
    return path


@pytest.fixture
def shop(broker, monitor, tmp_path):
    state = tmp_path / "systemd"
    state.mkdir()
    kitchen, receipt = TcpPrinter(), PtyPrinter()
    hub_cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                         database=tmp_path / "store.db", extra=HUB_PRINTING)
    hub = Supervised("hub", hub_cfg, tmp_path / "hub.log", state, "restobox-hub.service")
    printing = Supervised("printing", printing_config(tmp_path / "printing.toml", broker, tmp_path, kitchen, receipt),
                          tmp_path / "printing.log", state, "restobox-printing.service")
    (state / "units.json").write_text(json.dumps({
        u.unit: {"pidfile": str(u.pidfile), "log": str(u.log)} for u in (hub, printing)}))
    try:
        hub.start(monitor, "hub")
        printing.start(monitor, "printing")
        for p in ("kitchen-1", "receipt-1"):
            monitor.wait_json(topics.printer_status(p), lambda s: s["state"] == "ready")
        yield Shop(broker, monitor, kitchen, receipt, hub, printing,
                   staff_config(tmp_path / "staff.toml", broker, tmp_path), state, tmp_path)
    finally:
        printing.stop()
        hub.stop()
        kitchen.close()
        receipt.close()


def order(broker) -> int:
    k = Kiosk(broker, "kiosk-1")
    try:
        r = k.submit(new_order(KUNG_PAO))
        assert r.status == "accepted", r
        return r.number
    finally:
        k.close()


# ===================================================================== status
def test_status_of_a_healthy_store(shop):
    rc, out, err = shop.cli("status")
    assert rc == 0, out + err
    assert "Lotus House" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 5}
    assert "active" in rows["hub"] and "ready" in rows["hub"]
    assert "active" in rows["printing"] and "ready" in rows["printing"]
    assert "online" in rows["broker"]
    assert "kiosk" not in rows  # not installed on this Pi, never seen on the bus
    assert "kitchen-1" in out and "receipt-1" in out
    assert "Nothing needs a person." in out
    assert "this Pi" in out and "free" in out


def test_status_with_the_hub_down_and_a_printer_out_of_paper(shop, broker):
    shop.kitchen.mode = "paper_out"
    number = order(broker)  # its wok ticket finds the printer without paper
    shop.monitor.wait_json(topics.printer_status("kitchen-1"), lambda s: s["state"] == "paper_out")
    shop.hub.kill()  # crashed, not restarted
    shop.monitor.wait_json(topics.presence("hub"), lambda p: p["state"] == "offline")
    rc, out, err = shop.cli("status")
    assert rc == 1, out + err
    hub_row = next(line for line in out.splitlines() if line.startswith("│ hub"))
    assert "failed" in hub_row and "offline" in hub_row
    assert "Printer kitchen-1 is out of paper." in out
    assert "The store hub is offline." in out
    assert "缺纸" in out
    # the ticket of the order waits for paper; nothing was lost
    assert number == 1


def test_status_when_the_broker_is_gone(shop, broker):
    broker.stop()
    rc, out, err = shop.cli("status")
    assert rc == 1
    assert "does not answer. Restart it: restobox restart broker" in out
    assert "this Pi's disk" in out.lower() or "This Pi's disk" in out


# ==================================================================== restart
def test_restart_the_hub_waits_until_it_is_up_again(shop):
    old = shop.hub.proc.pid
    rc, out, err = shop.cli("restart", "hub")
    assert rc == 0, out + err
    assert "hub is running again" in out
    assert "systemctl restart restobox-hub.service" in shop.calls()
    assert shop.hub.proc.pid != old and shop.hub.proc.poll() is None
    rc, out, _ = shop.cli("status")
    assert "(1 restarts)" in next(line for line in out.splitlines() if line.startswith("│ hub"))


def test_restart_the_broker_waits_until_it_takes_connections(shop, broker):
    units = json.loads((shop.state / "units.json").read_text())
    units["restobox-broker.service"] = {"pidfile": str(broker.pid_file), "log": str(broker.log_path)}
    (shop.state / "units.json").write_text(json.dumps(units))
    marker = shop.state / "restobox-broker.service.restart"
    done = threading.Event()

    def systemd():  # starts the broker again once the restart stopped it
        while not done.wait(0.05):
            if marker.exists() and not broker.running:
                marker.unlink()
                broker.start()

    t = threading.Thread(target=systemd, daemon=True)
    t.start()
    try:
        rc, out, err = shop.cli("restart", "broker")
        assert rc == 0, out + err
        assert "The broker is taking connections again" in out
        assert "systemctl restart restobox-broker.service" in shop.calls()
        # the services found it again by themselves
        shop.monitor.wait_json(topics.health("hub"), lambda h: h["state"] == "ready", 20)
    finally:
        done.set()
        t.join(5)


def test_restart_mistakes(shop):
    rc, _, err = shop.cli("restart", "hubb")
    assert rc == 2 and "There is no service called 'hubb'. Did you mean 'hub'?" in err
    rc, _, err = shop.cli("restart", "printing", env={"FAKE_SYSTEMD_DENY": "1"})
    assert rc == 2 and "Only an administrator may restart services. Run: sudo restobox restart printing" in err
    rc, _, err = shop.cli("restart", "kiosk")
    assert rc == 2 and "restobox-kiosk.service is not installed on this Pi" in err
    assert shop.printing.proc.poll() is None  # nothing was stopped


def test_restart_and_logs_on_a_screen_pi_without_a_staff_config(tmp_path):
    state = tmp_path / "systemd"
    state.mkdir()
    log = tmp_path / "kiosk.log"
    log.write_text("kiosk starting\nkiosk ready\n")
    (state / "units.json").write_text(json.dumps({"restobox-kiosk.service": {"pidfile": str(tmp_path / "none"),
                                                                             "log": str(log)}}))
    env = {**os.environ, "PATH": f"{FAKE_BIN}:{os.environ['PATH']}", "FAKE_SYSTEMD_DIR": str(state),
           "COLUMNS": "200", "RESTOBOX_CONFIG": str(tmp_path / "staff.toml")}  # not there
    run = lambda *a: subprocess.run([sys.executable, "-m", "restobox.cli", *a], capture_output=True, text=True,
                                    env=env, cwd=REPO, timeout=60)
    r = run("restart", "kiosk")
    assert r.returncode == 0 and "systemd restarted restobox-kiosk.service" in r.stdout, r.stdout + r.stderr
    r = run("logs", "kiosk", "-n", "1")
    assert r.returncode == 0 and r.stdout == "kiosk ready\n"
    r = run("status")  # needs the staff config
    assert r.returncode == 2 and "staff.toml does not exist" in r.stderr


def test_logs_shows_the_service_log(shop):
    rc, out, err = shop.cli("logs", "hub", "-n", "3")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and lines == shop.hub.log.read_text().splitlines()[-3:]
    assert "journalctl -u restobox-hub.service -n 3 --no-pager -o short-iso" in shop.calls()
    rc, _, err = shop.cli("logs", "printer")
    assert rc == 2 and "Did you mean 'printing'?" in err
    rc, _, err = shop.cli("logs", "hub", "-n", "0")
    assert rc == 2 and "-n takes a number of lines" in err


# ==================================================================== reprint
def test_reprint_receipt_and_ticket_by_order_number(shop, broker):
    number = order(broker)
    shop.receipt.wait_for_jobs(1, 10)
    shop.kitchen.wait_for_jobs(1, 10)
    rc, out, err = shop.cli("reprint", f"#{number}")
    assert rc == 0, out + err
    assert f"The receipt of order #{number} printed on receipt-1." in out
    assert b"REPRINT" in shop.receipt.wait_for_jobs(2, 10)[-1]
    rc, out, err = shop.cli("reprint", str(number), "--station", "wok")
    assert rc == 0, out + err
    assert f"The wok ticket of order #{number} printed on kitchen-1." in out
    assert len(shop.kitchen.wait_for_jobs(2, 10)) == 2


def test_reprint_with_the_printer_out_of_paper_and_wrong_orders(shop, broker):
    number = order(broker)
    shop.kitchen.wait_for_jobs(1, 10)
    shop.kitchen.mode = "paper_out"  # found out when the reprint is tried
    rc, out, err = shop.cli("reprint", str(number), "--station", "wok")
    assert rc == 1, out + err
    assert "is waiting on printer kitchen-1: The printer is out of paper. It prints by itself" in out
    rc, _, err = shop.cli("reprint", "99")
    assert rc == 2 and "The hub refused order #99: No order with that id." in err
    rc, _, err = shop.cli("reprint", "abc")
    assert rc == 2 and "'abc' is not an order." in err
    rc, _, err = shop.cli("reprint", str(number), "--station", "wokk")
    assert rc == 2 and "There is no station called 'wokk'. Did you mean 'wok'?" in err
    shop.kitchen.mode = "ok"  # paper loaded: the held ticket prints once
    assert len(shop.kitchen.wait_for_jobs(2, 15)) == 2


# ====================================================================== 86
def test_86_and_un86_by_name_in_either_language(shop, broker):
    rc, out, err = shop.cli("86", "kung pao chicken")
    assert rc == 0, out + err
    assert "Kung Pao Chicken 宫保鸡丁 (kung-pao-chicken): sold out now" in out
    shop.monitor.wait_json(topics.SOLDOUT, lambda s: "kung-pao-chicken" in s["items"])
    k = Kiosk(broker, "kiosk-1")
    try:
        r = k.submit(new_order(KUNG_PAO))
        assert r.status == "rejected" and r.reason == "item_unavailable"
        rc, out, err = shop.cli("un86", "宫保鸡丁")
        assert rc == 0, out + err
        assert "can be ordered again" in out
        shop.monitor.wait_json(topics.SOLDOUT, lambda s: "kung-pao-chicken" not in s["items"])
        assert k.submit(new_order(KUNG_PAO)).status == "accepted"
    finally:
        k.close()


def test_86_wrong_item_names(shop):
    rc, _, err = shop.cli("86", "kung pow chiken")
    assert rc == 2 and "Nothing on the menu is called 'kung pow chiken'. Did you mean Kung Pao Chicken (kung-pao-chicken)" in err
    rc, _, err = shop.cli("86", "kung pao")
    assert rc == 2 and "matches 2 things on the menu: combo-kung-pao-chicken, kung-pao-chicken" in err
    rc, out, err = shop.cli("86", "Fries")  # the item and the combo's side: both
    assert rc == 0 and "(fries)" in out and "(combo-side-fries)" in out, out + err
    shop.monitor.wait_json(topics.SOLDOUT, lambda s: {"fries", "combo-side-fries"} <= set(s["items"]))
    rc, _, err = shop.cli("86", "  ")
    assert rc == 2 and "Give the item's id or name" in err


# ================================================================= test-print
def test_test_print(shop):
    rc, out, err = shop.cli("test-print", "receipt-1")
    assert rc == 0, out + err
    assert "The test page printed on receipt-1." in out
    assert shop.receipt.wait_for_jobs(1, 10)
    shop.kitchen.mode = "paper_out"  # found out when the test page is tried
    rc, out, err = shop.cli("test-print", "kitchen-1")
    assert rc == 1 and "The test page is waiting on printer kitchen-1: The printer is out of paper." in out
    rc, _, err = shop.cli("test-print", "kitchen-9")
    assert rc == 2 and "There is no printer called 'kitchen-9'. Did you mean 'kitchen-1'" in err


# ============================================================ hub or broker down
def test_commands_say_so_when_the_hub_or_the_broker_is_down(shop, broker):
    shop.hub.kill()
    shop.monitor.wait_json(topics.presence("hub"), lambda p: p["state"] == "offline")
    rc, _, err = shop.cli("86", "mapo tofu")  # the menu is retained; the hub does not answer
    assert rc == 2 and "The hub did not answer within 4 s. Check it with restobox status" in err
    broker.stop()
    rc, _, err = shop.cli("reprint", "1")
    assert rc == 2 and f"The broker at 127.0.0.1:{broker.port} does not answer. Restart it: restobox restart broker" in err


# ==================================================================== devices
def test_devices_lists_who_is_online_and_who_never_came(shop):
    rc, out, err = shop.cli("devices")
    assert rc == 0, out + err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 5}
    assert "online" in rows["hub"] and "online" in rows["printing"]
    assert "never connected" in rows["kiosk-2"] and "kiosk" in rows["kiosk-2"]
    assert "kds" in rows["kds-wok-1"]


# ================================================================= add-device
def test_add_device_writes_an_enrollment_folder_that_the_broker_accepts(shop, broker, store_tls):
    rc, _, err = shop.cli("add-device", "kiosk-3", "kiosk")
    assert rc == 2 and "The store CA" in err and "is missing" in err, err
    (Path(broker.dir) / "tls").mkdir()
    shutil.copyfile(store_tls / "ca.crt", Path(broker.dir) / "tls" / "ca.crt")
    rc, out, err = shop.cli("add-device", "kiosk-3", "kiosk")
    assert rc == 0, out + err
    assert "kiosk-3 (kiosk) is added." in out
    folder = shop.tmp / "enroll" / "kiosk-3"
    conf = dict(line.split("=", 1) for line in (folder / "restobox-device.conf").read_text().splitlines())
    assert conf == {"RESTOBOX_DEVICE": "kiosk-3", "RESTOBOX_ROLE": "kiosk", "RESTOBOX_STATION": "",
                    "RESTOBOX_HUB_HOST": "192.168.8.10", "RESTOBOX_HUB_PORT": "8883"}
    assert (folder / "store-ca.crt").read_bytes() == (store_tls / "ca.crt").read_bytes()
    secret = folder / "kiosk-3.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    password = secret.read_text().strip()
    assert mqtt_connect_rc(broker.host, broker.port, "kiosk-3", password) == 0

    rc, _, err = shop.cli("add-device", "kiosk-3", "kiosk")
    assert rc == 2 and "kiosk-3 already exists. To give it a new password" in err
    rc, out, err = shop.cli("add-device", "kiosk-3", "kiosk", "--rotate")
    assert rc == 0 and "has a new password" in out, err
    deadline = time.monotonic() + 5
    while mqtt_connect_rc(broker.host, broker.port, "kiosk-3", password) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mqtt_connect_rc(broker.host, broker.port, "kiosk-3", password) not in (0, None)
    assert mqtt_connect_rc(broker.host, broker.port, "kiosk-3", secret.read_text().strip()) == 0


def test_add_device_kds_needs_a_station_and_mistakes_are_explained(shop, broker, store_tls):
    (Path(broker.dir) / "tls").mkdir()
    shutil.copyfile(store_tls / "ca.crt", Path(broker.dir) / "tls" / "ca.crt")
    rc, out, err = shop.cli("add-device", "kds-wok-2", "kds", "--station", "wok")
    assert rc == 0, out + err
    conf = (shop.tmp / "enroll" / "kds-wok-2" / "restobox-device.conf").read_text()
    assert "RESTOBOX_STATION=wok" in conf
    for args, says in [
        (("Kiosk_3", "kiosk"), "'Kiosk_3' cannot be a device name"),
        (("kiosk-4", "kiosc"), "There is no role called 'kiosc'. Did you mean 'kiosk'"),
        (("kds-6", "kds"), "A kds device needs its station: restobox add-device kds-6 kds --station wok"),
        (("kiosk-5", "kiosk", "--station", "wok"), "Only kds devices have a station"),
    ]:
        rc, _, err = shop.cli("add-device", *args)
        assert rc == 2 and says in err, err
    assert not (Path(broker.dir) / "credentials" / "kiosk-4.secret").exists()
