"""The till: payments recorded at the counter, through the real broker and
the real hub.

- ``pay_to_paid_p99_ms``: a counter sends a cash payment (TillRequest
  ``pay``) for an unpaid order; the time until the expo screen's topic
  (order/update, read with the expo's own credentials) says the order is
  ``paid``; 99th percentile over sequential payments. Budget <= 300 ms.
- ``ledger_per_s``: payments recorded per second at the hub (answered ok,
  committed) with two counters keeping ``--window`` requests each in flight,
  against ``baseline_commit_per_s``, raw SQLite commits (one row per
  transaction, WAL + synchronous=FULL) in the same directory in the same
  run: ``ledger_ratio`` = ledger_per_s / baseline. Budget >= 0.10.

Before the figures, the orders to pay are placed unpaid ("at the counter")
by a kiosk through the same hub, and each counter opens its shift. After
them, the store's ledger is read back: one payment row per order paid, the
sum equal to the orders' totals (``ledger_ok``).

    python bench/counter.py [--quick]

Human-readable lines go to stderr; the figures come last, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.hub_throughput import baseline_commit_rate, bus_for, pct  # noqa: E402
from bench.kds_frames import start_hub  # noqa: E402
from restobox import contract  # noqa: E402
from restobox.brokerconf import STANDARD_DEVICES, Broker, terminate  # noqa: E402
from restobox.contract import Tender, TillRequest, topics  # noqa: E402
from restobox.data import load_sample_menu  # noqa: E402
from restobox.dev.sim import random_order  # noqa: E402


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Requester:
    """A device's request/reply client: publish with a correlation, wait
    for the answer on its reply topic."""

    def __init__(self, info: dict, name: str, role: str, request_topic: str, reply_topic: str) -> None:
        self.bus = bus_for(info, name, role)
        self.request_topic, self.reply_topic = request_topic, reply_topic
        self.lock = threading.Lock()
        self.waiting: dict[bytes, tuple[threading.Event, list]] = {}
        self.bus.subscribe(reply_topic, self._got)
        self.bus.start()
        if not self.bus.wait_connected(10):
            raise RuntimeError(f"{name} cannot reach the broker")

    def _got(self, m) -> None:
        with self.lock:
            w = self.waiting.pop(m.correlation or b"", None)
        if w is not None:
            w[1].append(json.loads(m.payload))
            w[0].set()

    def send(self, payload: bytes) -> tuple[threading.Event, list]:
        corr = uuid.uuid4().bytes
        w = (threading.Event(), [])
        with self.lock:
            self.waiting[corr] = w
        self.bus.publish(self.request_topic, payload, correlation=corr, response_topic=self.reply_topic)
        return w

    def ask(self, payload: bytes, timeout: float = 10.0) -> dict:
        ev, box = self.send(payload)
        if not ev.wait(timeout):
            raise RuntimeError(f"no answer on {self.reply_topic} within {timeout} s")
        return box[0]

    def stop(self) -> None:
        self.bus.stop()


def place_unpaid(info: dict, n: int) -> list[tuple[str, int]]:
    """``n`` orders placed at a kiosk, to be paid at the counter: (order id, total)."""
    kiosk = Requester(info, "kiosk-1", "kiosk", topics.order_submit("kiosk-1"), topics.order_reply("kiosk-1"))
    menu, rng = load_sample_menu(), random.Random(17)
    out = []
    try:
        pending = []
        for _ in range(n):
            order = random_order(menu, rng)
            order = msgspec.structs.replace(order, payment=contract.SubmitPayment(method="counter"))
            pending.append((order.order_id, kiosk.send(contract.encode(order))))
            if len(pending) >= 64:
                out += _collect(pending)
                pending = []
        out += _collect(pending)
    finally:
        kiosk.stop()
    return out


def _collect(pending) -> list[tuple[str, int]]:
    out = []
    for oid, (ev, box) in pending:
        if not ev.wait(20):
            raise RuntimeError(f"order {oid} was not answered")
        reply = box[0]
        if reply["status"] != "accepted":
            raise RuntimeError(f"order {oid} refused: {reply.get('reason')}")
        out.append((oid, reply["total"]))
    return out


def pay(order_id: str, total: int, shift: str) -> bytes:
    return contract.encode(TillRequest(
        request_id=str(uuid.uuid4()), kind="pay", order_id=order_id, shift_id=shift, staff="bench",
        tenders=(Tender(method="cash", amount=total, tendered=total),)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a run under 30 s")
    ap.add_argument("--latency", type=int, default=None, help="sequential payments timed to the expo's topic")
    ap.add_argument("--load", type=int, default=None, help="payments for the throughput phase")
    ap.add_argument("--window", type=int, default=32, help="payments in flight per counter")
    args = ap.parse_args()
    n_lat = args.latency or (150 if args.quick else 500)
    n_load = args.load or (1200 if args.quick else 4000)
    t_start = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="restobox-bench-", dir=os.environ.get("RESTOBOX_BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        broker = Broker(tmp / "broker").start_with_devices(STANDARD_DEVICES)
        hub = None
        counters: list[Requester] = []
        expo = None
        try:
            info = {"port": broker.port, "creds": {n: c.password for n, c in broker.creds.items()}}
            say("baseline: SQLite FULL commits ...")
            commit_rate = baseline_commit_rate(tmp, 1.5 if args.quick else 4.0)
            hub = start_hub(tmp, broker)
            say(f"placing {n_lat + n_load} unpaid orders from a kiosk ...")
            orders = place_unpaid(info, n_lat + n_load)

            counters = [Requester(info, name, "counter", topics.till_request(name), topics.till_reply(name))
                        for name in ("counter-1", "counter-2")]
            shifts = {}
            for c in counters:
                sid = str(uuid.uuid4())
                r = c.ask(contract.encode(TillRequest(request_id=str(uuid.uuid4()), kind="shift_open",
                                                      shift_id=sid, float_fen=50_000, staff="bench")))
                if not r["ok"]:
                    raise RuntimeError(f"shift_open refused: {r.get('reason')}")
                shifts[c] = sid

            # -------------------------------------------------- latency
            paid_at: dict[str, float] = {}
            seen = threading.Condition()
            expo = bus_for(info, "expo-1", "expo")

            def on_update(m) -> None:
                u = json.loads(m.payload)
                if u.get("payment") == "paid":
                    with seen:
                        paid_at.setdefault(u["order_id"], time.perf_counter())
                        seen.notify_all()
            expo.subscribe(topics.ORDER_UPDATE, on_update)
            expo.start()
            expo.wait_connected(10)
            time.sleep(0.3)  # the subscription settles before the first payment
            say(f"latency: {n_lat} payments one after another, counter -> hub -> the expo's topic ...")
            lat = []
            c1 = counters[0]
            for oid, total in orders[:n_lat]:
                t0 = time.perf_counter()
                c1.send(pay(oid, total, shifts[c1]))
                with seen:
                    if not seen.wait_for(lambda: oid in paid_at, 10):
                        raise RuntimeError(f"order {oid} never shown paid on the expo's topic")
                lat.append((paid_at[oid] - t0) * 1000)

            # -------------------------------------------------- throughput
            say(f"load: {n_load} payments from 2 counters, {args.window} in flight each ...")
            work = orders[n_lat:]
            halves = [work[0::2], work[1::2]]
            ok = [0, 0]
            refused: list[str] = []
            done_at: list[float] = []
            lock = threading.Lock()

            def run(k: int) -> None:
                c = counters[k]
                inflight = []
                for oid, total in halves[k]:
                    inflight.append(c.send(pay(oid, total, shifts[c])))
                    if len(inflight) >= args.window:
                        _drain(inflight[:1], k)
                        inflight = inflight[1:]
                _drain(inflight, k)

            def _drain(ws, k) -> None:
                for ev, box in ws:
                    if not ev.wait(30):
                        raise RuntimeError("a payment was not answered within 30 s")
                    with lock:
                        done_at.append(time.perf_counter())
                        if box[0]["ok"]:
                            ok[k] += 1
                        else:
                            refused.append(box[0].get("reason") or "?")

            t0 = time.perf_counter()
            threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            span = max(done_at) - t0
            ledger_per_s = sum(ok) / span

            # -------------------------------------------------- the books
            con = sqlite3.connect(tmp / "store.db")
            rows, amount = con.execute(
                "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM payment WHERE kind = 'payment'").fetchone()
            con.close()
            want = sum(t for _, t in orders)
            ledger_ok = rows == len(orders) and amount == want and not refused
            figures = {
                "pay_to_paid_p50_ms": round(pct(lat, 50), 2),
                "pay_to_paid_p99_ms": round(pct(lat, 99), 2),
                "ledger_per_s": round(ledger_per_s, 1),
                "baseline_commit_per_s": round(commit_rate, 1),
                "ledger_ratio": round(ledger_per_s / commit_rate, 3),
                "ledger_ok": ledger_ok,
                "payments": len(orders),
                "ledger_rows": rows,
                "refused": len(refused),
                "window": args.window,
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "seconds": round(time.monotonic() - t_start, 1),
            }
            say(f"pay -> paid on the expo's topic p50 {figures['pay_to_paid_p50_ms']} / p99 "
                f"{figures['pay_to_paid_p99_ms']} ms (budget 300); {ledger_per_s:.0f} payments/s recorded against "
                f"{commit_rate:.0f} raw commits/s: {figures['ledger_ratio']} (budget >= 0.10); ledger "
                f"{'balances' if ledger_ok else 'DOES NOT balance'} ({rows} rows, {amount} fen, orders {want} fen)")
            print(json.dumps(figures))
            return 0 if ledger_ok else 1
        finally:
            if expo is not None:
                expo.stop()
            for c in counters:
                c.stop()
            if hub is not None:
                terminate(hub, 10)
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
