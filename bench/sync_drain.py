"""How fast the sync service drains an offline backlog to the cloud.

    .venv/bin/python bench/sync_drain.py [--quick] [--events N] [--batch N]

A store database with N outbox events (50,000; 20,000 with --quick), written
with the hub's own function, as after a long outage; the reference cloud
receiver (``restobox cloud-dev``) in its own process on a local port. The
forwarder (restobox.sync.Forwarder, in this process) then drains the backlog
through real HTTP: read from store.db, post a batch, commit the cursor to
sync.db, again.

Baseline, same run: the same batches posted by a bare loop (httpx, no
database reads, no cursor commits) to a fresh receiver: what HTTP, JSON and
the receiver cost on their own.

Figures (last line, JSON): ``drain_per_s`` (events delivered per second),
``rss_mb`` (this process's peak resident memory during the drain; the
baseline runs after it),
``baseline_per_s``; budget (docs/architecture.md) ≥ 500 orders/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402

from restobox import config, db  # noqa: E402
from restobox.cloudapi import CloudEvent, EventBatch  # noqa: E402
from restobox.sync import Forwarder  # noqa: E402
from tests.test_sync import Cloud, fill_outbox, sync_config  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> "PeakRss":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb())


def baseline(workdir: Path, store_db: Path, batch: int) -> float:
    """Post the same batches with a bare loop; events per second."""
    cloud = Cloud(workdir).start()
    try:
        con = db.open_store_readonly(store_db)
        rows = db.outbox_after(con, 0, 10**9)
        con.close()
        events = [CloudEvent(event_id=e, seq=s, kind=k, order_id=o, at=c, payload=msgspec.json.decode(p))
                  for s, e, k, o, p, c in rows]
        bodies = [msgspec.json.encode(EventBatch(store_id="store-1", events=tuple(events[i:i + batch])))
                  for i in range(0, len(events), batch)]
        url = f"{cloud.url}/v1/stores/store-1/events"
        with httpx.Client(headers={"Authorization": "Bearer t0ken", "Content-Type": "application/json"}) as c:
            t = time.perf_counter()
            for b in bodies:
                c.post(url, content=b).raise_for_status()
            took = time.perf_counter() - t
        return len(events) / took
    finally:
        cloud.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 events (under 30 s)")
    ap.add_argument("--events", type=int)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    n = args.events or (20_000 if args.quick else 50_000)
    with tempfile.TemporaryDirectory(prefix="restobox-sync-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        fill_outbox(work / "store.db", n)
        print(f"outbox of {n:,} events written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        cloud = Cloud(work).start()
        try:
            cfg = config.load(sync_config(work / "sync.toml", cloud, work, batch_size=args.batch, timeout_s=30))
            fw = Forwarder(cfg, sleep=lambda s: None)
            rss_before = rss_mb()
            with PeakRss() as peak:
                t = time.perf_counter()
                fw.run(until_empty=True)
                took = time.perf_counter() - t
            left = fw.backlog().events
            fw.close()
            stored = len(cloud.events())
        finally:
            cloud.stop()
        # after the drain, so its memory is not counted in the drain's
        base_dir = work / "baseline"
        base_dir.mkdir()
        base = baseline(base_dir, work / "store.db", args.batch)
    figures = {
        "drain_per_s": round(n / took), "rss_mb": round(peak.peak, 1), "events": n, "batch": args.batch,
        "seconds": round(took, 2), "left": left, "stored_by_cloud": stored, "baseline_per_s": round(base),
        "rss_before_mb": round(rss_before, 1), "quick": args.quick, "cpus": os.cpu_count(),
    }
    print(json.dumps(figures))
    return 0 if left == 0 and stored == n else 1


if __name__ == "__main__":
    sys.exit(main())
