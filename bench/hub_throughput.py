"""Hub throughput: accepted (fsynced) orders per second through the real
broker and the real hub, with submit -> accepted latency.

Beside it, two baselines measured in the same run on the same machine:

- ``baseline_rtt_ms``: a raw MQTT request/reply round trip through the same
  broker (a trivial echo in place of the hub), median of sequential requests;
- ``baseline_commit_per_s``: raw SQLite commits per second, one row per
  transaction, WAL + synchronous=FULL, in the same directory as the hub's
  database.

The hub beats the raw commit rate by committing many orders per transaction
(group commit); the budget (docs/architecture.md) is >= 500 accepted orders/s.

    python bench/hub_throughput.py [--quick] [--kiosks N] [--seconds S]

The figures come last, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from restobox import contract  # noqa: E402
from restobox.brokerconf import STANDARD_DEVICES, Broker, terminate  # noqa: E402
from restobox.bus import Bus, Incoming  # noqa: E402
from restobox.contract import topics  # noqa: E402
from restobox.data import load_sample_menu  # noqa: E402
from restobox.dev.sim import random_order  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def bus_for(broker_info: dict, name: str, role: str = "kiosk") -> Bus:
    c = broker_info["creds"][name]
    return Bus(device=name, role=role, host="127.0.0.1", port=broker_info["port"],
               username=name, password=c, persistent=False, reconnect_max_s=1)


# ------------------------------------------------------------------ baselines
def baseline_commit_rate(directory: Path, seconds: float) -> float:
    path = directory / "baseline.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    body = "x" * 600  # about one order row
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        con.execute("BEGIN")
        con.execute("INSERT INTO t (body) VALUES (?)", (body,))
        con.execute("COMMIT")
        n += 1
    rate = n / (time.perf_counter() - t0)
    con.close()
    return rate


def baseline_rtt(info: dict, n: int) -> float:
    """Median round trip kiosk -> broker -> echo -> broker -> kiosk."""
    echo = bus_for(info, "hub", "hub")
    echo.subscribe(topics.ORDER_SUBMIT_ALL,
                   lambda m: echo.publish(topics.order_reply(m.topic.rsplit("/", 1)[1]), m.payload,
                                          correlation=m.correlation))
    k = bus_for(info, "kiosk-1")
    got = threading.Event()
    k.subscribe(topics.order_reply("kiosk-1"), lambda m: got.set())
    echo.start()
    k.start()
    echo.wait_connected(10)
    k.wait_connected(10)
    time.sleep(0.3)  # subscriptions settle
    payload = contract.encode(random_order(load_sample_menu(), random.Random(1)))
    rtts = []
    for i in range(n):
        got.clear()
        t0 = time.perf_counter()
        k.publish(topics.order_submit("kiosk-1"), payload, correlation=str(i).encode())
        if not got.wait(5):
            raise RuntimeError("echo did not answer")
        rtts.append((time.perf_counter() - t0) * 1000)
    k.stop()
    echo.stop()
    return statistics.median(rtts)


# ------------------------------------------------------------------ the load
def kiosk_worker(info: dict, name: str, seconds: float, window: int, seed: int, out) -> None:
    """Keep ``window`` orders in flight; record each submit -> accepted."""
    menu = load_sample_menu()
    rng = random.Random(seed)
    orders = [random_order(menu, rng) for _ in range(4000)]
    payloads = [(o.order_id, contract.encode(o)) for o in orders]
    sent: dict[str, float] = {}
    lat: list[tuple[float, float]] = []  # (accepted time, latency ms)
    rejected = [0]
    slots = threading.Semaphore(window)
    lock = threading.Lock()

    def on_reply(m: Incoming) -> None:
        now = time.perf_counter()
        d = contract.decode(m.payload, contract.OrderReply)
        with lock:
            t0 = sent.pop(d.order_id, None)
        if t0 is None:
            return
        if d.status == "accepted":
            lat.append((now, (now - t0) * 1000))
        else:
            rejected[0] += 1
        slots.release()

    b = bus_for(info, name)
    b.subscribe(topics.order_reply(name), on_reply)
    b.start()
    b.wait_connected(10)
    time.sleep(0.3)
    topic = topics.order_submit(name)
    out.put(("ready", name))
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        if not slots.acquire(timeout=1):
            continue
        oid, p = payloads[i % len(payloads)]
        if i >= len(payloads):  # fresh ids once the prepared ones are used
            o = random_order(menu, rng)
            oid, p = o.order_id, contract.encode(o)
        with lock:
            sent[oid] = time.perf_counter()
        b.publish(topic, p, correlation=oid.encode())
        i += 1
    deadline = time.perf_counter() + 10
    while sent and time.perf_counter() < deadline:
        time.sleep(0.05)
    b.stop()
    out.put(("done", name, start, lat, rejected[0], len(sent)))


def run_kiosks(info: dict, kiosks: int, seconds: float, window: int, seed_of) -> list:
    """``kiosks`` kiosk_worker processes (kiosk-b0, kiosk-b1 …, the i-th
    seeded ``seed_of(i)``) for ``seconds``; each one's "done" message."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=kiosk_worker, args=(info, f"kiosk-b{i}", seconds, window, seed_of(i), q))
             for i in range(kiosks)]
    for p in procs:
        p.start()
    results = []
    while len(results) < len(procs):
        msg = q.get(timeout=seconds + 60)
        if msg[0] == "done":
            results.append(msg)
    for p in procs:
        p.join(10)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a run under 30 s")
    ap.add_argument("--kiosks", type=int, default=2, help="virtual kiosk processes")
    ap.add_argument("--window", type=int, default=64, help="orders in flight per kiosk")
    ap.add_argument("--seconds", type=float, default=None, help="length of the load phase")
    args = ap.parse_args()
    seconds = args.seconds or (8.0 if args.quick else 30.0)

    with tempfile.TemporaryDirectory(prefix="restobox-bench-", dir=os.environ.get("RESTOBOX_BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        devices = list(STANDARD_DEVICES) + [(f"kiosk-b{i}", "kiosk", None) for i in range(args.kiosks)]
        broker = Broker(tmp / "broker").start_with_devices(devices)
        hub = None
        try:
            info = {"port": broker.port, "creds": {n: c.password for n, c in broker.creds.items()}}
            print("baseline: SQLite FULL commits ...", file=sys.stderr)
            commit_rate = baseline_commit_rate(tmp, 1.5 if args.quick else 4.0)
            print("baseline: MQTT round trip ...", file=sys.stderr)
            rtt = baseline_rtt(info, 200 if args.quick else 1000)

            cfg = tmp / "hub.toml"
            cfg.write_text(
                f'[device]\nid = "hub"\nrole = "hub"\n[mqtt]\nport = {broker.port}\n'
                f'password_file = "{broker.creds["hub"].password_file}"\n'
                f'[hub]\ndatabase = "{tmp / "store.db"}"\nhealth_interval_s = 5\n'
                # the bench's kiosks order more than a diner would
                "max_qty_per_line = 99\n",
                encoding="utf-8",
            )
            mon = bus_for(info, "monitor-1", "monitor")
            ready = threading.Event()
            mon.subscribe(topics.health("hub"),
                          lambda m: json.loads(m.payload).get("state") == "ready" and ready.set())
            mon.start()
            hub = subprocess.Popen([sys.executable, "-m", "restobox.cli", "hub", "--config", str(cfg)],
                                   stdout=open(tmp / "hub.log", "wb"), stderr=subprocess.STDOUT)
            if not ready.wait(20):
                raise RuntimeError("hub did not start:\n" + (tmp / "hub.log").read_text()[-2000:])
            mon.stop()

            print(f"load: {args.kiosks} kiosks × {args.window} in flight for {seconds:.0f} s ...", file=sys.stderr)
            results = run_kiosks(info, args.kiosks, seconds, args.window, lambda i: 100 + i)

            start = min(r[2] for r in results)
            lat = [x for r in results for x in r[3]]
            rejected = sum(r[4] for r in results)
            unanswered = sum(r[5] for r in results)
            # throughput over the steady part: skip the first second (warm-up)
            steady = [t for t, _ in lat if t - start >= 1.0 and t - start <= seconds]
            span = max(t for t in steady) - (start + 1.0) if steady else float("nan")
            accepted_per_s = len(steady) / span if steady else 0.0
            lats = [ms for _, ms in lat]
            con = sqlite3.connect(tmp / "store.db")
            stored = con.execute('select count(*) from "order"').fetchone()[0]
            con.close()
            figures = {
                "accepted_per_s": round(accepted_per_s, 1),
                "p50_ms": round(pct(lats, 50), 2),
                "p99_ms": round(pct(lats, 99), 2),
                "baseline_rtt_ms": round(rtt, 3),
                "baseline_commit_per_s": round(commit_rate, 1),
                "orders": len(lat),
                "stored": stored,
                "rejected": rejected,
                "unanswered": unanswered,
                "kiosks": args.kiosks,
                "window": args.window,
                "seconds": seconds,
                "cpus": os.cpu_count(),
            }
            print(f"accepted {accepted_per_s:.0f} orders/s (budget 500); submit→accepted p50 "
                  f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms; raw MQTT RTT {rtt:.2f} ms; "
                  f"raw FULL commits {commit_rate:.0f}/s", file=sys.stderr)
            print(json.dumps(figures))
            return 0 if stored == len(lat) and rejected == 0 else 1
        finally:
            if hub is not None:
                terminate(hub, 10)
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
