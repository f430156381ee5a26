"""The store broker's authentication and ACLs, against a real mosquitto.

Every test runs restobox/broker_config/mosquitto.conf (via restobox.brokerconf) with
devices made by restobox/broker_config/restobox-broker-user, and talks MQTT 5 through
paho. Reason codes are MQTT 5.0 §2.4: 0 success, 1 granted QoS 1, 135 not
authorized (mosquitto answers 16 "no matching subscribers" to a publish
nobody is subscribed to, so tests subscribe before they publish).

"Does not receive" is proven with a barrier: after the forbidden message the
same publisher sends one the observer may receive; MQTT keeps one
publisher's messages in order (§4.6), so once the barrier arrives the
forbidden message would have arrived too.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from restobox.brokerconf import (
    BROKER_USER_SCRIPT,
    MOSQUITTO_CONF,
    STANDARD_DEVICES,
    Broker,
    render_private_conf,
)
from restobox.contract import topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WAIT_S = 5.0
SUCCESS = 0
GRANTED_QOS1 = 1
NOT_AUTHORIZED = 135
BAD_USERNAME_OR_PASSWORD = 134


class Device:
    """One MQTT 5 connection under a device's credentials, recording every
    CONNACK, SUBACK, PUBACK and message it gets."""

    def __init__(self, broker: Broker, username: str | None, password: str | None, client_id: str = "") -> None:
        self._broker = broker
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or username or "",
            protocol=mqtt.MQTTv5,
            # Tests observe a drop instead of having paho paper over it.
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self._cond = threading.Condition()
        self.connack: mqtt.ReasonCode | None = None
        self.disconnected = threading.Event()
        self.messages: list[mqtt.MQTTMessage] = []
        self._subacks: dict[int, list[mqtt.ReasonCode]] = {}
        self._pubacks: dict[int, mqtt.ReasonCode] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    # paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._cond:
            self.connack = reason_code
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.disconnected.set()
        with self._cond:
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        with self._cond:
            self._subacks[mid] = reason_code_list
            self._cond.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            self._pubacks[mid] = reason_code
            self._cond.notify_all()

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def _wait(self, predicate: Callable[[], object], what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, WAIT_S):
                raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}")

    # test API
    def connect(self) -> int:
        """Connect; return the CONNACK reason code."""
        self.client.connect(self._broker.host, self._broker.port, keepalive=30, clean_start=True)
        self.client.loop_start()
        self._wait(lambda: self.connack is not None or self.disconnected.is_set(), "CONNACK")
        assert self.connack is not None, "connection closed without a CONNACK"
        return self.connack.value

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1; return the SUBACK reason code."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        self._wait(lambda: mid in self._subacks, f"SUBACK for {topic}")
        return self._subacks[mid][0].value

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False, properties: Properties | None = None) -> int:
        """Publish at QoS 1; return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        self._wait(lambda: info.mid in self._pubacks, f"PUBACK for {topic}")
        return self._pubacks[info.mid].value

    def wait_for(self, topic: str) -> mqtt.MQTTMessage:
        """The first message received on ``topic``, waiting up to 5 s."""
        self._wait(lambda: any(m.topic == topic for m in self.messages), f"a message on {topic}")
        with self._cond:
            return next(m for m in self.messages if m.topic == topic)

    def received_topics(self) -> set[str]:
        with self._cond:
            return {m.topic for m in self.messages}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def connect(broker: Broker) -> Iterator[Callable[..., Device]]:
    """connect(name) -> a connected Device with the broker's credentials for
    name; connect(name, password=..., ok=False) -> a Device whose CONNACK is
    in ``.connack`` (for refusals)."""
    made: list[Device] = []

    def _connect(name: str | None, password: str | None = None, ok: bool = True, client_id: str = "") -> Device:
        if password is None and name is not None:
            password = broker.creds[name].password
        dev = Device(broker, name, password, client_id=client_id)
        made.append(dev)
        rc = dev.connect()
        if ok:
            assert rc == SUCCESS, f"{name} was refused with reason code {rc}"
        return dev

    yield _connect
    for dev in made:
        dev.close()


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BROKER_USER_SCRIPT), *args], capture_output=True, text=True, timeout=30, env=env)


def wait_until_refused(broker: Broker, name: str, password: str) -> int:
    """Reconnect until the broker refuses (it handles SIGHUP in its own
    time); return the refusing CONNACK reason code."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        dev = Device(broker, name, password)
        try:
            rc = dev.connect()
        finally:
            dev.close()
        if rc != SUCCESS:
            return rc
        time.sleep(0.02)
    raise AssertionError(f"{name} was still accepted {WAIT_S} s after the reload")


# --- authentication -----------------------------------------------------------


def test_anonymous_client_is_refused(connect) -> None:
    dev = connect(None, ok=False, client_id="anonymous-probe")
    # mosquitto 2.0.11 answers a CONNECT without username with 135.
    assert dev.connack is not None and dev.connack.value == NOT_AUTHORIZED


@pytest.mark.parametrize("name", ["kiosk-1", "no-such-device"])
def test_wrong_password_is_refused(connect, name: str) -> None:
    dev = connect(name, password="not-the-password", ok=False)
    # mosquitto 2.0.11 gives 135 (not 134) for a bad password and an unknown
    # user alike, so a prober learns nothing about which names exist.
    assert dev.connack is not None and dev.connack.value in (NOT_AUTHORIZED, BAD_USERNAME_OR_PASSWORD)


def test_a_device_cannot_take_over_another_devices_session_by_client_id(connect) -> None:
    hub = connect("hub")
    assert hub.subscribe(topics.ORDER_UPDATE) == GRANTED_QOS1
    # With use_username_as_clientid this session is "kiosk-2", not "hub".
    connect("kiosk-2", client_id="hub")
    # A round trip on the hub's connection: had the broker handed its client
    # id to kiosk-2, this connection would have been closed before the CONNACK.
    assert hub.publish(topics.ORDER_UPDATE) == SUCCESS
    hub.wait_for(topics.ORDER_UPDATE)
    assert not hub.disconnected.is_set()


# --- kiosk ------------------------------------------------------------------


def test_kiosk_order_submission_reaches_the_hub_and_the_reply_reaches_that_kiosk(connect) -> None:
    hub, kiosk1, kiosk2 = connect("hub"), connect("kiosk-1"), connect("kiosk-2")
    assert hub.subscribe(topics.ORDER_SUBMIT_ALL) == GRANTED_QOS1
    assert kiosk1.subscribe(topics.order_reply("kiosk-1")) == GRANTED_QOS1
    assert kiosk2.subscribe(topics.order_reply("kiosk-2")) == GRANTED_QOS1

    request = Properties(PacketTypes.PUBLISH)
    request.ResponseTopic = topics.order_reply("kiosk-1")
    request.CorrelationData = b"order-42"
    assert kiosk1.publish(topics.order_submit("kiosk-1"), b'{"v":1}', properties=request) == SUCCESS

    submitted = hub.wait_for(topics.order_submit("kiosk-1"))
    assert submitted.payload == b'{"v":1}'
    reply = Properties(PacketTypes.PUBLISH)
    reply.CorrelationData = submitted.properties.CorrelationData
    assert hub.publish(submitted.properties.ResponseTopic, b'{"accepted":true}', properties=reply) == SUCCESS

    answer = kiosk1.wait_for(topics.order_reply("kiosk-1"))
    assert answer.payload == b'{"accepted":true}'
    assert answer.properties.CorrelationData == b"order-42"
    # Barrier for kiosk-2: a reply of its own, sent after kiosk-1's.
    assert hub.publish(topics.order_reply("kiosk-2")) == SUCCESS
    kiosk2.wait_for(topics.order_reply("kiosk-2"))
    assert topics.order_reply("kiosk-1") not in kiosk2.received_topics()


def test_kiosk_cannot_publish_a_station_bump_event(connect) -> None:
    hub, kiosk = connect("hub"), connect("kiosk-1")
    assert hub.subscribe(topics.STATION_EVENT_ALL) == GRANTED_QOS1
    assert hub.subscribe(topics.ORDER_SUBMIT_ALL) == GRANTED_QOS1

    assert kiosk.publish(topics.station_event("wok"), b'{"bump":1}') == NOT_AUTHORIZED
    assert kiosk.publish(topics.order_submit("kiosk-1")) == SUCCESS  # barrier

    hub.wait_for(topics.order_submit("kiosk-1"))
    assert topics.station_event("wok") not in hub.received_topics()


def test_kiosk_cannot_submit_orders_as_another_kiosk(connect) -> None:
    hub, kiosk = connect("hub"), connect("kiosk-1")
    assert hub.subscribe(topics.ORDER_SUBMIT_ALL) == GRANTED_QOS1
    assert kiosk.publish(topics.order_submit("kiosk-2")) == NOT_AUTHORIZED
    assert kiosk.publish(topics.order_submit("kiosk-1")) == SUCCESS
    hub.wait_for(topics.order_submit("kiosk-1"))
    assert topics.order_submit("kiosk-2") not in hub.received_topics()


def test_kiosk_cannot_read_another_kiosks_replies(connect) -> None:
    hub, kiosk1, kiosk2 = connect("hub"), connect("kiosk-1"), connect("kiosk-2")
    # mosquitto 2.0's acl_file does not check SUBSCRIBE (it grants it, see
    # acl.base); `read` is enforced on every delivery. Either outcome of the
    # SUBACK is safe; what must never happen is the delivery below.
    assert kiosk1.subscribe(topics.order_reply("kiosk-2")) in (GRANTED_QOS1, NOT_AUTHORIZED)
    assert kiosk1.subscribe(topics.order_reply("kiosk-1")) == GRANTED_QOS1
    assert kiosk2.subscribe(topics.order_reply("kiosk-2")) == GRANTED_QOS1

    assert hub.publish(topics.order_reply("kiosk-2"), b'{"secret":1}') == SUCCESS
    assert hub.publish(topics.order_reply("kiosk-1")) == SUCCESS  # barrier

    assert kiosk2.wait_for(topics.order_reply("kiosk-2")).payload == b'{"secret":1}'
    kiosk1.wait_for(topics.order_reply("kiosk-1"))
    assert topics.order_reply("kiosk-2") not in kiosk1.received_topics()


def test_kiosk_cannot_read_station_tickets_even_through_a_wildcard(connect) -> None:
    hub, kiosk = connect("hub"), connect("kiosk-1")
    assert kiosk.subscribe(topics.station_ticket("wok")) in (GRANTED_QOS1, NOT_AUTHORIZED)
    assert kiosk.subscribe("restobox/v1/#") in (GRANTED_QOS1, NOT_AUTHORIZED)

    assert hub.publish(topics.station_ticket("wok")) == SUCCESS
    assert hub.publish(topics.ORDER_UPDATE) == SUCCESS
    assert hub.publish(topics.MENU, retain=True) == SUCCESS  # barrier: kiosks read the menu

    kiosk.wait_for(topics.MENU)
    assert kiosk.received_topics() == {topics.MENU}


# --- kitchen ---------------------------------------------------------------


def test_kds_reads_its_own_stations_tickets_but_not_another_stations(connect) -> None:
    hub, kds = connect("hub"), connect("kds-wok-1")
    assert kds.subscribe(topics.station_ticket("fryer")) in (GRANTED_QOS1, NOT_AUTHORIZED)
    assert kds.subscribe(topics.station_ticket("wok")) == GRANTED_QOS1

    assert hub.publish(topics.station_ticket("fryer")) == SUCCESS
    assert hub.publish(topics.station_ticket("wok"), b'{"ticket":"wok"}') == SUCCESS

    assert kds.wait_for(topics.station_ticket("wok")).payload == b'{"ticket":"wok"}'
    assert topics.station_ticket("fryer") not in kds.received_topics()


def test_kds_publishes_only_its_own_stations_events(connect) -> None:
    hub, kds = connect("hub"), connect("kds-wok-1")
    assert hub.subscribe("restobox/v1/#") == GRANTED_QOS1

    assert kds.publish(topics.station_event("fryer")) == NOT_AUTHORIZED
    assert kds.publish(topics.order_submit("kds-wok-1")) == NOT_AUTHORIZED
    assert kds.publish(topics.order_submit("kiosk-1")) == NOT_AUTHORIZED
    assert kds.publish(topics.station_event("wok"), b'{"bump":1}') == SUCCESS

    assert hub.wait_for(topics.station_event("wok")).payload == b'{"bump":1}'
    assert hub.received_topics() == {topics.station_event("wok")}


def test_expo_reads_every_stations_tickets_and_bumps_only_as_expo(connect) -> None:
    hub, expo = connect("hub"), connect("expo-1")
    assert hub.subscribe(topics.STATION_EVENT_ALL) == GRANTED_QOS1
    assert expo.subscribe("restobox/v1/station/+/ticket") == GRANTED_QOS1

    for station in ("wok", "fryer", "drinks"):
        assert hub.publish(topics.station_ticket(station)) == SUCCESS
    for station in ("wok", "fryer", "drinks"):
        expo.wait_for(topics.station_ticket(station))

    assert expo.publish(topics.station_event("wok")) == NOT_AUTHORIZED
    assert expo.publish(topics.station_event("expo")) == SUCCESS
    hub.wait_for(topics.station_event("expo"))
    assert topics.station_event("wok") not in hub.received_topics()


def test_board_reads_the_board_but_not_tickets_and_publishes_nothing(connect) -> None:
    hub, board = connect("hub"), connect("board-1")
    assert hub.subscribe("restobox/v1/#") == GRANTED_QOS1
    assert board.subscribe("restobox/v1/#") in (GRANTED_QOS1, NOT_AUTHORIZED)

    assert board.publish(topics.BOARD, retain=True) == NOT_AUTHORIZED
    assert board.publish(topics.ORDER_UPDATE) == NOT_AUTHORIZED
    assert hub.publish(topics.station_ticket("wok")) == SUCCESS
    assert hub.publish(topics.BOARD, b'{"ready":[1]}', retain=True) == SUCCESS

    assert board.wait_for(topics.BOARD).payload == b'{"ready":[1]}'
    assert board.received_topics() == {topics.BOARD}
    hub.wait_for(topics.BOARD)
    assert hub.received_topics() == {topics.station_ticket("wok"), topics.BOARD}


def test_web_submits_only_as_itself_follows_orders_and_never_touches_the_kitchen(connect) -> None:
    """The table QR page's service: its own submissions and replies, every
    order's state, the menu; no tickets, no bumps, no print jobs, no one
    else's replies."""
    hub, web = connect("hub"), connect("web")
    assert hub.subscribe("restobox/v1/#") == GRANTED_QOS1
    assert web.subscribe("restobox/v1/#") in (GRANTED_QOS1, NOT_AUTHORIZED)

    assert web.publish(topics.order_submit("kiosk-1")) == NOT_AUTHORIZED
    assert web.publish(topics.station_event("wok")) == NOT_AUTHORIZED
    assert web.publish(topics.PRINT_JOB) == NOT_AUTHORIZED
    assert web.publish(topics.staff_command("web")) == NOT_AUTHORIZED
    assert web.publish(topics.order_submit("web")) == SUCCESS
    hub.wait_for(topics.order_submit("web"))
    assert hub.received_topics() == {topics.order_submit("web")}

    for topic in (topics.station_ticket("wok"), topics.order_reply("kiosk-1"), topics.REJECTS):
        assert hub.publish(topic) == SUCCESS
    readable = (topics.order_reply("web"), topics.ORDER_UPDATE, topics.SOLDOUT, topics.BOARD)
    for topic in readable:
        assert hub.publish(topic) == SUCCESS
    for topic in readable:  # the last is the barrier for the forbidden ones
        web.wait_for(topic)
    assert web.received_topics() == set(readable)


def test_staff_sends_commands_only_as_itself_and_reads_everything(connect) -> None:
    hub, staff = connect("hub"), connect("staff-1")
    assert staff.subscribe("restobox/v1/#") == GRANTED_QOS1
    assert hub.subscribe(topics.STAFF_COMMAND_ALL) == GRANTED_QOS1

    assert staff.publish(topics.staff_command("kiosk-1")) == NOT_AUTHORIZED
    assert staff.publish(topics.ORDER_UPDATE) == NOT_AUTHORIZED
    assert staff.publish(topics.staff_command("staff-1"), b'{"cmd":"86"}') == SUCCESS
    assert hub.wait_for(topics.staff_command("staff-1")).payload == b'{"cmd":"86"}'
    assert topics.staff_command("kiosk-1") not in hub.received_topics()

    assert hub.publish(topics.staff_reply("staff-1")) == SUCCESS
    assert hub.publish(topics.station_ticket("wok")) == SUCCESS
    staff.wait_for(topics.staff_reply("staff-1"))
    staff.wait_for(topics.station_ticket("wok"))


def test_counter_asks_the_till_as_itself_reads_payments_and_never_touches_the_kitchen(connect) -> None:
    """The till: its own orders, till requests, loyalty queries, staff
    commands and their replies, every order's state and payment, print jobs
    (the drawer pulse); no tickets, no bumps, no one else's replies."""
    hub, counter = connect("hub"), connect("counter-1")
    assert hub.subscribe("restobox/v1/#") == GRANTED_QOS1
    assert counter.subscribe("restobox/v1/#") in (GRANTED_QOS1, NOT_AUTHORIZED)
    for topic in ("restobox/v1/till/+/reply", topics.station_ticket("wok"), topics.REJECTS):
        assert counter.subscribe(topic) in (GRANTED_QOS1, NOT_AUTHORIZED)

    for topic in (topics.till_request("counter-2"), topics.order_submit("kiosk-1"), topics.station_event("wok"),
                  topics.staff_command("staff-1"), topics.PAYMENT_UPDATE, topics.TILL_UNPAID, topics.ORDER_UPDATE):
        assert counter.publish(topic) == NOT_AUTHORIZED, topic
    allowed = (topics.order_submit("counter-1"), topics.till_request("counter-1"),
               topics.loyalty_query("counter-1"), topics.staff_command("counter-1"), topics.PRINT_JOB)
    for topic in allowed:
        assert counter.publish(topic) == SUCCESS, topic
    hub.wait_for(topics.PRINT_JOB)  # the last: the others came before it
    assert hub.received_topics() == set(allowed)

    for topic in (topics.station_ticket("wok"), topics.till_reply("counter-2"), topics.order_reply("kiosk-1"),
                  topics.REJECTS):
        assert hub.publish(topic) == SUCCESS
    readable = (topics.till_reply("counter-1"), topics.order_reply("counter-1"), topics.staff_reply("counter-1"),
                topics.loyalty_reply("counter-1"), topics.PAYMENT_UPDATE, topics.PRINT_JOB_STATE,
                topics.TILL_UNPAID, topics.ORDER_UPDATE, topics.BOARD)
    for topic in readable:
        assert hub.publish(topic) == SUCCESS
    for topic in readable:  # the last is the barrier for the forbidden ones
        counter.wait_for(topic)
    assert counter.received_topics() == set(readable)


def test_monitor_reads_everything_but_publishes_only_its_presence_and_health(connect) -> None:
    hub, monitor = connect("hub"), connect("monitor-1")
    assert monitor.subscribe("restobox/v1/#") == GRANTED_QOS1
    everything = [
        topics.order_reply("kiosk-1"),
        topics.station_ticket("wok"),
        topics.staff_reply("staff-1"),
        topics.ORDER_UPDATE,
        topics.REJECTS,
    ]
    for topic in everything:
        assert hub.publish(topic) == SUCCESS
    for topic in everything:
        monitor.wait_for(topic)

    for topic in (topics.ORDER_UPDATE, topics.MENU, topics.order_submit("monitor-1"), topics.station_event("wok")):
        assert monitor.publish(topic) == NOT_AUTHORIZED, topic
    assert monitor.publish(topics.presence("monitor-1"), retain=True) == SUCCESS
    assert monitor.publish(topics.health("monitor-1")) == SUCCESS


# --- presence and health (pattern lines in acl.base) -------------------------


@pytest.mark.parametrize("name", [name for name, _, _ in STANDARD_DEVICES])
def test_every_device_announces_only_its_own_presence_and_health(connect, name: str) -> None:
    dev = connect(name)
    observer = connect("kiosk-2" if name != "kiosk-2" else "kiosk-1")
    # Every role reads everyone's presence and health.
    assert observer.subscribe(topics.PRESENCE_ALL) == GRANTED_QOS1
    assert observer.subscribe(topics.HEALTH_ALL) == GRANTED_QOS1
    other = "kds-fryer-1" if name != "kds-fryer-1" else "board-1"

    forged = {topics.presence(other), topics.health(other)}
    if name == "hub":
        # The hub's role is readwrite on all of restobox/v1/.
        assert dev.publish(topics.presence(other), retain=True) == SUCCESS
        forged = set()
    else:
        assert dev.publish(topics.presence(other), b'{"online":true}', retain=True) == NOT_AUTHORIZED
        assert dev.publish(topics.health(other)) == NOT_AUTHORIZED
    assert dev.publish(topics.health(name), b'{"ok":true}') == SUCCESS
    assert dev.publish(topics.presence(name), b'{"online":true}', retain=True) == SUCCESS

    assert observer.wait_for(topics.health(name)).payload == b'{"ok":true}'
    assert observer.wait_for(topics.presence(name)).payload == b'{"online":true}'
    assert not forged & observer.received_topics()


# --- credentials lifecycle -----------------------------------------------------


def test_a_device_added_to_a_running_broker_can_connect_at_once(broker: Broker, connect) -> None:
    hub = connect("hub")
    assert hub.subscribe(topics.ORDER_SUBMIT_ALL) == GRANTED_QOS1
    broker.add_device("kiosk-3", "kiosk")
    kiosk = connect("kiosk-3")
    assert kiosk.publish(topics.order_submit("kiosk-3")) == SUCCESS
    hub.wait_for(topics.order_submit("kiosk-3"))
    # The reload did not disturb the devices already connected.
    assert not hub.disconnected.is_set()


def test_removed_device_is_disconnected_and_refused_after_the_reload(broker: Broker, connect) -> None:
    hub, kiosk = connect("hub"), connect("kiosk-2")
    assert hub.subscribe(topics.ORDER_UPDATE) == GRANTED_QOS1
    password = broker.creds["kiosk-2"].password

    result = broker.run_user_script("remove", "kiosk-2")  # SIGHUPs the broker

    assert "Removed device kiosk-2" in result.stdout
    assert wait_until_refused(broker, "kiosk-2", password) == NOT_AUTHORIZED
    # mosquitto re-checks connected clients against the reloaded passwd.
    assert kiosk.disconnected.wait(WAIT_S)
    # ... and leaves the other devices connected.
    assert hub.publish(topics.ORDER_UPDATE) == SUCCESS
    hub.wait_for(topics.ORDER_UPDATE)
    assert not hub.disconnected.is_set()
    assert not (broker.dir / "credentials" / "kiosk-2.secret").exists()
    listed = broker.run_user_script("list").stdout.split("\n")
    assert "kiosk-1 kiosk" in listed and "kiosk-2 kiosk" not in listed


def test_adding_an_existing_device_rotates_its_password(broker: Broker, connect) -> None:
    kiosk = connect("kiosk-1")
    old = broker.creds["kiosk-1"].password

    result = broker.run_user_script("add", "kiosk-1", "kiosk")

    assert "Rotated the password of device kiosk-1" in result.stdout
    new = (broker.dir / "credentials" / "kiosk-1.secret").read_text().strip()
    assert new != old
    assert wait_until_refused(broker, "kiosk-1", old) == NOT_AUTHORIZED
    assert kiosk.disconnected.wait(WAIT_S)
    assert connect("kiosk-1", password=new).connack.value == SUCCESS


# --- the script ----------------------------------------------------------------


def test_add_keeps_the_password_out_of_its_output_and_in_a_private_file(tmp_path: Path) -> None:
    result = run_script("add", "kiosk-7", "kiosk", "--dir", str(tmp_path))

    assert result.returncode == 0, result.stderr
    secret_file = tmp_path / "credentials" / "kiosk-7.secret"
    password = secret_file.read_text().strip()
    assert len(password) >= 24
    assert password not in result.stdout + result.stderr
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "credentials").stat().st_mode) == 0o700
    assert "kiosk-7" in result.stdout

    shown = run_script("add", "kiosk-7", "kiosk", "--dir", str(tmp_path), "--show-password")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1] == (tmp_path / "credentials" / "kiosk-7.secret").read_text().strip()


def test_generated_acl_is_the_base_then_each_device_in_name_order(tmp_path: Path) -> None:
    for args in (["kiosk-1", "kiosk"], ["kds-wok-1", "kds", "--station", "wok"], ["expo-1", "expo"]):
        assert run_script("add", *args, "--dir", str(tmp_path)).returncode == 0
    acl = (tmp_path / "acl").read_text()
    base = (BROKER_USER_SCRIPT.parent / "acl.base").read_text()

    assert acl.startswith(base)
    users = [line for line in acl.splitlines() if line.startswith("user ")]
    assert users == ["user expo-1", "user kds-wok-1", "user kiosk-1"]
    # Nothing before the first user line grants anything (to anonymous).
    head = acl.split("\nuser ", 1)[0]
    assert not [line for line in head.splitlines() if line.startswith("topic")]
    assert "topic read restobox/v1/station/wok/ticket" in acl
    assert "topic write restobox/v1/station/expo/event" in acl
    assert "{" not in acl
    assert run_script("list", "--dir", str(tmp_path)).stdout.splitlines() == [
        "expo-1 expo expo",
        "kds-wok-1 kds wok",
        "kiosk-1 kiosk",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "chef-1", "chef"], "unknown role 'chef'"),
        (["add", "Kiosk_1", "kiosk"], "bad device name 'Kiosk_1'"),
        (["add", "--", "-kiosk", "kiosk"], "bad device name '-kiosk'"),
        (["add", "a" * 33, "kiosk"], "bad device name"),
        (["add", "kds-1", "kds"], "role kds needs --station"),
        (["add", "kds-1", "kds", "--station", "Wok!"], "bad station 'Wok!'"),
        (["add", "kiosk-1", "kiosk", "--station", "wok"], "role kiosk takes no --station"),
        (["add", "expo-2", "expo", "--station", "wok"], "role expo always has station expo"),
        (["add", "kiosk-1"], "add needs NAME and ROLE"),
        (["remove", "nobody"], "no device named 'nobody'"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_script_refuses_mistakes_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    # --dir right after the command, so a `--` in args cannot swallow it.
    result = run_script(args[0], "--dir", str(tmp_path), *args[1:])

    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout == ""
    assert not list(tmp_path.glob("acl.d/*.acl"))


def test_role_templates_are_read_from_restobox_broker_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(BROKER_USER_SCRIPT.parent / "roles", config / "roles")
    shutil.copy(BROKER_USER_SCRIPT.parent / "acl.base", config / "acl.base")
    (config / "roles" / "printer.acl").write_text("user {device}\ntopic read restobox/v1/print/{device}\n")
    env = {**os.environ, "RESTOBOX_BROKER_CONFIG": str(config)}

    result = run_script("add", "printer-1", "printer", "--dir", str(tmp_path / "state"), env=env)

    assert result.returncode == 0, result.stderr
    assert "topic read restobox/v1/print/printer-1" in (tmp_path / "state" / "acl").read_text()


def test_broker_user_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    # ./run installs it; a missing linter is a failed check, not a pass
    assert shellcheck is not None, "shellcheck is not installed (apt-get install shellcheck)"
    result = subprocess.run([shellcheck, str(BROKER_USER_SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the private config is the project's config ----------------------------------


def test_private_config_changes_only_listener_files_and_logging(tmp_path: Path) -> None:
    rendered = render_private_conf(18830, tmp_path, tls_port=18831).splitlines()
    moved = {"listener", "password_file", "acl_file", "persistence_location", "pid_file", "log_dest", "log_timestamp", "user",
             "cafile", "certfile", "keyfile"}

    for line in MOSQUITTO_CONF.read_text().splitlines():
        words = line.split()
        if words and words[0] in moved:
            continue
        assert line in rendered, f"private config lost {line!r}"
    assert "listener 18830 127.0.0.1" in rendered
    assert "listener 18831 127.0.0.1" in rendered and f"keyfile {tmp_path.resolve() / 'tls/server.key'}" in rendered
    assert f"password_file {tmp_path.resolve() / 'passwd'}" in rendered
    assert f"acl_file {tmp_path.resolve() / 'acl'}" in rendered
    assert not [line for line in rendered if line.startswith("pid_file")]
    for setting in ("allow_anonymous false", "per_listener_settings false", "use_username_as_clientid true"):
        assert setting in rendered
