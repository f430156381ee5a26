"""The store's devices on a LAN of their own: the hub, a kiosk and a kitchen
screen each in a network namespace, joined by links a test can make lossy,
slow, cut or flapping while it runs.

The LAN: each namespace (``rbx-<pid>-hub``, ``-kiosk``, ``-kds``: unique per
test session) has one interface, ``lan0``, on 10.77.0.0/24 (hub .1, kiosk .2,
kitchen screen .3). ``lan0`` is a TUN device; the other ends of the three
TUNs belong to :func:`wire`, a small switch in a process of its own that
forwards each IPv4 packet to the namespace that owns its destination and
applies each device's link: loss (a percentage, each packet drawn on its own,
both ways), delay (milliseconds each way, order kept) and a partition (every
packet lost, the interface still up: the devices must notice by themselves).
That is what ``tc qdisc ... netem`` does; this kernel is built without
sch_netem (CONFIG_NET_SCH_NETEM is not set: ``tc qdisc add ... netem`` answers
"Specified qdisc kind is unknown"), so the switch does it in user space.
A link going down and up is the kernel's own: ``ip link set lan0 down`` in the
device's namespace (:meth:`Lan.set_link`).

Processes run inside a namespace in two ways: a command line with
``ip netns exec <ns> <argv>`` (:meth:`Lan.exec_argv`), and the test helpers
that start their own processes (``Broker``, ``HubProcess``, ``ScreenProcess``,
a watching ``Device``) inside ``with lan.inside("hub"):``, which moves the
calling thread alone into the namespace (setns(2) acts on one thread; a child
process or thread started from it stays there) and back.

:meth:`Lan.close` always takes everything down: it stops the switch, ends
what still runs in the namespaces (only processes this session started can
be in them) and deletes them; namespaces left by a session that was killed
(its pid gone) are deleted when the next one starts.

Run as a module it is one of two programs: ``wire`` (the switch) and
``kiosk`` (the kiosk's real controller and kiosk.db, driven by JSON lines on
stdin, see :func:`kiosk_driver`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import heapq
import json
import os
import queue
import random
import re
import selectors
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROLES = ("hub", "kiosk", "kds")
SUBNET = "10.77.0"
ADDRESS = {"hub": f"{SUBNET}.1", "kiosk": f"{SUBNET}.2", "kds": f"{SUBNET}.3"}
IFNAME = "lan0"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class LanUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no ``ip``...)."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """Run the calling thread (and what it starts) in network namespace ``ns``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def remove_stale() -> list[str]:
    """Delete the namespaces of sessions that are gone (killed before their
    teardown); those of live sessions are theirs."""
    gone = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"rbx-(\d+)-(hub|kiosk|kds)", name)
        if m and not _pid_alive(int(m.group(1))):
            _ip("netns", "del", name, check=False)
            gone.append(name)
    return gone


class Lan:
    """Three namespaces and the switch between them. ``open()`` it, use it,
    ``close()`` it (always; :func:`lan` does)."""

    def __init__(self, workdir: Path, tag: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.prefix = f"rbx-{tag or os.getpid()}"
        self.ns = {role: f"{self.prefix}-{role}" for role in ROLES}
        self.address = dict(ADDRESS)
        self._wire: subprocess.Popen | None = None
        self._replies: queue.Queue[dict] = queue.Queue()
        self._made: list[str] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    def open(self) -> Lan:
        if os.geteuid() != 0:
            raise LanUnavailable("network namespaces need root (ip netns add)")
        if not os.path.exists("/dev/net/tun"):
            raise LanUnavailable("no /dev/net/tun: the LAN's interfaces are TUN devices")
        try:
            remove_stale()
            for role in ROLES:
                ns = self.ns[role]
                r = _ip("netns", "add", ns, check=False)
                if r.returncode != 0:
                    raise LanUnavailable(f"ip netns add {ns} is not permitted here: {r.stderr.strip()}")
                self._made.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
        except FileNotFoundError as exc:
            raise LanUnavailable(f"no ip command: {exc}") from None
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = [{"name": role, "ns": self.ns[role], "ip": self.address[role]} for role in ROLES]
        with open(self.workdir / "wire.log", "ab") as log:
            self._wire = subprocess.Popen([sys.executable, "-m", "tests.netns_support", "wire", json.dumps(ports)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
        threading.Thread(target=self._read_wire, name="wire-replies", daemon=True).start()
        self._answer("ready", 10)
        for role in ROLES:
            ns = self.ns[role]
            _ip("-n", ns, "addr", "add", f"{self.address[role]}/24", "dev", IFNAME)
            _ip("-n", ns, "link", "set", IFNAME, "up")
        return self

    def close(self) -> list[str]:
        """Stop the switch, end what runs in the namespaces, delete them.
        Returns what went wrong (never raises: it runs after failures)."""
        problems: list[str] = []
        if self._wire is not None and self._wire.poll() is None:
            self._wire.terminate()
            try:
                self._wire.wait(5)
            except subprocess.TimeoutExpired:
                self._wire.kill()
                self._wire.wait()
        for ns in self._made:
            # only this session's processes can be in its namespaces
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                problems.append(f"process {pid} was still running in {ns}")
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            r = _ip("netns", "del", ns, check=False)
            if r.returncode != 0:
                problems.append(f"ip netns del {ns}: {r.stderr.strip()}")
        self._made = []
        return problems

    def __enter__(self) -> Lan:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- running
    def inside(self, role: str):
        return inside(self.ns[role])

    def exec_argv(self, role: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role], *argv]

    # ---------------------------------------------------------------- links
    def impair(self, role: str, *, loss: float = 0.0, delay_ms: float = 0.0, cut: bool = False) -> dict:
        """Set ``role``'s link: ``loss`` percent of packets lost each way,
        ``delay_ms`` each way, ``cut``: every packet lost (a partition)."""
        return self._command({"cmd": "set", "port": role, "loss": loss, "delay_ms": delay_ms, "cut": cut})

    def heal(self) -> None:
        """Every link clean and up."""
        for role in ROLES:
            self.impair(role)
            self.set_link(role, True)

    def set_link(self, role: str, up: bool) -> None:
        """The device's interface down or up, as when its cable or Wi-Fi goes."""
        _ip("-n", self.ns[role], "link", "set", IFNAME, "up" if up else "down")

    def stats(self) -> dict:
        """Per device: packets forwarded, lost to the link's loss, lost to a cut."""
        return self._command({"cmd": "stats"})["stats"]

    def _command(self, cmd: dict) -> dict:
        with self._lock:
            assert self._wire is not None and self._wire.stdin is not None
            self._wire.stdin.write((json.dumps(cmd) + "\n").encode())
            self._wire.stdin.flush()
            return self._answer(cmd["cmd"], 5)

    def _read_wire(self) -> None:
        assert self._wire is not None and self._wire.stdout is not None
        for line in self._wire.stdout:
            self._replies.put(json.loads(line))
        self._replies.put({"error": "the switch has stopped; see wire.log"})

    def _answer(self, what: str, timeout: float) -> dict:
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"the switch did not answer {what!r} within {timeout} s") from None
        if "error" in reply:
            raise RuntimeError(f"the switch: {reply['error']} ({(self.workdir / 'wire.log').read_text()[-2000:]})")
        return reply


# =============================================================== the switch
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def _open_tun(ns: str, name: str) -> int:
    """A TUN device ``name`` made in namespace ``ns``; its fd (gone with us)."""
    with inside(ns):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def wire(ports: list[dict]) -> None:
    """The switch: forward IPv4 packets between the TUNs by destination,
    each device's link applied. Commands on stdin, one JSON line each
    (``set``, ``stats``); an answer on stdout for each."""
    rng = random.Random(int(os.environ.get("RESTOBOX_WIRE_SEED", "0")) or None)
    fds: dict[str, int] = {}
    by_ip: dict[bytes, str] = {}
    for p in ports:
        fds[p["name"]] = _open_tun(p["ns"], IFNAME)
        by_ip[bytes(int(x) for x in p["ip"].split("."))] = p["name"]
    link = {name: {"loss": 0.0, "delay_ms": 0.0, "cut": False} for name in fds}
    stats = {name: {"forwarded": 0, "lost": 0, "cut": 0, "down": 0} for name in fds}
    sel = selectors.DefaultSelector()
    for name, fd in fds.items():
        sel.register(fd, selectors.EVENT_READ, name)
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
    os.set_blocking(sys.stdin.fileno(), True)
    out = sys.stdout

    def say(d: dict) -> None:
        out.write(json.dumps(d) + "\n")
        out.flush()

    say({"ready": True})
    pending: list[tuple[float, int, str, bytes]] = []  # (due, seq, to, packet)
    seq = 0
    stdin_buf = b""
    while True:
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        for key, _ in sel.select(timeout):
            src = key.data
            if src is None:
                chunk = os.read(sys.stdin.fileno(), 65536)
                if not chunk:
                    return
                stdin_buf += chunk
                while b"\n" in stdin_buf:
                    line, stdin_buf = stdin_buf.split(b"\n", 1)
                    cmd = json.loads(line)
                    if cmd["cmd"] == "set":
                        link[cmd["port"]] = {"loss": float(cmd["loss"]), "delay_ms": float(cmd["delay_ms"]),
                                             "cut": bool(cmd["cut"])}
                        say({"ok": True, "link": link[cmd["port"]]})
                    elif cmd["cmd"] == "stats":
                        say({"ok": True, "stats": stats})
                    else:
                        say({"error": f"unknown command {cmd['cmd']!r}"})
                continue
            for _ in range(64):  # drain what is there, a bounded batch per device
                try:
                    pkt = os.read(fds[src], 65536)
                except BlockingIOError:
                    break
                except OSError:
                    break
                if len(pkt) < 20 or pkt[0] >> 4 != 4:
                    continue  # IPv6 router solicitations and the like: not on this LAN
                dst = by_ip.get(pkt[16:20])
                if dst is None or dst == src:
                    continue
                ends = (link[src], link[dst])
                if any(e["cut"] for e in ends):
                    stats[src if link[src]["cut"] else dst]["cut"] += 1
                    continue
                lost = next((n for n, e in zip((src, dst), ends) if e["loss"] and rng.random() * 100 < e["loss"]),
                            None)
                if lost is not None:
                    stats[lost]["lost"] += 1
                    continue
                delay = (ends[0]["delay_ms"] + ends[1]["delay_ms"]) / 1000
                seq += 1
                heapq.heappush(pending, (time.monotonic() + delay, seq, dst, pkt))
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, _, dst, pkt = heapq.heappop(pending)
            try:
                os.write(fds[dst], pkt)
                stats[dst]["forwarded"] += 1
            except OSError:  # the interface is down (EIO): the packet is lost
                stats[dst]["down"] += 1


# ========================================================= the kiosk driver
def kiosk_driver(config_path: str) -> None:
    """The kiosk's real controller (its bus, kiosk.db, outbox, worker
    threads) with a headless UI thread, as tests/test_kiosk_offline.py runs
    it; JSON commands on stdin, one answer line each on stdout:

    - ``{"cmd": "order"}``: a diner's real taps (spring rolls, takeaway, pay
      at the counter: the pay → confirm path), then waits for the confirm
      screen; answers the order id, the number or the provisional number.
    - ``{"cmd": "state", "orders": [ids]}``: what the kiosk shows and knows:
      link, hub, whether it can reach the hub (the store-network-down line is
      shown when not), the staff line, and each order's outbox row.
    - ``{"cmd": "quit"}``.
    """
    import logging

    from kiosk.controller import KioskController
    from restobox import config
    from tests.support import UIThread, wait

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    ui = UIThread()
    ctl = KioskController(config.load(config_path), post=ui.post, changed=lambda: None)
    ui.tick = ctl.tick
    ctl.start()
    out = sys.stdout

    def say(d: dict) -> None:
        out.write(json.dumps(d) + "\n")
        out.flush()

    def order(menu_timeout: float, confirm_timeout: float) -> dict:
        t0 = time.monotonic()
        wait(lambda: ui.call(lambda: ctl.has_menu), menu_timeout, "menu")
        if ui.call(lambda: ctl.vm.screen) == "confirm":
            ui.call(lambda: ctl.tap("done"))
        for t in ("start", "lang:en", "service:takeaway", "next", "item:spring-rolls", "add", "cart",
                  "checkout", "pay:counter"):
            ui.call(lambda t=t: ctl.tap(t))
        vm = ctl.vm
        oid = ui.call(lambda: vm.order_id)
        wait(lambda: ui.call(lambda: vm.screen) == "confirm", confirm_timeout, "the confirm screen")
        number, provisional = ui.call(lambda: (vm.number, vm.provisional))
        return {"order_id": oid, "number": number, "provisional": provisional,
                "seconds": round(time.monotonic() - t0, 2)}

    def state(ids: list[str]) -> dict:
        def shown() -> dict:
            staff = ctl.staff.words() if ctl.staff is not None else None
            return {"link": ctl.link_up, "hub": ctl.hub_up, "reachable": ctl.reachable, "screen": ctl.vm.screen,
                    "staff": staff.en if staff is not None else None}
        d = ui.call(shown)
        rows = {}
        for oid in ids:
            r = ctl.store.get_order(oid)
            rows[oid] = None if r is None else {"state": r.state, "number": r.number,
                                                "provisional": r.provisional_number, "attempts": r.attempts}
        d["orders"] = rows
        d["counters"] = dict(ctl.counters)
        return d

    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            try:
                if cmd["cmd"] == "order":
                    say(order(cmd.get("menu_timeout", 60), cmd.get("confirm_timeout", 60)))
                elif cmd["cmd"] == "state":
                    say(state(cmd.get("orders", [])))
                elif cmd["cmd"] == "quit":
                    say({"ok": True})
                    break
                else:
                    say({"error": f"unknown command {cmd['cmd']!r}"})
            except Exception as exc:  # answered to the test, which fails with it
                logging.getLogger("tests.kiosk").exception("command %s failed", cmd)
                say({"error": repr(exc)})
    finally:
        ctl.stop()
        ui.close()


class KioskProcess:
    """:func:`kiosk_driver` in the kiosk's namespace (``ip netns exec``)."""

    def __init__(self, lan: Lan, config: Path, log: Path) -> None:
        self.log = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                lan.exec_argv("kiosk", [sys.executable, "-m", "tests.netns_support", "kiosk", str(config)]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=f, cwd=REPO)
        self._replies: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, name="kiosk-replies", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(json.loads(line))
        self._replies.put({"error": "the kiosk process has stopped"})

    def call(self, cmd: dict, timeout: float) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the kiosk did not answer {cmd} within {timeout} s; log:\n"
                               f"{self.log.read_text()[-3000:]}") from None
        if "error" in reply:
            raise RuntimeError(f"the kiosk: {reply['error']}; log:\n{self.log.read_text()[-3000:]}")
        return reply

    def order(self, timeout: float = 60) -> dict:
        return self.call({"cmd": "order", "menu_timeout": timeout, "confirm_timeout": timeout}, timeout * 2 + 10)

    def state(self, orders: list[str] = ()) -> dict:
        return self.call({"cmd": "state", "orders": list(orders)}, 20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.call({"cmd": "quit"}, 10)
        from restobox.brokerconf import terminate
        terminate(self.proc, 10)


# ============================================================ the broker
def _tls_supported() -> bool:
    import inspect

    from restobox.brokerconf import Broker

    common = REPO / "firmware_scripts" / "lib" / "common.sh"
    return "tls" in inspect.signature(Broker).parameters and "ensure_store_tls()" in common.read_text()


def store_tls(root: Path, names: str) -> Path:
    """The store CA and the broker's certificate as provisioning makes them
    (firmware_scripts/lib/common.sh ``ensure_store_tls``, in the scratch root
    ``root``), naming ``names`` too; the directory holding them."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "hostname").write_text("store-hub\n")
    env = {**os.environ, "RB_ROOT": str(root), "RB_TLS_NAMES": names, "RB_QUIET": "1"}
    subprocess.run(["bash", "-c", f'source "{REPO}/firmware_scripts/lib/common.sh" && ensure_store_tls'],
                   env=env, check=True, capture_output=True, text=True, timeout=60)
    return root / "etc" / "restobox" / "broker" / "tls"


def start_broker(lan: Lan, state_dir: Path, devices):
    """The store's mosquitto in the hub's namespace, as the hub runs it:
    plain MQTT on 127.0.0.1 for the hub's own services and TLS on the LAN
    address, with a store CA made by provisioning's own code. (Before the
    broker had a TLS listener: plain on the LAN address.)"""
    import shutil

    from restobox.brokerconf import TLS_FILES, Broker

    hub = lan.address["hub"]
    if _tls_supported():
        tls = store_tls(state_dir.parent / "store-tls", hub)
        (state_dir / "tls").mkdir(parents=True, exist_ok=True)
        for name in TLS_FILES:
            shutil.copy2(tls / name, state_dir / "tls" / name)
        broker = Broker(state_dir, tls=True, tls_bind=hub)
        broker.lan_ca = tls / "ca.crt"
    else:
        broker = Broker(state_dir, bind=hub)
        broker.lan_ca = None
    with lan.inside("hub"):
        broker.start_with_devices(devices)
    return broker


def lan_mqtt(lan: Lan, broker) -> str:
    """A device's [mqtt] lines for reaching the hub's broker across the LAN."""
    if broker.lan_ca is not None:
        return (f'host = "{lan.address["hub"]}"\nport = {broker.tls_port}\ntls = true\n'
                f'ca_file = "{broker.lan_ca}"\n')
    return f'host = "{lan.address["hub"]}"\nport = {broker.port}\n'


def hub_mqtt(broker) -> str:
    """The hub's [mqtt] lines: its own broker on its own box."""
    return f'host = "{broker.host}"\nport = {broker.port}\n'


# ================================================================= configs
def device_config(path: Path, broker, device: str, role: str, mqtt: str, sections: str) -> Path:
    """A device's config (tests.support.device_config) with ``mqtt`` from
    :func:`lan_mqtt` or :func:`hub_mqtt`."""
    from tests.support import device_config as config_on

    return config_on(path, broker, device, role, sections, mqtt=mqtt)


if __name__ == "__main__":
    if sys.argv[1] == "wire":
        wire(json.loads(sys.argv[2]))
    elif sys.argv[1] == "kiosk":
        kiosk_driver(sys.argv[2])
    else:
        raise SystemExit("usage: python -m tests.netns_support wire PORTS_JSON | kiosk CONFIG")
