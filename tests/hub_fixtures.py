"""Fixtures for tests that need a running hub, its devices and its database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Device, HubProcess, Kiosk, hub_config


@dataclass
class RunningHub:
    process: HubProcess
    database: Path
    config: Path


@pytest.fixture
def monitor(broker):
    """A read-everything watcher (role monitor), connected before the hub."""
    d = Device(broker, "monitor-1", ("restobox/v1/#",), role="monitor")
    yield d
    d.close()


@pytest.fixture
def hub(broker, monitor, tmp_path):
    db = tmp_path / "store.db"
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port,
                     password_file=broker.creds["hub"].password_file, database=db)
    proc = HubProcess(cfg, tmp_path / "hub.log")
    proc.start(monitor)
    yield RunningHub(proc, db, cfg)
    proc.stop()


@pytest.fixture
def kiosk(broker, hub):
    k = Kiosk(broker, "kiosk-1")
    yield k
    k.close()
