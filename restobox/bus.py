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
- TLS to the store broker (``tls=True``): the broker's certificate must be
  signed by the store CA (``ca_file``) and name the host connected to, or the
  connection is refused, counted in ``tls_failures`` and said in
  ``last_refusal`` (docs/operations.md, "TLS on the store network").
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
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


REFUSAL_LOG_FIRST = 5
"""Refusals of one reason logged one by one before they are only summed up."""
REFUSAL_LOG_EVERY_S = 60.0
"""After the first few: one line per reason at most this often, with the count."""


class _RefusalLog:
    """Log the first few refusals of each reason, then one line a minute with
    how many more came: a device that sends 100,000 bad messages must not
    fill the SD card with the log. Every refusal is still counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], list] = {}  # (logger, reason) -> [total, last summary, since]

    def warn(self, logger: logging.Logger, reason: str, msg: str, *args, exc_info: bool = False,
             level: int = logging.WARNING) -> None:
        now = time.monotonic()
        with self._lock:
            st = self._seen.setdefault((logger.name, reason), [0, now, 0])
            st[0] += 1
            if st[0] <= REFUSAL_LOG_FIRST:
                line, more = msg, st[0] == REFUSAL_LOG_FIRST
            else:
                st[2] += 1
                if now - st[1] < REFUSAL_LOG_EVERY_S:
                    return
                line, more = None, False
                n, st[1], st[2] = st[2], now, 0
        if line is not None:
            logger.log(level, line, *args, exc_info=exc_info)
            if more:
                logger.log(level, "(more of %s are summed up once a minute)", reason)
        else:
            logger.log(level, "%d more of %s in the last minute (%d in all)", n, reason, st[0])


refusal_log = _RefusalLog()


def refused(topic: str, reason: str, detail: str = "", counts: dict[str, int] | None = None, *,
            logger: logging.Logger | None = None) -> None:
    """Count a message that is not used (``counts[reason]``) and log why,
    rate-limited (:class:`_RefusalLog`). For refusals at the boundary
    (:func:`decode_or_none`) and after it (values a receiver cannot use)."""
    if counts is not None:
        counts[reason] = counts.get(reason, 0) + 1
    refusal_log.warn(logger or log, f"the refusals for {reason}", "ignored a message on %s: %s%s", topic[:200], reason,
                     f": {detail[:300]}" if detail else "")


def decode_or_none(m: Incoming, type_, rejected: dict[str, int] | None = None, **kw):
    """The message decoded, or None after logging why (rate-limited) and
    counting the reason in ``rejected``: what does not decode never reaches
    a screen. Never raises (contract.decode raises only a Rejection)."""
    try:
        return contract.decode(m.payload, type_, **kw)
    except contract.Rejection as r:
        refused(m.topic, r.reason, r.detail, rejected)
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
        tls: bool = False,
        ca_file: str | None = None,
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
        #: messages whose handler raised (logged, acknowledged, never into paho's thread)
        self.handler_errors = 0
        #: connection attempts that failed in TLS (certificate not trusted, wrong name, no TLS there)
        self.tls_failures = 0
        self.tls = tls
        self.on_connection_change: Callable[[bool, str], None] | None = None

        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=device,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
        if username is not None:
            c.username_pw_set(username, password)
        if tls:
            if not ca_file:
                raise ValueError("tls needs ca_file: the store CA's certificate")
            # CERT_REQUIRED against the store CA only (not the system's CAs);
            # PROTOCOL_TLS_CLIENT also checks that the certificate names
            # ``host`` (paho leaves tls_insecure off).
            c.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
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
        c.on_connect_fail = self._on_connect_fail
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
        name = getattr(handler, "__qualname__", type(handler).__name__)

        def cb(client, userdata, msg):
            inc = None
            try:
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
                handler(inc)
            except Exception as exc:
                # Never into paho's thread (it would stop the network loop).
                # Logged with its traceback the first few times, then summed
                # up: a message that crashes a handler may come 100,000 times.
                self.handler_errors += 1
                refusal_log.warn(log, f"the failures of {name}", "handler for %s failed: %r", msg.topic, exc,
                                 exc_info=True, level=logging.ERROR)
                # A message that crashed its handler is still acknowledged:
                # redelivering it would crash again.
                if self.manual_ack:
                    if inc is not None:
                        self.ack(inc)
                    elif msg.qos > 0:
                        client.ack(msg.mid, msg.qos)

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

    def _on_connect_fail(self, client, userdata):
        # paho calls this from inside its ``except OSError`` around the
        # connect, so the exception is the one being handled.
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError) or (self.tls and isinstance(exc, (ConnectionResetError, EOFError))):
            self.tls_failures += 1
            if isinstance(exc, ssl.SSLCertVerificationError):
                why = f"certificate verify failed: {exc.verify_message}"
            else:
                why = f"TLS failed: {getattr(exc, 'reason', None) or exc}"
            self.last_refusal = why
            refusal_log.warn(log, "the TLS failures", "broker %s:%s refused over TLS: %s", self.host, self.port,
                             why, level=logging.ERROR)

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
        tls=cfg.mqtt.tls,
        ca_file=cfg.mqtt_ca_file(),
    )
