"""Retention: a year of a busy store in store.db stays bounded by the window,
and the hub takes orders as fast with that year behind it as with nothing.

1. **Empty.** The real hub (``restobox hub``) on an empty store.db, loaded
   by the virtual kiosks of bench/hub_throughput.py: ``accepted_per_s``
   with an empty database (the baseline of the same run).
2. **A year.** The orders that run accepted are the template of a day: each
   simulated day copies ``--orders-per-day`` of them (their real rows: the
   order with its priced lines, its tickets, its outbox event) with new
   ids and that day's dates, completed and printed, adding what the rest of
   a real day writes for each (two more outbox events for the bumps, two
   ids of processed station events, two print requests of ~1.2 KB). Each
   day is delivered to the cloud (the sync cursor moves to its end) and is
   followed by a pass of retention (restobox/hub/retention.py, the hub's
   own code, ``keep_days``), as the hub's hourly pass would do. The file's
   size is read after every day: it grows while the window fills, then
   stays (SQLite reuses the freed pages; no VACUUM).
3. **With the year.** The hub again, on the year's store.db, same load:
   ``accepted_per_s_ratio`` = accepted/s with the year ÷ with nothing
   (budget ≥ 0.9). The full run measures empty, year, empty, year and
   compares the mean of each.

    python bench/retention.py [--quick] [--days N] [--keep-days N] [--orders-per-day N] [--seconds S]

``--quick`` (under 30 s) simulates fewer days (40, with a 14-day window)
and says so in the JSON (``days``, ``quick``). The figures come last, as one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from hub_throughput import bus_for, pct, run_kiosks  # noqa: E402  (bench/, beside this file)

from restobox import config, db  # noqa: E402
from restobox.brokerconf import STANDARD_DEVICES, Broker, terminate  # noqa: E402
from restobox.contract import topics  # noqa: E402
from restobox.hub.retention import Retention  # noqa: E402

PRINT_PAYLOAD = "x" * 1200  # an encoded receipt or kitchen ticket is about this size


# ------------------------------------------------------------------ load
def throughput(tmp: Path, info: dict, broker: Broker, database: Path, kiosks: int, window: int,
               seconds: float, tag: str) -> dict:
    """The real hub on ``database`` under the virtual kiosks' load."""
    cfg = tmp / f"hub-{tag}.toml"
    cfg.write_text(
        f'[device]\nid = "hub"\nrole = "hub"\n[mqtt]\nport = {broker.port}\n'
        f'password_file = "{broker.creds["hub"].password_file}"\n'
        f'[hub]\ndatabase = "{database}"\nhealth_interval_s = 5\nmax_qty_per_line = 99\n'
        f'[hub.retention]\nsync_database = "{tmp / "sync.db"}"\n',
        encoding="utf-8")
    mon = bus_for(info, "monitor-1", "monitor")
    ready = threading.Event()
    since = time.monotonic()
    mon.subscribe(topics.health("hub"),
                  lambda m: json.loads(m.payload).get("state") == "ready" and m.received >= since and ready.set())
    mon.start()
    log = tmp / f"hub-{tag}.log"
    hub = subprocess.Popen([sys.executable, "-m", "restobox.cli", "hub", "--config", str(cfg)],
                           stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)
    try:
        if not ready.wait(30):
            raise RuntimeError(f"hub did not start:\n{log.read_text()[-2000:]}")
        mon.stop()
        results = run_kiosks(info, kiosks, seconds, window, lambda i: hash((tag, i)) & 0xFFFF)
    finally:
        terminate(hub, 10)
    start = min(r[2] for r in results)
    lat = [x for r in results for x in r[3]]
    steady = [t for t, _ in lat if 1.0 <= t - start <= seconds]
    span = max(steady) - (start + 1.0) if steady else float("nan")
    return {"accepted_per_s": len(steady) / span if steady else 0.0,
            "p99_ms": pct([ms for _, ms in lat], 99),
            "rejected": sum(r[4] for r in results), "unanswered": sum(r[5] for r in results)}


# ------------------------------------------------------------------ a year
def columns(model) -> list[str]:
    return [f.column_name for f in model._meta.sorted_fields if not (model is db.Outbox and f.name == "seq")]


def select_list(model, replace: dict[str, str]) -> str:
    return ", ".join(replace.get(c, f'"{c}"') for c in columns(model))


def ins(model) -> str:
    return f'INSERT INTO "{model._meta.table_name}" ({", ".join(chr(34) + c + chr(34) for c in columns(model))}) '


def shift(col: str) -> str:
    # the template's times are today's; :delta ("-N days") moves them to the simulated day
    return f"strftime('%Y-%m-%dT%H:%M:%f+00:00', \"{col}\", :delta)"


NEW_ID = "printf('%08x', :day) || substr({col}, 9)"


def day_statements() -> list[str]:
    """The SQL that writes one simulated day from the template tables (t_order...)."""
    oid = NEW_ID.format(col='"id"')
    order = ins(db.Order) + "SELECT " + select_list(db.Order, {
        "id": oid, "business_date": "date(\"business_date\", :delta)", "state": "'completed'",
        "placed_at": shift("placed_at"), "accepted_at": shift("accepted_at"), "updated_at": shift("updated_at"),
    }) + " FROM t_order"
    toid = NEW_ID.format(col='"order_id"')
    ticket = ins(db.Ticket) + "SELECT " + select_list(db.Ticket, {
        "id": f"{toid} || ':' || \"station\"", "order_id": toid, "state": "'done'",
        "created_at": shift("created_at"), "updated_at": shift("updated_at"), "acked_at": shift("created_at"),
    }) + " FROM t_ticket"
    outbox = [ins(db.Outbox) + "SELECT " + select_list(db.Outbox, {
        "event_id": NEW_ID.format(col='"event_id"'), "order_id": toid, "created_at": shift("created_at"),
    }) + " FROM t_outbox"]
    for kind in ("station.bump", "expo.bump"):  # what the kitchen adds to each order's events
        outbox.append(ins(db.Outbox) + "SELECT " + select_list(db.Outbox, {
            "event_id": f"{toid} || ':{kind}'", "kind": f"'{kind}'", "order_id": toid,
            "payload": "'{\"order_id\": \"' || " + toid + " || '\", \"station\": \"wok\", \"device\": \"kds-wok\"}'",
            "created_at": shift("created_at"),
        }) + " FROM t_outbox WHERE \"kind\" = 'order.accepted'")
    processed = [f'INSERT INTO "processed_message" ("id", "at") SELECT printf(\'%08x%02d\', :day, {k}) || '
                 f'substr("id", 11), {shift("accepted_at")} FROM t_order' for k in (1, 2)]
    prints = [ins(db.PrintRequest) + "SELECT " + select_list(db.PrintRequest, {
        "job_id": f"{oid} || ':{kind}:p1'", "printer": "'p1'", "kind": f"'{kind}'", "order_id": oid,
        "payload": ":payload", "created_at": shift("accepted_at"), "confirmed_at": shift("accepted_at"),
        "state": "'done'", "reason": "NULL",
    }) + " FROM t_order" for kind in ("receipt", "kitchen")]
    return [order, ticket, *outbox, *processed, *prints]


def simulate_year(template: Path, year: Path, tmp: Path, days: int, keep_days: int, per_day: int) -> dict:
    """``days`` days of ``per_day`` orders, each day delivered then pruned."""
    cfg = config.parse(f'[device]\nid = "hub"\nrole = "hub"\n[hub.retention]\nkeep_days = {keep_days}\n'
                       f'sync_database = "{tmp / "sync.db"}"\n')
    database = db.open_store_db(year)
    sdb = db.open_sync_db(tmp / "sync.db")
    database.execute_sql(f"ATTACH DATABASE '{template}' AS tpl")
    database.execute_sql(f'CREATE TEMP TABLE t_order AS SELECT * FROM tpl."order" ORDER BY rowid LIMIT {per_day}')
    got = database.execute_sql("SELECT count(*) FROM t_order").fetchone()[0]
    if got < per_day:
        raise RuntimeError(f"the template has {got} orders, fewer than --orders-per-day {per_day}")
    database.execute_sql('CREATE TEMP TABLE t_ticket AS SELECT * FROM tpl."ticket" WHERE "order_id" IN '
                         '(SELECT "id" FROM t_order)')
    database.execute_sql('CREATE TEMP TABLE t_outbox AS SELECT * FROM tpl."outbox" WHERE "order_id" IN '
                         '(SELECT "id" FROM t_order)')
    database.execute_sql("DETACH DATABASE tpl")
    stmts = day_statements()
    retention = Retention(cfg.hub.retention, cfg.store)
    today = datetime.now(timezone.utc).replace(hour=14, minute=0, second=0, microsecond=0)
    sizes, batch_ms, fill_s, prune_s = [], [], 0.0, 0.0
    deleted = 0
    for d in range(days, 0, -1):  # d days before today
        t0 = time.perf_counter()
        with database.atomic():
            for s in stmts:
                database.execute_sql(s.replace(":delta", f"'-{d} days'").replace(":day", str(d))
                                     .replace(":payload", "?"), (PRINT_PAYLOAD,) if ":payload" in s else ())
        last = database.execute_sql('SELECT max("seq") FROM "outbox"').fetchone()[0]
        db.SyncCursor.insert(id=1, seq=last, updated_at=time.time()).on_conflict_replace().execute()
        fill_s += time.perf_counter() - t0
        # the hub's pass at the end of that day
        t0 = time.perf_counter()
        retention.next_pass = float("-inf")
        now = today - timedelta(days=d) + timedelta(hours=10)
        while True:
            b0 = time.perf_counter()
            deleted += sum(retention.step(database, now, "sample").values())
            batch_ms.append((time.perf_counter() - b0) * 1000)
            if not retention.busy:
                break
        prune_s += time.perf_counter() - t0
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes.append(year.stat().st_size)
    rows = {t: database.execute_sql(f'SELECT count(*) FROM "{t}"').fetchone()[0]
            for t in ("order", "ticket", "outbox", "processed_message", "print_request")}
    free = database.execute_sql("PRAGMA freelist_count").fetchone()[0]
    page = database.execute_sql("PRAGMA page_size").fetchone()[0]
    database.close()
    sdb.close()
    return {"sizes": sizes, "batch_ms": batch_ms, "fill_s": fill_s, "prune_s": prune_s, "deleted": deleted,
            "rows": rows, "free_mb": free * page / 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a run under 30 s (40 days, a 14-day window)")
    ap.add_argument("--days", type=int, default=None, help="days simulated (default 365; quick 40)")
    ap.add_argument("--keep-days", type=int, default=None, help="[hub.retention] keep_days (default 90; quick 14)")
    ap.add_argument("--orders-per-day", type=int, default=1500)
    ap.add_argument("--kiosks", type=int, default=2)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=None, help="each load phase (default 8; quick 3)")
    args = ap.parse_args()
    days = args.days or (40 if args.quick else 365)
    keep = args.keep_days or (14 if args.quick else 90)
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    rounds = 1 if args.quick else 2

    with tempfile.TemporaryDirectory(prefix="restobox-bench-", dir=os.environ.get("RESTOBOX_BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        devices = list(STANDARD_DEVICES) + [(f"kiosk-b{i}", "kiosk", None) for i in range(args.kiosks)]
        broker = Broker(tmp / "broker").start_with_devices(devices)
        try:
            info = {"port": broker.port, "creds": {n: c.password for n, c in broker.creds.items()}}
            empty_runs, year_runs = [], []
            print(f"empty store.db: {args.kiosks} kiosks × {args.window} in flight for {seconds:.0f} s ...",
                  file=sys.stderr)
            empty_runs.append(throughput(tmp, info, broker, tmp / "empty-0.db", args.kiosks, args.window,
                                         seconds, "empty-0"))
            print(f"a year: {days} days × {args.orders_per_day} orders, keep_days {keep} ...", file=sys.stderr)
            y = simulate_year(tmp / "empty-0.db", tmp / "year.db", tmp, days, keep, args.orders_per_day)
            for r in range(rounds):
                if r:
                    empty_runs.append(throughput(tmp, info, broker, tmp / f"empty-{r}.db", args.kiosks,
                                                 args.window, seconds, f"empty-{r}"))
                print("the year's store.db, same load ...", file=sys.stderr)
                year_runs.append(throughput(tmp, info, broker, tmp / "year.db", args.kiosks, args.window,
                                            seconds, f"year-{r}"))
        finally:
            broker.stop()

    mb = [s / 1e6 for s in y["sizes"]]
    # growth per day while the window fills (before the first deletion can happen)
    fill_days = min(keep, len(mb) - 1)
    per_day = (mb[fill_days] - mb[0]) / fill_days if fill_days > 0 else float("nan")
    bound = mb[0] + per_day * (keep + 2)  # the window, the day being written and the day before its pass
    empty = statistics.mean(r["accepted_per_s"] for r in empty_runs)
    full = statistics.mean(r["accepted_per_s"] for r in year_runs)
    figures = {
        "db_mb_after_year": round(mb[-1], 1),
        "db_mb_bound": round(bound, 1),
        "bounded": mb[-1] <= bound,
        "db_mb_at_window_full": round(mb[min(keep, len(mb) - 1)], 1),
        "db_mb_without_retention_est": round(mb[0] + per_day * (days - 1), 1),
        "mb_per_day": round(per_day, 2),
        "free_mb_after_year": round(y["free_mb"], 1),
        "accepted_per_s_empty": round(empty, 1),
        "accepted_per_s_year": round(full, 1),
        "accepted_per_s_ratio": round(full / empty, 3) if empty else None,
        "ratio_budget": 0.9,
        "p99_ms_empty": round(max(r["p99_ms"] for r in empty_runs), 1),
        "p99_ms_year": round(max(r["p99_ms"] for r in year_runs), 1),
        "prune_batch_ms_p99": round(pct(y["batch_ms"], 99), 1),
        "prune_batch_ms_max": round(max(y["batch_ms"]), 1),
        "rows_deleted": y["deleted"],
        "rows_kept": y["rows"],
        "fill_s": round(y["fill_s"], 1),
        "prune_s": round(y["prune_s"], 1),
        "days": days,
        "keep_days": keep,
        "orders_per_day": args.orders_per_day,
        "quick": args.quick,
        "load_rounds": rounds,
        "seconds": seconds,
        "cpus": os.cpu_count(),
    }
    ok = (figures["bounded"] and (figures["accepted_per_s_ratio"] or 0) >= 0.9
          and all(r["rejected"] == 0 for r in empty_runs + year_runs))
    print(f"store.db after {days} days: {mb[-1]:.1f} MB (bound {bound:.1f} MB for {keep} days; without "
          f"retention ~{figures['db_mb_without_retention_est']:.0f} MB); accepted/s {full:.0f} with the year, "
          f"{empty:.0f} empty (ratio {figures['accepted_per_s_ratio']}); prune batch p99 "
          f"{figures['prune_batch_ms_p99']} ms", file=sys.stderr)
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
