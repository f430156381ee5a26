"""The long fuzz: malformed messages to every topic the hub, the printing
service, the sync service and the screens read, with valid orders throughout
(bench/fuzzgen.py makes the messages and runs the store; tests/test_fuzz.py
is the short run in CI).

    python bench/fuzz.py [--quick] [--messages N] [--seed S] [--rate R] [--window W] [--out DIR]

Everything is real: mosquitto with the store's config, ``restobox hub``,
``restobox printing`` (virtual printers), ``restobox sync`` with ``restobox
cloud-dev``, the station screen, expo, pickup board and kiosk controllers.

Phases, in one run on one machine:

1. **baselines**: a trivial publish's round trip through the broker (p50),
   and valid orders alone as fast as the hub takes them with ``--window`` in
   flight (accepted orders a second);
2. **bad burst**: malformed messages to the hub's own topics as fast as the
   window lets (no pacing): refused messages a second, against the valid
   orders a second of phase 1;
3. **before**: valid orders one at a time, alone (latency);
4. **fuzz**: ``--messages`` malformed messages at ``--rate`` a second (at
   most ``--window`` unanswered at the hub), a valid order every 0.2 s;
5. **after**: valid orders again, a valid message to each screen and the
   kiosk's own order tapped through its view model, every service's and
   screen's health; then everything is stopped and the databases checked
   (nothing bogus stored, ``PRAGMA integrity_check``).

Reported: messages sent per topic and kind; the bad-message throughput
against the baselines; valid-order latency p50/p99/max before, during and
after; answers (exactly once, by correlation data; without it, by count);
refusals each screen and service shows in its health against those sent to
it; resident memory of each process at start, after warm-up, at the end and
its peak; the integrity checks. The figures come last, as one JSON line.

``--quick``: 3,000 messages and short baselines, under 30 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fuzzgen  # noqa: E402  (bench/ is this script's own folder)
from storekit import echo_rtt_ms  # noqa: E402


def baseline_rtt_ms(store: fuzzgen.Store, n: int) -> float | None:
    """A trivial publish's round trip through the same broker (publish,
    deliver back to the same client), p50."""
    return echo_rtt_ms(store.bus("hub-fz", "hub"), f"{fuzzgen.contract.ROOT}/bench/rtt", n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/fuzz.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a run under 30 s (3,000 messages)")
    ap.add_argument("--messages", type=int, help="malformed messages in the fuzz phase (default 200,000)")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--rate", type=float, default=500.0, help="messages a second in the fuzz phase (default 500)")
    ap.add_argument("--window", type=int, default=64, help="messages to the hub unanswered at once (default 64)")
    ap.add_argument("--burst", type=int, help="bad messages in the burst phase (default 20,000; quick 1,000)")
    ap.add_argument("--out", help="keep the run's folder here (logs, databases, results.json)")
    args = ap.parse_args(argv)
    q = args.quick
    messages = args.messages or (3_000 if q else 200_000)
    burst = args.burst if args.burst is not None else (1_000 if q else 20_000)
    logging.basicConfig(level=logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: stop what was started

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="restobox-fuzz-",
                                                                  dir=os.environ.get("RESTOBOX_BENCH_DIR")))
    root.mkdir(parents=True, exist_ok=True)
    say = lambda s: print(f"fuzz: {s}", file=sys.stderr, flush=True)  # noqa: E731
    store = fuzzgen.Store(root)
    run = fuzzgen.Run(store, seed=args.seed, messages=messages, rate=args.rate, window=args.window,
                      before_orders=20 if q else 200, progress=say)
    t0 = time.monotonic()
    try:
        store.start()
        say(f"store up in {time.monotonic() - t0:.1f} s; baselines ...")
        run.setup()
        rtt = baseline_rtt_ms(store, 50 if q else 500)
        # short: every order it makes stays open (no one bumps), and the board lists them all
        valid = run.kiosk.burst(1.5 if q else 3.0, args.window)
        valid["printing_drained"] = run.printing_drained()  # its backlog would share the CPU with the burst
        say(f"valid orders alone: {valid['per_s']}/s; broker round trip {rtt} ms; bad burst of {burst} ...")
        bad = run.bad_burst(burst)
        say(f"bad messages: {bad['per_s']}/s; fuzz: {messages} at {args.rate:g}/s ...")
        r = run.go()
    finally:
        store.stop()
    run.check_stored()
    r["logs"] = fuzzgen.log_excerpts(store)
    r["wall_s"] = round(time.monotonic() - t0, 1)
    (root / "results.json").write_text(json.dumps(r, indent=1, default=str, ensure_ascii=False), encoding="utf-8")

    t, s = r["tally"], r["stored"]
    integrity = "ok" if all(v == "ok" for v in s["integrity"].values()) else s["integrity"]
    figures = {
        "messages": r["counts"]["sent"],
        "bad_per_s": bad["per_s"],
        "baseline_valid_per_s": valid["per_s"],
        "baseline_rtt_ms": rtt,
        "bad_vs_valid": round(bad["per_s"] / valid["per_s"], 2) if valid["per_s"] else None,
        "latency_before": r["latency_before"],
        "latency_during": r["latency_during"],
        "latency_after": r["latency_after"],
        "valid_orders": r["valid_orders"],
        "valid_not_accepted": len(r["valid_not_accepted"]),
        "valid_over_1s": r["valid_over_1s"],
        "requests_with_corr": t["with_corr"],
        "answered_once": t["answered_once"],
        "answered_twice": t["answered_twice"],
        "unanswered": t["unanswered"],
        "no_corr_missing": t["no_corr_missing"],
        "no_corr_extra": t["no_corr_extra"],
        "wrong_answers": t["wrong_answers"],
        "unannounced": t["unannounced"],
        "wrong_notices": t["wrong_notices"],
        "undelivered": t["undelivered"],
        "refusals_shown": r["refusals_shown"],
        "refusals_expected": r["refusals_expected"],
        "rss_mb": {k: {"start": r["rss_start"].get(k), "warm": r["rss_warm"].get(k), "end": r["rss_end"].get(k),
                       "max": r["rss_max"].get(k)} for k in r["rss_end"]},
        "integrity": integrity,
        "nothing_bogus_stored": s["ok"],
        "stored_orders": s["orders"],
        "screens_took_valid": r["screens_took_valid"],
        "kiosk_order": {k: r["kiosk_order"].get(k) for k in ("screen", "number", "provisional")},
        "sync_took_valid": r["sync_took_valid"],
        "alive": r["alive"],
        "bad_burst": bad,
        "fuzz_cpu_pct": r["fuzz_cpu_pct"],
        "valid_burst": valid,
        "seed": args.seed, "rate": args.rate, "window": args.window,
        "fuzz_s": r["fuzz_s"], "wall_s": r["wall_s"], "cpus": os.cpu_count(),
        "by_family": r["counts"]["by_family"],
        "by_kind": r["counts"]["by_kind"],
        "results": str(root / "results.json") if args.out else None,
    }
    ok = (t["unanswered"] == 0 and t["answered_twice"] == 0 and t["wrong_answers"] == 0 and t["unannounced"] == 0
          and r["valid_over_1s"] == 0 and not r["valid_not_accepted"] and integrity == "ok" and s["ok"])
    say(f"{'all good' if ok else 'PROBLEMS'}; valid orders p99 {r['latency_before']['p99_ms']} ms before, "
        f"{r['latency_during']['p99_ms']} ms during"
        + (f"; results in {root / 'results.json'}" if args.out else " (--out DIR keeps the logs and databases)"))
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
