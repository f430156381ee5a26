"""Shared fixtures.

Integration fixtures start real services on free ports in ``tmp_path`` and
stop them at teardown. Build new service fixtures on top of ``broker`` (e.g. a
``hub`` fixture that connects with ``broker.creds["hub"]``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from restobox.brokerconf import STANDARD_DEVICES, TLS_FILES, Broker, Credentials

REPO = Path(__file__).resolve().parent.parent

# Fixture modules shared by several test files; add new ones here.
pytest_plugins = ["tests.hub_fixtures"]


@pytest.fixture(scope="session")
def standard_devices_dir(tmp_path_factory) -> Path:
    """A broker directory holding STANDARD_DEVICES (passwd, ACL, each
    device's credentials), made once per session by the project's own
    restobox-broker-user script, one run per device (about 0.8 s in all):
    every test's broker starts from a copy of it."""
    b = Broker(tmp_path_factory.mktemp("standard-devices") / "broker")
    for name, role, station in STANDARD_DEVICES:
        b.add_device(name, role, station)
    return b.dir


def broker_with_standard_devices(state_dir: Path, template: Path, **kw) -> Broker:
    """A stopped Broker in ``state_dir`` with a copy of ``template``'s
    devices (standard_devices_dir) and their credentials in ``creds``."""
    shutil.copytree(template, state_dir, dirs_exist_ok=True)
    b = Broker(state_dir, **kw)
    for name, _, _ in STANDARD_DEVICES:
        secret = state_dir / "credentials" / f"{name}.secret"
        b.creds[name] = Credentials(name, secret.read_text(encoding="utf-8").strip(), secret)
    return b


@pytest.fixture
def broker(tmp_path: Path, standard_devices_dir: Path) -> Iterator[Broker]:
    """A fresh mosquitto with the project's config and STANDARD_DEVICES.

    Credentials are in ``broker.creds[name]``; connect to ``broker.host``,
    ``broker.port``.
    """
    b = broker_with_standard_devices(tmp_path / "broker", standard_devices_dir).start()
    try:
        yield b
    finally:
        b.stop()


def make_store_tls(root: Path, hostname: str = "store-hub", names: str = "") -> Path:
    """The store CA and the broker's certificate, made by provisioning's own
    ``ensure_store_tls`` (firmware_scripts/lib/common.sh) in the scratch root
    ``root``; returns the directory with ca.crt, ca.key, server.crt and
    server.key. The certificate names ``hostname``, ``hostname``.local,
    localhost, 127.0.0.1 and ``names`` (space separated)."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "hostname").write_text(hostname + "\n")
    env = {**os.environ, "RB_ROOT": str(root), "RB_TLS_NAMES": names, "RB_QUIET": "1"}
    subprocess.run(["bash", "-c", f'source "{REPO}/firmware_scripts/lib/common.sh" && ensure_store_tls'],
                   env=env, check=True, capture_output=True, text=True, timeout=60)
    return root / "etc" / "restobox" / "broker" / "tls"


@pytest.fixture(scope="session")
def store_tls(tmp_path_factory) -> Path:
    """One store CA and broker certificate per session (see make_store_tls)."""
    return make_store_tls(tmp_path_factory.mktemp("store-tls"))


def tls_broker_dir(state_dir: Path, tls_files: Path) -> Path:
    """``state_dir`` with the broker's TLS files copied into its tls/."""
    (state_dir / "tls").mkdir(parents=True, exist_ok=True)
    for name in TLS_FILES:
        shutil.copy2(tls_files / name, state_dir / "tls" / name)
    return state_dir


@pytest.fixture
def tls_broker(tmp_path: Path, store_tls: Path, standard_devices_dir: Path) -> Iterator[Broker]:
    """As ``broker``, with the store's TLS listener too, on a second free
    port (``broker.tls_port``; the store CA is ``broker.tls_dir / "ca.crt"``).
    The plain listener stays on ``broker.port``, as the hub's own services
    use it."""
    b = broker_with_standard_devices(tls_broker_dir(tmp_path / "broker", store_tls), standard_devices_dir,
                                     tls=True).start()
    try:
        yield b
    finally:
        b.stop()


# The longest modules first: on two workers (each module on one, ./run test)
# a long module started last runs alone at the end while the other worker
# idles. The rest keep their order (the sort is stable).
LONGEST_FIRST = ("test_kiosk_tiles_ui.py", "test_rush.py", "test_install_wheel.py", "test_sync.py",
                 "test_phone_pay_soak.py", "test_fuzz.py", "test_phone_pay.py", "test_netns_links.py",
                 "test_kiosk_a11y_ui.py", "test_demo.py", "test_delivery.py", "test_kds_expo_board_ui.py",
                 "test_firmware_scripts.py", "test_cloud_dashboard.py")


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
