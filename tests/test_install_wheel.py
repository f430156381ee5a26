"""The program as a Pi gets it: a wheel built from a copy of the checkout
(never an editable install), installed into a clean venv per role by the
very functions firmware_scripts/30-app.sh runs (lib/common.sh make_venv,
build_program, install_program: the same pip commands, the same constraints
file, the role's extras), then each role's commands run from that venv, in a
folder away from the checkout so nothing can be imported from it:

- the wheel carries every file the program reads besides its code (.kv
  files, restobox/broker_config, the sample menu and its photos, the table
  QR page);
- each role gets only its extras, every package at its pinned version;
- every role: ``restobox --help``, and ``restobox report`` on a day seeded
  through the real hub (tests/test_report.py's day): the hub's page has its
  charts, a screen's Pi (no matplotlib) has the tables and says why there
  are no charts;
- the hub: ``restobox add-device`` with the wheel's restobox-broker-user and
  role templates on a real broker, then ``restobox devices`` through it; the
  modules of its services import;
- the screens: the kitchen screens', the kiosk's and the counter's modules import and
  their .kv files load into Kivy's Builder (windows are started by the
  screens' own tests).

The Python packages come from a wheelhouse made once from the constraints
file (~/.cache/restobox-wheelhouse/<its hash>), and pip installs with
--no-index from there: the first run downloads, later runs do not.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support import REPO
from tests.test_report import DAY, day  # noqa: F401  (the seeded day, a fixture)

pytestmark = pytest.mark.integration

COMMON = REPO / "firmware_scripts" / "lib" / "common.sh"
CONSTRAINTS = REPO / "firmware_scripts" / "files" / "constraints.txt"
ROLES = ("hub", "kiosk", "kds", "counter")
EXTRAS = {"hub": "hub,printing", "kiosk": "screens", "kds": "screens", "counter": "screens"}
# What only some roles may carry.
SCREEN_ONLY = {"kivy"}
HUB_ONLY = {"matplotlib", "numpy", "starlette", "uvicorn", "httpx", "python-escpos", "qrcode"}
# The checkout's files a Pi copies to /opt/restobox (30-app.sh's parts that make the program).
APP_PARTS = ("pyproject.toml", "README.md", "restobox", "kiosk", "kds", "counter", "firmware_scripts")


def _name(req: str) -> str:
    return re.split(r"[=<>\[ ;]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def pins() -> dict[str, str]:
    out = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact version (name==version)"
            out[_name(name)] = version
    return out


# ------------------------------------------------------------------ helpers
def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a Pi's shell: no PYTHONPATH, no pip config of this
    machine; pip finds packages only in the wheelhouse given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "RESTOBOX_", "KIVY_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def common_sh(call: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``call`` (e.g. ``install_program VENV APP kds``) in bash with lib/common.sh
    sourced, on this machine (RB_ROOT empty, as on the Pi)."""
    script = f'RB_ROOT="" RB_DRY_RUN=0 RB_PROG=test; source {COMMON}; {call}'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=timeout)
    assert r.returncode == 0, f"{call} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def python3_dir(tmp: Path) -> Path:
    """A PATH entry whose python3 is this interpreter's base Python (3.11, as
    Raspberry Pi OS bookworm has), for ``python3 -m venv`` in make_venv."""
    d = tmp / "bin"
    d.mkdir(exist_ok=True)
    link = d / "python3"
    if not link.exists():
        link.symlink_to(getattr(sys, "_base_executable", sys.executable))
    return d


def build_wheelhouse(app: Path) -> Path:
    """Every package of every role's extras at its pinned version, as wheels,
    plus what building the program needs (setuptools, wheel); made once per
    constraints file and Python, then reused."""
    key = hashlib.sha256(CONSTRAINTS.read_bytes()
                         + f"{sys.implementation.cache_tag}-{platform.machine()}".encode()).hexdigest()[:16]
    root = Path.home() / ".cache" / "restobox-wheelhouse"
    house = root / key
    if (house / ".complete").exists():
        return house
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(work), "--constraint", str(CONSTRAINTS),
             f"{app}[hub,printing,screens,cloud]", "setuptools>=68", "wheel"],
            capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"making the wheelhouse failed:\n{r.stdout}\n{r.stderr}"
        for w in work.glob("restobox-*.whl"):  # the program is built by each run, never taken from here
            w.unlink()
        (work / ".complete").write_text("made from firmware_scripts/files/constraints.txt\n", encoding="utf-8")
        try:
            work.rename(house)
        except OSError:  # another run made it meanwhile
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert (house / ".complete").exists()
    return house


class Installed:
    """A role's venv, made by provisioning's own functions."""

    def __init__(self, role: str, venv: Path, env: dict[str, str], cwd: Path) -> None:
        self.role, self.venv, self.env, self.cwd = role, venv, env, cwd

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=self.env, cwd=self.cwd,
                           timeout=timeout)
        if check:
            assert r.returncode == 0, f"{self.role}: {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r

    def restobox(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(self.venv / "bin" / "restobox", *args, check=check)

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.venv / "bin" / "python", "-c", code)

    def freeze(self) -> dict[str, str]:
        out = self.run(self.venv / "bin" / "python", "-m", "pip", "freeze", "--all").stdout
        found = {}
        for line in out.splitlines():
            name, _, version = line.partition("==")
            if " @ " in line:  # installed from a file: the program's wheel
                name, _, url = line.partition(" @ ")
                version = Path(url).name.split("-")[1]
            if version:
                found[_name(name)] = version
        return found


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def app(tmp_path_factory) -> Path:
    """/opt/restobox as 30-app.sh makes it, with the wheel build_program makes
    in it: the checkout's program files, none of its caches."""
    dest = tmp_path_factory.mktemp("opt") / "restobox"
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", "*.db", "*.db-wal",
                                    "*.db-shm")
    for part in APP_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, dest / part)
    return dest


@pytest.fixture(scope="session")
def wheelhouse(app) -> Path:
    return build_wheelhouse(app)


@pytest.fixture(scope="session")
def pip_env(tmp_path_factory, wheelhouse) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("pip")
    return clean_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse),
                     PATH=f"{python3_dir(tmp)}:{os.environ.get('PATH', '/usr/bin:/bin')}")


@pytest.fixture(scope="session")
def wheel(app, pip_env) -> Path:
    """The wheel, built once by build_program with the test's own venv's pip
    (on a Pi, the venv's own)."""
    common_sh(f"build_program {sys.prefix} {app}", pip_env)
    built = Path(common_sh(f"program_wheel {app}", pip_env).stdout)
    assert built.is_file() and list((app / "dist").iterdir()) == [built]
    assert not (app / "build").exists() and not (app / "restobox.egg-info").exists()
    return built


@pytest.fixture(scope="session")
def installed(tmp_path_factory, app, wheel, pip_env):
    """role -> its venv, installed once as provisioning installs it."""
    done: dict[str, Installed] = {}

    def get(role: str) -> Installed:
        if role not in done:
            tmp = tmp_path_factory.mktemp(f"{role}-pi")
            venv = tmp / "venv"
            common_sh(f"make_venv {venv} && install_program {venv} {app} {role}", pip_env)
            home = tmp / "home"
            home.mkdir()
            env = clean_env(HOME=str(home), KIVY_HOME=str(home / "kivy"), KIVY_NO_ARGS="1", KIVY_NO_FILELOG="1",
                            PATH=f"{venv / 'bin'}:/usr/bin:/bin")
            done[role] = Installed(role, venv, env, cwd=home)
        return done[role]
    return get


# -------------------------------------------------------------------- tests
def test_the_wheel_carries_every_file_the_program_reads(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = {i.filename: i for i in z.infolist()}
    tracked = subprocess.run(["git", "ls-files", "restobox", "kds", "kiosk", "counter"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    runtime = [f for f in tracked if not f.endswith((".py", ".md")) and (REPO / f).exists()]
    assert {"kds/station.kv", "kds/expo.kv", "kds/board.kv", "kds/alerts.kv", "kiosk/screens.kv", "counter/counter.kv",
            "restobox/broker_config/mosquitto.conf", "restobox/broker_config/acl.base",
            "restobox/broker_config/roles/kiosk.acl", "restobox/data/sample_menu.json",
            "restobox/webpage/index.html"} <= set(runtime)
    missing = [f for f in runtime if f not in names]
    assert not missing, f"the wheel lacks {missing}: add them to [tool.setuptools.package-data]"
    script = names["restobox/broker_config/restobox-broker-user"]
    assert (script.external_attr >> 16) & 0o111, "restobox-broker-user must stay executable"
    assert not [n for n in names if n.startswith(("tests/", "bench/", "firmware_scripts/"))]


def test_every_requirement_of_every_role_is_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"],
              *(r for role in ("screens", "printing", "hub", "cloud") for r in extras[role] if not r.startswith("restobox"))]
    assert {"screens", "printing", "hub", "cloud"} <= set(extras)
    unpinned = sorted({_name(r) for r in wanted} - set(pins()))
    assert not unpinned, f"firmware_scripts/files/constraints.txt has no version for {unpinned}"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_its_extras_at_the_pinned_versions_and_nothing_else(installed, role):
    pi = installed(role)
    found = pi.freeze()
    pinned = pins()
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert found.get("restobox") == version
    off = {n: v for n, v in found.items()
           if n not in ("restobox", "pip", "setuptools", "wheel") and pinned.get(n) != v}
    assert not off, f"{role}: installed at versions constraints.txt does not pin: {off}"
    if role == "hub":
        assert HUB_ONLY <= set(found) and not SCREEN_ONLY & set(found)
    else:
        assert SCREEN_ONLY <= set(found) and not HUB_ONLY & set(found)
    # the program runs from the venv, not from a checkout
    where = pi.python("import restobox.cli, kds, kiosk; print(restobox.cli.__file__, kds.__file__, kiosk.__file__)").stdout
    assert str(REPO) not in where and where.count(str(pi.venv / "lib")) == 3, where
    out = pi.restobox("--help").stdout
    assert "report" in out and "devices" in out and "kds" in out


@pytest.mark.parametrize("role", ROLES)
def test_restobox_report_on_a_seeded_day_in_every_role(installed, day, tmp_path, role):  # noqa: F811
    pi = installed(role)
    out = tmp_path / f"report-{role}"
    r = pi.restobox("report", "--date", DAY, "--out", str(out), "--config", str(tmp_path / "staff.toml"))
    assert "¥177.80" in r.stdout and "business day 2026-11-22" in r.stdout, r.stdout
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "¥177.80" in page and "Kung Pao Chicken" in page
    pngs = sorted(p.name for p in out.glob("*.png"))
    if role == "hub":
        assert pngs == ["orders-per-15-min.png", "payment-mix.png", "sales-by-category.png", "sales-by-item.png",
                        "ticket-times.png"]
        assert "No charts" not in page
    else:  # no matplotlib on a screen's Pi: the tables, and why there are no charts
        assert pngs == [] and "No charts: matplotlib (restobox[hub]) is not installed here" in page
        assert "No charts" in r.stdout


def test_the_hub_adds_a_device_with_the_wheels_broker_config_and_lists_it(installed, tls_broker, tmp_path):
    broker = tls_broker
    pi = installed("hub")
    staff = tmp_path / "staff.toml"
    staff.write_text(f"""
[device]
id = "staff-1"
role = "staff"
[mqtt]
port = {broker.port}
password_file = "{broker.creds['staff-1'].password_file}"
[staff]
timeout_s = 8
broker_dir = "{broker.dir}"
broker_pid_file = "{broker.pid_file}"
enroll_dir = "{tmp_path / 'enroll'}"
hub_address = "127.0.0.1"
broker_tls_port = {broker.tls_port}
""", encoding="utf-8")
    added = pi.restobox("add-device", "kds-wok-9", "kds", "--station", "wok", "--config", str(staff))
    assert "kds-wok-9 (kds, station wok) is added" in added.stdout, added.stdout
    conf = (tmp_path / "enroll" / "kds-wok-9" / "restobox-device.conf").read_text(encoding="utf-8")
    assert "RESTOBOX_STATION=wok" in conf and f"RESTOBOX_HUB_PORT={broker.tls_port}" in conf
    assert (tmp_path / "enroll" / "kds-wok-9" / "store-ca.crt").read_bytes() == (broker.tls_dir / "ca.crt").read_bytes()
    # the ACL block came from the wheel's role template
    acl = (broker.dir / "acl.d" / "kds-wok-9.acl").read_text(encoding="utf-8")
    assert "user kds-wok-9\ntopic read restobox/v1/station/wok/ticket\n" in acl, acl
    devices = pi.restobox("devices", "--config", str(staff)).stdout
    assert re.search(r"kds-wok-9\s+.*kds\s+.*offline\s+.*never connected", devices), devices
    assert re.search(r"staff-1\s+.*staff\s+.*online", devices), devices
    refused = pi.restobox("add-device", "kds-wok-9", "nosuchrole", "--config", str(staff), check=False)
    assert refused.returncode != 0 and "There is no role called 'nosuchrole'" in refused.stderr + refused.stdout


def test_the_hubs_services_import_with_the_hubs_extras(installed):
    installed("hub").python(
        "import restobox.hub, restobox.printing.spooler, restobox.printing.preview, restobox.sync, restobox.web,"
        " restobox.tableqr, restobox.report, restobox.staff;"
        " import httpx, starlette.applications, uvicorn, escpos.printer, qrcode, PIL.Image, matplotlib.pyplot")


SCREENS = """
import sys
from pathlib import Path
import kds.app, kds.expo_screen, kds.board_screen, kds.bumpbar, kds.health, kds.controller
import kiosk.app, kiosk.controller, kiosk.payment, kiosk.store, kiosk.tiles
import counter.app, counter.controller, counter.store, counter.viewmodel
from kivy.lang import Builder
from kds.boxlayer import register_opaque
from kds.cardkit import register_lines_label
from kds.common import load_kv
register_opaque()
register_lines_label()
for name in ("alerts.kv", "station.kv", "expo.kv", "board.kv"):
    load_kv(name)
Builder.load_file(str(Path(kiosk.app.__file__).with_name("screens.kv")))
Builder.load_file(str(Path(counter.app.__file__).with_name("counter.kv")))
ours = [Path(f) for f in Builder.files if Path(f).parent.name in ("kds", "kiosk", "counter")]  # besides Kivy's style.kv
assert all(Path(sys.prefix) in f.parents for f in ours), ours
loaded = sorted(f.name for f in ours)
assert loaded == ["alerts.kv", "board.kv", "counter.kv", "expo.kv", "screens.kv", "station.kv"], loaded
print(len(Builder.rules))
assert "matplotlib" not in sys.modules and "escpos" not in sys.modules
"""


@pytest.mark.parametrize("role", ["kiosk", "kds", "counter"])
def test_the_screens_import_and_load_their_kv_files_with_the_screens_extras(installed, role):
    r = installed(role).python(SCREENS)
    rules = int(r.stdout.split()[-1])
    assert rules > 20, r.stdout


def test_the_chains_cloud_installs_from_the_wheel_with_its_extra_and_serves(app, wheel, pip_env, tmp_path):
    """``pip install 'restobox[cloud]'`` as docs/cloud.md says, from the
    wheel, at the pinned versions: the cloud's commands run from that venv
    (no screen packages), migrate a database and serve the API and the
    owner's page (its files come with the wheel)."""
    venv = tmp_path / "venv"
    common_sh(f"make_venv {venv}", pip_env)
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--constraint",
                        str(app / "firmware_scripts" / "files" / "constraints.txt"), f"{wheel}[cloud]"],
                       capture_output=True, text=True, env=pip_env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    home = tmp_path / "home"
    home.mkdir()
    pi = Installed("cloud", venv, clean_env(HOME=str(home), PATH=f"{venv / 'bin'}:/usr/bin:/bin"), cwd=home)
    found = pi.freeze()
    pinned = pins()
    off = {n: v for n, v in found.items() if n not in ("restobox", "pip", "setuptools", "wheel") and pinned.get(n) != v}
    assert not off and "psycopg2-binary" in found and not SCREEN_ONLY & set(found), (off, sorted(found))
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert "schema 0 -> " in pi.restobox("cloud", "--database", db, "migrate").stdout
    token = tmp_path / "owner.token"
    pi.restobox("cloud", "--database", db, "token", "owner", "boss", "--token-file", str(token))
    import httpx

    from tests.cloud_support import free_port
    from tests.support import wait

    port = free_port()
    proc = subprocess.Popen([str(venv / "bin" / "restobox"), "cloud", "--database", db, "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=pi.env, cwd=home)
    try:
        def answers():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read().decode()
                return None
        assert wait(answers, 30, "the installed cloud answers")["ok"] is True
        page = httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()
        stores = httpx.get(f"http://127.0.0.1:{port}/v1/dashboard/stores", timeout=5,
                           headers={"Authorization": f"Bearer {token.read_text().strip()}"})
        assert stores.status_code == 200, stores.text
    finally:
        proc.terminate()
        proc.wait(10)
