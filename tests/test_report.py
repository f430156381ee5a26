"""The manager's day (``restobox report``): figures from a day of orders built
through the real hub (orders by the contract from a kiosk, bumps and a recall
from the kitchen screens' devices, a void from the staff device, on a real
broker, with the hub's clock set to each moment), the printing service's
fault log and print jobs and the sync service's outage log written by their
own code, checked against figures worked out by hand below; the page and its
charts; the printed summary against its golden file and, end to end, out of
a virtual printer through the hub; a day without orders; a bad --date.

The day, business day 2026-11-22 in Shanghai (04:00 to 04:00 local):

  #   local time        order                               total  payment          then
  -   11-22 03:50       spring rolls, member M               12.00  card   (day before: 11-21 #1; M +120 points)
  1   11:05             kung pao (wok)                       32.00  card     wok bump 11:09 (4:00)
  2   11:10             kung pao combo: wok, fries at        45.00  QR       wok 11:22 (12:00, late), fryer
                        the fryer, milk tea +3 at drinks                     11:14 (4:00), drinks 11:12 (2:00)
  3   11:20             2 large milk teas (1400+300 each)    34.00  counter  drinks bump 11:21, recall 11:22,
                                                                             bump 11:23 (3:00: the last bump)
  4   12:02             spring rolls, member M               12.00  counter  voided 12:05 (M +120, then -120)
  5   12:14             spring rolls + kung pao, offline     44.00  counter  fryer 12:20 (6:00), wok 12:24
                        (tapped 12:10 at the kiosk, K1-001)                  (10:00: not late, wok's is 600 s)
  6   11-23 03:50       spring rolls (still the 22nd's)      12.00  card     never bumped
  7   11-23 03:52       spring rolls, member M spends her    10.80  counter  never bumped
                        120 points (1 fen each): -1.20; earns 108 (10 a yuan of 10.80)
  -   11-23 04:10       spring rolls                         12.00  card   (day after: 11-23 #1)

  orders 6, sales 32+45+34+44+12+10.80 = 177.80, tax 1.81+2.55+1.92+2.49+0.68+0.61 = 10.06
  (6 % included, rounded per order), voided 1 (12.00). Items 179.00 less points discounts 1.20
  = sales 177.80; points: 1 member order, 108 earned, 120 redeemed (#4's are given back: voided).

The till, through the hub's ledger (counter-1 and counter-2, manager wang's PIN):

  10:55  counter-1 (li) opens a shift with a float of 500.00
  11:25  #3 paid in cash: 34.00 (50.00 handed over)
  11:40  #3: one of its two teas refunded, "spilled": 17.00 back in cash
  12:26  #5 paid 20.00 cash + 24.00 card
  13:00  counter-2 (zhao) opens a shift with 300.00, still open at the report
  13:05  #1 refunded whole, "wrong dish": 32.00 back on its card
  14:00  counter-1 closes: counted 536.00, expected 500 + 54 - 17 = 537.00: short 1.00

  card 32 + 12 (#6, kiosk) + 24 = 68.00 less 32.00 = 36.00; QR 45.00; cash 54.00 less 17.00 =
  37.00; net 118.00, what the day's orders hold as paid. Unpaid at the close: #7 (10.80).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest
from rich.console import Console

from restobox import cli, config, contract, db, report
from restobox.contract import (LoyaltyClaim, RefundLine, StaffCommand, StationEvent, SubmitPayment, Tender,
                               TillRequest, topics)
from restobox.data import load_sample_menu
from restobox.hub import Hub
from restobox.printing import layouts
from restobox.printing.layouts import PrintOptions
from tests.support import COMBO, KUNG_PAO, SPRING_ROLLS, Device, Kiosk, in_process_hub, new_order
from tests.test_print_layouts import check_golden, read_escpos

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
DAY = "2026-11-22"
LARGE_TEAS = ("bubble-milk-tea", 2, ("sugar-half", "ice-less", "size-large"))
MEMBER = "13812345678"
PIN = "2468"


def local(day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=SH)


def utc_iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds")


class Clock:
    def __init__(self) -> None:
        self.t = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.t


def staff_config(tmp: Path, broker) -> config.Config:
    return config.load(_write(tmp / "staff.toml", f"""
[device]
id = "staff-1"
role = "staff"
[store]
name_zh = "川味小馆"
name_en = "Sichuan Corner"
timezone = "Asia/Shanghai"
business_day_start = "04:00"
[mqtt]
port = {broker.port}
password_file = "{broker.creds['staff-1'].password_file}"
[hub]
database = "{tmp / 'store.db'}"
[printing]
database = "{tmp / 'printing.db'}"
[sync]
database = "{tmp / 'sync.db'}"
[staff]
timeout_s = 8
[report]
late_after_s = 480
station_late_after_s = {{wok = 600}}
out_dir = "{tmp / 'reports'}"
top_items = 3
"""))


def _write(p: Path, text: str) -> Path:
    p.write_text(text, encoding="utf-8")
    return p


class Store:
    """The in-process hub with a settable clock, and the devices that feed it."""

    def __init__(self, broker, tmp: Path) -> None:
        self.clock = Clock()
        pins = tmp / "manager-pins"
        pins.write_text(f"wang:{hashlib.sha256(PIN.encode()).hexdigest()}\n", encoding="utf-8")
        self.hub = in_process_hub(broker, tmp, self.clock, extra=f"""[hub.loyalty]
enabled = true
points_per_yuan = 10
point_value_fen = 1
min_redeem_points = 100
[hub.till]
manager_pin_file = "{pins}"
""")
        self.hub.start()
        self.db = tmp / "store.db"
        self.kiosk = Kiosk(broker, "kiosk-1")
        self.kds = {s: Device(broker, f"kds-{s}-1", role="kds") for s in ("wok", "fryer", "drinks")}
        self.staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
        self.counters = {c: Device(broker, c, (topics.till_reply(c),), role="counter")
                         for c in ("counter-1", "counter-2")}

    def close(self) -> None:
        for d in (self.kiosk, self.staff, *self.kds.values(), *self.counters.values()):
            d.close()
        self.hub.stop()

    def at(self, t: datetime) -> None:
        self.clock.t = t.astimezone(timezone.utc)

    def order(self, t: datetime, *lines, pay: str = "counter", **kw):
        self.at(t)
        o = new_order(*lines, **kw)
        from restobox.menu import MenuIndex
        from restobox.orders import price_order

        total = price_order(o, MenuIndex(load_sample_menu())).total
        if pay != "counter":
            o = msgspec.structs.replace(o, payment=SubmitPayment(method=pay, status="approved", amount=total,
                                                                 reference=f"T-{total}"))
        reply = self.kiosk.submit(o)
        assert reply.status == "accepted", reply
        return o.order_id, reply

    def _processed(self, event_id: str) -> None:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if con.execute("SELECT 1 FROM processed_message WHERE id = ?", (event_id,)).fetchone():
                    return
                time.sleep(0.02)
        finally:
            con.close()
        raise TimeoutError(f"the hub did not take {event_id}")

    def station(self, t: datetime, station: str, order_id: str, kind: str = "bump") -> None:
        self.at(t)
        ev = StationEvent(event_id=str(uuid.uuid4()), kind=kind, order_id=order_id, device=f"kds-{station}-1")
        self.kds[station].publish(topics.station_event(station), contract.encode(ev))
        self._processed(ev.event_id)

    def till(self, t: datetime, counter: str, kind: str, **kw) -> dict:
        """A counter's request, as the counter sends it; the hub's answer."""
        self.at(t)
        dev = self.counters[counter]
        req = TillRequest(request_id=str(uuid.uuid4()), kind=kind, **kw)
        corr = uuid.uuid4().bytes
        dev.publish(topics.till_request(counter), contract.encode(req), correlation=corr,
                    response_topic=topics.till_reply(counter))
        reply = msgspec.json.decode(dev.wait_for(lambda m: m.correlation == corr).payload)
        assert reply["ok"], reply
        return reply

    def void(self, t: datetime, order_id: str) -> None:
        self.at(t)
        cmd = StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=order_id, reason="diner left")
        corr = uuid.uuid4().bytes
        self.staff.publish(topics.staff_command("staff-1"), contract.encode(cmd), correlation=corr,
                           response_topic=topics.staff_reply("staff-1"))
        m = self.staff.wait_for(lambda m: m.correlation == corr)
        assert msgspec.json.decode(m.payload)["ok"]


def seed_printing_and_sync(tmp: Path) -> None:
    """As the printing and sync services record them (their own functions)."""
    db.open_printing_db(tmp / "printing.db")
    # receipt-1 out of paper 12:30-12:42 (12 min); a fault the day before is not counted
    db.printer_fault("receipt-1", "paper_out", utc_iso(local(21, 13, 0)))
    db.printer_fault("receipt-1", None, utc_iso(local(21, 13, 5)))
    db.printer_fault("receipt-1", "paper_out", utc_iso(local(22, 12, 30)))
    db.printer_fault("receipt-1", "paper_out", utc_iso(local(22, 12, 31)))  # still out: the same fault
    db.printer_fault("receipt-1", None, utc_iso(local(22, 12, 42)))
    # kitchen-1's cover open at 03:00 and never closed: 60 min to the day's end
    db.printer_fault("kitchen-1", "cover_open", utc_iso(local(23, 3, 0)))
    seq = 0
    for job, printer, state, reason, interrupted, t in (
            ("a", "kitchen-1", "done", None, True, local(22, 11, 5)),
            ("b", "receipt-1", "done", None, False, local(22, 11, 6)),
            ("c", "receipt-1", "failed", "printer_error", False, local(22, 12, 35)),
            ("d", "receipt-1", "held", "paper_out", False, local(22, 12, 40)),
            ("e", "receipt-1", "failed", "printer_error", False, local(23, 5, 0))):  # the next day
        seq += 1
        db.PrintJobRow.insert(job_id=job, printer=printer, kind="receipt", job="{}", state=state, reason=reason,
                              interrupted=interrupted, created_at=utc_iso(t), updated_at=utc_iso(t),
                              seq=seq).execute()
    db.printing_db.close()
    db.open_sync_db(tmp / "sync.db")
    # the cloud away 03:30-04:20 (20 min of this day) and 11:50-12:30 (40 min); 05:00 the next day is not this day's
    for a, b in ((local(22, 3, 30), local(22, 4, 20)), (local(22, 11, 50), local(22, 12, 30)),
                 (local(23, 5, 0), local(23, 5, 10))):
        db.sync_outage(True, "cloud_unreachable", a.timestamp())
        db.sync_outage(True, "cloud_timeout", a.timestamp() + 60)
        db.sync_outage(False, "", b.timestamp())
    db.sync_db.close()


@pytest.fixture
def day(broker, tmp_path):
    s = Store(broker, tmp_path)
    try:
        s.order(local(22, 3, 50), SPRING_ROLLS, pay="card", loyalty=LoyaltyClaim(phone=MEMBER))  # the 21st's
        o1, r1 = s.order(local(22, 11, 5), KUNG_PAO, pay="card")
        o2, _ = s.order(local(22, 11, 10), COMBO, pay="qr")
        o3, _ = s.order(local(22, 11, 20), LARGE_TEAS)
        o4, _ = s.order(local(22, 12, 2), SPRING_ROLLS, loyalty=LoyaltyClaim(phone=MEMBER))
        s.void(local(22, 12, 5), o4)
        o5, r5 = s.order(local(22, 12, 14), SPRING_ROLLS, KUNG_PAO, offline=True, provisional_number="K1-001",
                         placed_at=utc_iso(local(22, 12, 10)))
        o6, r6 = s.order(local(23, 3, 50), SPRING_ROLLS, pay="card")
        _, r7 = s.order(local(23, 3, 52), SPRING_ROLLS, loyalty=LoyaltyClaim(phone=MEMBER, redeem_points=120))
        assert (r7.number, r7.total, r7.loyalty.discount, r7.loyalty.earned, r7.loyalty.balance) == \
            (7, 1080, 120, 108, 108)
        _, r8 = s.order(local(23, 4, 10), SPRING_ROLLS, pay="card")
        assert (r1.business_date, r1.number, r6.business_date, r6.number) == (DAY, 1, DAY, 6)
        assert (r8.business_date, r8.number) == ("2026-11-23", 1)
        s.station(local(22, 11, 9), "wok", o1)
        s.station(local(22, 11, 12), "drinks", o2)
        s.station(local(22, 11, 14), "fryer", o2)
        s.station(local(22, 11, 22), "wok", o2)
        s.station(local(22, 11, 21), "drinks", o3)
        s.station(local(22, 11, 22), "drinks", o3, "recall")
        s.station(local(22, 11, 23), "drinks", o3)
        s.station(local(22, 12, 20), "fryer", o5)
        s.station(local(22, 12, 24), "wok", o5)
        s1, s2 = str(uuid.uuid4()), str(uuid.uuid4())
        s.till(local(22, 10, 55), "counter-1", "shift_open", shift_id=s1, float_fen=50000, staff="li")
        paid = s.till(local(22, 11, 25), "counter-1", "pay", order_id=o3, shift_id=s1, staff="li",
                      tenders=(Tender(method="cash", amount=3400, tendered=5000),))
        assert (paid["change"], paid["payment"]) == (1600, "paid")
        back = s.till(local(22, 11, 40), "counter-1", "refund", order_id=o3, shift_id=s1, staff="li",
                      lines=(RefundLine(line=1, qty=1),), reason="spilled", manager_pin=PIN)
        assert (back["paid"], back["payment"]) == (1700, "partly_refunded")
        s.till(local(22, 12, 26), "counter-1", "pay", order_id=o5, shift_id=s1, staff="li",
               tenders=(Tender(method="cash", amount=2000), Tender(method="card", amount=2400, reference="T-2400")))
        s.till(local(22, 13, 0), "counter-2", "shift_open", shift_id=s2, float_fen=30000, staff="zhao")
        s.till(local(22, 13, 5), "counter-2", "refund", order_id=o1, shift_id=s2, staff="zhao", reason="wrong dish",
               manager_pin=PIN)
        closed = s.till(local(22, 14, 0), "counter-1", "shift_close", shift_id=s1, counted_fen=53600, staff="li")
        assert (closed["shift"]["expected"], closed["shift"]["over_short"]) == (53700, -100)
    finally:
        s.close()
    seed_printing_and_sync(tmp_path)
    return staff_config(tmp_path, broker)


NOW = local(23, 9, 0)


def test_the_days_figures_match_the_hand_checked_ones(day):
    r = report.compute(day, DAY, now=NOW)
    assert (r.start, r.end) == (local(22, 4, 0), local(23, 4, 0))
    assert (r.orders, r.sales, r.tax, r.average) == (6, 17780, 1006, 2963)
    assert [(v.number, v.total, v.reason, v.at) for v in r.voided] == [(4, 1200, "diner left", "12:05")]
    busy = [(b.start.strftime("%d %H:%M"), b.orders, b.sales) for b in r.buckets if b.orders]
    assert busy == [("22 11:00", 2, 7700), ("22 11:15", 1, 3400), ("22 12:00", 1, 4400), ("23 03:45", 2, 2280)]
    # every quarter hour from 11:00 to 03:45, the empty ones too
    assert len(r.buckets) == 4 * 16 + 4 and sum(b.sales for b in r.buckets) == r.sales
    assert [(i.key, i.qty, i.sales) for i in r.items] == [
        ("kung-pao-chicken", 2, 6400), ("combo-kung-pao-chicken", 1, 4500),  # the combo's +3 tea inside it
        ("spring-rolls", 3, 3600),  # #7 at its price: its points discount is a line of its own
        ("bubble-milk-tea", 2, 3400)]  # 2 x (14 + 3 large)
    assert [(c.name_en, c.qty, c.sales) for c in r.categories] == [
        ("Wok Dishes", 2, 6400), ("Combos", 1, 4500), ("Fried & Grilled Snacks", 3, 3600), ("Drinks", 2, 3400)]
    # items less the points discounts are the sales
    assert (r.items_total, r.points_discount, r.points_discount_orders) == (17900, 120, 1)
    assert sum(i.sales for i in r.items) - r.points_discount == r.sales
    assert (r.member_orders, r.points_earned, r.points_redeemed) == (1, 108, 120)
    st = {s.station: s for s in r.stations}
    assert sorted(st["wok"].times) == [240, 600, 720]
    assert (st["wok"].median_s, st["wok"].p90_s, st["wok"].late, st["wok"].late_after_s) == (600, 720, 1, 600)
    assert sorted(st["fryer"].times) == [240, 360] and st["fryer"].not_bumped == 2  # #6 and #7, never bumped
    assert (st["fryer"].median_s, st["fryer"].p90_s, st["fryer"].late) == (300, 360, 0)
    assert sorted(st["drinks"].times) == [120, 180]  # #3: the last bump, after the recall
    assert (st["drinks"].median_s, st["drinks"].p90_s, st["drinks"].late) == (150, 180, 0)
    assert (st["wok"].name_zh, st["wok"].name_en) == ("炒锅", "Wok")
    assert [(p.method, p.status, p.count, p.amount) for p in r.payments] == [
        ("counter", "unpaid", 3, 8880), ("qr", "approved", 1, 4500), ("card", "approved", 2, 4400)]
    assert (r.offline_orders, r.kiosk_offline_minutes) == (1, 4.0)
    assert (r.cloud_outages, r.cloud_outage_minutes) == (2, 60.0)
    assert [(f.printer, f.reason, f.count, f.minutes, f.ongoing) for f in r.faults] == [
        ("kitchen-1", "cover_open", 1, 60.0, True), ("receipt-1", "paper_out", 1, 12.0, False)]
    assert [(p.printer, p.jobs, p.done, p.interrupted, p.held, p.failed) for p in r.printer_jobs] == [
        ("kitchen-1", 1, 1, 1, {}, {}), ("receipt-1", 3, 1, 0, {"paper_out": 1}, {"printer_error": 1})]
    assert r.notes == []


def test_the_till_by_tender_refunds_shifts_and_the_orders_left_unpaid(day, tmp_path):
    r = report.compute(day, DAY, now=NOW)
    assert r.till
    assert [(t.method, t.payments, t.paid, t.refunds, t.refunded, t.net) for t in r.tenders] == [
        ("cash", 2, 5400, 1, 1700, 3700), ("card", 3, 6800, 1, 3200, 3600), ("qr", 1, 4500, 0, 0, 4500)]
    # the ledger's sums are what the day's orders hold as paid
    con = sqlite3.connect(day.hub.database)
    try:
        (held,) = con.execute('SELECT SUM(paid) FROM "order" WHERE business_date = ?', (DAY,)).fetchone()
    finally:
        con.close()
    assert r.tenders_net == held == 11800
    assert [(f.at, f.number, f.amount, f.methods, f.reason, f.staff, f.device, f.approved_by) for f in r.refunds] == [
        ("11:40", 3, 1700, "cash", "spilled", "li", "counter-1", "wang"),
        ("13:05", 1, 3200, "card", "wrong dish", "zhao", "counter-2", "wang")]
    assert [(s.device, s.staff, s.opened, s.closed, s.float_fen, s.cash_in, s.cash_out, s.expected, s.counted,
             s.over_short) for s in r.shifts] == [
        ("counter-1", "li", "10:55", "14:00", 50000, 5400, 1700, 53700, 53600, -100),
        ("counter-2", "zhao", "13:00", "", 30000, 0, 0, 30000, None, None)]
    assert [(u.number, u.table, u.channel, u.total, u.due, u.state) for u in r.unpaid] == [
        (7, None, "kiosk", 1080, 1080, "accepted")]
    # on the page
    text = report.render_html(r, [])
    for words in ("收银", "The till", "现金 · Cash", "¥54.00", "¥17.00", "¥37.00", "¥118.00", "退款 Refunds · 2 · ¥49.00",
                  "spilled", "wrong dish", "li @ counter-1", "zhao @ counter-2", "wang", "短款 ¥1.00 · short ¥1.00",
                  "仍在进行 still open", "¥537.00", "¥536.00", "Orders left unpaid · 1 · ¥10.80",
                  "自助点餐 · Kiosk", "¥10.80"):
        assert words in text, words
    # and on paper: within the summary's limits, every shift and unpaid order named
    data = report.summary_for_printer(r, day)
    assert len(data.sections) <= 20 and all(len(s.rows) <= 60 for s in data.sections)
    paper = read_escpos(layouts.day_report(data, PrintOptions(80, "ascii", "en"))).all_text()
    for words in ("Till: by tender (net)", "Cash", "RMB 37.00 (-RMB 17.00)", "Total", "RMB 118.00",
                  "Refunds", "2 / RMB 49.00", "#3 spilled", "11:40 RMB 17.00 li/wang", "#1 wrong dish",
                  "counter-1 li", "10:55-14:00", "Expected", "RMB 537.00", "Counted", "RMB 536.00", "-RMB 1.00",
                  "counter-2 zhao", "Left unpaid", "1 / RMB 10.80", "#7 RMB 10.80"):
        assert words in paper, words


def test_a_store_database_from_before_the_ledger_reports_without_a_till(tmp_path):
    """A store.db the hub has not opened since the ledger came: the day is
    reported, and the page says why the till is missing."""
    store = tmp_path / "store.db"
    db.open_store_db(store)
    db.store_db.close()
    con = sqlite3.connect(store)
    try:
        con.execute("DROP TABLE payment")
    finally:
        con.close()
    cfg = config.parse(f'[device]\nid = "staff-1"\nrole = "staff"\n[hub]\ndatabase = "{store}"\n'
                       f'[printing]\ndatabase = "{tmp_path / "p.db"}"\n[sync]\ndatabase = "{tmp_path / "s.db"}"\n')
    r = report.compute(cfg, DAY, now=NOW)
    assert not r.till and r.tenders == [] and any("no payment ledger" in n for n in r.notes)
    assert "The till" not in report.render_html(r, [])
    assert not any(s.title.en.startswith("Till") for s in report.summary_for_printer(r, cfg).sections)


def test_the_page_and_its_charts(day, tmp_path):
    r = report.compute(day, DAY, now=NOW)
    page = report.write_page(r, tmp_path / "out")
    text = page.read_text(encoding="utf-8")
    for file in ("orders-per-15-min.png", "sales-by-item.png", "sales-by-category.png", "ticket-times.png",
                 "payment-mix.png"):
        png = tmp_path / "out" / file
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 15_000, file
        assert f'src="{file}"' in text
    assert "http" not in text.replace('lang="zh-Hans"', "")  # nothing fetched from elsewhere
    for words in ("每15分钟的订单和销售额", "Orders and sales every 15 minutes", "各工位出餐时间", "Ticket times per station",
                  "付款方式", "Payment mix", "打印机故障", "Printer faults", "¥177.80", "Kung Pao Chicken",
                  "菜品合计 · Items", "¥179.00", "积分抵扣 · Points discounts", "−¥1.20", "会员积分", "Loyalty points",
                  "获得积分 · Points earned</td><td class=\"n\">108", "使用积分 · Points redeemed</td><td class=\"n\">120",
                  "炒锅 Wok", "12:00", "60 min (仍未恢复 still now)", "diner left"):
        assert words in text, words


def test_the_printed_summary_matches_its_golden_file(day):
    r = report.compute(day, DAY, now=NOW)
    data = report.summary_for_printer(r, day)
    check_golden("day_report_58_both", layouts.day_report(data, PrintOptions(58, "gb18030", "both")))
    check_golden("day_report_80_zh", layouts.day_report(data, PrintOptions(80, "gb18030", "zh")))
    text = read_escpos(layouts.day_report(data, PrintOptions(80, "ascii", "en"))).all_text()
    for words in ("END OF DAY", "2026-11-22", "Orders", "RMB 177.80", "Points discounts", "-RMB 1.20",
                  "Points earned", "108", "Points redeemed", "Kung Pao Chicken", "10:00 12:00 1/3",
                  "Cloud unreachable", "60 min", "receipt-1 paper out"):
        assert words in text, words


def test_restobox_report_writes_the_page_and_prints_the_summary_through_the_hub(broker, day, tmp_path, capsys):
    """The command end to end: the hub turns the staff command into a print
    job, the printing service prints it on a virtual 58 mm printer."""
    from restobox.printing.spooler import Spooler

    hub = Hub(config.parse(f"""
[device]
id = "hub"
role = "hub"
[mqtt]
port = {broker.port}
password_file = "{broker.creds['hub'].password_file}"
[hub]
database = "{tmp_path / 'store.db'}"
"""), load_sample_menu())
    spooler = Spooler(config.parse(f"""
[device]
id = "printing"
role = "printing"
[mqtt]
port = {broker.port}
password_file = "{broker.creds['printing'].password_file}"
[printing]
database = "{tmp_path / 'spool.db'}"
[[printing.printers]]
id = "receipt-1"
port = "virtual"
directory = "{tmp_path / 'paper'}"
width_mm = 58
"""))
    hub.start()
    spooler.start()
    try:
        rc = cli.main(["report", "--config", str(tmp_path / "staff.toml"), "--date", DAY, "--print", "receipt-1"])
    finally:
        spooler.stop()
        hub.stop()
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "The day's summary printed on receipt-1" in out and "Orders 订单 6" in out
    assert "Points 积分: 1 member orders · earned 108 · redeemed 120 · discounts -¥1.20" in " ".join(out.split())
    page = tmp_path / "reports" / DAY / "index.html"
    assert page.exists() and (page.parent / "ticket-times.png").exists()
    (printed,) = sorted((tmp_path / "paper").glob("*.bin"))
    data = report.summary_for_printer(report.compute(day, DAY), day)
    want = layouts.day_report(data, PrintOptions(58, "gb18030", "both"))
    # the same page but for the minute it was made
    assert re.sub(rb"\d{4}-\d\d-\d\d \d\d:\d\d\n", b"", printed.read_bytes()) == \
        re.sub(rb"\d{4}-\d\d-\d\d \d\d:\d\d\n", b"", want)


def test_a_day_without_orders_says_so(day, tmp_path):
    console = Console(record=True, width=120)
    rc = report.cmd_report(day, console, "2026-11-10", str(tmp_path / "empty"), None)
    assert rc == 0
    assert "No orders on that day (2026-11-10)" in console.export_text()
    text = (tmp_path / "empty" / "index.html").read_text(encoding="utf-8")
    assert "这一天没有订单" in text and "No orders on that day (2026-11-10)" in text
    assert not list((tmp_path / "empty").glob("*.png"))
    data = report.summary_for_printer(report.compute(day, "2026-11-10"), day)
    assert "No orders" in read_escpos(layouts.day_report(data, PrintOptions(80, "ascii", "en"))).all_text()


@pytest.mark.parametrize("bad", ["2026-13-01", "22/11/2026", "2026-2-3", "yesterday"])
def test_a_bad_date_gets_a_clear_error(tmp_path, bad, capsys):
    cfg = _write(tmp_path / "staff.toml", '[device]\nid = "staff-1"\nrole = "staff"\n'
                 f'[hub]\ndatabase = "{tmp_path / "store.db"}"\n')
    assert cli.main(["report", "--config", str(cfg), "--date", bad]) == 2
    err = capsys.readouterr().err
    assert "--date takes a business day as YYYY-MM-DD" in err and repr(bad) in err


def test_no_store_database_gets_a_clear_error(tmp_path, capsys):
    cfg = _write(tmp_path / "staff.toml", '[device]\nid = "staff-1"\nrole = "staff"\n'
                 f'[hub]\ndatabase = "{tmp_path / "nowhere.db"}"\n')
    assert cli.main(["report", "--config", str(cfg)]) == 2
    assert "There is no store database at" in capsys.readouterr().err


def test_todays_business_day_turns_at_the_day_start():
    cfg = config.parse('[device]\nid = "staff-1"\nrole = "staff"\n')
    assert report.business_day(cfg, local(23, 3, 59)) == "2026-11-22"
    assert report.business_day(cfg, local(23, 4, 0)) == "2026-11-23"
    assert report.nearest_rank([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == 9
    assert report.nearest_rank([5], 90) == 5 and report.nearest_rank([], 90) is None


def test_report_config_is_strict():
    with pytest.raises(config.ConfigError, match="unknown key `late_after`"):
        config.parse('[device]\nid = "staff-1"\nrole = "staff"\n[report]\nlate_after = 5\n')
    cfg = config.parse('[device]\nid = "staff-1"\nrole = "staff"\n[report]\nstation_late_after_s = {wok = 600}\n')
    assert (cfg.report.late_after("wok"), cfg.report.late_after("fryer")) == (600, 480)
