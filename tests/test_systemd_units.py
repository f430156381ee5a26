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
WATCHDOG = {"restobox-hub.service", "restobox-printing.service", "restobox-sync.service",
            "restobox-kiosk.service", "restobox-kds.service", "restobox-web.service", "restobox-counter.service"}
SCREENS = ["restobox-kiosk.service", "restobox-kds.service", "restobox-counter.service"]
PROGRAM = {"restobox-kiosk.service": "kiosk", "restobox-kds.service": "kds", "restobox-counter.service": "counter"}


def unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str  # keys are case-sensitive
    cp.read(path, encoding="utf-8")
    return cp


def values(path: Path, section: str, key: str) -> list[str]:
    """Every value of a key that may be given more than once (Environment=,
    After=): configparser keeps only the last."""
    out, here = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            here = line[1:-1]
        elif here == section and line.startswith(key + "="):
            out.extend(line[len(key) + 1:].split())
    return out


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
        conf = (REPO / "restobox" / "broker_config" / "mosquitto.conf").read_text(encoding="utf-8").splitlines()
        assert "user mosquitto" in conf
    else:
        assert s.get("User") and s.get("User") != "root"


@pytest.mark.parametrize("path", OURS, ids=lambda p: p.name)
def test_our_services_start_after_the_broker_and_keep_state_in_var_lib(path):
    u = unit(path)
    assert "restobox-broker.service" in values(path, "Unit", "After")
    s = u["Service"]
    assert s.get("User") == "restobox"
    assert s.get("ProtectSystem") == "strict" and s.get("ReadWritePaths") == "/var/lib/restobox"
    assert s.get("ExecStart", "").startswith("/opt/restobox/venv/bin/restobox ")


@pytest.mark.parametrize("name", sorted(WATCHDOG))
def test_services_that_feed_a_watchdog_are_type_notify(name):
    s = unit(UNITS / name)["Service"]
    assert s.get("Type") == "notify" and s.get("NotifyAccess") == "main"
    assert 10 <= int(s.get("WatchdogSec", "0")) <= 120


def test_the_target_pulls_in_no_service_itself():
    """A kiosk Pi that enables restobox.target must not start a hub: each
    unit joins the target through its own WantedBy=, and provisioning
    enables only the units of the Pi's role."""
    u = unit(UNITS / "restobox.target")["Unit"]
    assert not u.get("Wants") and not u.get("Requires") and not u.get("BindsTo")
    assert {p.name for p in SERVICES} >= {"restobox-broker.service", "restobox-hub.service",
                                          "restobox-printing.service", "restobox-sync.service",
                                          "restobox-web.service", *SCREENS}


@pytest.mark.parametrize("name", SCREENS)
def test_the_screens_draw_on_the_display_without_a_desktop(name):
    """Kivy on SDL2 straight on KMS/DRM (no X): the first console is the
    screen's, and the user reaches the display, the touch screen and the
    serial devices through groups, not root."""
    s = unit(UNITS / name)["Service"]
    env = dict(kv.split("=", 1) for kv in values(UNITS / name, "Service", "Environment"))
    assert env["KIVY_WINDOW"] == "sdl2" and env["SDL_VIDEODRIVER"] == "kmsdrm"
    assert "DISPLAY" not in env and "WAYLAND_DISPLAY" not in env
    assert env["RESTOBOX_CONFIG"] == f"/etc/restobox/{PROGRAM[name]}.toml"
    assert env["KIVY_LOG_MODE"] == "PYTHON"  # Kivy's log to the journal with the app's
    assert set(s.get("SupplementaryGroups", "").split()) >= {"video", "render", "input", "dialout"}
    assert s.get("TTYPath") == "/dev/tty1" and s.get("StandardInput", "").startswith("tty")
    assert "getty@tty1.service" in values(UNITS / name, "Unit", "Conflicts")
    assert s.get("PrivateDevices") in (None, "false")  # it needs /dev/dri and /dev/input
    assert "network-online.target" in values(UNITS / name, "Unit", "Wants")
    assert "network-online.target" in values(UNITS / name, "Unit", "After")
    assert s.get("ExecStart") == f"/opt/restobox/venv/bin/restobox {PROGRAM[name]}"
    # its own runtime directory (XDG_RUNTIME_DIR), not another screen's
    assert env["XDG_RUNTIME_DIR"] == f"%t/restobox-{PROGRAM[name]}" and s.get("RuntimeDirectory") == f"restobox-{PROGRAM[name]}"
