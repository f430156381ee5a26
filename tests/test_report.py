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
"""

from __future__ import annotations

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
from restobox.contract import LoyaltyClaim, StaffCommand, StationEvent, SubmitPayment, topics
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
        self.hub = in_process_hub(broker, tmp, self.clock, extra="""[hub.loyalty]
enabled = true
points_per_yuan = 10
point_value_fen = 1
min_redeem_points = 100
""")
        self.hub.start()
        self.db = tmp / "store.db"
        self.kiosk = Kiosk(broker, "kiosk-1")
        self.kds = {s: Device(broker, f"kds-{s}-1", role="kds") for s in ("wok", "fryer", "drinks")}
        self.staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")

    def close(self) -> None:
        for d in (self.kiosk, self.staff, *self.kds.values()):
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
