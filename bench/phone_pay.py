"""Phone payment: how fast a gateway's notification makes an order paid,
and that, with the gateway's faults and the store's processes killed, no
diner is charged twice and no payment is lost.

The store of restobox/dev/paystack.py (mosquitto, hub, sync, web,
cloud-dev, paygate-dev, each its own process). Diners use the table QR
page's own HTTP API (order, ask to pay, pay in the wallet) and do not come
back to the page, so the payment reaches the hub as the gateway's
notification: posted to the cloud, passed down by the sync service.

- ``notify_to_paid_p99_ms``: from the cloud receiving the notification
  (its ``received_at``) to the hub saying the order is paid (order/update
  with ``payment`` paid, read on the bus), 99th percentile. Budget <= 2,000
  ms. ``baseline_mqtt_rtt_ms``: a trivial message's round trip through the
  same broker, same run (the floor of any hop here).
- ``double_charges``, ``lost``, ``mismatched``, ``left_open``: after a
  second round of diners with the gateway's faults at random (rate 0.25:
  slow, timeout, lost / repeated / early / forged notifications, wrong
  amounts, success after close) and a SIGKILL every 2-4 s of the hub, the
  sync service, the page or the cloud, every order's gateway records
  against the ledger (restobox.dev.paystack.ledger_vs_gateway). All must be
  0.

    python bench/phone_pay.py [--quick]

Human-readable lines go to stderr; the figures come last, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.storekit import echo_rtt_ms, pct, say  # noqa: E402
from restobox.contract import topics  # noqa: E402
from restobox.dev.paystack import PayStack, diner, ledger_vs_gateway  # noqa: E402

BUDGET_MS = 2000
KILLED = ("sync", "hub", "web", "cloud")


def diners(stack: PayStack, first: int, n: int, workers: int) -> list[dict]:
    def one(i: int) -> dict:
        with httpx.Client(timeout=10) as http:
            return diner(stack, str(i % stack.tables + 1), random.Random(i), http, abandon=0.05, check=0.0)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(first, first + n)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer diners (under 30 s)")
    args = ap.parse_args()
    timed_n, chaos_n = (80, 120) if args.quick else (400, 1000)

    with tempfile.TemporaryDirectory(prefix="restobox-phone-pay-") as tmp:
        # a first enquiry well after the notification: the time measured is the notification's path
        stack = PayStack(Path(tmp), expire_s=6, query_first_s=5.0, query_max_s=2.0, notify_delay_s=0.02,
                         tables=24)
        t0 = time.monotonic()
        stack.start()
        say(f"store up in {time.monotonic() - t0:.1f} s")
        paid_seen: dict[str, float] = {}
        watch = stack.bus("expo-1", "expo")  # reads every order's update (monitor-1 is the stack's own)
        echo = stack.bus("staff-1", "staff")

        def on_update(m) -> None:
            u = msgspec.json.decode(m.payload)
            if u.get("payment") == "paid" and u["order_id"] not in paid_seen:
                paid_seen[u["order_id"]] = time.time()

        watch.subscribe(topics.ORDER_UPDATE, on_update)
        watch.start()
        watch.wait_connected(10)
        echo.start()
        try:
            rtt = echo_rtt_ms(echo, "restobox/v1/staff/staff-1/command", 200)
            say(f"baseline: the broker's round trip {rtt} ms (p50)")

            # 1. timed: the normal path, a notification each
            t1 = time.monotonic()
            done = diners(stack, 0, timed_n, 8)
            wait_until(lambda: all(r["order_id"] in paid_seen for r in done if r["paid_in_wallet"]), 30)
            got = stack.notifications()
            received = {}
            trades = {t["out_trade_no"]: t for t in stack.trades()}
            for n in got:
                body = msgspec.json.decode(n["body"])
                received.setdefault(body["out_trade_no"], datetime.fromisoformat(n["received_at"]).timestamp())
            lat = []
            for r in done:
                if not r["paid_in_wallet"]:
                    continue
                prefix = "RB" + r["order_id"].replace("-", "")[:26]
                mnos = [m for m in trades if m.startswith(prefix) and trades[m]["status"] == "SUCCESS"]
                if mnos and mnos[0] in received and r["order_id"] in paid_seen:
                    lat.append((paid_seen[r["order_id"]] - received[mnos[0]]) * 1000)
            p50, p99 = pct(lat, 50), pct(lat, 99)
            say(f"{len(lat)} payments in {time.monotonic() - t1:.1f} s: notification at the cloud -> paid at the "
                f"hub p50 {p50:.0f} ms, p99 {p99:.0f} ms (budget {BUDGET_MS})")

            # 2. chaos: faults at random, processes killed
            stop = threading.Event()
            kills: list[str] = []
            stack.fault("random", rate=0.25, seed=11)
            killer = threading.Thread(target=lambda: kills.extend(stack.kill_in_turn(KILLED, stop)), daemon=True)
            killer.start()
            t2 = time.monotonic()
            chaos_done = diners(stack, timed_n, chaos_n, 24)
            stop.set()
            killer.join(10)
            for name in list(stack.procs):
                stack.wait_ready(name)
            stack.fault("ok")
            took = time.monotonic() - t2
            t3 = time.monotonic()
            check = wait_until(lambda: (lambda c: c if not c["open"] and not c["lost"] else None)(
                ledger_vs_gateway(stack)), 60) or ledger_vs_gateway(stack)
            say(f"{sum(bool(r['paid_in_wallet']) for r in chaos_done)} of {chaos_n} diners paid in {took:.1f} s with "
                f"faults and {len(kills)} kills; settled in {time.monotonic() - t3:.1f} s: "
                f"{len(check['lost'])} lost, {len(check['double_charges'])} charged twice, "
                f"{len(check['mismatched'])} mismatched, {len(check['open'])} left open")
        finally:
            watch.stop()
            echo.stop()
            stack.stop()

    out = {
        "bench": "phone_pay", "quick": args.quick,
        "notify_to_paid_p50_ms": round(p50, 1) if p50 is not None else None,
        "notify_to_paid_p99_ms": round(p99, 1) if p99 is not None else None,
        "budget_notify_to_paid_ms": BUDGET_MS,
        "baseline_mqtt_rtt_ms": rtt,
        "timed_payments": len(lat),
        "chaos_payments": sum(bool(r["paid_in_wallet"]) for r in chaos_done),
        "kills": len(kills),
        "double_charges": len(check["double_charges"]),
        "lost": len(check["lost"]),
        "mismatched": len(check["mismatched"]),
        "left_open": len(check["open"]),
        "gateway_trades": check["trades"],
        "ledger_rows": check["ledger_rows"],
        "budgets_met": (p99 is not None and p99 <= BUDGET_MS and not check["double_charges"] and not check["lost"]
                        and not check["mismatched"] and not check["open"]),
    }
    print(json.dumps(out))
    return 0 if out["budgets_met"] else 1


def wait_until(pred, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return None


if __name__ == "__main__":
    sys.exit(main())
