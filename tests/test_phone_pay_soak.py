"""The phone payment's soak: 1,000 phone payments through the real store
(restobox/dev/paystack.py: mosquitto, hub, sync, web, cloud-dev,
paygate-dev, each its own process) with the gateway's faults injected at
random and the store's processes killed (SIGKILL) and started again while
diners order and pay. Afterwards the ledger equals the gateway's records
exactly: no payment lost, none charged twice, none left open.

Diners use the page's own HTTP API (the browser's part is
tests/test_phone_pay.py): order, ask to pay (the same payment on every
retry), pay in the wallet, sometimes come back to the page; a few leave
without paying, and their payment is closed after its time.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from restobox.dev.paystack import PayStack, diner, ledger_vs_gateway
from tests.support import wait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PAYMENTS = 1000
DINERS = 32
KILLED = ("sync", "hub", "web", "cloud")


def test_a_thousand_phone_payments_with_faults_and_kills_leave_the_ledger_equal_to_the_gateway(tmp_path):
    rng = random.Random(20261205)
    stack = PayStack(tmp_path, expire_s=6, query_first_s=0.5, query_max_s=2.0, notify_delay_s=0.02, tables=DINERS,
                     gateway_timeout_s=1.0)
    stack.start()
    stop = threading.Event()
    kills: list[str] = []

    try:
        stack.fault("random", rate=0.25, seed=11, slow_s=0.5)  # slow: within the page's 1 s
        killer = threading.Thread(target=lambda: kills.extend(stack.kill_in_turn(KILLED, stop)), name="chaos",
                                  daemon=True)
        killer.start()

        def one(n: int) -> dict:
            with httpx.Client(timeout=10) as http:
                return diner(stack, str(n % DINERS + 1), random.Random(n), http, abandon=0.05, again_s=0.1)

        t0 = time.monotonic()
        with ThreadPoolExecutor(DINERS) as pool:
            results = list(pool.map(one, range(PAYMENTS)))
        took = time.monotonic() - t0
        stop.set()
        killer.join(10)
        for name in stack.procs:  # every process back, then the gateway quiet
            stack.wait_ready(name)
        stack.fault("ok")

        placed = [r for r in results if r["placed"]]
        paid = [r for r in results if r["paid_in_wallet"]]
        stuck = [r for r in results if not r["placed"] or not (r["paid_in_wallet"] or r["abandoned"])]
        assert len(placed) == PAYMENTS, f"{PAYMENTS - len(placed)} diners could not order: {stuck[:5]}"
        assert len(paid) >= PAYMENTS * 0.9, f"only {len(paid)} of {PAYMENTS} paid: {stuck[:5]}"
        assert len(set(kills)) == len(KILLED), kills

        # every payment settles: recorded, closed or given back
        try:
            check = wait(lambda: (lambda c: c if not c["open"] and not c["lost"] else None)(
                ledger_vs_gateway(stack)), 90, what="every payment to settle")
        except TimeoutError:
            check = ledger_vs_gateway(stack)
        assert check["open"] == [], f"payments still open or still to give back: {check['open'][:10]}"
        assert check["lost"] == [], f"lost: {check['lost'][:10]}"
        assert check["mismatched"] == [], check["mismatched"]
        assert check["double_charges"] == [], check["double_charges"]
        assert check["trades"] >= len(paid)
        print(f"\n{len(paid)} paid of {PAYMENTS} in {took:.0f} s; {check['trades']} gateway payments, "
              f"{check['ledger_rows']} ledger rows; killed {len(kills)} times: "
              f"{ {k: kills.count(k) for k in KILLED} }")
    finally:
        stop.set()
        stack.stop()
