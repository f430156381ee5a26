"""The store broker keeps what it acknowledged across a power cut.

A real mosquitto with restobox/broker_config/mosquitto.conf (via restobox.brokerconf):
a retained message and a QoS 1 message queued for a kitchen screen's
persistent session must be on disk once the store has made AUTOSAVE_CHANGES
more changes (the services publish their retained health every 10 s), even
when the broker started only seconds ago, and must be there again after a
SIGKILL and a restart on the same persistence directory
(restobox/broker_config/mosquitto.conf explains why not after every change).
"""

from __future__ import annotations

import pytest

from restobox.contract import topics
from tests.support import Device, wait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# restobox/broker_config/mosquitto.conf: autosave_on_changes, autosave_interval 50.
AUTOSAVE_CHANGES = 50
# How long after the last of those changes the save may take.
SAVED_WITHIN_S = 3.0


def _saved(broker, *markers: bytes) -> bool:
    db = broker.dir / "mosquitto.db"
    try:
        data = db.read_bytes()
    except FileNotFoundError:
        return False
    return all(m in data for m in markers)


def test_a_broker_killed_seconds_after_starting_keeps_retained_messages_and_sessions(broker):
    wok_topic = topics.station_ticket("wok")
    kds = Device(broker, "kds-wok-1", (wok_topic,), role="kds", persistent=True)
    hub = Device(broker, "hub", role="hub")
    try:
        # The screen's subscription is in place once a first ticket arrives.
        hub.publish(wok_topic, b'{"first": true}')
        kds.wait_for(lambda m: m.payload == b'{"first": true}')
        kds.close()  # switched off: its session waits for it at the broker

        ticket = b'{"ticket": "queued while the screen was off"}'
        menu = b'{"menu": "retained"}'
        hub.publish(wok_topic, ticket)
        hub.publish(topics.MENU, menu, retain=True)
        # The store goes on: the services' retained health.
        for i in range(AUTOSAVE_CHANGES):
            hub.publish(topics.health("hub"), b'{"health": %d}' % i, retain=True)

        # A power cut a moment later: what was acknowledged is on disk.
        wait(lambda: _saved(broker, ticket, menu), SAVED_WITHIN_S, "persistence file holding both messages")
        hub.close()
        broker.kill()
        broker.start()

        board = Device(broker, "board-1", (topics.MENU,), role="board")
        try:
            got = board.wait_for(lambda m: m.topic == topics.MENU)
            assert got.payload == menu and got.retain
        finally:
            board.close()
        kds = Device(broker, "kds-wok-1", (wok_topic,), role="kds", persistent=True)
        assert kds.wait_for(lambda m: m.topic == wok_topic).payload == ticket
    finally:
        kds.close()
        hub.close()
