"""The owner's dashboard (docs/cloud.md, "The owner's dashboard"): every
store of the chain at a glance, on a phone.

    GET /v1/dashboard/stores?limit=N&offset=K&q=TEXT  the stores, today: those
                                                      needing attention first, a page of them
    GET /v1/dashboard/stores/{store}/day?date=D       one store's day
    GET /dashboard                                    the page (restobox/cloud/static/)

The API takes an owner's or an admin's token. "Today" is the chain's day:
the date in ``[cloud] timezone`` now, matched against each order's
business date (the store's own). A store is online when the cloud heard
from it (events, its heartbeat, a fetch) within ``[cloud] offline_after_s``;
the page asks again every :data:`REFRESH_S`, so a store that stops shows
offline at most ``offline_after_s + REFRESH_S`` (and one request) after
its last contact.

Everything is read from ``store_order`` (one row per order, folded from the
events by restobox/cloud/chain.py), ``store_status`` (the stores'
heartbeats: backlog and alerts) and ``chain_store`` (last contact). Ticket
time is an order's ``ready_at - accepted_at``; percentiles are nearest
rank, as in the store's day report (restobox/report.py). A time the cloud
cannot read leaves that order out of the ticket times and the hours, never
out of the sales, and is counted (``dashboard_bad_times``).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from pathlib import Path

import msgspec
import peewee as pw

from restobox.cloud.chain import Refused

REFRESH_S = 3.0
"""How often the page asks again (its "stated time" adds this to offline_after_s)."""
ORDERS_SHOWN = 300
"""A day's orders in one answer at most, newest first (``limit`` up to ORDERS_MAX)."""
ORDERS_MAX = 5000
STORES_SHOWN = 50
"""Stores in one answer unless asked for more (``limit`` up to STORES_MAX):
a phone on a chain of a thousand stores fetches a page, every REFRESH_S."""
STORES_MAX = 1000
QUERY_MAX = 64
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
OPEN_STATES = ("accepted", "in_progress", "held")
SEVERITIES = ("critical", "warning", "info")
_DATE = re.compile(r"\A\d{4}-\d\d-\d\d\Z")
# A time PostgreSQL may cast: ISO 8601 with its offset (no "?" or "%": Chain.sql and psycopg2 read those).
_PG_ISO = r"'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.0-9]*([+-]\d\d:\d\d|Z)$'"


# ------------------------------------------------------------------ figures
def parse_at(s: str | None) -> datetime | None:
    """An ISO 8601 time with its offset; None when missing, unreadable or
    without an offset (which instant it means is unknown)."""
    if not s:
        return None
    try:
        t = datetime.fromisoformat(s)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo is not None else None


def ticket_s(accepted_at: str | None, ready_at: str | None) -> float | None:
    a, r = parse_at(accepted_at), parse_at(ready_at)
    if a is None or r is None:
        return None
    d = (r - a).total_seconds()
    return d if d >= 0 else None


def nearest_rank(sorted_values: list[float], pct: int) -> float | None:
    """The smallest value with at least ``pct`` % of the values at or below
    it (PostgreSQL's percentile_disc)."""
    if not sorted_values:
        return None
    return sorted_values[max(0, (pct * len(sorted_values) + 99) // 100 - 1)]


def ticket_stats(values: list[float]) -> dict:
    s = sorted(values)
    return {"count": len(s), "avg_s": _r(sum(s) / len(s)) if s else None, "p50_s": _r(nearest_rank(s, 50)),
            "p90_s": _r(nearest_rank(s, 90)), "max_s": _r(s[-1]) if s else None}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 1)


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def _ago(seconds: float) -> tuple[str, str]:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} 秒", f"{s} s"
    if s < 7200:
        return f"{s // 60} 分钟", f"{s // 60} min"
    if s < 172_800:
        return f"{s // 3600} 小时", f"{s // 3600} h"
    return f"{s // 86400} 天", f"{s // 86400} days"


def offline_alert(last_contact: float | None, now: float) -> dict:
    """The cloud's own alert for a store it has not heard from."""
    if last_contact is None:
        return {"key": "offline", "severity": "critical", "zh": "门店离线：从未联系过总部。",
                "en": "The store is offline: never heard from.", "since": None, "source": "cloud"}
    zh, en = _ago(now - last_contact)
    return {"key": "offline", "severity": "critical", "zh": f"门店离线：已 {zh} 没有联系总部。",
            "en": f"The store is offline: not heard from for {en}.", "since": _iso(last_contact), "source": "cloud"}


def _alerts(text: str | None) -> list[dict]:
    """The heartbeat's alerts as the cloud stored them (checked on the way in)."""
    try:
        got = msgspec.json.decode(text or "[]")
    except msgspec.DecodeError:
        return []
    out = []
    for a in got if isinstance(got, list) else []:
        if isinstance(a, dict):
            out.append({"key": str(a.get("key", "")), "severity": a.get("severity") if a.get("severity") in
                        SEVERITIES else "warning", "zh": str(a.get("zh") or a.get("en") or ""),
                        "en": str(a.get("en") or a.get("zh") or ""), "since": a.get("since"), "source": "store"})
    out.sort(key=lambda a: SEVERITIES.index(a["severity"]))
    return out


def attention(store: dict) -> tuple:
    """Sort key: offline stores first, then by their worst alert
    (critical, warning, info, none), then by id."""
    worst = min((SEVERITIES.index(a["severity"]) for a in store["alerts"]), default=len(SEVERITIES))
    return (store["online"], worst, store["store_id"])


def whole_number(q, name: str, default: int, most: int) -> int:
    """A query parameter that must be a whole number from 0 to ``most``."""
    text = q.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or int(text) > most:
        raise Refused(400, f"bad_{name}", f"{name}={text[:40]!r} is not a whole number from 0 to {most}")
    return int(text)


# ---------------------------------------------------------------- queries
class Dashboard:
    """The dashboard's reads: each one transaction (restobox/cloud/chain.py's Chain)."""

    def __init__(self, chain, cfg) -> None:
        self.chain = chain
        self.cfg = cfg
        self.zone = cfg.zone()

    def today(self, now: float) -> str:
        return datetime.fromtimestamp(now, self.zone).date().isoformat()

    def stores(self, limit: int = STORES_SHOWN, offset: int = 0, q: str = "") -> dict:
        """Every store's figures today, the totals over all of them, and a
        page of the stores: those whose name or id holds ``q`` (any case),
        the ones needing attention first (offline, then by their worst
        alert), then by id."""
        c = self.chain
        now = c.clock()
        today = self.today(now)
        with c.tx():
            stores = c.sql(
                "SELECT s.store_id, s.name, s.last_contact, s.last_event_at, st.reported_at, st.backlog, "
                "st.oldest_pending_at, st.alerts FROM chain_store s LEFT JOIN store_status st "
                "ON st.store_id = s.store_id WHERE s.revoked_at IS NULL ORDER BY s.store_id")
            day = {r[0]: r[1:] for r in c.sql(
                "SELECT store_id, SUM(CASE WHEN state <> 'voided' THEN total ELSE 0 END), "
                "SUM(CASE WHEN state <> 'voided' THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN state = 'voided' THEN 1 ELSE 0 END), "
                f"SUM(CASE WHEN state IN ({', '.join(repr(s) for s in OPEN_STATES)}) THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN state = 'ready' THEN 1 ELSE 0 END) "
                "FROM store_order WHERE business_date = ? GROUP BY store_id", (today,))}
            tickets = self._tickets(today)
        out, totals = [], {"stores": 0, "online": 0, "offline": 0, "sales": 0, "orders": 0, "voided": 0, "open": 0,
                           "ready": 0, "alerts": {s: 0 for s in SEVERITIES}}
        for store_id, name, last_contact, last_event_at, reported_at, backlog, oldest, alerts in stores:
            online = last_contact is not None and now - last_contact <= self.cfg.offline_after_s
            sales, orders, voided, open_, ready = (int(v or 0) for v in day.get(store_id, (0, 0, 0, 0, 0)))
            oldest_t = parse_at(oldest)
            last_event_t = parse_at(last_event_at)
            shown = _alerts(alerts)
            if not online:
                shown.insert(0, offline_alert(last_contact, now))
            out.append({
                "store_id": store_id, "name": name or store_id, "online": online,
                "last_contact": _iso(last_contact),
                "last_contact_s": _r(now - last_contact) if last_contact is not None else None,
                "sync": {"backlog": int(backlog or 0), "oldest_pending_at": oldest,
                         "lag_s": _r(max(0.0, now - oldest_t.timestamp())) if backlog and oldest_t else 0.0,
                         "last_event_at": last_event_at,
                         "last_event_s": _r(max(0.0, now - last_event_t.timestamp())) if last_event_t else None,
                         "reported_at": _iso(reported_at),
                         "reported_s": _r(now - reported_at) if reported_at is not None else None},
                "today": {"sales": sales, "orders": orders, "voided": voided, "open": open_, "ready": ready,
                          "tickets": tickets.get(store_id) or ticket_stats([])},
                "alerts": shown,
            })
            totals["stores"] += 1
            totals["online" if online else "offline"] += 1
            for k, v in (("sales", sales), ("orders", orders), ("voided", voided), ("open", open_), ("ready", ready)):
                totals[k] += v
            for a in shown:
                totals["alerts"][a["severity"]] += 1
        want = q.casefold()
        if want:
            out = [s for s in out if want in s["store_id"].casefold() or want in s["name"].casefold()]
        out.sort(key=attention)
        return {"v": 1, "now": _iso(now), "today": today, "timezone": self.cfg.timezone,
                "offline_after_s": self.cfg.offline_after_s, "refresh_s": REFRESH_S, "totals": totals,
                "matched": len(out), "offset": offset, "limit": limit, "q": q,
                "stores": out[offset:offset + limit]}

    def _tickets(self, today: str) -> dict[str, dict]:
        """Each store's ticket times today: in PostgreSQL when every time
        casts; else (SQLite, or a time PostgreSQL cannot read) here."""
        c = self.chain
        if c.pg:
            d = (f"CASE WHEN accepted_at ~ {_PG_ISO} AND ready_at ~ {_PG_ISO} THEN "
                 "EXTRACT(EPOCH FROM (ready_at::timestamptz - accepted_at::timestamptz)) END")
            try:
                with c.db.atomic():  # a savepoint: a cast that fails leaves the transaction usable
                    rows = c.sql(
                        "SELECT store_id, COUNT(d), AVG(d), percentile_disc(0.5) WITHIN GROUP (ORDER BY d), "
                        "percentile_disc(0.9) WITHIN GROUP (ORDER BY d), MAX(d) FROM (SELECT store_id, "
                        f"{d} AS d FROM store_order WHERE business_date = ? AND ready_at IS NOT NULL "
                        "AND state <> 'voided') t WHERE d >= 0 GROUP BY store_id", (today,))
                return {r[0]: {"count": int(r[1]), "avg_s": _r(r[2]), "p50_s": _r(r[3]), "p90_s": _r(r[4]),
                               "max_s": _r(r[5])} for r in rows}
            except pw.DataError:
                c.count("dashboard_bad_times")
        per: dict[str, list[float]] = {}
        for store_id, a, r in c.sql("SELECT store_id, accepted_at, ready_at FROM store_order WHERE business_date = ? "
                                    "AND ready_at IS NOT NULL AND state <> 'voided'", (today,)):
            d = ticket_s(a, r)
            if d is not None:
                per.setdefault(store_id, []).append(d)
        return {s: ticket_stats(v) for s, v in per.items()}

    def day(self, store_id: str, day: str | None, limit: int = ORDERS_SHOWN) -> dict:
        c = self.chain
        now = c.clock()
        day = day or self.today(now)
        with c.tx():
            known = c.sql("SELECT name, last_contact FROM chain_store WHERE store_id = ?", (store_id,))
            if not known:
                raise Refused(404, "unknown_store", f"no store {store_id} in this chain")
            rows = c.sql("SELECT order_id, number, channel, total, state, accepted_at, ready_at, completed_at, "
                         "voided_at FROM store_order WHERE store_id = ? AND business_date = ?", (store_id, day))
        name, last_contact = known[0]
        hours = [{"hour": h, "orders": 0, "sales": 0} for h in range(24)]
        unplaced = {"orders": 0, "sales": 0}
        channels: dict[str, dict] = {}
        totals = {"sales": 0, "orders": 0, "voided": 0, "open": 0, "ready": 0, "completed": 0}
        times: list[float] = []
        orders = []
        bad = 0
        for oid, number, channel, total, state, accepted_at, ready_at, completed_at, voided_at in rows:
            total = int(total or 0)
            t = ticket_s(accepted_at, ready_at) if state != "voided" else None
            acc = parse_at(accepted_at)
            bad += acc is None or (ready_at is not None and parse_at(ready_at) is None)
            orders.append({"order_id": oid, "number": number, "channel": channel, "total": total, "state": state,
                           "accepted_at": accepted_at, "ready_at": ready_at, "completed_at": completed_at,
                           "voided_at": voided_at, "ticket_s": _r(t), "_t": acc.timestamp() if acc else -math.inf})
            if state == "voided":
                totals["voided"] += 1
                continue
            totals["orders"] += 1
            totals["sales"] += total
            totals["open"] += state in OPEN_STATES
            totals["ready"] += state == "ready"
            totals["completed"] += state == "completed"
            bucket = hours[acc.astimezone(self.zone).hour] if acc else unplaced
            bucket["orders"] += 1
            bucket["sales"] += total
            ch = channels.setdefault(channel or "", {"channel": channel or "", "orders": 0, "sales": 0, "_t": []})
            ch["orders"] += 1
            ch["sales"] += total
            if t is not None:
                times.append(t)
                ch["_t"].append(t)
        if bad:
            c.count("dashboard_bad_times", bad)
        orders.sort(key=lambda o: o["_t"], reverse=True)
        for o in orders:
            del o["_t"]
        for ch in channels.values():
            ch["tickets"] = ticket_stats(ch.pop("_t"))
        return {"v": 1, "store_id": store_id, "name": name or store_id, "date": day, "today": day == self.today(now),
                "timezone": self.cfg.timezone,
                "online": last_contact is not None and now - last_contact <= self.cfg.offline_after_s,
                "totals": totals, "tickets": ticket_stats(times), "by_hour": hours, "unplaced": unplaced,
                "by_channel": sorted(channels.values(), key=lambda ch: -ch["sales"]),
                "orders_total": len(orders), "orders": orders[:limit]}


# ----------------------------------------------------------------- routes
def routes(chain, cfg, guarded) -> list:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    board = Dashboard(chain, cfg)

    def answer(data) -> Response:
        return Response(msgspec.json.encode(data), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    async def owner(request: Request) -> None:
        await run_in_threadpool(chain.authenticate, request.headers.get("authorization"), "owner", "admin")

    async def stores(request: Request):
        await owner(request)
        q = request.query_params
        try:
            limit = whole_number(q, "limit", STORES_SHOWN, STORES_MAX)
            offset = whole_number(q, "offset", 0, 1_000_000)
            text = q.get("q", "").strip()
            if len(text) > QUERY_MAX:
                raise Refused(400, "bad_q", f"q is {len(text)} characters long: at most {QUERY_MAX}")
        except Refused:
            chain.count("bad_requests")
            raise
        return answer(await run_in_threadpool(board.stores, limit, offset, text))

    async def store_day(request: Request):
        await owner(request)
        q = request.query_params
        day = q.get("date") or None
        if day is not None:
            try:
                ok = bool(_DATE.match(day)) and date.fromisoformat(day) is not None
            except ValueError:
                ok = False
            if not ok:
                chain.count("bad_requests")
                raise Refused(400, "bad_date",
                              f"date={day[:40]!r} is not a day: give it as YYYY-MM-DD, e.g. 2026-11-22")
        limit = q.get("limit", "")
        limit = min(ORDERS_MAX, int(limit)) if limit.isdigit() else ORDERS_SHOWN
        return answer(await run_in_threadpool(board.day, request.path_params["store"], day, limit))

    # The page: plain HTML, JS and CSS from this package, nothing from elsewhere (the CSP says so too).
    page_headers = {"Cache-Control": "no-cache", "Content-Security-Policy":
                    "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    async def page(request: Request):
        return FileResponse(STATIC / "dashboard.html", media_type="text/html; charset=utf-8", headers=page_headers)

    async def asset(request: Request):
        name = request.path_params["name"]
        if name not in ASSETS:
            return Response(b"not found", status_code=404, media_type="text/plain")
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers=page_headers)

    return [
        Route("/v1/dashboard/stores", guarded(stores), methods=["GET"]),
        Route("/v1/dashboard/stores/{store}/day", guarded(store_day), methods=["GET"]),
        Route("/dashboard", page, methods=["GET"]),
        Route("/dashboard/{name}", asset, methods=["GET"]),
    ]
