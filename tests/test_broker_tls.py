"""TLS on the store network, against a real mosquitto started from the
project's own mosquitto.conf with the store CA and broker certificate made
by provisioning's own ``ensure_store_tls`` (once per session): a device
that trusts the store CA connects over TLS and exchanges a message; one
with another CA, one that reaches the broker by a name its certificate does
not have, and one without TLS on the TLS port are refused; the plain
listener answers on 127.0.0.1 only; a device config that would send its
password in plain text to another machine is refused with a reason; and
`restobox add-device` hands out an enrollment (port, password, CA) that
connects over TLS."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from rich.console import Console

from restobox import brokerconf, config
from restobox.brokerconf import Broker, BrokerError, mqtt_connect_rc, render_private_conf
from restobox.bus import Bus, bus_from_config
from restobox.contract import topics
from tests.conftest import make_store_tls, tls_broker_dir
from tests.support import wait

pytestmark = pytest.mark.integration

DEVICES = [("kiosk-1", "kiosk", None), ("monitor-1", "monitor", None), ("staff-1", "staff", None)]


@pytest.fixture(scope="module")
def store(tmp_path_factory, store_tls) -> Broker:
    """One broker with TLS for the module: plain on 127.0.0.1, TLS on every
    address of the machine, as on the hub."""
    d = tls_broker_dir(tmp_path_factory.mktemp("tls-broker") / "broker", store_tls)
    b = Broker(d, tls=True, tls_bind="0.0.0.0").start_with_devices(DEVICES)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> Path:
    """Another store's CA: its certificate must not be trusted here."""
    return make_store_tls(tmp_path_factory.mktemp("other-store"), hostname="other-hub") / "ca.crt"


def device_toml(path: Path, broker: Broker, device: str, role: str, *, host: str = "127.0.0.1",
                ca_file: Path | None = None, port: int | None = None) -> config.Config:
    path.write_text(f"""
[device]
id = "{device}"
role = "{role}"

[mqtt]
host = "{host}"
port = {port or broker.tls_port}
password_file = "{broker.creds[device].password_file}"
tls = true
ca_file = "{ca_file or broker.tls_dir / 'ca.crt'}"
keepalive_s = 5
reconnect_max_s = 1
""", encoding="utf-8")
    return config.load(path)


def started(bus: Bus) -> Bus:
    bus.start()
    return bus


# ------------------------------------------------------------ over TLS
def test_a_device_that_trusts_the_store_ca_connects_over_tls_and_exchanges_a_message(store, tmp_path):
    got = []
    monitor = started(bus_from_config(device_toml(tmp_path / "monitor.toml", store, "monitor-1", "monitor")))
    kiosk = bus_from_config(device_toml(tmp_path / "kiosk.toml", store, "kiosk-1", "kiosk"))
    try:
        assert monitor.wait_connected(10), monitor.last_refusal
        monitor.subscribe(topics.presence("kiosk-1"), got.append)
        kiosk.start()
        assert kiosk.wait_connected(10), kiosk.last_refusal
        kiosk.announce()  # a retained "online", acknowledged by the broker
        wait(lambda: any(b'"online"' in m.payload for m in got), 10, "the kiosk's presence over TLS")
        assert kiosk.tls_failures == 0 and monitor.tls_failures == 0
    finally:
        kiosk.stop()
        monitor.stop()
    log = store.log_path.read_text()
    assert f"on port {store.tls_port}" in log and "as kiosk-1" in log


def refused_over_tls(cfg: config.Config, *, host: str | None = None) -> Bus:
    bus = Bus(device=cfg.device.id, role=cfg.device.role, host=host or cfg.mqtt.host, port=cfg.mqtt.port,
              username=cfg.mqtt_username(), password=cfg.mqtt_password(), reconnect_max_s=1,
              tls=True, ca_file=cfg.mqtt_ca_file())
    bus.start()
    try:
        wait(lambda: bus.tls_failures >= 1, 10, "a refused TLS handshake")
        assert not bus.connected
    finally:
        bus.stop()
    return bus


def test_a_device_with_another_stores_ca_is_refused(store, tmp_path, other_ca):
    cfg = device_toml(tmp_path / "kiosk.toml", store, "kiosk-1", "kiosk", ca_file=other_ca)
    bus = refused_over_tls(cfg)
    assert bus.last_refusal.startswith("certificate verify failed"), bus.last_refusal
    assert ("self-signed certificate in certificate chain" in bus.last_refusal
            or "unable to get local issuer certificate" in bus.last_refusal), bus.last_refusal


def test_a_broker_reached_by_a_name_its_certificate_lacks_is_refused(store, tmp_path):
    # 127.0.0.2 reaches the same broker (its TLS listener is on every
    # address) but is not in the certificate: someone else's machine, for
    # all the device knows.
    cfg = device_toml(tmp_path / "kiosk.toml", store, "kiosk-1", "kiosk", host="127.0.0.2")
    bus = refused_over_tls(cfg)
    assert bus.last_refusal.startswith("certificate verify failed"), bus.last_refusal
    assert "Hostname mismatch" in bus.last_refusal or "IP address mismatch" in bus.last_refusal


def test_a_client_without_tls_on_the_tls_port_is_refused(store):
    c = store.creds["kiosk-1"]
    assert mqtt_connect_rc("127.0.0.1", store.port, c.username, c.password) == 0  # the password is right
    assert mqtt_connect_rc("127.0.0.1", store.tls_port, c.username, c.password) is None  # no CONNACK, ever
    wait(lambda: "wrong version number" in store.log_path.read_text() or "Protocol error" in store.log_path.read_text(),
         5, "the broker's line about the plain client")


# ------------------------------------------------------------ the plain listener
def _listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            addr, p = f[1].split(":")
            if f[3] == "0A" and int(p, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(addr)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    b = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, b))
    return found


def test_the_plain_listener_is_bound_to_127_0_0_1_only(store):
    assert _listening(store.port) == {"127.0.0.1"}
    assert "0.0.0.0" in _listening(store.tls_port)
    # Another address of this machine reaches the TLS port, never the plain one.
    with socket.create_connection(("127.0.0.2", store.tls_port), timeout=2):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", store.port), timeout=2).close()
    # The store's own config says so, and a config that opened plain MQTT to
    # the network could not even be rendered for a test broker.
    conf = brokerconf.MOSQUITTO_CONF.read_text().splitlines()
    assert [line for line in conf if line.startswith("listener")] == ["listener 1883 127.0.0.1", "listener 8883"]


def test_a_config_with_plain_mqtt_on_the_network_is_not_rendered(tmp_path, monkeypatch):
    opened = tmp_path / "mosquitto.conf"
    opened.write_text(brokerconf.MOSQUITTO_CONF.read_text().replace("listener 1883 127.0.0.1", "listener 1883"))
    monkeypatch.setattr(brokerconf, "MOSQUITTO_CONF", opened)
    with pytest.raises(BrokerError, match="must bind 127.0.0.1 only"):
        render_private_conf(1883, tmp_path)


def test_a_broker_asked_for_tls_without_its_files_says_which_are_missing(tmp_path):
    with pytest.raises(BrokerError, match="needs ca.crt, server.crt, server.key in"):
        Broker(tmp_path / "b", tls=True).start()


# ------------------------------------------------------------ device configs
MINIMAL = '[device]\nid = "kiosk-1"\nrole = "kiosk"\n'


def refusal(text: str) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as exc:
        config.parse(text, "/etc/restobox/kiosk.toml")
    return exc.value


def test_a_device_config_that_would_send_its_password_in_plain_text_over_the_network_is_refused():
    e = refusal(MINIMAL + '[mqtt]\nhost = "192.168.1.10"\nport = 1883\n')
    assert e.reason == "mqtt_plain_to_network"
    assert "'192.168.1.10' is another machine" in str(e) and "plain text" in str(e)
    assert "tls = true" in str(e) and "allow_plain_network = true" in str(e)
    assert str(e).endswith("[mqtt_plain_to_network]")
    # this machine needs no TLS; a developer's network may say it allows plain
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.53"):
        assert not config.parse(MINIMAL + f'[mqtt]\nhost = "{host}"\n').mqtt.tls
    assert config.parse(MINIMAL + '[mqtt]\nhost = "hub.local"\nallow_plain_network = true\n').mqtt.host == "hub.local"


def test_tls_settings_that_cannot_work_are_refused_with_a_reason(tmp_path):
    e = refusal(MINIMAL + '[mqtt]\nhost = "hub.local"\nport = 8883\ntls = true\n')
    assert e.reason == "mqtt_tls_without_ca" and "needs ca_file" in str(e)
    e = refusal(MINIMAL + '[mqtt]\nca_file = "/etc/restobox/store-ca.crt"\n')
    assert e.reason == "mqtt_ca_without_tls"

    tls = MINIMAL + '[mqtt]\nhost = "hub.local"\nport = 8883\ntls = true\nca_file = "{}"\n'
    cfg = config.parse(tls.format(tmp_path / "nowhere.crt"))
    with pytest.raises(config.ConfigError) as exc:
        bus_from_config(cfg)
    assert exc.value.reason == "mqtt_ca_missing" and "nowhere.crt ([mqtt] ca_file) does not exist" in str(exc.value)
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")
    with pytest.raises(config.ConfigError) as exc:
        config.parse(tls.format(junk)).mqtt_ca_file()
    assert exc.value.reason == "mqtt_ca_unusable" and "PEM certificate" in str(exc.value)


# ------------------------------------------------------------ enrollment
def test_add_device_hands_out_the_tls_port_and_the_store_ca_and_they_connect(store, tmp_path):
    from restobox import staff

    cfg = config.parse(f"""
[device]
id = "staff-1"
role = "staff"

[mqtt]
port = {store.port}
password_file = "{store.creds['staff-1'].password_file}"

[staff]
broker_dir = "{store.dir}"
broker_pid_file = "{store.pid_file}"
enroll_dir = "{tmp_path / 'enroll'}"
hub_address = "127.0.0.1"
broker_tls_port = {store.tls_port}
""")
    console = Console(file=open(tmp_path / "out.txt", "w"), width=200)
    assert staff.cmd_add_device(cfg, console, "kiosk-7", "kiosk", None, False, None) == 0
    folder = tmp_path / "enroll" / "kiosk-7"
    conf = dict(line.split("=", 1) for line in (folder / "restobox-device.conf").read_text().splitlines())
    assert (conf["RESTOBOX_HUB_HOST"], conf["RESTOBOX_HUB_PORT"]) == ("127.0.0.1", str(store.tls_port))
    assert (folder / "store-ca.crt").read_bytes() == (store.tls_dir / "ca.crt").read_bytes()
    bus = Bus(device="kiosk-7", role="kiosk", host=conf["RESTOBOX_HUB_HOST"], port=int(conf["RESTOBOX_HUB_PORT"]),
              username="kiosk-7", password=(folder / "kiosk-7.secret").read_text().strip(),
              tls=True, ca_file=str(folder / "store-ca.crt"))
    bus.start()
    try:
        assert bus.wait_connected(10), bus.last_refusal
    finally:
        bus.stop()

    # an address the broker's certificate does not name is not handed out
    lan = msgspec_replace(cfg, hub_address="192.168.77.5")
    with pytest.raises(staff.StaffError, match="does not name 192.168.77.5"):
        staff.cmd_add_device(lan, console, "kiosk-8", "kiosk", None, False, None)
    assert not (store.dir / "credentials" / "kiosk-8.secret").exists()


def msgspec_replace(cfg: config.Config, **staff_fields) -> config.Config:
    import msgspec

    return msgspec.structs.replace(cfg, staff=msgspec.structs.replace(cfg.staff, **staff_fields))
