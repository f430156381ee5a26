"""The manager's day: ``restobox report [--date YYYY-MM-DD] [--out DIR] [--print PRINTER]``.

Everything comes from the store's own databases, opened read-only, so the
report works with the internet (or the broker) down:

- store.db (the hub's): orders, their lines and payment, tickets, and the
  outbox's ``station.bump`` / ``station.item_bump`` events (when each
  station finished each ticket);
- printing.db (the printing service's): print jobs and the printer fault log;
- sync.db (the sync service's): the cloud outage log.

What is counted, and how:

- A business day is the hub's: from ``business_day_start`` (04:00) local time
  to the same time the next day; an order belongs to the day the hub numbered
  it in (``order.business_date``).
- Sales are what diners pay: order totals, tax included (the menu's prices
  include tax), in yuan; voided orders are left out of every figure except
  "voided".
- By item: a line's whole price counts to its item, options' extra charges
  included (a large tea's +¥3 is the tea's); a combo counts as the combo,
  its side and drink (and their surcharges) inside it, not as separate
  items. By category: the item's category on the menu it was sold under.
- Points discounts: what members' redeemed points took off their orders
  (the hub's points ledger, ``points_entry``), a line of their own: the
  items' prices are before it, so items less points discounts are the day's
  sales. Points earned and redeemed count the day's orders that are not
  voided (a void gives the points back, and they are left out here).
- Ticket time: from the moment the hub sent the ticket to its station to the
  bump that finished it there (the last bump if it was recalled). Median and
  p90 (nearest rank: 90 % of tickets took at most this); late: longer than
  ``[report] late_after_s`` (or the station's own). Tickets never bumped are
  counted apart.
- Kiosk offline minutes: orders a kiosk took while it could not reach the hub
  (marked offline, with a provisional number) waited in its outbox from the
  diner's tap to the hub's acceptance; the union of those waits. A minute
  with no order is not seen.
- Cloud outage minutes: from the sync service's outage log (first failed send
  to the next delivery); nothing to send, nothing asked, nothing logged.
- Printer faults: the printing service's fault log (paper out, cover open, no
  answer, error), and the day's jobs still held, failed, or printed again
  (interrupted).
- Refusals are not kept by the hub (only counted in its health since its last
  start): the report says so rather than show a zero.
- The till, from the hub's payment ledger (``payment``: append-only rows of
  money taken and given back) and the counters' shifts (``till_shift``):
  sales by tender are each method's payments less its refunds, counted by
  when the money moved (the row's time), whatever day its order was; each
  refund with its order, reason, who gave it and the manager whose PIN
  allowed it; each shift opened that day with its float, the cash taken and
  given back during it (its rows), the cash expected (float + in - out, from
  the ledger as it is now: a payment a counter sent after the close counts),
  what was counted and the difference (negative: short); and the day's
  orders still unpaid when the report is made, each named. A store.db from
  before the ledger has no till: the report says so.

The page's charts need matplotlib (the hub's extras); where it is not
installed the page has its tables only and says why.
"""

from __future__ import annotations

import html
import importlib.util
import json
import math
import sqlite3
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from restobox import contract, db
from restobox.config import Config
from restobox.reconcile import Reconciliation

BUCKET_MIN = 15

PAY_NAMES = {
    ("card", "approved"): ("银行卡", "Card"),
    ("qr", "approved"): ("扫码", "QR code"),
    ("counter", "unpaid"): ("柜台付款（下单时未付）", "At the counter (unpaid when ordered)"),
}
FAULT_NAMES = {r: (contract.REASONS[r].zh.rstrip("。"), contract.REASONS[r].en.rstrip("."))
               for r in ("paper_out", "cover_open", "printer_offline", "printer_error", "print_interrupted",
                         "unknown_printer", "printer_busy")}

TENDER_NAMES = {"cash": ("现金", "Cash"), "card": ("银行卡", "Card"), "qr": ("扫码", "QR code"),
                "voucher": ("券", "Voucher"), "points": ("积分", "Points"), "gateway": ("手机支付", "Phone payment")}
CHANNEL_NAMES = {"kiosk": ("自助点餐", "Kiosk"), "counter": ("柜台", "Counter"), "qr": ("扫码点餐", "QR order"),
                 "preorder": ("预订", "Pre-order"), "delivery": ("外卖", "Delivery")}
TILL_TOP = 40
"""Refunds and unpaid orders named one by one on the printed summary; the rest counted."""

SHORT_FAULTS = {"paper_out": ("缺纸", "paper out"), "cover_open": ("开盖", "cover open"),
                "printer_offline": ("无响应", "no answer"), "printer_error": ("故障", "error")}


class ReportError(Exception):
    """The report cannot be made; ``str()`` says why, for a person."""


# ==================================================================== figures
@dataclass
class Bucket:
    start: datetime  # local
    orders: int = 0
    sales: int = 0  # fen


@dataclass
class Sold:
    key: str
    name_zh: str
    name_en: str
    qty: int = 0
    sales: int = 0


@dataclass
class StationTimes:
    station: str
    name_zh: str
    name_en: str
    late_after_s: float
    times: list[float] = field(default_factory=list)  # seconds, bumped tickets
    not_bumped: int = 0

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def p90_s(self) -> float | None:
        return nearest_rank(self.times, 90)

    @property
    def late(self) -> int:
        return sum(1 for t in self.times if t > self.late_after_s)


@dataclass
class Payment:
    method: str
    status: str
    count: int = 0
    amount: int = 0

    @property
    def names(self) -> tuple[str, str]:
        return PAY_NAMES.get((self.method, self.status), (f"{self.method} {self.status}",) * 2)


@dataclass
class Voided:
    number: int
    total: int
    reason: str
    at: str  # local HH:MM


@dataclass
class Fault:
    printer: str
    reason: str
    count: int = 0
    minutes: float = 0.0
    ongoing: bool = False


@dataclass
class PrinterJobs:
    printer: str
    jobs: int = 0
    done: int = 0
    interrupted: int = 0  # printed again marked REPRINT
    held: dict[str, int] = field(default_factory=dict)  # reason -> jobs still held
    failed: dict[str, int] = field(default_factory=dict)  # reason -> jobs that failed


@dataclass
class TenderSum:
    """One way of paying over the day: money taken, money given back."""

    method: str
    payments: int = 0  # ledger rows
    paid: int = 0  # fen
    refunds: int = 0
    refunded: int = 0

    @property
    def net(self) -> int:
        return self.paid - self.refunded

    @property
    def names(self) -> tuple[str, str]:
        return TENDER_NAMES.get(self.method, (self.method, self.method))


@dataclass
class Refund:
    """One refund (a counter's request: its rows, one per way back)."""

    at: str  # local HH:MM
    number: int
    amount: int
    methods: str  # "cash", "card + cash"
    reason: str
    staff: str  # the cashier
    device: str  # the counter
    approved_by: str  # the manager whose PIN it took


@dataclass
class ShiftFigures:
    device: str
    staff: str
    opened: str  # local HH:MM
    closed: str  # local HH:MM, "" while open
    float_fen: int
    cash_in: int
    cash_out: int
    counted: int | None  # None: not closed (or closed without a count)

    @property
    def expected(self) -> int:
        return self.float_fen + self.cash_in - self.cash_out

    @property
    def over_short(self) -> int | None:
        return None if self.counted is None else self.counted - self.expected


@dataclass
class UnpaidOrder:
    number: int
    table: str | None
    channel: str
    total: int
    paid: int  # part of it paid (a split not finished)
    state: str  # "held": waiting for its payment before the kitchen cooks it

    @property
    def due(self) -> int:
        return self.total - self.paid


@dataclass
class DayReport:
    business_date: str
    start: datetime  # local
    end: datetime  # local, exclusive
    made_at: datetime  # local
    store_name: tuple[str, str]
    orders: int = 0
    sales: int = 0
    tax: int = 0
    buckets: list[Bucket] = field(default_factory=list)
    items: list[Sold] = field(default_factory=list)
    categories: list[Sold] = field(default_factory=list)
    stations: list[StationTimes] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    voided: list[Voided] = field(default_factory=list)
    points_discount: int = 0  # fen taken off by redeemed points
    points_discount_orders: int = 0
    member_orders: int = 0  # orders with a member's phone number (points credited)
    points_earned: int = 0
    points_redeemed: int = 0
    offline_orders: int = 0
    kiosk_offline_minutes: float = 0.0
    cloud_outage_minutes: float | None = None  # None: no sync.db
    cloud_outages: int = 0
    faults: list[Fault] = field(default_factory=list)
    printer_jobs: list[PrinterJobs] = field(default_factory=list)
    till: bool = False  # the store has a payment ledger
    tenders: list[TenderSum] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    shifts: list[ShiftFigures] = field(default_factory=list)
    unpaid: list[UnpaidOrder] = field(default_factory=list)
    reconciliation: "Reconciliation | None" = None  # phone payments vs the gateway's statement ([paygate])
    notes: list[str] = field(default_factory=list)  # what could not be read

    @property
    def empty(self) -> bool:
        return self.orders == 0 and not self.voided

    @property
    def average(self) -> int:
        return round(self.sales / self.orders) if self.orders else 0

    @property
    def items_total(self) -> int:
        """The items' prices; less the points discounts, the day's sales."""
        return sum(i.sales for i in self.items)

    @property
    def loyalty(self) -> bool:
        return bool(self.member_orders or self.points_discount)

    @property
    def tenders_net(self) -> int:
        return sum(t.net for t in self.tenders)

    @property
    def refunded(self) -> int:
        return sum(f.amount for f in self.refunds)


def nearest_rank(values: list[float], pct: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least
    ``pct`` % of the values at or below it."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(pct / 100 * len(s)) - 1)]


def business_day(cfg: Config, when: datetime) -> str:
    """The business date ``when`` falls in (as the hub numbers orders)."""
    return cfg.store.business_date(when)


def parse_date(text: str) -> str:
    """``--date``: a day as YYYY-MM-DD, or ReportError."""
    try:
        d = date.fromisoformat(text.strip())
        if len(text.strip()) != 10:
            raise ValueError
    except ValueError:
        raise ReportError(f"--date takes a business day as YYYY-MM-DD (e.g. 2026-11-22); {text!r} is not one.") \
            from None
    return d.isoformat()


def _at(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _union_minutes(spans: list[tuple[datetime, datetime]]) -> float:
    total, end = 0.0, None
    for a, b in sorted(spans):
        if end is not None and a < end:
            a = end
        if b > a:
            total += (b - a).total_seconds()
            end = b if end is None else max(end, b)
    return total / 60


def _open_ro(path: str) -> sqlite3.Connection | None:
    if not Path(path).exists():
        return None
    return db.open_store_readonly(path)


def _table_exists(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


# ================================================================= computing
def compute(cfg: Config, business_date: str, *, now: datetime | None = None) -> DayReport:
    """The figures of ``business_date`` from the databases ``cfg`` names."""
    tz = ZoneInfo(cfg.store.timezone)
    now = now or datetime.now(timezone.utc)
    start = datetime.combine(date.fromisoformat(business_date), datetime.min.time(), tz) + cfg.store.day_start()
    end = start + timedelta(days=1)
    r = DayReport(business_date=business_date, start=start, end=end, made_at=now.astimezone(tz),
                  store_name=(cfg.store.name_zh, cfg.store.name_en))
    store = _open_ro(cfg.hub.database)
    if store is None:
        raise ReportError(f"There is no store database at {cfg.hub.database}: has the hub run on this Pi? "
                          "(the path is [hub] database in the config)")
    try:
        _orders(cfg, r, store, tz)
        _till(r, store, tz)
        if r.till and cfg.paygate.enabled:
            from restobox.reconcile import reconcile

            r.reconciliation = reconcile(cfg, store, start, end)
    except sqlite3.DatabaseError as exc:
        raise ReportError(f"The store database {cfg.hub.database} cannot be read: {exc}") from None
    finally:
        store.close()
    upto = min(now, end)  # an open fault or outage counts until now, or the day's end
    _printing(cfg, r, upto)
    _sync(cfg, r, upto)
    return r


def _menus(store: sqlite3.Connection) -> tuple[dict, dict, dict]:
    """item -> category, category -> (zh, en), station -> (zh, en), newest menu winning."""
    item_cat: dict[str, str] = {}
    cats: dict[str, tuple[str, str]] = {}
    stations: dict[str, tuple[str, str]] = {}
    for (body,) in store.execute('SELECT body FROM menu_version ORDER BY applied_at'):
        try:
            menu = json.loads(body)
        except ValueError:
            continue
        for c in menu.get("categories", ()):
            cats[c["id"]] = (c["name"]["zh"], c["name"]["en"])
        for s in menu.get("stations", ()):
            stations[s["id"]] = (s["name"]["zh"], s["name"]["en"])
        for i in menu.get("items", ()):
            item_cat[i["id"]] = i["category"]
    return item_cat, cats, stations


def _orders(cfg: Config, r: DayReport, store: sqlite3.Connection, tz: ZoneInfo) -> None:
    item_cat, cats, station_names = _menus(store)
    rows = store.execute(
        'SELECT id, number, state, accepted_at, placed_at, total, tax, payment_method, payment_status, '
        'offline, lines, updated_at FROM "order" WHERE business_date = ? ORDER BY number',
        (r.business_date,)).fetchall()
    reasons = {oid: json.loads(p).get("reason") or "" for oid, p in store.execute(
        "SELECT order_id, payload FROM outbox WHERE kind = 'order.voided' AND order_id IN "
        "(SELECT id FROM \"order\" WHERE business_date = ?)", (r.business_date,))}
    buckets: dict[datetime, Bucket] = {}
    items: dict[str, Sold] = {}
    categories: dict[str, Sold] = {}
    payments: dict[tuple[str, str], Payment] = {}
    offline_spans = []
    live: set[str] = set()
    for (oid, number, state, accepted_at, placed_at, total, tax, method, status, offline, lines,
         updated_at) in rows:
        acc = _at(accepted_at)
        if offline:
            r.offline_orders += 1
            placed = _at(placed_at) or acc
            a, b = max(placed, r.start), min(acc, r.end)
            if b > a:
                offline_spans.append((a, b))
        if state == "voided":
            r.voided.append(Voided(number, total, reasons.get(oid, ""),
                                   (_at(updated_at) or acc).astimezone(tz).strftime("%H:%M")))
            continue
        live.add(oid)
        r.orders += 1
        r.sales += total
        r.tax += tax
        local = acc.astimezone(tz)
        slot = local.replace(minute=local.minute // BUCKET_MIN * BUCKET_MIN, second=0, microsecond=0)
        bk = buckets.setdefault(slot, Bucket(slot))
        bk.orders += 1
        bk.sales += total
        p = payments.setdefault((method, status), Payment(method, status))
        p.count += 1
        p.amount += total
        for ln in json.loads(lines):
            it = items.setdefault(ln["item_id"], Sold(ln["item_id"], ln["name_zh"], ln["name_en"]))
            it.qty += ln["qty"]
            it.sales += ln["line_total"]
            cid = item_cat.get(ln["item_id"], "")
            cz, ce = cats.get(cid, ("其他", "Other"))
            c = categories.setdefault(cid, Sold(cid, cz, ce))
            c.qty += ln["qty"]
            c.sales += ln["line_total"]
    r.kiosk_offline_minutes = _union_minutes(offline_spans)
    if buckets:  # every quarter hour from the first order to the last, empty ones too
        t, last = min(buckets), max(buckets)
        while t <= last:
            r.buckets.append(buckets.get(t, Bucket(t)))
            t = (t.astimezone(timezone.utc) + timedelta(minutes=BUCKET_MIN)).astimezone(tz)
    by_sales = lambda s: (-s.sales, -s.qty, s.key)  # noqa: E731
    r.items = sorted(items.values(), key=by_sales)
    r.categories = sorted(categories.values(), key=by_sales)
    r.payments = sorted(payments.values(), key=lambda p: (-p.amount, p.method))
    _points(r, store, live)
    _ticket_times(cfg, r, store, live, station_names)


def _points(r: DayReport, store: sqlite3.Connection, live: set[str]) -> None:
    """The day's points from the ledger: each accepted order with a member
    has an earn row (even of 0) and, if it spent points, a redeem row."""
    if not _table_exists(store, "points_entry"):
        return
    members, discounted = set(), set()
    for oid, kind, points, discount in store.execute(
            "SELECT order_id, kind, points, discount FROM points_entry WHERE kind IN ('earn', 'redeem') AND "
            "order_id IN (SELECT id FROM \"order\" WHERE business_date = ?)", (r.business_date,)):
        if oid not in live:
            continue
        members.add(oid)
        if kind == "earn":
            r.points_earned += points
        else:
            r.points_redeemed -= points
            r.points_discount += discount
            discounted.add(oid)
    r.member_orders, r.points_discount_orders = len(members), len(discounted)


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in con.execute(f'PRAGMA table_info("{table}")')}


def _till(r: DayReport, store: sqlite3.Connection, tz: ZoneInfo) -> None:
    """Tenders, refunds, shifts and the orders left unpaid (see the module's docstring)."""
    if not (_table_exists(store, "payment") and _table_exists(store, "till_shift")
            and "payment" in _columns(store, "order")):
        r.notes.append("the store database has no payment ledger yet (the hub makes it when it next starts): "
                       "the till is not shown")
        return
    r.till = True
    # A row's money moved at its time (``at``, else when the hub recorded
    # it). The hub writes recorded_at in UTC: rows recorded a day before the
    # day began cannot have happened in it (a counter offline for days is
    # still counted: its rows are recorded when it is back).
    since = (r.start - timedelta(days=1)).astimezone(timezone.utc).isoformat(timespec="milliseconds")
    tenders: dict[str, TenderSum] = {}
    refunds: dict[str, Refund] = {}
    numbers = dict(store.execute('SELECT id, number FROM "order"'
                                 ' WHERE id IN (SELECT order_id FROM payment WHERE recorded_at >= ?)', (since,)))
    for (kind, method, amount, at, recorded_at, request_id, order_id, reason, staff, device) in store.execute(
            'SELECT kind, method, amount, at, recorded_at, request_id, order_id, reason, staff, device '
            'FROM payment WHERE recorded_at >= ? ORDER BY seq', (since,)):
        t = _at(at) or _at(recorded_at)
        if t is None or not (r.start <= t < r.end):
            continue
        ts = tenders.setdefault(method, TenderSum(method))
        if kind == "payment":
            ts.payments += 1
            ts.paid += amount
            continue
        ts.refunds += 1
        ts.refunded += amount
        f = refunds.get(request_id)
        if f is None:
            why, approved = _refund_reason(reason)
            f = refunds[request_id] = Refund(at=t.astimezone(tz).strftime("%H:%M"), number=numbers.get(order_id, 0),
                                             amount=0, methods="", reason=why, staff=staff, device=device,
                                             approved_by=approved)
        f.amount += amount
        f.methods = " + ".join(dict.fromkeys([*filter(None, f.methods.split(" + ")), method]))
    order_of = {m: k for k, m in enumerate(TENDER_NAMES)}
    r.tenders = sorted(tenders.values(), key=lambda s: (order_of.get(s.method, 99), s.method))
    r.refunds = list(refunds.values())
    shifts = store.execute(
        'SELECT s.id, s.device, s.staff, s.opened_at, s.closed_at, s.float_fen, s.counted_fen, '
        "COALESCE(SUM(CASE WHEN p.kind = 'payment' THEN p.amount END), 0), "
        "COALESCE(SUM(CASE WHEN p.kind = 'refund' THEN p.amount END), 0) "
        "FROM till_shift s LEFT JOIN payment p ON p.shift_id = s.id AND p.method = 'cash' "
        'WHERE s.business_date = ? GROUP BY s.id ORDER BY s.opened_at, s.device', (r.business_date,)).fetchall()
    for _sid, device, staff, opened_at, closed_at, float_fen, counted, cash_in, cash_out in shifts:
        opened, closed = _at(opened_at), _at(closed_at)
        r.shifts.append(ShiftFigures(
            device=device, staff=staff, opened=opened.astimezone(tz).strftime("%H:%M") if opened else "?",
            closed=closed.astimezone(tz).strftime("%H:%M") if closed else "", float_fen=float_fen,
            cash_in=cash_in, cash_out=cash_out, counted=counted if closed_at else None))
    r.unpaid = [UnpaidOrder(number, table, channel, total, paid, state) for number, table, channel, total, paid, state
                in store.execute(
                    'SELECT number, "table", channel, total, paid, state FROM "order" WHERE business_date = ? '
                    "AND state NOT IN ('voided', 'rejected') AND payment = 'unpaid' ORDER BY number",
                    (r.business_date,))]


def _refund_reason(reason: str) -> tuple[str, str]:
    """(the reason given, the manager): the hub writes "<reason> (PIN <manager>)"."""
    head, sep, tail = reason.rpartition(" (PIN ")
    if sep and tail.endswith(")"):
        return head, tail[:-1]
    return reason, ""


def _ticket_times(cfg, r: DayReport, store, live: set[str], names: dict) -> None:
    bumps: dict[tuple[str, str], datetime] = {}
    for oid, payload in store.execute(
            "SELECT order_id, payload FROM outbox WHERE kind IN ('station.bump', 'station.item_bump') AND "
            "order_id IN (SELECT id FROM \"order\" WHERE business_date = ?)", (r.business_date,)):
        p = json.loads(payload)
        t = _at(p.get("at"))
        key = (oid, p.get("station", ""))
        if t is not None and (key not in bumps or t > bumps[key]):
            bumps[key] = t
    stations: dict[str, StationTimes] = {}
    for oid, station, state, created_at, updated_at in store.execute(
            'SELECT "order_id", station, state, created_at, updated_at FROM ticket WHERE "order_id" IN '
            '(SELECT id FROM "order" WHERE business_date = ?)', (r.business_date,)):
        if oid not in live:
            continue
        zh, en = names.get(station, (station, station))
        st = stations.setdefault(station, StationTimes(station, zh, en, cfg.report.late_after(station)))
        if state != "done":
            st.not_bumped += 1
            continue
        done = bumps.get((oid, station)) or _at(updated_at)
        st.times.append(max(0.0, (done - _at(created_at)).total_seconds()))
    r.stations = [stations[s] for s in sorted(stations)]


def _printing(cfg: Config, r: DayReport, upto: datetime) -> None:
    con = _open_ro(cfg.printing.database)
    if con is None:
        r.notes.append(f"no printing database at {cfg.printing.database}: printer figures are not shown")
        return
    a, b = r.start.astimezone(timezone.utc).isoformat(), r.end.astimezone(timezone.utc).isoformat()
    try:
        jobs: dict[str, PrinterJobs] = {}
        for printer, state, reason, interrupted, created_at in con.execute(
                "SELECT printer, state, reason, interrupted, created_at FROM print_job"):
            t = _at(created_at)
            if t is None or not (r.start <= t < r.end):
                continue
            pj = jobs.setdefault(printer, PrinterJobs(printer))
            pj.jobs += 1
            pj.done += state == "done"
            pj.interrupted += bool(interrupted)
            if state == "held":
                pj.held[reason or "?"] = pj.held.get(reason or "?", 0) + 1
            elif state == "failed":
                pj.failed[reason or "?"] = pj.failed.get(reason or "?", 0) + 1
        r.printer_jobs = [jobs[p] for p in sorted(jobs)]
        if not _table_exists(con, "printer_fault"):
            r.notes.append("the printing service keeps no fault log yet (it starts one when it next starts)")
            return
        faults: dict[tuple[str, str], Fault] = {}
        for printer, reason, started_at, ended_at in con.execute(
                "SELECT printer, reason, started_at, ended_at FROM printer_fault WHERE started_at < ? "
                "AND (ended_at IS NULL OR ended_at > ?) ORDER BY id", (b, a)):
            s, e = _at(started_at), _at(ended_at)
            f = faults.setdefault((printer, reason), Fault(printer, reason))
            f.count += 1
            f.ongoing |= e is None
            f.minutes += max(0.0, (min(e or upto, r.end) - max(s, r.start)).total_seconds() / 60)
        r.faults = sorted(faults.values(), key=lambda f: (f.printer, -f.minutes))
    except sqlite3.DatabaseError as exc:
        r.notes.append(f"the printing database {cfg.printing.database} cannot be read: {exc}")
    finally:
        con.close()


def _sync(cfg: Config, r: DayReport, upto: datetime) -> None:
    con = _open_ro(cfg.sync.database)
    if con is None:
        r.notes.append(f"no sync database at {cfg.sync.database}: cloud outages are not shown")
        return
    try:
        if not _table_exists(con, "sync_outage"):
            r.notes.append("the sync service keeps no outage log yet (it starts one when it next starts)")
            return
        a, b, until = r.start.timestamp(), r.end.timestamp(), upto.timestamp()
        total, n = 0.0, 0
        for started, ended in con.execute(
                "SELECT started_at, ended_at FROM sync_outage WHERE started_at < ? AND (ended_at IS NULL OR "
                "ended_at > ?)", (b, a)):
            total += max(0.0, min(ended if ended is not None else until, b) - max(started, a))
            n += 1
        r.cloud_outage_minutes, r.cloud_outages = total / 60, n
    except sqlite3.DatabaseError as exc:
        r.notes.append(f"the sync database {cfg.sync.database} cannot be read: {exc}")
    finally:
        con.close()


# ================================================================ formatting
def yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def mmss(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


def minutes(m: float | None) -> str:
    return "-" if m is None else f"{m:.0f} min" if m >= 10 or m == 0 else f"{m:.1f} min"


# ==================================================================== charts
def _font():
    """A matplotlib font with Chinese characters (the printer preview's), or None."""
    from matplotlib import font_manager

    from restobox.printing.preview import FontNotFound, find_cjk_font

    try:
        path = find_cjk_font()
    except FontNotFound:
        return None
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def charts(r: DayReport, folder: Path) -> list[tuple[str, str, str]]:
    """The day's charts as PNG files in ``folder``: [(file name, zh title, en title)]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    name = _font()
    rc = {"font.size": 11, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100}
    if name:
        rc["font.family"] = [name, "DejaVu Sans"]
    out: list[tuple[str, str, str]] = []
    yuan_fmt = FuncFormatter(lambda v, _: f"¥{v:,.0f}")

    def save(fig, file: str, zh: str, en: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / file, dpi=110)
        plt.close(fig)
        out.append((file, zh, en))

    def label(s: Sold) -> str:
        return f"{s.name_zh} {s.name_en}" if name else s.name_en

    with plt.rc_context(rc):
        if r.buckets:
            fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, height_ratios=(3, 2))
            xs = list(range(len(r.buckets)))
            ax.bar(xs, [b.sales / 100 for b in r.buckets], width=0.85, color="#e07b39")
            ax.yaxis.set_major_formatter(yuan_fmt)
            ax.set_ylabel("销售额 Sales" if name else "Sales")
            ax.set_title(f"每15分钟 Every 15 minutes · {r.business_date}" if name
                         else f"Every 15 minutes · {r.business_date}", loc="left")
            ax2.bar(xs, [b.orders for b in r.buckets], width=0.85, color="#1f4e79")
            ax2.set_ylabel("订单 Orders" if name else "Orders")
            ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
            step = max(1, len(xs) // 12)
            ax2.set_xticks(xs[::step], [b.start.strftime("%H:%M") for b in r.buckets][::step])
            ax2.set_xlim(-0.6, len(xs) - 0.4)
            for a_ in (ax, ax2):
                a_.grid(axis="y", color="#eee")
                a_.set_axisbelow(True)
            save(fig, "orders-per-15-min.png", "每15分钟的订单和销售额", "Orders and sales every 15 minutes")
        for what, rows, file, zh, en, colour in (
                ("items", r.items[:12], "sales-by-item.png", "菜品销售额（前12）", "Sales by item (top 12)", "#e07b39"),
                ("categories", r.categories, "sales-by-category.png", "分类销售额", "Sales by category", "#5b8c3a")):
            if not rows:
                continue
            fig, ax = plt.subplots(figsize=(10, 0.9 + 0.42 * len(rows)))
            ys = list(range(len(rows)))[::-1]
            bars = ax.barh(ys, [s.sales / 100 for s in rows], color=colour, height=0.7)
            ax.set_yticks(ys, [label(s) for s in rows])
            ax.xaxis.set_major_formatter(yuan_fmt)
            top = max(s.sales for s in rows) / 100
            ax.set_xlim(0, top * 1.22)
            for b, s in zip(bars, rows):
                ax.text(b.get_width() + top * 0.01, b.get_y() + b.get_height() / 2, f"{yuan(s.sales)} · {s.qty}×",
                        va="center", fontsize=10)
            ax.set_title(f"{zh} {en}" if name else en, loc="left")
            save(fig, file, zh, en)
        timed = [s for s in r.stations if s.times]
        if timed:
            fig, ax = plt.subplots(figsize=(10, 1.2 + 0.9 * len(timed)))
            ys = list(range(len(timed)))[::-1]
            box = dict(positions=ys, widths=0.5, medianprops={"color": "#1f4e79", "linewidth": 2})
            values = [[t / 60 for t in s.times] for s in timed]
            try:
                ax.boxplot(values, orientation="horizontal", **box)
            except TypeError:  # matplotlib before 3.10
                ax.boxplot(values, vert=False, **box)
            for y, s in zip(ys, timed):
                ax.plot([s.late_after_s / 60] * 2, [y - 0.4, y + 0.4], color="#c0392b", linewidth=2)
                ax.text(max(t / 60 for t in s.times) + 0.3, y,
                        f"median {mmss(s.median_s)} · p90 {mmss(s.p90_s)} · {s.late}/{len(s.times)} late",
                        va="center", fontsize=10)
            ax.set_yticks(ys, [f"{s.name_zh} {s.name_en}" if name else s.name_en for s in timed])
            right = max(max(t for s in timed for t in s.times), max(s.late_after_s for s in timed)) / 60
            ax.set_xlim(0, right * 1.55 + 1)
            ax.set_xlabel("分钟 minutes (红线：超时 red line: late after)" if name else "minutes (red: late after)")
            ax.set_title("出餐时间 Ticket times" if name else "Ticket times", loc="left")
            save(fig, "ticket-times.png", "各工位出餐时间", "Ticket times per station")
        if r.payments:
            fig, ax = plt.subplots(figsize=(10, 0.9 + 0.5 * len(r.payments)))
            ys = list(range(len(r.payments)))[::-1]
            bars = ax.barh(ys, [p.amount / 100 for p in r.payments], color="#1f4e79", height=0.6)
            ax.set_yticks(ys, [(f"{p.names[0]}\n{p.names[1]}" if name else p.names[1]) for p in r.payments])
            ax.xaxis.set_major_formatter(yuan_fmt)
            top = max(p.amount for p in r.payments) / 100
            ax.set_xlim(0, top * 1.25)
            for b, p in zip(bars, r.payments):
                ax.text(b.get_width() + top * 0.01, b.get_y() + b.get_height() / 2, f"{yuan(p.amount)} · {p.count}",
                        va="center", fontsize=10)
            ax.set_title("付款方式 Payment mix" if name else "Payment mix", loc="left")
            save(fig, "payment-mix.png", "付款方式", "Payment mix")
    return out


# ====================================================================== HTML
_CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;
margin:0 auto;max-width:1060px;padding:24px;color:#222;background:#fff}
h1{margin:0 0 4px;font-size:26px} h2{margin:32px 0 8px;font-size:20px;border-bottom:2px solid #e07b39;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px} .en{color:#555;font-weight:normal}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.tile{flex:1 1 150px;border:1px solid #ddd;border-radius:8px;padding:10px 14px}
.tile b{display:block;font-size:24px} .tile span{color:#666;font-size:13px}
table{border-collapse:collapse;margin:8px 0;min-width:50%} th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} img{max-width:100%;margin:8px 0}
.late{color:#c0392b;font-weight:bold} .note{color:#8a6d00;background:#fff8e1;padding:8px 12px;border-radius:6px}
.empty{font-size:20px;padding:40px 0;color:#555}
"""


def _h(zh: str, en: str) -> str:
    return f'<h2>{html.escape(zh)} <span class="en">{html.escape(en)}</span></h2>'


def _table(head: list[tuple[str, str, bool]], rows: list[list[str]]) -> str:
    """``head``: (zh, en, numeric); cells are HTML already."""
    th = "".join(f'<th class="{"n" if n else ""}">{html.escape(zh)}<br><span class="en">{html.escape(en)}</span></th>'
                 for zh, en, n in head)
    body = "".join("<tr>" + "".join(f'<td class="{"n" if head[i][2] else ""}">{c}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def render_html(r: DayReport, images: list[tuple[str, str, str]]) -> str:
    e = html.escape
    img = {f: (zh, en) for f, zh, en in images}

    def picture(file: str) -> str:
        if file not in img:
            return ""
        zh, en = img[file]
        return f'<img src="{e(file)}" alt="{e(zh)} {e(en)}">'

    span = f"{r.start:%Y-%m-%d %H:%M} – {r.end:%Y-%m-%d %H:%M}"
    parts = [f"""<!DOCTYPE html><html lang="zh-Hans"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(r.store_name[0])} 日报 {e(r.business_date)} · {e(r.store_name[1])} day report</title><style>{_CSS}</style></head><body>
<h1>{e(r.store_name[0])} 营业日报 <span class="en">{e(r.store_name[1])} · The day's report</span></h1>
<p class="sub">营业日 Business day <b>{e(r.business_date)}</b> ({e(span)}) · 生成于 made {r.made_at:%Y-%m-%d %H:%M}</p>"""]
    if r.empty:
        parts.append(f'<p class="empty">这一天没有订单。<br>No orders on that day ({e(r.business_date)}).</p>')
    else:
        voided_amount = sum(v.total for v in r.voided)
        tiles = [("订单", "Orders", str(r.orders)), ("销售额（含税）", "Sales (tax incl.)", yuan(r.sales)),
                 ("客单价", "Average order", yuan(r.average)), ("税", "Tax", yuan(r.tax)),
                 ("作废", "Voided", f"{len(r.voided)} · {yuan(voided_amount)}")]
        parts.append('<div class="tiles">' + "".join(
            f'<div class="tile"><b>{e(v)}</b><span>{e(zh)} {e(en)}</span></div>' for zh, en, v in tiles) + "</div>")
        parts.append(_h("每15分钟的订单和销售额", "Orders and sales every 15 minutes"))
        parts.append(picture("orders-per-15-min.png"))
        parts.append(_table([("时段", "From", False), ("订单", "Orders", True), ("销售额", "Sales", True)],
                            [[f"{b.start:%H:%M}", str(b.orders), yuan(b.sales)] for b in r.buckets if b.orders]))
        parts.append(_h("分类销售额", "Sales by category"))
        parts.append(picture("sales-by-category.png"))
        parts.append(_table([("分类", "Category", False), ("份数", "Qty", True), ("销售额", "Sales", True)],
                            [[e(f"{c.name_zh} {c.name_en}"), str(c.qty), yuan(c.sales)] for c in r.categories]))
        parts.append(_h("菜品销售额", "Sales by item"))
        parts.append("<p>一行的全价（含加料、加大等加价）计入该菜品；套餐按套餐计，配菜和饮品不单独计。"
                     "<br><span class=\"en\">A line's whole price, its options' extra charges included, counts to "
                     "its item; a combo counts as the combo, its side and drink inside it.</span></p>")
        parts.append(picture("sales-by-item.png"))
        parts.append(_table([("菜品", "Item", False), ("份数", "Qty", True), ("销售额", "Sales", True)],
                            [[e(f"{s.name_zh} {s.name_en}"), str(s.qty), yuan(s.sales)] for s in r.items]))
        parts.append(_table([("", "", False), ("单数", "Orders", True), ("金额", "Amount", True)], [
            [e("菜品合计 · Items"), str(r.orders), yuan(r.items_total)],
            [e("积分抵扣 · Points discounts"), str(r.points_discount_orders), "−" + yuan(r.points_discount)],
            ["<b>销售额（含税） · Sales (tax incl.)</b>", str(r.orders), f"<b>{yuan(r.sales)}</b>"],
        ]))
        if r.loyalty:
            parts.append(_h("会员积分", "Loyalty points"))
            parts.append(_table([("什么", "What", False), ("数值", "Figure", True)], [
                [e("留了手机号的订单 · Orders with a member's number"), str(r.member_orders)],
                [e("获得积分 · Points earned"), str(r.points_earned)],
                [e("使用积分 · Points redeemed"), str(r.points_redeemed)],
                [e("积分抵扣金额 · Taken off by points"),
                 f"{yuan(r.points_discount)} ({r.points_discount_orders} 单 orders)"],
            ]))
        parts.append(_h("各工位出餐时间", "Ticket times per station"))
        parts.append("<p>从工单送到工位到出餐（划单）。<br><span class=\"en\">From the ticket reaching the station "
                     "to its bump.</span></p>")
        parts.append(picture("ticket-times.png"))
        parts.append(_table(
            [("工位", "Station", False), ("已出餐", "Bumped", True), ("中位数", "Median", True), ("P90", "p90", True),
             ("超时", "Late", True), ("超时标准", "Late after", True), ("未出餐", "Not bumped", True)],
            [[e(f"{s.name_zh} {s.name_en}"), str(len(s.times)), mmss(s.median_s), mmss(s.p90_s),
              f'<span class="{"late" if s.late else ""}">{s.late}</span>', mmss(s.late_after_s), str(s.not_bumped)]
             for s in r.stations]))
        parts.append(_h("付款方式", "Payment mix"))
        parts.append(picture("payment-mix.png"))
        parts.append(_table([("方式", "Method", False), ("单数", "Orders", True), ("金额", "Amount", True)],
                            [[e(f"{p.names[0]} · {p.names[1]}"), str(p.count), yuan(p.amount)] for p in r.payments]))
        parts.append(_h("作废订单", "Voided orders"))
        parts.append(_table([("单号", "No.", True), ("时间", "At", False), ("金额", "Amount", True),
                             ("原因", "Reason", False)],
                            [[str(v.number), v.at, yuan(v.total), e(v.reason)] for v in r.voided])
                     if r.voided else "<p>没有 None.</p>")
        parts.append("<p>被拒绝的订单（菜单外、价格不符等）不保存在门店数据库里，只在中心的运行状态里计数。"
                     "<br><span class=\"en\">Refused orders (not on the menu, a wrong price, ...) are not kept in "
                     "the store database; the hub only counts them in its health since it last started.</span></p>")
    if r.till:
        parts.append(_till_html(r))
    parts.append(_h("离线", "Offline"))
    cloud = ("没有记录 not recorded" if r.cloud_outage_minutes is None
             else f"{minutes(r.cloud_outage_minutes)} ({r.cloud_outages} ×)")
    parts.append(_table([("什么", "What", False), ("数值", "Figure", True)], [
        [e("点餐机连不上中心时下的订单 · Orders a kiosk took while it could not reach the hub"), str(r.offline_orders)],
        [e("这些订单在点餐机里等待的时间 · Minutes those orders waited in the kiosks"),
         minutes(r.kiosk_offline_minutes)],
        [e("连不上总部云端的时间 · Minutes the chain's cloud could not be reached"), e(cloud)],
    ]))
    parts.append(_h("打印机故障", "Printer faults"))
    if r.faults:
        parts.append(_table(
            [("打印机", "Printer", False), ("故障", "Fault", False), ("次数", "Times", True), ("时长", "Minutes", True)],
            [[e(f.printer), e(" · ".join(FAULT_NAMES.get(f.reason, (f.reason, f.reason)))), str(f.count),
              minutes(f.minutes) + (" (仍未恢复 still now)" if f.ongoing else "")] for f in r.faults]))
    else:
        parts.append("<p>没有 None.</p>")
    if r.printer_jobs:
        def why(d: dict[str, int]) -> str:
            return e(", ".join(f"{FAULT_NAMES.get(k, (k, k))[1]} {n}" for k, n in sorted(d.items()))) or "0"
        parts.append(_table(
            [("打印机", "Printer", False), ("任务", "Jobs", True), ("已打印", "Printed", True),
             ("重新打印", "Printed again", True), ("仍在等待", "Still held", False), ("失败", "Failed", False)],
            [[e(p.printer), str(p.jobs), str(p.done), str(p.interrupted), why(p.held), why(p.failed)]
             for p in r.printer_jobs]))
    for n in r.notes:
        parts.append(f'<p class="note">{e(n)}</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def signed(fen: int) -> str:
    return ("+" if fen > 0 else "-" if fen < 0 else "") + yuan(abs(fen))


def over_short_text(fen: int | None) -> tuple[str, str]:
    if fen is None:
        return "-", "-"
    if fen == 0:
        return "相符", "even"
    return (f"长款 {yuan(fen)}", f"over {yuan(fen)}") if fen > 0 else (f"短款 {yuan(-fen)}", f"short {yuan(-fen)}")


def where_text(u: UnpaidOrder) -> tuple[str, str]:
    zh, en = CHANNEL_NAMES.get(u.channel, (u.channel, u.channel))
    if u.table:
        zh, en = f"{zh} · {u.table}号桌", f"{en} · table {u.table}"
    return zh, en


def _till_html(r: DayReport) -> str:
    e = html.escape
    out = [_h("收银", "The till")]
    out.append("<p>按钱实际收付的时间计（不论订单是哪天的）；每种方式的收款减去退款。"
               "<br><span class=\"en\">By when the money moved, whatever day its order was: each way of paying, "
               "what was taken less what was given back.</span></p>")
    out.append(_table(
        [("方式", "Tender", False), ("收款笔数", "Payments", True), ("收款", "Taken", True), ("退款笔数", "Refunds", True),
         ("退款", "Given back", True), ("净额", "Net", True)],
        [[e(f"{t.names[0]} · {t.names[1]}"), str(t.payments), yuan(t.paid), str(t.refunds), yuan(t.refunded),
          yuan(t.net)] for t in r.tenders]
        + [["<b>合计 · Total</b>", str(sum(t.payments for t in r.tenders)), yuan(sum(t.paid for t in r.tenders)),
            str(sum(t.refunds for t in r.tenders)), yuan(sum(t.refunded for t in r.tenders)),
            f"<b>{yuan(r.tenders_net)}</b>"]]) if r.tenders else "<p>没有收付款 No money taken or given back.</p>")
    out.append(f"<h3>退款 Refunds · {len(r.refunds)} · {yuan(r.refunded)}</h3>")
    out.append(_table(
        [("时间", "At", False), ("单号", "No.", True), ("金额", "Amount", True), ("方式", "Back by", False),
         ("原因", "Reason", False), ("收银员", "Cashier", False), ("批准", "Manager", False)],
        [[f.at, str(f.number), yuan(f.amount), e(f.methods), e(f.reason), e(f"{f.staff} @ {f.device}".strip(" @")),
          e(f.approved_by)] for f in r.refunds]) if r.refunds else "<p>没有 None.</p>")
    out.append("<h3>班次 Shifts</h3>")
    out.append(_table(
        [("收银台", "Counter", False), ("收银员", "Cashier", False), ("开始", "Opened", False), ("结束", "Closed", False),
         ("备用金", "Float", True), ("现金收入", "Cash in", True), ("现金退出", "Cash out", True),
         ("应有", "Expected", True), ("清点", "Counted", True), ("长短款", "Over/short", True)],
        [[e(s.device), e(s.staff), s.opened, s.closed or "仍在进行 still open", yuan(s.float_fen), yuan(s.cash_in),
          yuan(s.cash_out), yuan(s.expected), "-" if s.counted is None else yuan(s.counted),
          f'<span class="{"late" if s.over_short else ""}">{e(" · ".join(over_short_text(s.over_short)))}</span>']
         for s in r.shifts]) if r.shifts else "<p>没有 None.</p>")
    out.append(f"<h3>未付款的订单 Orders left unpaid · {len(r.unpaid)} · {yuan(sum(u.due for u in r.unpaid))}</h3>")
    out.append(_table(
        [("单号", "No.", True), ("来源", "Where", False), ("金额", "Total", True), ("已付", "Paid", True),
         ("未付", "Due", True), ("状态", "State", False)],
        [[str(u.number), e(" · ".join(where_text(u))), yuan(u.total), yuan(u.paid), f"<b>{yuan(u.due)}</b>",
          "待付款后制作 held until paid" if u.state == "held" else e(u.state)] for u in r.unpaid])
        if r.unpaid else "<p>没有 None.</p>")
    rc = r.reconciliation
    if rc is not None:
        out.append("<h3>手机支付对账 Phone payments reconciled with the gateway</h3>")
        if not rc.checked:
            out.append(f'<p class="late">没有对账：拿不到支付网关的对账单。<br><span class="en">Not reconciled: the '
                       f'gateway&#39;s statement could not be had: {e(rc.reason)}</span></p>')
        else:
            out.append(f"<p>对账单 {rc.statement_lines} 笔，账本 {rc.ledger_lines} 笔，相符 {rc.matched} 笔，"
                       f"差异 {len(rc.differences)} 笔。<br><span class=\"en\">Statement {rc.statement_lines} lines, "
                       f"ledger {rc.ledger_lines}, matched {rc.matched}, differences {len(rc.differences)}.</span></p>")
            out.append(_table(
                [("差异", "Difference", False), ("类型", "Type", False), ("商户单号", "Merchant no.", False),
                 ("单号", "No.", True), ("账本", "Ledger", True), ("网关", "Gateway", True), ("时间", "At", False)],
                [[f'<span class="late">{e(" · ".join(d.names))}</span>', d.type, e(d.out_trade_no),
                  str(d.number or ""), "-" if d.ledger_amount is None else yuan(d.ledger_amount),
                  "-" if d.gateway_amount is None else yuan(d.gateway_amount), e(d.at)] for d in rc.differences])
                if rc.differences else "<p>没有差异 No differences.</p>")
    return "\n".join(out)


NO_CHARTS = ("没有图表：这台设备没有安装 matplotlib（restobox[hub]）。表格里的数字是完整的。",
             "No charts: matplotlib (restobox[hub]) is not installed here. The tables hold every figure.")


def charts_available() -> bool:
    """matplotlib comes with the hub's extras; without it (a screen's Pi, a
    staff laptop) the page has its tables and no charts."""
    return importlib.util.find_spec("matplotlib") is not None


def write_page(r: DayReport, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with_charts = not r.empty and charts_available()
    images = charts(r, folder) if with_charts else []
    page = folder / "index.html"
    text = render_html(r, images)
    if not r.empty and not with_charts:
        zh, en = NO_CHARTS
        text = text.replace("</body>", f'<p class="note">{html.escape(zh)}<br>{html.escape(en)}</p>\n</body>', 1)
    page.write_text(text, encoding="utf-8")
    return page


# ============================================================ printed summary
def summary_for_printer(r: DayReport, cfg: Config, top: int | None = None) -> contract.ReportData:
    W, Row, Sec = contract.Words, contract.ReportRow, contract.ReportSection
    top = cfg.report.top_items if top is None else top
    s = cfg.store
    header = contract.StoreHeader(name_zh=s.name_zh, name_en=s.name_en, address=s.address, phone=s.phone,
                                  tax_id=s.tax_id)
    sections = []
    if r.empty:
        sections.append(Sec(title=W("没有订单", "No orders"), rows=(Row(label=W("订单", "Orders"), value="0"),)))
    else:
        sections.append(Sec(title=W("销售", "Sales"), rows=(
            Row(label=W("订单", "Orders"), value=str(r.orders)),
            Row(label=W("销售额(含税)", "Sales incl. tax"), value=yuan(r.sales)),
            *((Row(label=W("积分抵扣", "Points discounts"), value=f"-{yuan(r.points_discount)}"),)
              if r.points_discount else ()),
            Row(label=W("税", "Tax"), value=yuan(r.tax)),
            Row(label=W("客单价", "Average"), value=yuan(r.average)),
            Row(label=W("作废", "Voided"), value=f"{len(r.voided)} / {yuan(sum(v.total for v in r.voided))}"),
        )))
        if r.loyalty:
            sections.append(Sec(title=W("会员积分", "Loyalty points"), rows=(
                Row(label=W("会员订单", "Member orders"), value=str(r.member_orders)),
                Row(label=W("获得积分", "Points earned"), value=str(r.points_earned)),
                Row(label=W("使用积分", "Points redeemed"), value=str(r.points_redeemed)),
            )))
        sections.append(Sec(title=W("付款方式", "Payments"), rows=tuple(
            Row(label=W(*_short_pay(p)), value=f"{p.count} / {yuan(p.amount)}") for p in r.payments)))
        if top:
            sections.append(Sec(title=W("热销", "Top items"), rows=tuple(
                Row(label=W(i.name_zh, i.name_en), value=f"{i.qty} / {yuan(i.sales)}") for i in r.items[:top])))
        if r.stations:
            sections.append(Sec(title=W("出餐时间 中位/P90/超时", "Tickets: median p90 late"), rows=tuple(
                Row(label=W(st.name_zh, st.name_en),
                    value=f"{mmss(st.median_s)} {mmss(st.p90_s)} {st.late}/{len(st.times)}") for st in r.stations)))
    if r.till:
        sections += _till_sections(r)
    cloud = "-" if r.cloud_outage_minutes is None else minutes(r.cloud_outage_minutes)
    sections.append(Sec(title=W("离线", "Offline"), rows=(
        Row(label=W("离线订单", "Offline orders"), value=str(r.offline_orders)),
        Row(label=W("点餐机离线", "Kiosks offline"), value=minutes(r.kiosk_offline_minutes)),
        Row(label=W("云端不通", "Cloud unreachable"), value=cloud),
    )))
    rows = [Row(label=W(*(f"{f.printer} {w}" for w in SHORT_FAULTS.get(f.reason, (f.reason, f.reason)))),
                value=f"{f.count}x {minutes(f.minutes)}") for f in r.faults]
    failed = sum(sum(p.failed.values()) for p in r.printer_jobs)
    if failed:
        rows.append(Row(label=W("打印失败", "Jobs failed"), value=str(failed)))
    sections.append(Sec(title=W("打印机故障", "Printer faults"), rows=tuple(rows) or (
        Row(label=W("没有", "None"), value=""),)))
    return contract.ReportData(store=header, business_date=r.business_date, made_at=f"{r.made_at:%Y-%m-%d %H:%M}",
                               sections=tuple(sections))


def _till_sections(r: DayReport) -> list[contract.ReportSection]:
    """The till on paper: tenders, refunds, shifts, unpaid orders. At most
    TILL_TOP refunds and unpaid orders are named; the rest are counted (the
    page names them all)."""
    W, Row, Sec = contract.Words, contract.ReportRow, contract.ReportSection
    tender_rows = [Row(label=W(*t.names), value=yuan(t.net) + (f" (-{yuan(t.refunded)})" if t.refunded else ""))
                   for t in r.tenders]
    tender_rows.append(Row(label=W("合计", "Total"), value=yuan(r.tenders_net)))
    refund_rows = [Row(label=W("退款", "Refunds"), value=f"{len(r.refunds)} / {yuan(r.refunded)}")]
    for f in r.refunds[:TILL_TOP]:
        who = f"{f.staff}/{f.approved_by}" if f.approved_by else f.staff
        refund_rows.append(Row(label=W(f"#{f.number} {f.reason}", f"#{f.number} {f.reason}"),
                               value=f"{f.at} {yuan(f.amount)} {who}"[:40]))
    if len(r.refunds) > TILL_TOP:
        refund_rows.append(Row(label=W("其余见报表页", "more on the page"), value=str(len(r.refunds) - TILL_TOP)))
    shift_rows = []
    for s in r.shifts[:9]:  # 6 rows each: a section holds 60
        zh_os, en_os = over_short_text(s.over_short)
        shift_rows += [
            Row(label=W(f"{s.device} {s.staff}", f"{s.device} {s.staff}"),
                value=f"{s.opened}-{s.closed}" if s.closed else f"{s.opened}- 进行中 open"),
            Row(label=W("  备用金", "  Float"), value=yuan(s.float_fen)),
            Row(label=W("  现金收/退", "  Cash in/out"), value=f"{yuan(s.cash_in)} / {yuan(s.cash_out)}"),
            Row(label=W("  应有", "  Expected"), value=yuan(s.expected)),
            Row(label=W("  清点", "  Counted"), value="-" if s.counted is None else yuan(s.counted)),
            Row(label=W("  长短款", "  Over/short"), value=en_os if zh_os == "-" else f"{signed(s.over_short)}"),
        ]
    if len(r.shifts) > 9:
        shift_rows.append(Row(label=W("其余见报表页", "more on the page"), value=str(len(r.shifts) - 9)))
    unpaid_rows = [Row(label=W("未付款订单", "Orders unpaid"),
                       value=f"{len(r.unpaid)} / {yuan(sum(u.due for u in r.unpaid))}")]
    for u in r.unpaid[:TILL_TOP]:
        zh, en = where_text(u)
        held = " 待付" if u.state == "held" else ""
        unpaid_rows.append(Row(label=W(f"{zh}{held}", en + (" held" if held else "")),
                               value=f"#{u.number} {yuan(u.due)}"))
    if len(r.unpaid) > TILL_TOP:
        unpaid_rows.append(Row(label=W("其余见报表页", "more on the page"), value=str(len(r.unpaid) - TILL_TOP)))
    return [Sec(title=W("收银 按方式(净额)", "Till: by tender (net)"), rows=tuple(tender_rows)),
            Sec(title=W("退款", "Refunds"), rows=tuple(refund_rows)),
            Sec(title=W("收银班次", "Shifts"), rows=tuple(shift_rows) or (Row(label=W("没有", "None"), value=""),)),
            Sec(title=W("未付款订单", "Left unpaid"), rows=tuple(unpaid_rows))]


def _short_pay(p: Payment) -> tuple[str, str]:
    return {("card", "approved"): ("银行卡", "Card"), ("qr", "approved"): ("扫码", "QR code"),
            ("counter", "unpaid"): ("柜台付款", "Counter")}.get((p.method, p.status), p.names)


# ================================================================ the command
def print_summary(r: DayReport, console) -> None:
    from rich.table import Table

    console.print(f"[bold]{r.store_name[1]} {r.store_name[0]} · business day {r.business_date}[/] "
                  f"({r.start:%m-%d %H:%M} – {r.end:%m-%d %H:%M})")
    if r.empty:
        console.print(f"[yellow]No orders on that day ({r.business_date}). 这一天没有订单。[/]")
    else:
        console.print(f"Orders 订单 [bold]{r.orders}[/] · sales 销售额 [bold]{yuan(r.sales)}[/] (tax {yuan(r.tax)}) · "
                      f"average {yuan(r.average)} · voided 作废 {len(r.voided)}")
        busiest = max(r.buckets, key=lambda b: (b.sales, b.orders))
        console.print(f"Busiest quarter hour: {busiest.start:%H:%M} ({busiest.orders} orders, {yuan(busiest.sales)})")
        t = Table(title="Ticket times 出餐时间", title_justify="left")
        for c in ("station", "bumped", "median", "p90", "late", "not bumped"):
            t.add_column(c, justify="left" if c == "station" else "right")
        for s in r.stations:
            t.add_row(f"{s.name_en} {s.name_zh}", str(len(s.times)), mmss(s.median_s), mmss(s.p90_s),
                      f"[red]{s.late}[/]" if s.late else "0", str(s.not_bumped))
        console.print(t)
        if r.loyalty:
            console.print(f"Points 积分: {r.member_orders} member orders · earned {r.points_earned} · "
                          f"redeemed {r.points_redeemed} · discounts -{yuan(r.points_discount)}")
        console.print("Payments 付款: " + " · ".join(f"{p.names[1]} {p.count} {yuan(p.amount)}" for p in r.payments))
        console.print("Top items 热销: " + " · ".join(f"{i.name_en} ×{i.qty}" for i in r.items[:5]))
    if r.till:
        console.print("Till 收银 (net): " + (" · ".join(f"{t.names[1]} {yuan(t.net)}" for t in r.tenders) or "nothing")
                      + f" · total {yuan(r.tenders_net)}")
        console.print(f"Refunds 退款: {len(r.refunds)} {yuan(r.refunded)}" + "".join(
            f"\n  {f.at} #{f.number} {yuan(f.amount)} {f.methods} — {f.reason} ({f.staff} @ {f.device}"
            + (f", approved by {f.approved_by}" if f.approved_by else "") + ")" for f in r.refunds))
        for s in r.shifts:
            console.print(f"Shift 班次 {s.device} {s.staff} {s.opened}–{s.closed or 'open'}: float {yuan(s.float_fen)}, "
                          f"cash in {yuan(s.cash_in)}, out {yuan(s.cash_out)}, expected {yuan(s.expected)}, counted "
                          + ("-" if s.counted is None else yuan(s.counted)) + f", {over_short_text(s.over_short)[1]}")
        if r.unpaid:
            console.print(f"[yellow]Unpaid 未付款 {len(r.unpaid)}: " + " · ".join(
                f"#{u.number} {where_text(u)[1]} {yuan(u.due)}" + (" (held)" if u.state == "held" else "")
                for u in r.unpaid) + "[/]")
        else:
            console.print("Unpaid 未付款: none")
        rc = r.reconciliation
        if rc is not None and not rc.checked:
            console.print(f"[yellow]Phone payments 手机支付: not reconciled — {rc.reason}[/]")
        elif rc is not None:
            console.print(f"Phone payments 手机支付 reconciled: {rc.matched} matched of {rc.statement_lines} "
                          f"(statement) / {rc.ledger_lines} (ledger)" + ("" if rc.differences else ", no differences"))
            for d in rc.differences:
                console.print(f"  [red]{d.names[1]}[/]: {d.type} {d.out_trade_no}"
                              + (f" (#{d.number})" if d.number else "")
                              + f" ledger {'-' if d.ledger_amount is None else yuan(d.ledger_amount)}"
                              + f" gateway {'-' if d.gateway_amount is None else yuan(d.gateway_amount)} at {d.at}")
    cloud = "not recorded" if r.cloud_outage_minutes is None else minutes(r.cloud_outage_minutes)
    console.print(f"Offline 离线: orders taken by kiosks offline {r.offline_orders} "
                  f"(waited {minutes(r.kiosk_offline_minutes)}); cloud unreachable {cloud}")
    if r.faults:
        console.print("Printer faults 打印机故障: " + " · ".join(
            f"{f.printer} {SHORT_FAULTS.get(f.reason, (f.reason, f.reason))[1]} {f.count}x {minutes(f.minutes)}"
            + (" (still)" if f.ongoing else "") for f in r.faults))
    else:
        console.print("Printer faults 打印机故障: none")
    for n in r.notes:
        console.print(f"[yellow]{n}[/]")


def cmd_report(cfg: Config, console, date_text: str | None, out: str | None, printer: str | None) -> int:
    from restobox.staff import DEVICE_RE, StaffError, StoreLink, _print_outcome, _refused

    try:
        day = parse_date(date_text) if date_text is not None else business_day(cfg, datetime.now(timezone.utc))
        if printer is not None and not DEVICE_RE.fullmatch(printer):
            raise ReportError(f"{printer!r} is not a printer name (e.g. receipt-1).")
        r = compute(cfg, day)
        folder = Path(out) if out else Path(cfg.report.out_dir) / day
        try:
            page = write_page(r, folder)
        except OSError as exc:
            raise ReportError(f"Cannot write the report into {folder}: {exc.strerror or exc}. "
                              "Give another folder with --out.") from None
    except ReportError as exc:
        raise StaffError(str(exc)) from None
    print_summary(r, console)
    if not r.empty and not charts_available():
        console.print(f"[yellow]{NO_CHARTS[1]}[/]")
    console.print(f"The page: {page}")
    if printer is None:
        return 0
    with StoreLink(cfg) as link:
        reply = link.command("print_report", item_id=printer, report=summary_for_printer(r, cfg))
        if not reply.ok:
            raise _refused(reply, f"the summary on {printer}")
        timeout = cfg.staff.timeout_s
        return _print_outcome(console, "The day's summary", link.job_outcome(reply.job_id, timeout), timeout)
