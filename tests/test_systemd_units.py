"""The systemd units: systemd itself accepts them (``systemd-analyze
verify``), and each has what a store appliance needs: restart limits, a
watchdog for the services that feed one, a sandbox, a place in
restobox.target."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

UNITS = REPO / "systemd"
SERVICES = sorted(UNITS.glob("*.service"))
OURS = [p for p in SERVICES if p.name != "restobox-broker.service"]  # run `restobox ...`
WATCHDOG = {"restobox-hub.service", "restobox-printing.service", "restobox-sync.service"}


def unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str  # keys are case-sensitive
    cp.read(path, encoding="utf-8")
    return cp


def test_systemd_accepts_every_unit(tmp_path):
    """``systemd-analyze verify`` on the units as installed, with the
    program path pointing at this checkout's venv (the one on a Pi is
    /opt/restobox/venv)."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing (./run installs systemd)"
    venv_restobox = REPO / ".venv" / "bin" / "restobox"
    assert venv_restobox.exists()
    for p in UNITS.iterdir():
        text = p.read_text(encoding="utf-8").replace("/opt/restobox/venv/bin/restobox", str(venv_restobox))
        (tmp_path / p.name).write_text(text, encoding="utf-8")
    names = sorted(str(tmp_path / p.name) for p in UNITS.iterdir() if p.suffix in (".service", ".target"))
    r = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_each_service_restarts_within_limits_and_is_sandboxed(path):
    u = unit(path)
    s, un = u["Service"], u["Unit"]
    assert s.get("Restart") == "on-failure"
    assert int(un.get("StartLimitBurst", "0")) > 0 and un.get("StartLimitIntervalSec")
    assert un.get("PartOf") == "restobox.target" and u["Install"].get("WantedBy") == "restobox.target"
    assert s.get("ProtectSystem") in ("strict", "full")
    assert s.get("PrivateTmp") == "true" and s.get("NoNewPrivileges") == "true" and s.get("ProtectHome") == "true"
    if path.name == "restobox-broker.service":
        # started as root to bind and read its files; mosquitto drops to its own user
        conf = (REPO / "broker_config" / "mosquitto.conf").read_text(encoding="utf-8").splitlines()
        assert "user mosquitto" in conf
    else:
        assert s.get("User") and s.get("User") != "root"


@pytest.mark.parametrize("path", OURS, ids=lambda p: p.name)
def test_our_services_start_after_the_broker_and_keep_state_in_var_lib(path):
    u = unit(path)
    assert "restobox-broker.service" in u["Unit"].get("After", "")
    s = u["Service"]
    assert s.get("User") == "restobox"
    assert s.get("ProtectSystem") == "strict" and s.get("ReadWritePaths") == "/var/lib/restobox"
    assert s.get("ExecStart", "").startswith("/opt/restobox/venv/bin/restobox ")


@pytest.mark.parametrize("name", sorted(WATCHDOG))
def test_services_that_feed_a_watchdog_are_type_notify(name):
    s = unit(UNITS / name)["Service"]
    assert s.get("Type") == "notify" and s.get("NotifyAccess") == "main"
    assert 10 <= int(s.get("WatchdogSec", "0")) <= 120
