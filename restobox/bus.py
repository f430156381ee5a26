"""The MQTT client every Restobox process uses. The only module that imports paho.

What it adds to paho:

- MQTT 5 with a persistent session (clean start off, a session expiry), so
  QoS 1 messages published while a device is away wait for it at the broker.
- Reconnect with backoff, and every subscription made again on each connect
  (as Home Assistant's MQTT client does): a broker restarted without its
  persistence file still serves us.
- Presence: a retained "offline" last will, and a retained "online" that is
  published only once the owner calls :meth:`announce` (ready), and again
  after each reconnect.
- Optional manual acknowledgement: the hub acknowledges a message only after
  its transaction committed, so a message it had not stored when it was
  killed is delivered again (MQTT 5 §4.4: unacknowledged QoS 1 PUBLISH packets
  are re-sent when the session resumes).
- Exceptions in handlers are logged with a traceback, never swallowed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from restobox import contract
from restobox.contract import Presence, topics

log = logging.getLogger("restobox.bus")


@dataclass(slots=True)
class Incoming:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    correlation: bytes | None = None
    response_topic: str | None = None
    received: float = field(default_factory=time.monotonic)


Handler = Callable[[Incoming], None]


def decode_or_none(m: Incoming, type_, rejected: dict[str, int] | None = None, **kw):
    """The message decoded, or None after logging why (and counting the
    reason in ``rejected``): what does not decode never reaches a screen."""
    try:
        return contract.decode(m.payload, type_, **kw)
    except contract.Rejection as r:
        if rejected is not None:
            rejected[r.reason] = rejected.get(r.reason, 0) + 1
        log.warning("ignored a message on %s: %s", m.topic, r)
        return None


class PublishError(Exception):
    pass


def _no_delay(client, userdata, sock) -> None:
    # paho leaves Nagle's algorithm on; with the peer's delayed ACK a small
    # PUBLISH written right after another (a PUBACK, then a reply) waits
    # ~40 ms. A store bus is all small messages: send each at once.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a unix socket)
        pass


def _now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Bus:
    def __init__(
        self,
        *,
        device: str,
        role: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 15,
        session_expiry_s: int = 7 * 86_400,
        persistent: bool = True,
        manual_ack: bool = False,
        reconnect_max_s: float = 10.0,
        max_inflight: int = 100,
    ) -> None:
        self.device = device
        self.role = role
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.session_expiry_s = session_expiry_s
        self.persistent = persistent
        self.manual_ack = manual_ack
        self._subs: dict[str, tuple[int, Handler]] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._announced = False
        self._stopping = False
        self.last_refusal: str | None = None
        self.connects = 0
        self.on_connection_change: Callable[[bool, str], None] | None = None

        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=device,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
        if username is not None:
            c.username_pw_set(username, password)
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)  # unlimited: the caller's outbox bounds it
        c.reconnect_delay_set(min_delay=1, max_delay=max(1, int(reconnect_max_s)))
        c.will_set(
            topics.presence(device),
            contract.encode(Presence(device=device, role=role, state="offline")),
            qos=1,
            retain=True,
        )
        c.on_socket_open = _no_delay
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.suppress_exceptions = False
        self._client = c

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Connect in the background; reconnects forever until stop()."""
        props = Properties(PacketTypes.CONNECT)
        if self.persistent:
            props.SessionExpiryInterval = self.session_expiry_s
        self._client.connect_async(
            self.host,
            self.port,
            keepalive=self.keepalive,
            clean_start=not self.persistent,
            properties=props,
        )
        self._client.loop_start()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def network_alive(self) -> bool:
        """paho's network thread (``loop_start``) is running. paho keeps it
        in ``_thread``; it has no public way to ask."""
        t = getattr(self._client, "_thread", None)
        return t is not None and t.is_alive()

    def announce(self) -> None:
        """Say "online" (retained), now and after every reconnect."""
        self._announced = True
        if self.connected:
            self._publish_presence("online")

    def stop(self, timeout: float = 3.0) -> None:
        """Publish "offline", disconnect cleanly, stop the network thread."""
        self._stopping = True
        if self.connected and self._announced:
            try:
                self._publish_presence("offline").wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        self._connected.clear()

    # ------------------------------------------------------------- subscribe
    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        with self._lock:
            self._subs[topic_filter] = (qos, handler)
        self._client.message_callback_add(topic_filter, self._wrap(handler))
        if self.connected:
            self._client.subscribe(topic_filter, qos=qos)

    def _wrap(self, handler: Handler):
        def cb(client, userdata, msg):
            props = getattr(msg, "properties", None)
            inc = Incoming(
                topic=msg.topic,
                payload=msg.payload,
                qos=msg.qos,
                retain=bool(msg.retain),
                mid=msg.mid,
                correlation=getattr(props, "CorrelationData", None) if props else None,
                response_topic=getattr(props, "ResponseTopic", None) if props else None,
            )
            try:
                handler(inc)
            except Exception:
                log.exception("handler for %s failed", msg.topic)
                # A message that crashed its handler is still acknowledged:
                # redelivering it would crash again.
                if self.manual_ack:
                    self.ack(inc)

        return cb

    def ack(self, inc: Incoming) -> None:
        if self.manual_ack and inc.qos > 0:
            self._client.ack(inc.mid, inc.qos)

    # --------------------------------------------------------------- publish
    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        correlation: bytes | None = None,
        response_topic: str | None = None,
    ) -> mqtt.MQTTMessageInfo:
        props = None
        if correlation is not None or response_topic is not None:
            props = Properties(PacketTypes.PUBLISH)
            if correlation is not None:
                props.CorrelationData = correlation
            if response_topic is not None:
                props.ResponseTopic = response_topic
        return self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)

    def publish_wait(self, topic: str, payload: bytes, *, timeout: float = 5.0, **kw) -> None:
        """Publish and wait for the broker's PUBACK; raise PublishError if it
        does not come or the broker refuses."""
        info = self.publish(topic, payload, **kw)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise PublishError(f"{topic}: {exc}") from None
        if not info.is_published():
            raise PublishError(f"{topic}: no acknowledgement from the broker within {timeout} s")
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"{topic}: {mqtt.error_string(info.rc)}")

    # ------------------------------------------------------------- internals
    def _publish_presence(self, state: str) -> mqtt.MQTTMessageInfo:
        p = Presence(device=self.device, role=self.role, state=state, at=_now_iso())
        return self.publish(topics.presence(self.device), contract.encode(p), retain=True)

    def _on_connect(self, client, userdata, flags, reason_code: ReasonCode, properties):
        if reason_code.is_failure:
            self.last_refusal = str(reason_code)
            log.error("broker %s:%s refused %s: %s", self.host, self.port, self.device, reason_code)
            return
        self.connects += 1
        self.last_refusal = None
        with self._lock:
            subs = [(t, q) for t, (q, _) in self._subs.items()]
        if subs:
            client.subscribe([(t, q) for t, q in subs])
        self._connected.set()
        log.info(
            "connected to %s:%s as %s (session present: %s)",
            self.host, self.port, self.device, flags.session_present,
        )
        if self._announced:
            self._publish_presence("online")
        if self.on_connection_change:
            self.on_connection_change(True, "connected")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        was = self._connected.is_set()
        self._connected.clear()
        if not self._stopping:
            log.warning("lost the broker %s:%s: %s; reconnecting", self.host, self.port, reason_code)
        if was and self.on_connection_change:
            self.on_connection_change(False, str(reason_code))

    def _on_message(self, client, userdata, msg):
        # Only reached for topics no handler matches (should not happen).
        log.warning("message on %s with no handler", msg.topic)
        if self.manual_ack:
            client.ack(msg.mid, msg.qos)


def bus_from_config(cfg, *, manual_ack: bool = False) -> Bus:
    """A Bus for the device described by a restobox.config.Config."""
    return Bus(
        device=cfg.device.id,
        role=cfg.device.role,
        host=cfg.mqtt.host,
        port=cfg.mqtt.port,
        username=cfg.mqtt_username(),
        password=cfg.mqtt_password(),
        keepalive=cfg.mqtt.keepalive_s,
        session_expiry_s=cfg.mqtt.session_expiry_s,
        manual_ack=manual_ack,
        reconnect_max_s=cfg.mqtt.reconnect_max_s,
    )
