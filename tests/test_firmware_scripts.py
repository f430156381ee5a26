"""The Raspberry Pi provisioning scripts (firmware_scripts/), run for real
into scratch roots that look like a fresh Raspberry Pi OS card: shellcheck
accepts every script; each role provisions twice with nothing changed the
second time (every file, link, mode and owner compared); a dry run writes
nothing; the configs they write load with restobox.config; the hub's first
boot makes credentials with the real restobox-broker-user, and the store CA
and the broker's TLS certificate (keys mode 0600, the broker's owned by
mosquitto); a kiosk's or KDS's first boot applies a good enrollment (its
password and the store CA, MQTT over TLS) once and refuses a bad one
without changing anything.

apt-get, pip and systemctl are never run: in a scratch root the scripts
list them in a manifest instead."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from restobox import config
from tests.support import REPO

FW = REPO / "firmware_scripts"
SCRIPTS = sorted([FW / "provision", FW / "firstboot", FW / "read-only-root", FW / "lib" / "common.sh",
                  *FW.glob("[0-9][0-9]-*.sh")])
ROLES = ["hub", "kiosk", "kds", "counter"]
SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="provisioning creates users and sets owners: run as root")


# ---------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A still copy of the checkout: others may edit the working tree while
    these tests compare two runs."""
    dest = tmp_path_factory.mktemp("source") / "restobox"
    shutil.copytree(REPO, dest, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "tests", "bench", "__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", "*.db"))
    return dest


def fresh_pi(root: Path) -> Path:
    """The few files of a fresh Raspberry Pi OS (bookworm) card the scripts read."""
    (root / "etc").mkdir(parents=True)
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n")
    (root / "etc" / "group").write_text(
        "root:x:0:\ndaemon:x:1:\nlp:x:7:\ndialout:x:20:pi\nvideo:x:44:pi\n"
        "input:x:105:pi\nrender:x:106:pi\nnogroup:x:65534:\npi:x:1000:\n")
    for name, text in (("shadow", "root:*:19000:0:99999:7:::\npi:*:19000:0:99999:7:::\n"),
                       ("gshadow", "root:*::\npi:!::\n")):
        (root / "etc" / name).write_text(text)
        (root / "etc" / name).chmod(0o640)
    (root / "etc" / "fstab").write_text(
        "proc            /proc           proc    defaults          0       0\n"
        "PARTUUID=4e639091-01  /boot/firmware  vfat    defaults          0       2\n"
        "PARTUUID=4e639091-02  /               ext4    defaults,noatime  0       1\n")
    (root / "boot" / "firmware" / "cmdline.txt").write_text(
        "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
        "fsck.repair=yes rootwait quiet splash plymouth.ignore-serial-consoles\n")
    return root


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory, source):
    """role -> (a card provisioned once for that role, the run's output);
    tests work on copies of it (``card``)."""
    done: dict[str, tuple[Path, str]] = {}

    def get(role: str) -> tuple[Path, str]:
        if role not in done:
            root = fresh_pi(tmp_path_factory.mktemp(f"{role}-card") / "root")
            done[role] = (root, provision(root, role, source).stdout)
        return done[role]
    return get


@pytest.fixture
def card(tmp_path, provisioned):
    """A copy of a card provisioned for ROLE (owners, modes and links kept)."""
    def make(role: str) -> Path:
        dest = tmp_path / f"{role}-root"
        subprocess.run(["cp", "-a", str(provisioned(role)[0]), str(dest)], check=True)
        return dest
    return make


def run(*args, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def provision(root: Path, role: str, source: Path, *extra, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(FW / "provision", "--role", role, "--root", root, "--source", source, *extra, check=check)


def firstboot(root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The copy the card has, as its unit runs it."""
    return run(root / "opt/restobox/firmware_scripts/firstboot", "--root", root, check=check)


def changes(out: str) -> int:
    m = re.search(r": (\d+) (?:changed|would change), \d+ unchanged$", out, re.M)
    assert m, out
    return int(m.group(1))


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file, link and directory under root: type, mode, owner, and
    the content's hash or the link's target."""
    seen: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                what = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir",)
            else:
                what = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
            seen[str(p.relative_to(root))] = (*what, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return seen


def uid_gid(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise AssertionError(f"no user {user} in {root}/etc/passwd")


def load_on(root: Path, path: str) -> config.Config:
    """A config as the Pi reads it, its /etc/restobox paths moved into root
    so that its password file exists and is read."""
    text = (root / path.lstrip("/")).read_text(encoding="utf-8")
    return config.parse(text.replace('"/etc/restobox/', f'"{root}/etc/restobox/'), path)


@pytest.fixture(autouse=True, scope="module")
def _store_ca(store_tls):
    """The store CA (made once per session by ensure_store_tls) that enroll() hands out."""
    global STORE_TLS
    STORE_TLS = store_tls


STORE_TLS: Path | None = None


def enroll(root: Path, conf: str, device: str | None = "kiosk-3", secret: str = SECRET,
           ca: str | None = "ca.crt") -> Path:
    """The folder `restobox add-device` makes, on the card's boot partition:
    its conf, the password (unless ``device`` is None) and the store CA
    (``ca``: a file of the session's store TLS directory, or None)."""
    d = root / "boot/firmware/restobox"
    d.mkdir(parents=True, exist_ok=True)
    (d / "restobox-device.conf").write_text(conf)
    if ca is not None:
        shutil.copyfile(STORE_TLS / ca, d / "store-ca.crt")
    if device is not None:
        (d / f"{device}.secret").write_text(secret + "\n")
    return d


KIOSK_3 = ("RESTOBOX_DEVICE=kiosk-3\nRESTOBOX_ROLE=kiosk\nRESTOBOX_STATION=\n"
           "RESTOBOX_HUB_HOST=192.168.1.10\nRESTOBOX_HUB_PORT=8883\n")


# ---------------------------------------------------------------- tests
def test_every_script_passes_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing (./run installs it)"
    r = subprocess.run(["shellcheck", "-x", *[str(p.relative_to(FW)) for p in SCRIPTS]],
                       cwd=FW, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(SCRIPTS) >= 12


@needs_root
@pytest.mark.parametrize("role", ROLES)
def test_provisioning_twice_changes_nothing_the_second_time(tmp_path, source, card, provisioned, role):
    root = card(role)
    assert changes(provisioned(role)[1]) > 100
    before = snapshot(root)
    second = provision(root, role, source)
    assert changes(second.stdout) == 0, second.stdout
    assert snapshot(root) == before
    # and a dry run over the finished card agrees
    dry = provision(root, role, source, "--dry-run")
    assert changes(dry.stdout) == 0, dry.stdout
    assert snapshot(root) == before


@needs_root
@pytest.mark.parametrize("role", ROLES)
def test_a_card_gets_its_role_units_user_and_no_secret(tmp_path, source, card, role):
    root = card(role)
    etc = root / "etc/systemd/system"
    assert os.readlink(etc / "multi-user.target.wants/restobox.target") == "/etc/systemd/system/restobox.target"
    assert os.readlink(etc / "multi-user.target.wants/restobox-firstboot.service") == "/etc/systemd/system/restobox-firstboot.service"
    assert (etc / "restobox-firstboot.service").read_text() == (FW / "files/restobox-firstboot.service").read_text()
    wants = sorted(p.name for p in (etc / "restobox.target.wants").glob("*")) if (etc / "restobox.target.wants").exists() else []
    if role == "hub":
        assert wants == ["restobox-broker.service", "restobox-hub.service", "restobox-printing.service",
                         "restobox-sync.service", "restobox-web.service"]
        assert os.readlink(etc / "mosquitto.service") == "/dev/null"
    else:
        # installed, and enabled by the first boot once the device is enrolled
        assert (etc / f"restobox-{role}.service").read_bytes() == (source / f"systemd/restobox-{role}.service").read_bytes()
        assert wants == []
        assert not (etc / "restobox-hub.service").exists()
    # the restobox user, in the groups that give it its devices
    uid, gid = uid_gid(root, "restobox")
    groups = {line.split(":")[0]: line.split(":")[3].split(",") for line in (root / "etc/group").read_text().splitlines()}
    wanted = {"dialout", "lp"} | ({"video", "render", "input"} if role != "hub" else set())
    assert {g for g, members in groups.items() if "restobox" in members} == wanted
    data = (root / "var/lib/restobox").lstat()
    assert (data.st_uid, data.st_gid, stat.S_IMODE(data.st_mode)) == (uid, gid, 0o750)
    # the program: the checkout without its tests, as root's
    assert (root / "opt/restobox/restobox/hub/service.py").read_bytes() == (source / "restobox/hub/service.py").read_bytes()
    assert not (root / "opt/restobox/tests").exists()
    assert os.readlink(root / "usr/local/bin/restobox") == "/opt/restobox/venv/bin/restobox"
    assert os.access(root / "opt/restobox/firmware_scripts/firstboot", os.X_OK)
    # what could not run in a scratch root is listed, not done
    manifest = (root / "etc/restobox/provision-manifest.txt").read_text()
    assert "apt-get install" in manifest and "--editable" not in manifest
    # the program: a wheel built from the copy, with the role's extras at the pinned versions
    extras = {"hub": "hub,printing", "kiosk": "screens", "kds": "screens", "counter": "screens"}[role]
    escaped = extras.replace(",", "\\,")  # as the manifest quotes it (printf %q)
    version = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    wheel = f"/opt/restobox/dist/restobox-{version}-py3-none-any.whl"
    plan = [line for line in manifest.splitlines() if "/opt/restobox" in line and "apt-get" not in line]
    assert plan == [
        "python3 -m venv /opt/restobox/venv",
        "rm -rf -- /opt/restobox/build /opt/restobox/dist",
        "/opt/restobox/venv/bin/pip wheel --quiet --no-deps --wheel-dir /opt/restobox/dist /opt/restobox",
        "rm -rf -- /opt/restobox/build /opt/restobox/restobox.egg-info",
        "/opt/restobox/venv/bin/pip install --quiet --constraint /opt/restobox/firmware_scripts/files/constraints.txt "
        f"{wheel}\\[{escaped}\\]",
        f"/opt/restobox/venv/bin/pip install --quiet --no-deps --force-reinstall {wheel}",
    ], plan
    assert (root / "opt/restobox/firmware_scripts/files/constraints.txt").read_bytes() == (
        source / "firmware_scripts/files/constraints.txt").read_bytes()
    assert ("mosquitto" in manifest) == (role == "hub")
    # nothing secret in the image
    assert not list(root.rglob("*.secret"))
    assert not (root / "etc/restobox/broker/passwd").exists()


def test_a_dry_run_into_an_empty_root_writes_nothing(tmp_path, source):
    root = tmp_path / "empty"
    root.mkdir()
    for role in ROLES:
        r = provision(root, role, source, "--dry-run")
        assert changes(r.stdout) > 100
        assert "would plan    apt-get install" in r.stdout
        assert list(root.iterdir()) == [], f"the dry run of a {role} wrote into the root"


@needs_root
def test_a_missing_unit_in_the_source_is_reported(tmp_path, source):
    partial = tmp_path / "partial"
    shutil.copytree(source, partial, symlinks=True)
    (partial / "systemd/restobox-kds.service").unlink()
    root = fresh_pi(tmp_path / "root")
    r = provision(root, "kds", partial)
    assert "the source has no restobox-kds.service" in r.stderr
    assert "will not start its program by itself" in r.stderr


def test_bad_options_are_refused_with_a_sentence(tmp_path, source):
    root = tmp_path / "root"
    root.mkdir()
    cases = [
        (["--role", "till"], "unknown role 'till'"),
        (["--role", "kiosk", "--rotation", "45"], "--rotation must be 0, 90, 180 or 270"),
        (["--role", "kiosk", "--read-only-root"], "--read-only-root needs --data-partition"),
        (["--role", "hub", "--read-only-root", "--data-partition", "LABEL=restobox-data"], "the hub changes its broker credentials"),
        (["--role", "kds", "--data-partition", "my disk"], "is not LABEL=..."),
    ]
    for args, sentence in cases:
        r = run(FW / "provision", "--root", root, "--source", source, "--dry-run", *args, check=False)
        assert r.returncode != 0 and sentence in r.stderr, (args, r.stderr)
    assert list(root.iterdir()) == []


# ---------------------------------------------------------------- the hub
@needs_root
def test_the_hub_runs_the_projects_broker_config_and_its_first_boot_makes_credentials(tmp_path, source, card):
    root = card("hub")
    broker = root / "etc/restobox/broker"
    assert (broker / "mosquitto.conf").read_bytes() == (REPO / "restobox/broker_config/mosquitto.conf").read_bytes()
    assert (broker / "acl.base").read_bytes() == (REPO / "restobox/broker_config/acl.base").read_bytes()
    assert sorted(p.name for p in (broker / "roles").iterdir()) == sorted(p.name for p in (REPO / "restobox/broker_config/roles").iterdir())
    wrapper = (root / "usr/local/sbin/restobox-broker-user").read_text()
    assert "RESTOBOX_BROKER_CONFIG=/etc/restobox/broker" in wrapper
    assert "exec /opt/restobox/restobox/broker_config/restobox-broker-user" in wrapper
    chrony = (root / "etc/chrony/conf.d/restobox.conf").read_text()
    assert "allow 192.168.0.0/16" in chrony and "local stratum 10" in chrony

    # the broker's user, as Debian's mosquitto package makes it
    with open(root / "etc/passwd", "a") as f:
        f.write("mosquitto:x:107:113::/var/lib/mosquitto:/usr/sbin/nologin\n")
    with open(root / "etc/group", "a") as f:
        f.write("mosquitto:x:113:\n")
    (root / "etc/hostname").write_text("lotus-hub\n")
    assert not (broker / "tls").exists(), "a card must not carry a CA before its first boot"

    first = firstboot(root)
    assert changes(first.stdout) > 0
    tls = broker / "tls"
    for name, mode, owner in (("ca.key", 0o600, (0, 0)), ("ca.crt", 0o644, (0, 0)),
                              ("server.key", 0o600, (107, 113)), ("server.crt", 0o644, (0, 0))):
        st = (tls / name).stat()
        assert (stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)) == (mode, owner), name
    run("openssl", "verify", "-CAfile", tls / "ca.crt", tls / "server.crt")
    sans = run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", tls / "server.crt").stdout
    for name in ("DNS:lotus-hub", "DNS:lotus-hub.local", "DNS:localhost", "IP Address:127.0.0.1"):
        assert name in sans, sans
    conf = (broker / "mosquitto.conf").read_text()
    assert "certfile /etc/restobox/broker/tls/server.crt" in conf and "listener 1883 127.0.0.1" in conf
    listed = run(source / "restobox/broker_config/restobox-broker-user", "list", "--dir", broker).stdout.split("\n")
    assert sorted(filter(None, listed)) == ["hub hub", "monitor-1 monitor", "printing printing", "staff-1 staff", "sync sync",
                                            "web web"]
    uid, gid = uid_gid(root, "restobox")
    for name, toml in (("hub", "hub.toml"), ("printing", "printing.toml"), ("sync", "sync.toml"), ("web", "web.toml"),
                       ("staff-1", "staff.toml")):
        secret = root / f"etc/restobox/{name}.secret"
        st = secret.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, uid, gid), name
        assert secret.read_bytes() == (broker / f"credentials/{name}.secret").read_bytes()
        cfg = load_on(root, f"/etc/restobox/{toml}")
        assert cfg.device.id == name and cfg.mqtt.host == "127.0.0.1"
        assert cfg.mqtt_password() == secret.read_text().strip()
        assert cfg.mqtt.password_file == f"{root}/etc/restobox/{name}.secret"
    assert not (root / "etc/restobox/monitor-1.secret").exists()
    web = load_on(root, "/etc/restobox/web.toml")  # the table QR page, on every network of the Pi
    assert (web.device.role, web.web.host, web.web.port, web.web.table_ids()[-1]) == ("web", "0.0.0.0", 8080, "20")

    # every later boot: nothing to do (the CA and the certificate are kept)
    before = snapshot(root)
    again = firstboot(root)
    assert changes(again.stdout) == 0, again.stdout
    assert snapshot(root) == before

    # a certificate that lacks a name the hub has now is made again by the
    # same CA, keeping its old names; the CA stays
    ca = (tls / "ca.crt").read_bytes()
    (root / "etc/hostname").write_text("lotus-hub-2\n")
    firstboot(root)
    sans = run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", tls / "server.crt").stdout
    assert "DNS:lotus-hub-2" in sans and "DNS:lotus-hub," in sans
    assert (tls / "ca.crt").read_bytes() == ca
    run("openssl", "verify", "-CAfile", tls / "ca.crt", tls / "server.crt")


@needs_root
def test_provisioning_a_hub_after_its_first_boot_keeps_its_ca_and_remakes_what_is_missing(tmp_path, source, card):
    root = card("hub")
    firstboot(root)
    tls = root / "etc/restobox/broker/tls"
    ca = (tls / "ca.crt").read_bytes()
    (tls / "server.crt").unlink()  # an upgrade to a mosquitto.conf that needs it, say
    r = provision(root, "hub", source, "--only", "40")
    assert "server.crt (the broker's certificate" in r.stdout, r.stdout
    assert (tls / "ca.crt").read_bytes() == ca
    run("openssl", "verify", "-CAfile", tls / "ca.crt", tls / "server.crt")
    assert changes(provision(root, "hub", source, "--only", "40").stdout) == 0
    (tls / "ca.key").unlink()  # half a CA is never silently replaced
    r = provision(root, "hub", source, "--only", "40", check=False)
    assert r.returncode == 1 and "has only half of the store CA" in r.stderr, r.stderr


@needs_root
def test_the_hubs_first_boot_keeps_a_config_the_manager_edited(tmp_path, source, card):
    root = card("hub")
    firstboot(root)
    hub_toml = root / "etc/restobox/hub.toml"
    hub_toml.write_text(hub_toml.read_text().replace('name_en = "Restaurant"', 'name_en = "Sichuan Kitchen"'))
    firstboot(root)
    assert load_on(root, "/etc/restobox/hub.toml").store.name_en == "Sichuan Kitchen"


# ---------------------------------------------------------------- kiosks and kitchen screens
@needs_root
def test_a_kiosks_first_boot_installs_its_enrollment_once(tmp_path, source, card):
    root = card("kiosk")
    boot = enroll(root, KIOSK_3)

    r = firstboot(root)
    uid, gid = uid_gid(root, "restobox")
    secret = root / "etc/restobox/kiosk-3.secret"
    st = secret.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, uid, gid)
    assert secret.read_text().strip() == SECRET
    assert not (boot / "kiosk-3.secret").exists(), "the password stayed on the boot partition"
    assert (boot / "restobox-device.conf").exists()
    cfg = load_on(root, "/etc/restobox/kiosk.toml")
    assert (cfg.device.id, cfg.device.role, cfg.mqtt.host, cfg.mqtt.port) == ("kiosk-3", "kiosk", "192.168.1.10", 8883)
    assert cfg.mqtt_password() == SECRET
    # MQTT over TLS, trusting the store CA it was given and nothing else
    ca = root / "etc/restobox/store-ca.crt"
    assert cfg.mqtt.tls and cfg.mqtt_ca_file() == str(ca)
    assert ca.read_bytes() == (STORE_TLS / "ca.crt").read_bytes()
    st = ca.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 0, 0)
    assert cfg.kiosk.database == "/var/lib/restobox/kiosk.db"
    assert os.readlink(root / "etc/systemd/system/restobox.target.wants/restobox-kiosk.service") == \
        "/etc/systemd/system/restobox-kiosk.service"
    assert "NTP=192.168.1.10" in (root / "etc/systemd/timesyncd.conf.d/restobox.conf").read_text().splitlines()
    assert "changed" in r.stdout

    before = snapshot(root)
    again = firstboot(root)
    assert changes(again.stdout) == 0, again.stdout
    assert snapshot(root) == before


@needs_root
@pytest.mark.parametrize("enrollment, mode, station, role", [
    ("RESTOBOX_DEVICE=kds-wok-1\nRESTOBOX_ROLE=kds\nRESTOBOX_STATION=wok\n", "station", "wok", "kds"),
    ("RESTOBOX_DEVICE=expo-1\nRESTOBOX_ROLE=expo\nRESTOBOX_STATION=expo\n", "expo", None, "expo"),
    ("RESTOBOX_DEVICE=board-1\nRESTOBOX_ROLE=board\nRESTOBOX_STATION=\n", "board", None, "board"),
], ids=["station", "expo", "board"])
def test_a_kitchen_screens_first_boot_writes_its_station(tmp_path, source, card, enrollment, mode, station, role):
    root = card("kds")
    device = enrollment.split("\n")[0].split("=")[1]
    # written on Windows, with quotes: still read right
    conf = (enrollment + 'RESTOBOX_HUB_HOST="hub.local"\nRESTOBOX_HUB_PORT=8883\n').replace("\n", "\r\n")
    enroll(root, conf, device=device)
    firstboot(root)
    cfg = load_on(root, "/etc/restobox/kds.toml")
    assert (cfg.device.id, cfg.device.role, cfg.kds.mode, cfg.mqtt.host) == (device, role, mode, "hub.local")
    if station:
        assert cfg.kds.station == station
    assert cfg.kds.fullscreen is True and cfg.mqtt_password() == SECRET
    assert cfg.mqtt.tls and cfg.mqtt.port == 8883 and cfg.mqtt_ca_file() == str(root / "etc/restobox/store-ca.crt")
    assert (root / "etc/systemd/system/restobox.target.wants/restobox-kds.service").is_symlink()


@needs_root
@pytest.mark.parametrize("role, conf, sentence", [
    ("kiosk", KIOSK_3.replace("=kiosk-3", "=Kiosk_3"), "RESTOBOX_DEVICE 'Kiosk_3' is not a device name"),
    ("kiosk", KIOSK_3.replace("ROLE=kiosk", "ROLE=kisok"), "RESTOBOX_ROLE 'kisok' is not a role a screen can have"),
    ("kiosk", KIOSK_3.replace("ROLE=kiosk", "ROLE=kds"), "this card was made for a kiosk"),
    ("counter", KIOSK_3, "RESTOBOX_ROLE is kiosk, but this card was made for a counter: enroll it as counter, "
                         "or make the card again with provision --role kiosk"),
    ("kiosk", KIOSK_3.replace("ROLE=kiosk", "ROLE=counter"), "make the card again with provision --role counter"),
    ("counter", KIOSK_3.replace("ROLE=kiosk", "ROLE=counter").replace("STATION=", "STATION=wok"),
     "RESTOBOX_STATION must be empty for role counter"),
    ("kds", KIOSK_3.replace("ROLE=kiosk", "ROLE=kds"), "RESTOBOX_STATION is missing"),
    ("kiosk", KIOSK_3.replace("192.168.1.10", "192.168.1.300"), "RESTOBOX_HUB_HOST '192.168.1.300' is neither"),
    ("kiosk", KIOSK_3.replace("PORT=8883", "PORT=88888"), "RESTOBOX_HUB_PORT '88888' is not a port number"),
    ("kiosk", KIOSK_3.replace("RESTOBOX_HUB_HOST=192.168.1.10\n", ""), "RESTOBOX_HUB_HOST is missing"),
    ("kiosk", KIOSK_3 + "rm -rf /\n", "line 6 is not KEY=VALUE"),
    ("kiosk", KIOSK_3 + "RESTOBOX_PASSWORD=x\n", "unknown key RESTOBOX_PASSWORD"),
], ids=["bad-name", "unknown-role", "role-of-another-card", "kiosk-on-a-counter-card", "counter-on-a-kiosk-card",
        "counter-with-a-station", "kds-without-station", "bad-address",
        "bad-port", "no-hub", "not-key-value", "unknown-key"])
def test_a_bad_enrollment_is_refused_with_a_sentence_and_changes_nothing(tmp_path, source, card, role, conf, sentence):
    root = card(role)
    enroll(root, conf, device="kiosk-3")
    before = snapshot(root)
    r = firstboot(root, check=False)
    assert r.returncode == 1
    assert sentence in r.stderr, r.stderr
    assert "restobox-device.conf" in r.stderr and "nothing was changed" in r.stderr
    assert snapshot(root) == before


@needs_root
def test_a_counters_first_boot_writes_its_config_and_enables_the_counter(tmp_path, source, card):
    """The cashier's screen: counter.toml (MQTT over TLS to the hub, its
    counter.db on the data partition, full screen), the password and the
    store CA installed, the clock on the hub, restobox-counter enabled."""
    root = card("counter")
    conf = KIOSK_3.replace("kiosk-3", "counter-1").replace("ROLE=kiosk", "ROLE=counter")
    boot = enroll(root, conf, device="counter-1")
    r = firstboot(root)
    assert not (boot / "counter-1.secret").exists(), "the password stayed on the boot partition"
    cfg = load_on(root, "/etc/restobox/counter.toml")
    assert (cfg.device.id, cfg.device.role, cfg.mqtt.host, cfg.mqtt.port) == ("counter-1", "counter", "192.168.1.10", 8883)
    assert cfg.mqtt_password() == SECRET and cfg.mqtt.tls
    assert cfg.mqtt_ca_file() == str(root / "etc/restobox/store-ca.crt")
    assert (cfg.counter.database, cfg.counter.fullscreen) == ("/var/lib/restobox/counter.db", True)
    assert cfg.counter.receipt_printer is None and cfg.counter.terminal is None  # the manager names them
    text = (root / "etc/restobox/counter.toml").read_text()
    assert "# receipt_printer = " in text and "# [counter.terminal]" in text
    assert os.readlink(root / "etc/systemd/system/restobox.target.wants/restobox-counter.service") == \
        "/etc/systemd/system/restobox-counter.service"
    assert not (root / "etc/restobox/kiosk.toml").exists() and not (root / "etc/restobox/kds.toml").exists()
    assert "NTP=192.168.1.10" in (root / "etc/systemd/timesyncd.conf.d/restobox.conf").read_text().splitlines()
    # the screen is set up as a kiosk's: Kivy's settings, never blanking
    dropin = (root / "etc/systemd/system/restobox-counter.service.d/10-restobox-display.conf").read_text()
    assert "Environment=KIVY_HOME=/etc/restobox/kivy" in dropin
    assert "changed" in r.stdout
    before = snapshot(root)
    assert changes(firstboot(root).stdout) == 0
    assert snapshot(root) == before


@needs_root
def test_an_enrollment_without_its_password_or_none_at_all_is_refused(tmp_path, source, card):
    root = card("kiosk")
    r = firstboot(root, check=False)
    assert r.returncode == 1 and "this kiosk is not enrolled" in r.stderr and "restobox add-device" in r.stderr
    enroll(root, KIOSK_3, device=None)
    before = snapshot(root)
    r = firstboot(root, check=False)
    assert r.returncode == 1 and "kiosk-3.secret is missing" in r.stderr
    enroll(root, KIOSK_3, device="kiosk-3", secret="two words")
    r = firstboot(root, check=False)
    assert r.returncode == 1 and "is not a password file" in r.stderr
    (root / "boot/firmware/restobox/kiosk-3.secret").unlink()
    assert snapshot(root) == before


@needs_root
def test_an_enrollment_without_the_store_ca_or_with_another_certificate_is_refused(tmp_path, source, card):
    root = card("kiosk")
    enroll(root, KIOSK_3, ca=None)
    before = snapshot(root)
    r = firstboot(root, check=False)
    assert r.returncode == 1 and "store-ca.crt is missing" in r.stderr and "copy the whole folder" in r.stderr
    assert snapshot(root) == before
    # the hub's own certificate is not a CA: a device could trust nothing with it
    enroll(root, KIOSK_3, ca="server.crt")
    before = snapshot(root)
    r = firstboot(root, check=False)
    assert r.returncode == 1 and "store-ca.crt is not a CA certificate" in r.stderr, r.stderr
    assert snapshot(root) == before


@needs_root
def test_a_new_enrollment_replaces_the_old_one(tmp_path, source, card):
    root = card("kiosk")
    enroll(root, KIOSK_3)
    firstboot(root)
    enroll(root, KIOSK_3.replace("kiosk-3", "kiosk-4").replace("192.168.1.10", "192.168.1.20"), device="kiosk-4",
           secret="f" * 48)
    firstboot(root)
    cfg = load_on(root, "/etc/restobox/kiosk.toml")
    assert (cfg.device.id, cfg.mqtt.host, cfg.mqtt_password()) == ("kiosk-4", "192.168.1.20", "f" * 48)
    assert not (root / "etc/restobox/kiosk-3.secret").exists()
    assert not (root / "boot/firmware/restobox/kiosk-4.secret").exists()


# ---------------------------------------------------------------- devices, screen, SD card
RULE_TOKEN = re.compile(r'^(?P<key>[A-Z]+)(\{[A-Za-z0-9_.]+\})?(?P<op>==|!=|\+=|-=|:=|=)"[^"]*"$')
MATCH_KEYS = {"SUBSYSTEM", "KERNEL", "ATTRS", "ATTR", "ENV", "ACTION"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "OWNER", "ENV"}


def rule_lines(text: str) -> list[list[str]]:
    """Each rule line split into tokens, each checked to be KEY==/KEY= with
    a quoted value: matches first, assignments after, as udev reads them."""
    rules = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        tokens = [t.strip() for t in line.split(", ")]
        assigning = False
        for t in tokens:
            m = RULE_TOKEN.match(t)
            assert m, f"not a udev token: {t!r} in {line!r}"
            if m["op"] in ("==", "!="):
                assert m["key"] in MATCH_KEYS and not assigning, line
            else:
                assert m["key"] in ASSIGN_KEYS, line
                assigning = True
        assert assigning, f"a rule that assigns nothing: {line!r}"
        rules.append(tokens)
    return rules


@needs_root
def test_printers_bump_bars_and_terminals_get_stable_names(tmp_path, source, card):
    devices = tmp_path / "devices.conf"
    devices.write_text("# the counter\n"
                       "printer-receipt  tty  0416  5011\n"
                       "printer-kitchen  lp   04B8  0E28   # Epson\n"
                       "printer-bar      usb  0fe6  811e\n"
                       "bumpbar          tty  067b  2303  A10KX3P9\n"
                       "terminal         tty  1a86  7523\n")
    root = card("kds")
    provision(root, "kds", source, "--devices", devices)
    text = (root / "etc/udev/rules.d/70-restobox.rules").read_text()
    rules = rule_lines(text)
    assert len(rules) == 5
    by_link = {next(t for t in r if t.startswith("SYMLINK")): r for r in rules}
    assert set(by_link) == {f'SYMLINK+="restobox-{n}"' for n in
                            ("printer-receipt", "printer-kitchen", "printer-bar", "bumpbar", "terminal")}
    bumpbar = by_link['SYMLINK+="restobox-bumpbar"']
    assert 'SUBSYSTEM=="tty"' in bumpbar and 'ATTRS{serial}=="A10KX3P9"' in bumpbar and 'GROUP="dialout"' in bumpbar
    kitchen = by_link['SYMLINK+="restobox-printer-kitchen"']
    assert 'SUBSYSTEM=="usbmisc"' in kitchen and 'ATTRS{idVendor}=="04b8"' in kitchen and 'GROUP="lp"' in kitchen
    assert 'MODE="0660"' in by_link['SYMLINK+="restobox-terminal"']
    assert (root / "etc/restobox/devices.conf").read_text() == devices.read_text()
    if shutil.which("udevadm") and run("udevadm", "verify", "--help", check=False).returncode == 0:
        run("udevadm", "verify", root / "etc/udev/rules.d/70-restobox.rules")
    # the example a new card gets holds no device and is valid too
    plain = card("hub")
    assert rule_lines((plain / "etc/udev/rules.d/70-restobox.rules").read_text()) == []


@needs_root
def test_a_wrong_device_list_names_its_line_and_changes_nothing(tmp_path, source, card):
    root = card("kiosk")
    before = snapshot(root)
    devices = tmp_path / "devices.conf"
    for line, sentence in (("terminal tty 1a86", "found 3 fields"), ("terminal tty 1a86 75230", "product id '75230'"),
                           ("Terminal tty 1a86 7523", "bad name 'Terminal'"), ("terminal hid 1a86 7523", "kind 'hid'")):
        devices.write_text(f"printer-receipt tty 0416 5011\n{line}\n")
        r = provision(root, "kiosk", source, "--devices", devices, check=False)
        assert r.returncode != 0 and "devices.conf line 2" in r.stderr and sentence in r.stderr, r.stderr
        assert snapshot(root) == before


@needs_root
def test_a_screen_never_blanks_hides_its_pointer_turns_and_reads_one_touch_provider(tmp_path, source, card):
    root = card("kiosk")
    provision(root, "kiosk", source, "--rotation", "90")
    cmdline = (root / "boot/firmware/cmdline.txt").read_text()
    assert cmdline.count("\n") == 1
    tokens = cmdline.split()
    assert tokens[:3] == ["console=serial0,115200", "console=tty1", "root=PARTUUID=4e639091-02"]
    assert {"consoleblank=0", "vt.global_cursor_default=0", "fbcon=rotate:1"} <= set(tokens)
    assert os.readlink(root / "etc/systemd/system/default.target") == "/lib/systemd/system/multi-user.target"
    dropin = (root / "etc/systemd/system/restobox-kiosk.service.d/10-restobox-display.conf").read_text()
    assert "Environment=KIVY_HOME=/etc/restobox/kivy" in dropin

    # Kivy itself reads the settings: one input provider, turned, no pointer,
    # and it does not rewrite the file (the unit cannot write /etc)
    kivy_home = root / "etc/restobox/kivy"
    written = (kivy_home / "config.ini").read_bytes()
    probe = ("from kivy.config import Config as C; "
             "print(C.items('input'), C.get('graphics', 'rotation'), C.get('graphics', 'show_cursor'), "
             "C.get('graphics', 'allow_screensaver'), C.get('kivy', 'exit_on_escape'))")
    env = {**os.environ, "KIVY_HOME": str(kivy_home), "KIVY_NO_ARGS": "1", "KIVY_NO_CONSOLELOG": "1",
           "KIVY_NO_FILELOG": "1"}
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "[('mouse', 'mouse,disable_multitouch')] 90 0 0 0"
    assert (kivy_home / "config.ini").read_bytes() == written

    # turned back: the console's rotation goes, the rest stays
    provision(root, "kiosk", source, "--rotation", "0")
    tokens = (root / "boot/firmware/cmdline.txt").read_text().split()
    assert "consoleblank=0" in tokens and not any(t.startswith("fbcon=") for t in tokens)
    assert "rotation = 0" in (kivy_home / "config.ini").read_text().splitlines()


@needs_root
def test_logs_in_ram_and_the_data_on_a_partition_of_its_own(tmp_path, source, card):
    root = card("hub")
    provision(root, "hub", source, "--data-partition", "LABEL=restobox-data")
    journald = (root / "etc/systemd/journald.conf.d/restobox.conf").read_text().splitlines()
    assert "Storage=volatile" in journald
    fstab = [line.split() for line in (root / "etc/fstab").read_text().splitlines() if line and not line.startswith("#")]
    data = [f for f in fstab if f[1] == "/var/lib/restobox"]
    assert len(data) == 1 and data[0][0] == "LABEL=restobox-data" and data[0][2] == "ext4"
    assert "nofail" in data[0][3].split(",")
    assert [f[1] for f in fstab][:3] == ["/proc", "/boot/firmware", "/"]
    # the setting is kept: a plain second run changes nothing
    assert changes(provision(root, "hub", source).stdout) == 0
    assert "DATA_PARTITION=LABEL=restobox-data" in (root / "etc/restobox/firmware.conf").read_text().splitlines()


@needs_root
def test_a_read_only_root_starts_after_the_first_boot_and_can_be_turned_off(tmp_path, source, card):
    root = card("kiosk")
    provision(root, "kiosk", source, "--data-partition", "LABEL=restobox-data", "--read-only-root")
    assert "overlayroot" in (root / "etc/restobox/provision-manifest.txt").read_text()
    assert os.readlink(root / "etc/systemd/system/dphys-swapfile.service") == "/dev/null"
    # not before the enrollment is on the card: the first boot writes to the root
    assert "overlayroot" not in (root / "boot/firmware/cmdline.txt").read_text()
    enroll(root, KIOSK_3)
    firstboot(root)
    assert "overlayroot=tmpfs:recurse=0" in (root / "boot/firmware/cmdline.txt").read_text().split()
    assert changes(firstboot(root).stdout) == 0

    ror = root / "opt/restobox/firmware_scripts/read-only-root"
    assert "after the next restart: read-only" in run(ror, "status", "--root", root).stdout
    run(ror, "off", "--root", root)
    assert "overlayroot" not in (root / "boot/firmware/cmdline.txt").read_text()
    assert "after the next restart: writable" in run(ror, "status", "--root", root).stdout
    run(ror, "on", "--root", root)
    assert "overlayroot=tmpfs:recurse=0" in (root / "boot/firmware/cmdline.txt").read_text().split()
    # provision --writable-root takes it away for good
    provision(root, "kiosk", source, "--writable-root")
    assert "overlayroot" not in (root / "boot/firmware/cmdline.txt").read_text()
    assert not (root / "etc/systemd/system/dphys-swapfile.service").exists()


@needs_root
def test_the_read_only_root_is_refused_without_a_data_partition(tmp_path, source, card):
    root = card("kiosk")
    r = run(root / "opt/restobox/firmware_scripts/read-only-root", "on", "--root", root, check=False)
    assert r.returncode == 1 and "has no partition of its own" in r.stderr
    assert "overlayroot" not in (root / "boot/firmware/cmdline.txt").read_text()
