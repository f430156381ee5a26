"""Private mosquitto instances running the project's own broker config.

Tests, the demo and the benchmarks start a real mosquitto from
``restobox/broker_config/mosquitto.conf``, with devices made by the real
``restobox/broker_config/restobox-broker-user`` script. Only the listeners, the file
locations and the log are moved into a private state directory (the TLS
listener only for a broker asked to run it); security
(auth required, ACLs) and limits stay exactly as the store runs them.

Standard library only: this module must not import paho (only bus.py does).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

BROKER_CONFIG_DIR = Path(__file__).resolve().parent / "broker_config"
MOSQUITTO_CONF = BROKER_CONFIG_DIR / "mosquitto.conf"
BROKER_USER_SCRIPT = BROKER_CONFIG_DIR / "restobox-broker-user"

STANDARD_DEVICES: list[tuple[str, str, str | None]] = [
    ("hub", "hub", None),
    ("kiosk-1", "kiosk", None),
    ("kiosk-2", "kiosk", None),
    ("kds-wok-1", "kds", "wok"),
    ("kds-fryer-1", "kds", "fryer"),
    ("kds-drinks-1", "kds", "drinks"),
    ("expo-1", "expo", "expo"),
    ("board-1", "board", None),
    ("staff-1", "staff", None),
    ("counter-1", "counter", None),
    ("counter-2", "counter", None),
    ("monitor-1", "monitor", None),
    ("printing", "printing", None),
    ("sync", "sync", None),
    ("web", "web", None),
]

START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
# How long add_device waits for a reloaded broker to accept the new device.
RELOAD_TIMEOUT_S = 5.0


class BrokerError(RuntimeError):
    """The private broker could not be started, reloaded or configured."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    password_file: Path
    """The device's secret file (DIR/credentials/NAME.secret, one line), as a
    device config's ``mqtt.password_file`` expects."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TLS_FILES = ("ca.crt", "server.crt", "server.key")
"""What a broker with TLS needs in its ``tls/`` directory, as the hub has them
in /etc/restobox/broker/tls (firmware_scripts/lib/common.sh, ensure_store_tls)."""


def render_private_conf(port: int, state_dir: Path, bind: str = "127.0.0.1", *, tls_port: int | None = None,
                        tls_bind: str | None = None) -> str:
    """The project's mosquitto.conf, rewritten for a private instance.

    Rewritten: the plain listener (``port`` on ``bind``), the TLS listener
    (``tls_port`` on ``tls_bind``, default ``bind``, with cafile, certfile and
    keyfile from ``state_dir/tls``; without ``tls_port`` that listener is left
    out), password_file, acl_file and persistence_location (inside
    ``state_dir``), logging (to ``state_dir/mosquitto.log``), the
    privilege-drop user (root stays root) and the pid file (none; ``Broker``
    writes its own). Every other line is kept verbatim, and a directive the
    rewrite expects but does not find is an error, so the tests cannot
    silently drift from the real config. The store's plain listener must
    bind 127.0.0.1 only: a config that opens it to the LAN is refused here.
    """
    state_dir = Path(state_dir).resolve()
    if any(c.isspace() for c in str(state_dir)):
        # mosquitto.conf has no quoting.
        raise ValueError(f"state_dir must not contain whitespace: {state_dir}")
    tls_dir = state_dir / "tls"
    tls = tls_port is not None
    replacements = {
        "password_file": f"password_file {state_dir / 'passwd'}",
        "acl_file": f"acl_file {state_dir / 'acl'}",
        "persistence_location": f"persistence_location {state_dir}/",
        "log_dest": f"log_dest file {state_dir / 'mosquitto.log'}",
        # The store's journald adds timestamps; a plain log file needs them.
        "log_timestamp": "log_timestamp true\nlog_timestamp_format %Y-%m-%dT%H:%M:%S",
        # Started as root, mosquitto 2.0 drops to `user` before it reads
        # passwd and acl, and could not read a root-owned state dir; as
        # another user the option is ignored.
        "user": "user root" if os.geteuid() == 0 else None,
        # The store's /run path is not ours; Broker writes state_dir/mosquitto.pid.
        "pid_file": None,
        "cafile": f"cafile {tls_dir / 'ca.crt'}" if tls else None,
        "certfile": f"certfile {tls_dir / 'server.crt'}" if tls else None,
        "keyfile": f"keyfile {tls_dir / 'server.key'}" if tls else None,
    }
    tls_keys = {"cafile", "certfile", "keyfile"}
    # log_dest may repeat (several destinations); only the first is replaced.
    repeatable_drop = {"log_dest"}
    seen: set[str] = set()
    listeners = 0
    skipping = False  # inside the TLS listener's block of a broker without TLS
    out: list[str] = []
    for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        words = line.split()
        key = words[0] if words and not words[0].startswith("#") else None
        if key == "listener":
            listeners += 1
            if listeners == 1:
                if words[2:] != ["127.0.0.1"]:
                    raise BrokerError(f"{MOSQUITTO_CONF}: the first (plain) listener must bind 127.0.0.1 only, "
                                      f"not {line.strip()!r}: plain MQTT is for the hub's own services")
                out.append(f"listener {port} {bind}")
            elif listeners == 2:
                skipping = not tls
                if tls:
                    out.append(f"listener {tls_port} {tls_bind or bind}")
            else:
                raise BrokerError(f"{MOSQUITTO_CONF} has more than two listeners; update render_private_conf")
            continue
        if skipping:
            if key is None:
                out.append(line)
            continue
        if key not in replacements:
            out.append(line)
            continue
        if key in tls_keys and listeners != 2:
            raise BrokerError(f"{MOSQUITTO_CONF}: {key} outside the TLS listener; update render_private_conf")
        if key in seen:
            if key in repeatable_drop:
                continue
            raise BrokerError(f"{MOSQUITTO_CONF}: {key} appears more than once; private rendering supports one")
        seen.add(key)
        if replacements[key] is not None:
            out.append(replacements[key])
    expected = set(replacements) if tls else set(replacements) - tls_keys
    missing = expected - seen
    if listeners != 2:
        missing.add("a plain and a TLS listener")
    if missing:
        raise BrokerError(f"{MOSQUITTO_CONF} lacks {', '.join(sorted(missing))}; update render_private_conf")
    return "\n".join(out) + "\n"


def terminate(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait, SIGKILL if it does not stop: never leave it behind."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Broker:
    """A private mosquitto using the project's config, in ``state_dir``.

    Use as a context manager, or ``start()``/``stop()``. Devices added before
    ``start()`` need no reload; devices added while running are usable when
    ``add_device`` returns.

    With ``tls=True`` it also runs the store's TLS listener on ``tls_port``
    (a free one by default) bound to ``tls_bind`` (default ``bind``), with
    the CA certificate, the server certificate and its key that must be in
    ``state_dir/tls`` (:data:`TLS_FILES`) before ``start()``, as on the hub.
    """

    def __init__(self, state_dir: Path, port: int | None = None, bind: str = "127.0.0.1", *, tls: bool = False,
                 tls_port: int | None = None, tls_bind: str | None = None) -> None:
        self._mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
        if self._mosquitto is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self._dir = Path(state_dir).resolve()
        # An automatically chosen port may be replaced if it turns out taken
        # at the first start; after that it is the broker's address and fixed.
        self._port_fixed = port is not None
        self._port = port if port is not None else free_port()
        self._bind = bind
        self._tls = tls
        self._tls_port = (tls_port if tls_port is not None else free_port()) if tls else None
        self._tls_bind = tls_bind or bind
        self._tls_port_fixed = tls_port is not None
        self._proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None
        self.creds: dict[str, Credentials] = {}

    # -- properties -------------------------------------------------------

    @property
    def host(self) -> str:
        return self._bind

    @property
    def port(self) -> int:
        return self._port

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port, or None for a broker without TLS."""
        return self._tls_port

    @property
    def tls_bind(self) -> str | None:
        return self._tls_bind if self._tls else None

    @property
    def tls_dir(self) -> Path:
        """ca.crt, server.crt, server.key (as /etc/restobox/broker/tls on the hub)."""
        return self._dir / "tls"

    @property
    def dir(self) -> Path:
        return self._dir

    @property
    def conf_path(self) -> Path:
        return self._dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    @property
    def pid_file(self) -> Path:
        """Written by us (the rendered conf has no pid_file); the
        restobox-broker-user script signals this pid to reload."""
        return self._dir / "mosquitto.pid"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> Broker:
        """Start mosquitto; return once it answers MQTT on the port (≤ 5 s)."""
        if self.running:
            raise BrokerError("broker already running")
        self._dir.mkdir(parents=True, exist_ok=True)
        self._ensure_security_files()
        if self._tls:
            missing = [f for f in TLS_FILES if not (self.tls_dir / f).is_file()]
            if missing:
                raise BrokerError(f"a broker with TLS needs {', '.join(missing)} in {self.tls_dir}")
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            try:
                self._start_once()
                break
            except _PortInUse:
                if attempt == attempts - 1:
                    raise BrokerError(f"port {self._port} on {self._bind} is in use") from None
                # Taken between free_port() and mosquitto's bind.
                self._port = free_port()
                if self._tls and not self._tls_port_fixed:
                    self._tls_port = free_port()
        self._port_fixed = True
        return self

    def _start_once(self) -> None:
        self.conf_path.write_text(render_private_conf(
            self._port, self._dir, self._bind, tls_port=self._tls_port, tls_bind=self._tls_bind), encoding="utf-8")
        # Errors before the log file is open (a bad config) go to stderr.
        with open(self._dir / "mosquitto.stderr", "ab") as err:
            proc = subprocess.Popen(
                [self._mosquitto, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
            )
        self._proc = proc
        # Never leave a broker behind, even if stop() is never called.
        self._finalizer = weakref.finalize(self, terminate, proc)
        self.pid_file.write_text(f"{proc.pid}\n", encoding="utf-8")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers_mqtt():
            if proc.poll() is not None:
                self._forget_process()
                tail = self._log_tail()
                if "Address already in use" in tail and not self._port_fixed:
                    raise _PortInUse()
                raise BrokerError(f"mosquitto exited with status {proc.returncode} while starting:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(
                    f"mosquitto did not accept connections on {self._bind}:{self._port} "
                    f"within {START_TIMEOUT_S:.0f} s:\n{self._log_tail()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Graceful stop (SIGTERM; SIGKILL after 5 s) and wait for the process."""
        if self._proc is not None:
            terminate(self._proc)
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL, as in a power cut: nothing saved since the last autosave."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._forget_process()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same state."""
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads passwd and acl."""
        if self._proc is None or self._proc.poll() is not None:
            raise BrokerError("broker is not running")
        self._proc.send_signal(signal.SIGHUP)

    def __enter__(self) -> Broker:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_with_devices(self, devices: Iterable[tuple[str, str, str | None]] = STANDARD_DEVICES) -> Broker:
        """Add ``devices`` (name, role, station) before starting, so no reload
        is needed, then start. Credentials are in ``creds``; returns self."""
        if self.running:
            raise BrokerError("start_with_devices needs a stopped broker; use add_device on a running one")
        for name, role, station in devices:
            self.add_device(name, role, station)
        return self.start()

    # -- devices ------------------------------------------------------------

    def add_device(self, name: str, role: str, station: str | None = None) -> Credentials:
        """Run ``restobox-broker-user add`` (which SIGHUPs a running broker).

        Adding an existing device rotates its password. On a running broker
        this returns once the reload has taken effect: a new device's
        credentials are accepted, or a rotated device's old password refused.
        """
        old = self._stored_credentials(name)
        args = ["add", name, role]
        if station is not None:
            args += ["--station", station]
        self.run_user_script(*args)
        creds = self._stored_credentials(name)
        if creds is None:
            raise BrokerError(f"restobox-broker-user add {name} wrote no credentials")
        self.creds[name] = creds
        if self.running:
            if old is None:
                # Nobody can hold a session under a name that had no
                # credentials, so a clean-start probe disturbs nothing.
                self._wait_until(lambda: self._connect_rc(creds) == 0, f"accept new device {name}")
            else:
                # Probe with the old password: refused at authentication,
                # before the broker touches the device's session.
                self._wait_until(lambda: self._connect_rc(old) not in (0, None), f"refuse the old password of {name}")
        return creds

    def remove_device(self, name: str) -> None:
        """Run ``restobox-broker-user remove``; on a running broker, return
        once the broker refuses the device."""
        old = self._stored_credentials(name)
        self.creds.pop(name, None)
        self.run_user_script("remove", name)
        if self.running and old is not None:
            self._wait_until(lambda: self._connect_rc(old) not in (0, None), f"refuse removed device {name}")

    def run_user_script(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run restobox/broker_config/restobox-broker-user on this broker's directory
        (with ``--pid-file`` while running, so the script reloads it)."""
        cmd = [str(BROKER_USER_SCRIPT), *args, "--dir", str(self._dir)]
        if self.running:
            cmd += ["--pid-file", str(self.pid_file)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise BrokerError(f"{' '.join(cmd)} failed with status {result.returncode}:\n{result.stderr}")
        return result

    # -- internals ----------------------------------------------------------

    def _stored_credentials(self, name: str) -> Credentials | None:
        secret = self._dir / "credentials" / f"{name}.secret"
        try:
            password = secret.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return Credentials(name, password, secret)

    def _forget_process(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        self._proc = None
        self._finalizer = None
        self.pid_file.unlink(missing_ok=True)

    def _ensure_security_files(self) -> None:
        # mosquitto will not start without the files its config names; an
        # instance with no devices yet gets an empty passwd and the ACL header.
        passwd = self._dir / "passwd"
        if not passwd.exists():
            passwd.touch(mode=0o640)
        acl = self._dir / "acl"
        if not acl.exists():
            shutil.copyfile(BROKER_CONFIG_DIR / "acl.base", acl)

    def _answers_mqtt(self) -> bool:
        # A CONNACK (any reason code) proves mosquitto itself is serving the
        # port; an open TCP port alone could be someone else's socket.
        return mqtt_connect_rc(self._bind, self._port, "restobox-startup-probe", "-", timeout=0.5) is not None

    def _connect_rc(self, creds: Credentials) -> int | None:
        return mqtt_connect_rc(self._bind, self._port, creds.username, creds.password)

    def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        # mosquitto handles SIGHUP in its main loop; poll with backoff rather
        # than sleeping a guessed time.
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        delay = 0.005
        while not condition():
            if not self.running:
                raise BrokerError(f"mosquitto exited while reloading:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the broker did not {what} within {RELOAD_TIMEOUT_S:.0f} s of the reload:\n{self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _log_tail(self, lines: int = 20) -> str:
        parts = []
        for path in (self._dir / "mosquitto.stderr", self.log_path):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log output)"


class _PortInUse(Exception):
    pass


# -- a bare MQTT CONNECT, so this module needs no paho (see docs/architecture.md) -------


def _encode_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return len(b).to_bytes(2, "big") + b


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def mqtt_connect_rc(host: str, port: int, username: str, password: str, timeout: float = 2.0) -> int | None:
    """The CONNACK reason code the broker gives an MQTT 5 CONNECT with these
    credentials (0 = accepted), or None if no CONNACK came back.

    Clean start, session expiry 0: an accepted probe leaves no session behind
    (but it does take over a session of the same client id, so never probe
    as a device that may be connected). MQTT 5.0 §3.1, §3.2.
    """
    flags = 0x80 | 0x40 | 0x02  # username, password, clean start
    variable = _encode_str("MQTT") + bytes([5, flags]) + (10).to_bytes(2, "big") + b"\x00"
    payload = _encode_str(username) + _encode_str(username) + _encode_str(password)
    body = variable + payload
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"\x10" + _encode_varint(len(body)) + body)
            if _read_exact(sock, 1) != b"\x20":
                return None
            length = multiplier = 0
            while True:
                byte = _read_exact(sock, 1)[0]
                length += (byte & 0x7F) * (128**multiplier)
                multiplier += 1
                if not byte & 0x80:
                    break
            header = _read_exact(sock, length)
            rc = header[1]
            if rc == 0:
                sock.sendall(b"\xe0\x00")  # DISCONNECT, normal disconnection
            return rc
    except (OSError, IndexError):
        return None
