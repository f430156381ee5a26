"""The store's services on this machine, as the benches start them.

bench/rush.py and bench/fuzz.py (bench/fuzzgen.py) run the same store: a
private mosquitto with the store's own config, ``restobox cloud-dev``, and
``restobox hub``, ``printing`` (virtual printers) and ``sync`` in their own
processes. This module writes their configs, starts and stops the
processes, reads their CPU and memory from /proc, and measures the
broker's round trip, the baseline both benches report. Every bench may take
its progress line (``say``) and percentile (``pct``) from here.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PY = [sys.executable, "-m", "restobox.cli"]


def say(msg: str) -> None:
    """A progress line on stderr (stdout is the bench's JSON line)."""
    print(msg, file=sys.stderr, flush=True)


def pct(xs: list[float], p: float) -> float | None:
    """The ``p``-th percentile of ``xs`` (nearest rank); None when empty."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


@dataclass
class Proc:
    """One process of the bench: ``kind`` groups processes (kiosk, kds...)
    for killing and for the figures; ``down_until`` and ``starts`` are the
    chaos run's."""

    name: str
    argv: list[str]
    log: Path
    kind: str = ""
    proc: subprocess.Popen | None = None
    down_until: float = 0.0  # killed: started again at this time
    starts: int = 0

    def __post_init__(self) -> None:
        self.kind = self.kind or self.name

    def start(self, **kw) -> None:
        # no secret from the bench's own environment: each service reads its config
        env = {k: v for k, v in os.environ.items() if k not in ("RESTOBOX_MQTT_PASSWORD", "RESTOBOX_CLOUD_TOKEN")}
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.argv, stdout=kw.pop("stdout", f), stderr=f, cwd=REPO,
                                         env={**env, "PYTHONPATH": str(REPO)}, **kw)
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive else None

    def stop(self, timeout: float = 10.0) -> int | None:
        from restobox.brokerconf import terminate

        if self.proc is not None:
            terminate(self.proc, timeout)
            return self.proc.returncode
        return None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def proc_stat(pid: int | None) -> tuple[float, float] | None:
    """(CPU seconds so far, resident MB) of a process, from /proc."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return ((int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"),
            rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20)


def services(state: Path, logs: Path, broker, *, store_id: str, health_s: float, printers: tuple[str, ...],
             hub_extra: str = "", sync_extra: str = "") -> tuple[dict[str, Proc], int]:
    """The cloud, hub, printing and sync processes of a store on ``broker``
    (not started), with their configs in ``state``; and the cloud's port.
    ``hub_extra``/``sync_extra``: more config lines for [hub] and [sync]."""
    from restobox.brokerconf import free_port

    def mqtt(device: str) -> str:
        return (f'[mqtt]\nport = {broker.port}\npassword_file = "{broker.creds[device].password_file}"\n'
                "keepalive_s = 5\nreconnect_max_s = 1\n\n")

    def config(name: str, body: str) -> Path:
        p = state / f"{name}.toml"
        p.write_text(f'[device]\nid = "{name}"\nrole = "{name}"\n[store]\nid = "{store_id}"\n'
                     f'timezone = "Asia/Shanghai"\n\n{mqtt(name)}{body}', encoding="utf-8")
        return p

    port = free_port()
    token = state / "cloud.token"
    token.write_text(f"{store_id}-token\n")
    cfgs = {
        "hub": config("hub", f'[hub]\ndatabase = "{state / "store.db"}"\nhealth_interval_s = {health_s}\n{hub_extra}'),
        "printing": config("printing", f'[printing]\ndatabase = "{state / "printing.db"}"\nstatus_interval_s = 1\n'
                                       "retry_max_s = 1\n\n" +
                           "".join(f'[[printing.printers]]\nid = "{p}"\nport = "virtual"\n'
                                   f'directory = "{state / "printers" / p}"\nwidth_mm = 80\n\n' for p in printers)),
        "sync": config("sync", f'[sync]\ncloud_url = "http://127.0.0.1:{port}"\ntoken_file = "{token}"\n'
                               f'database = "{state / "sync.db"}"\nstore_database = "{state / "store.db"}"\n'
                               f"health_interval_s = {health_s}\npoll_s = 0.5\ntimeout_s = 2\nbackoff_max_s = 2\n"
                               f"{sync_extra}"),
    }
    procs = {"cloud": Proc("cloud", PY + ["cloud-dev", "--port", str(port), "--db", str(state / "cloud.db"),
                                          "--token", f"{store_id}-token"], logs / "cloud.log")}
    for name, cfg in cfgs.items():
        procs[name] = Proc(name, PY + [name, "--config", str(cfg)], logs / f"{name}.log")
    return procs, port


def wait_http(port: int, cloud: Proc, timeout: float = 20) -> None:
    """Until the cloud receiver answers on ``port``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_dev/stats", timeout=1).read()
            return
        except OSError:
            if cloud.proc is not None and cloud.proc.poll() is not None:
                break
            threading.Event().wait(0.1)
    raise RuntimeError(f"the cloud receiver did not start; log:\n{cloud.log_tail()}")


def echo_rtt_ms(bus, topic: str, n: int) -> float | None:
    """The baseline, same run and broker: a trivial message's round trip
    through mosquitto alone (publish, delivered back to ``bus``, which is
    started and may publish and read ``topic``), p50 in ms."""
    got = threading.Event()
    bus.subscribe(topic, lambda m: got.set())
    if not bus.wait_connected(10):
        return None
    for _ in range(50):  # until the subscription is in place: the first echo comes back
        bus.publish(topic, b"{}")
        if got.wait(0.1):
            break
    rtts = []
    for _ in range(n):
        got.clear()
        t0 = time.perf_counter()
        bus.publish(topic, b"{}")
        if got.wait(2):
            rtts.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(rtts), 3) if rtts else None
