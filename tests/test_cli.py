"""The `restobox` command: clear errors for a wrong config or menu."""

from __future__ import annotations

import json
import subprocess
import sys

from restobox.data import sample_menu_bytes


def restobox(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "restobox.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_hub_refuses_a_config_with_an_unknown_key_and_names_it(tmp_path):
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[device]\nid = "hub"\nrole = "hub"\n[mqtt]\nhots = "127.0.0.1"\n')
    r = restobox("hub", "--config", str(cfg))
    assert r.returncode == 2
    assert f"{cfg}: unknown key `hots` in [mqtt]" in r.stderr


def test_hub_refuses_a_missing_config_file(tmp_path):
    r = restobox("hub", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_hub_refuses_a_broken_menu_before_touching_the_broker(tmp_path):
    menu = json.loads(sample_menu_bytes())
    menu["items"][0]["station"] = "tandoor"
    (tmp_path / "menu.json").write_text(json.dumps(menu))
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[device]\nid = "hub"\nrole = "hub"\n[hub]\nmenu = "{tmp_path / "menu.json"}"\n'
                   f'database = "{tmp_path / "store.db"}"\n')
    r = restobox("hub", "--config", str(cfg))
    assert r.returncode == 2
    assert "cannot be used" in r.stderr and "unknown station 'tandoor'" in r.stderr
    assert not (tmp_path / "store.db").exists()


def test_menu_check_accepts_the_sample_and_explains_a_broken_menu(tmp_path):
    ok = restobox("menu-check", "sample")
    assert ok.returncode == 0 and "41 items" in ok.stdout
    (tmp_path / "m.json").write_text('{"version": "x"}')
    bad = restobox("menu-check", str(tmp_path / "m.json"))
    assert bad.returncode == 1 and "missing required field" in bad.stderr


def test_menu_check_names_a_missing_and_a_broken_photo_and_still_passes_the_menu(tmp_path):
    """A photo is not worth refusing a menu for (the dish shows its colour
    tile), but whoever installs the menu is told which ones to fix."""
    import shutil

    from restobox.photos import source_dir

    menu = json.loads(sample_menu_bytes())
    (tmp_path / "images").mkdir()
    sample = source_dir("sample", "")
    for item in menu["items"]:
        if item["image"]:
            shutil.copy(sample / item["image"], tmp_path / "images" / item["image"])
    (tmp_path / "images" / "mapo-tofu.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a photo")
    (tmp_path / "images" / "fries.jpg").unlink()
    (tmp_path / "m.json").write_text(json.dumps(menu, ensure_ascii=False))
    out = restobox("menu-check", str(tmp_path / "m.json"))
    assert out.returncode == 0, out.stderr
    assert "photos in" in out.stdout and "39 of 41 good" in out.stdout
    assert "mapo-tofu.jpg: image_broken" in out.stderr
    assert "fries.jpg: image_missing" in out.stderr


def test_a_staff_command_run_without_root_says_to_use_sudo(tmp_path, monkeypatch, capsys):
    """On the store Pi staff-1's password file is root's: a technician who
    forgets sudo is told so, not just "Permission denied"."""
    import pathlib

    from restobox import cli

    secret = tmp_path / "staff-1.secret"
    secret.write_text("pw\n")
    cfg = tmp_path / "staff.toml"
    cfg.write_text(f'[device]\nid = "staff-1"\nrole = "staff"\n[mqtt]\npassword_file = "{secret}"\n')
    real = pathlib.Path.read_text

    def read_text(self, *a, **kw):
        if self == secret:
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **kw)

    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    assert cli.main(["status", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"cannot read the MQTT password file {secret}: Permission denied" in err
    assert "Staff commands need an administrator: sudo restobox status" in err


def test_staff_hints_name_the_command_with_sudo_when_not_root(monkeypatch):
    import pytest
    from rich.console import Console

    from restobox import config, staff

    cfg = config.parse('[device]\nid = "staff-1"\nrole = "staff"\n')
    monkeypatch.setattr(staff.os, "geteuid", lambda: 1000)
    with pytest.raises(staff.StaffError, match="needs its station: sudo restobox add-device kds-6 kds --station wok"):
        staff.cmd_add_device(cfg, Console(), "kds-6", "kds", None, False, None)
    monkeypatch.setattr(staff.os, "geteuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "manager")  # root through sudo: sudo again
    with pytest.raises(staff.StaffError, match="needs its station: sudo restobox add-device kds-6 kds --station wok"):
        staff.cmd_add_device(cfg, Console(), "kds-6", "kds", None, False, None)
    monkeypatch.delenv("SUDO_USER")  # root itself
    with pytest.raises(staff.StaffError, match="needs its station: restobox add-device kds-6 kds --station wok"):
        staff.cmd_add_device(cfg, Console(), "kds-6", "kds", None, False, None)
