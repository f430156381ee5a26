"""Shared fixtures.

Integration fixtures start real services on free ports in ``tmp_path`` and
stop them at teardown. Build new service fixtures on top of ``broker`` (e.g. a
``hub`` fixture that connects with ``broker.creds["hub"]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from restobox.brokerconf import STANDARD_DEVICES, Broker

# Fixture modules shared by several test files; add new ones here.
pytest_plugins = ["tests.hub_fixtures"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh mosquitto with the project's config and STANDARD_DEVICES.

    Credentials are in ``broker.creds[name]``; connect to ``broker.host``,
    ``broker.port``.
    """
    b = Broker(tmp_path / "broker").start_with_devices(STANDARD_DEVICES)
    try:
        yield b
    finally:
        b.stop()
