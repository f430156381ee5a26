"""Ticket layouts: receipts, kitchen tickets and the test page are pure
functions from contract structs to ESC/POS bytes.

The bytes of realistic tickets (orders on the sample menu, priced and split
by the real order code) are compared exactly with golden files in
tests/golden/printing/. After an intended layout change, regenerate them with

    RESTOBOX_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_print_layouts.py

and review the new tickets (``python -m tests.test_print_layouts FILE.bin``
prints one as text) before committing them.

Behaviour tests read the bytes back with a strict ESC/POS reader (below) that
knows only the commands the layouts may send, so stray bytes, unclosed
Chinese mode or a command smuggled in through a diner's note fail loudly.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from restobox import config as cfgmod
from restobox.contract import (
    KitchenData,
    OrderSubmit,
    PricedLine,
    PricedModifier,
    ReceiptData,
    StationTicket,
    Tender,
    StoreHeader,
    SubmitLine,
    SubmitPayment,
    LoyaltyResult,
    TicketItem,
    Words,
)
from restobox.data import load_sample_menu
from restobox.menu import ALLERGENS, MenuIndex
from restobox.orders import price_order, split_by_station
from restobox.ordercode import OrderCode, order_code, parse_order_code
from restobox.printing import layouts
from restobox.printing.layouts import PrintOptions, columns, display_width, fit, money, printable, signed_money, wrap

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "printing"
UPDATE_ENV = "RESTOBOX_UPDATE_GOLDEN"

ESC, GS, FS = 0x1B, 0x1D, 0x1C


# =========================================================================
# A strict reader of the ESC/POS the layouts produce
# =========================================================================


@dataclass
class Seg:
    text: str
    width: int
    height: int
    bold: bool
    invert: bool

    @property
    def columns(self) -> int:
        return sum(1 if ord(c) < 0x80 else 2 for c in self.text) * self.width


@dataclass
class Paper:
    lines: list[list[Seg]] = field(default_factory=list)
    qr: list[bytes] = field(default_factory=list)
    qr_at: list[int] = field(default_factory=list)  # line index where each symbol is printed
    barcodes: list[str] = field(default_factory=list)  # CODE128 symbols, as a scanner reads them
    barcode_at: list[int] = field(default_factory=list)
    barcode_module: list[int] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    chinese_runs: list[bytes] = field(default_factory=list)

    def texts(self) -> list[str]:
        return ["".join(s.text for s in line) for line in self.lines]

    def segs(self) -> list[Seg]:
        return [s for line in self.lines for s in line]

    def all_text(self) -> str:
        return "\n".join(self.texts())


def read_escpos(data: bytes) -> Paper:
    """Parse our ESC/POS output; raise AssertionError on anything else."""
    paper = Paper()
    line: list[Seg] = []
    width = height = 1
    bold = invert = chinese = False
    zh_start = 0
    module = 0
    i = 0

    def put(text: str) -> None:
        if line and (line[-1].width, line[-1].height, line[-1].bold, line[-1].invert) == (
            width, height, bold, invert
        ):
            line[-1].text += text
        else:
            line.append(Seg(text, width, height, bold, invert))

    while i < len(data):
        b = data[i]
        if chinese and b not in (FS,) and b < 0x20:
            raise AssertionError(f"command byte {b:#x} at {i} inside Chinese mode")
        if b == 0x0A:
            paper.lines.append(line)
            line = []
            i += 1
        elif b == ESC:
            cmd = data[i + 1 : i + 2]
            if cmd == b"@":
                i += 2
            elif cmd in (b"t", b"a", b"d"):
                i += 3
            elif cmd == b"E":
                bold = data[i + 2] == 1
                i += 3
            else:
                raise AssertionError(f"unexpected ESC {cmd!r} at {i}")
        elif b == GS:
            cmd = data[i + 1 : i + 2]
            if cmd == b"!":
                n = data[i + 2]
                width, height = (n >> 4) + 1, (n & 0x0F) + 1
                i += 3
            elif cmd == b"B":
                invert = data[i + 2] == 1
                i += 3
            elif cmd == b"V":
                paper.cuts.append(data[i + 2])
                i += 3
            elif cmd in (b"h", b"w", b"f", b"H"):  # barcode height, module width, HRI font, HRI position
                if cmd == b"H":
                    assert data[i + 2] == 0, "the code's text is a line of its own, not the printer's HRI"
                if cmd == b"w":
                    module = data[i + 2]
                i += 3
            elif cmd == b"k":
                assert data[i + 2] == 73, f"only CODE128 (GS k 73), not {data[i + 2]} at {i}"
                n = data[i + 3]
                paper.barcodes.append(decode_code128(data[i + 4 : i + 4 + n]))
                paper.barcode_at.append(len(paper.lines))
                paper.barcode_module.append(module)
                i += 4 + n
            elif cmd == b"(" and data[i + 2 : i + 3] == b"k":
                n = data[i + 3] + 256 * data[i + 4]
                body = data[i + 5 : i + 5 + n]
                if body[:3] == b"1P0":  # store the symbol data
                    paper.qr.append(body[3:])
                elif body[:3] == b"1Q0":  # print the symbol
                    paper.qr_at.append(len(paper.lines))
                i += 5 + n
            else:
                raise AssertionError(f"unexpected GS {cmd!r} at {i}")
        elif b == FS:
            cmd = data[i + 1 : i + 2]
            if cmd == b"&":
                assert not chinese, f"FS & twice at {i}"
                chinese, zh_start = True, i + 2
            elif cmd == b".":
                if chinese:
                    paper.chinese_runs.append(data[zh_start:i])
                chinese = False
            else:
                raise AssertionError(f"unexpected FS {cmd!r} at {i}")
            i += 2
        elif b >= 0x80:
            assert chinese, f"byte {b:#x} at {i} outside Chinese mode"
            pair = data[i : i + 2]
            assert len(pair) == 2 and 0x81 <= pair[0] <= 0xFE and 0x40 <= pair[1] <= 0xFE, (
                f"not a two-byte GB18030 character at {i}: {pair!r}"
            )
            put(pair.decode("gb18030"))
            i += 2
        elif b < 0x20 or b == 0x7F:
            raise AssertionError(f"unexpected control byte {b:#x} at {i}")
        else:
            put(chr(b))
            i += 1
    assert not chinese, "Chinese mode left open at the end"
    if line:
        paper.lines.append(line)
    return paper


def decode_code128(body: bytes) -> str:
    """The text of GS k 73 data: "{B" printable ASCII, "{C" a byte 0-99 per two digits."""
    out, mode, i = [], "", 0
    while i < len(body):
        if body[i : i + 1] == b"{" and body[i + 1 : i + 2] in (b"A", b"B", b"C"):
            mode = chr(body[i + 1])
            i += 2
            continue
        assert mode in ("B", "C"), f"CODE128 data without a code set: {body!r}"
        if mode == "C":
            assert body[i] <= 99, f"code set C value {body[i]} in {body!r}"
            out.append(f"{body[i]:02d}")
        else:
            assert 0x20 <= body[i] < 0x7F, f"code set B byte {body[i]:#x} in {body!r}"
            out.append(chr(body[i]))
        i += 1
    return "".join(out)


def preview(data: bytes) -> str:
    """The paper as text: one line per line, with size/style marks."""
    out = []
    paper = read_escpos(data)
    for k, line in enumerate(paper.lines):
        out += [f"[QR {paper.qr[n].decode()}]" for n, at in enumerate(paper.qr_at) if at == k]
        out += [f"[CODE128 {paper.barcodes[n]}]" for n, at in enumerate(paper.barcode_at) if at == k]
        marks = ""
        if line:
            s = line[0]
            marks = f"{s.width}x{s.height}" + ("B" if any(x.bold for x in line) else "") + (
                "I" if any(x.invert for x in line) else ""
            )
        out.append(f"{marks:7}|" + "".join(s.text for s in line))
    out += [f"[cut {'partial' if c == 1 else 'full'}]" for c in paper.cuts]
    return "\n".join(out)


# =========================================================================
# Golden files
# =========================================================================


def check_golden(name: str, data: bytes, directory: Path = GOLDEN_DIR) -> None:
    path = directory / f"{name}.bin"
    how = f"if the change is intended, regenerate with {UPDATE_ENV}=1 .venv/bin/python -m pytest -q {__file__}"
    if os.environ.get(UPDATE_ENV) == "1":
        directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; {how}", pytrace=False)
    want = path.read_bytes()
    if data == want:
        return
    at = next((k for k in range(min(len(data), len(want))) if data[k] != want[k]), min(len(data), len(want)))
    try:
        diff = "\n".join(difflib.unified_diff(
            preview(want).splitlines(), preview(data).splitlines(), "golden", "now", lineterm="", n=1))
    except AssertionError as exc:
        diff = f"(no text diff: {exc})"
    pytest.fail(
        f"{name}: bytes differ from {path} at first differing offset {at} "
        f"(golden {want[at:at + 12]!r}, now {data[at:at + 12]!r}; "
        f"{len(want)} vs {len(data)} bytes); {how}\n{diff}",
        pytrace=False,
    )


# =========================================================================
# Realistic inputs: orders on the sample menu, priced by the hub's code
# =========================================================================

MENU = load_sample_menu()
IDX = MenuIndex(MENU)
STORE = StoreHeader(
    name_zh="川味小馆", name_en="Sichuan Corner", address="88 Caoxi North Rd, Xuhui, Shanghai",
    phone="021-6438 8888", tax_id="91310104MA1FL0XX7Q",
)
ORDER_A = "3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"
ORDER_B = "0b1c2d3e-4f50-4172-8394-a5b6c7d8e9f0"

LINES_A = (
    SubmitLine(item_id="kung-pao-chicken", qty=1, modifiers=("spice-mild", "rice-brown", "addon-egg"),
               note="少放油 less oil"),
    SubmitLine(item_id="combo-kung-pao-chicken", qty=1,
               modifiers=("spice-hot", "combo-side-potstickers", "combo-drink-milk-tea")),
    SubmitLine(item_id="bubble-milk-tea", qty=2, modifiers=("sugar-half", "ice-less", "size-large")),
    SubmitLine(item_id="fried-chicken-wings", qty=2, modifiers=("spice-medium",)),
)
LINES_B = (
    SubmitLine(item_id="dan-dan-noodles", qty=1, modifiers=("noodle-thin", "spice-medium", "hold-peanuts")),
    SubmitLine(item_id="spring-rolls", qty=1),
    SubmitLine(item_id="lemon-tea", qty=1, modifiers=("sugar-less", "ice-none")),
)


def order(order_id: str, lines: tuple[SubmitLine, ...], **kw) -> OrderSubmit:
    kw.setdefault("channel", "kiosk")
    kw.setdefault("service", "takeaway")
    return OrderSubmit(order_id=order_id, lines=lines, **kw)


def receipt_data(o: OrderSubmit, number: int, **kw) -> ReceiptData:
    priced = price_order(o, IDX, discount=kw["loyalty"].discount if kw.get("loyalty") else 0)
    pay = o.payment
    fields = dict(
        store=STORE, order_id=o.order_id, number=number, business_date="2026-11-01",
        accepted_at="2026-11-01 12:34", channel=o.channel, service=o.service, table=o.table,
        lang=o.lang, lines=priced.lines, subtotal=priced.subtotal, tax=priced.tax, total=priced.total,
        currency=priced.currency, tax_rate_bp=MENU.tax_rate_bp, tax_inclusive=MENU.tax_inclusive,
        payment_method=pay.method, payment_status=pay.status, payment_reference=pay.reference,
        offline=o.offline, provisional_number=o.provisional_number, note=o.note,
    )
    fields.update(kw)
    return ReceiptData(**fields)


def kitchen_data(o: OrderSubmit, number: int, station: str, *, done_lines=(), fallback=False,
                 note: str = "", provisional_number: str = "") -> KitchenData:
    items = split_by_station(price_order(o, IDX).lines)[station]
    items = tuple(msgspec.structs.replace(i, state="done") if i.line in done_lines else i for i in items)
    ticket = StationTicket(
        ticket_id=f"{o.order_id}:{station}", order_id=o.order_id, number=number, station=station,
        channel=o.channel, service=o.service, table=o.table, items=items, note=note,
        accepted_at="2026-11-01T04:34:56.120+00:00", provisional_number=provisional_number,
    )
    name = IDX.stations[station].name
    return KitchenData(station_name=Words(name.zh, name.en), ticket=ticket,
                       printed_at="2026-11-01 12:35:02", fallback=fallback)


PAID_CARD = SubmitPayment(method="card", status="approved", amount=15000, reference="T-88123")
DINE_IN_A = order(ORDER_A, LINES_A, service="dine_in", table="12", payment=PAID_CARD)
TAKEAWAY_B = order(ORDER_B, LINES_B, channel="qr", lang="en",
                   payment=SubmitPayment(method="qr", status="approved", amount=4600, reference="WX4200"))
OFFLINE_B = order(ORDER_B, LINES_B, offline=True, provisional_number="K-17")
MEMBER_B = order(ORDER_B, LINES_B, channel="qr", lang="en",
                 payment=SubmitPayment(method="qr", status="approved", amount=4100, reference="WX4201"))

COUNTER_C = order(ORDER_A, LINES_A, channel="counter", service="dine_in", table="5")

W80_ZH = PrintOptions(80, "gb18030", "zh")
W80_BOTH = PrintOptions(80, "gb18030", "both")
W80_ASCII = PrintOptions(80, "ascii", "en")
W58_BOTH = PrintOptions(58, "gb18030", "both")
W58_EN = PrintOptions(58, "gb18030", "en")

GOLDEN_CASES = {
    "receipt_80_zh": lambda: layouts.receipt(receipt_data(DINE_IN_A, 57), W80_ZH),
    "receipt_80_en_ascii": lambda: layouts.receipt(receipt_data(DINE_IN_A, 57), W80_ASCII),
    "receipt_58_both": lambda: layouts.receipt(receipt_data(TAKEAWAY_B, 58), W58_BOTH),
    "receipt_offline_unpaid": lambda: layouts.receipt(receipt_data(OFFLINE_B, 59), W80_BOTH),
    "receipt_reprint": lambda: layouts.receipt(receipt_data(DINE_IN_A, 57), W80_BOTH, reprint=True),
    "kitchen_80_zh_allergens_combo": lambda: layouts.kitchen_ticket(
        kitchen_data(DINE_IN_A, 57, "fryer", note="12号桌先上"), W80_ZH),
    "kitchen_58_en": lambda: layouts.kitchen_ticket(kitchen_data(DINE_IN_A, 57, "drinks", done_lines=(3,)), W58_EN),
    "kitchen_fallback": lambda: layouts.kitchen_ticket(kitchen_data(DINE_IN_A, 57, "wok", fallback=True), W80_BOTH),
    "receipt_loyalty_58_both": lambda: layouts.receipt(receipt_data(
        MEMBER_B, 60, loyalty=LoyaltyResult(member="138****5678", earned=41, redeemed=500, discount=500,
                                              balance=1041)), W58_BOTH),
    "receipt_loyalty_80_zh": lambda: layouts.receipt(receipt_data(
        DINE_IN_A, 61, loyalty=LoyaltyResult(member="139****0001", earned=150, balance=150)), W80_ZH),
    "receipt_provisional_58_both": lambda: layouts.receipt(receipt_data(OFFLINE_B, 0), W58_BOTH),
    "test_page": lambda: layouts.test_page("receipt-1", W80_BOTH, now="2026-11-01 09:00:00"),
    # paid at the counter: cash with change, the rest by card
    "receipt_counter_split_80_both": lambda: layouts.receipt(receipt_data(
        COUNTER_C, 62, payment="paid", change=5000,
        tenders=(Tender(method="cash", amount=10000, tendered=15000),
                 Tender(method="card", amount=5000, reference="TRM-7731"))), W80_BOTH),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_ticket_bytes_match_the_golden_file(name):
    check_golden(name, GOLDEN_CASES[name]())


def test_a_missing_golden_fails_and_says_how_to_update(tmp_path, monkeypatch):
    monkeypatch.delenv(UPDATE_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match=f"missing.*{UPDATE_ENV}=1"):
        check_golden("absent", b"\x1b@abc\n", tmp_path)


def test_a_different_golden_fails_with_the_first_differing_offset(tmp_path, monkeypatch):
    monkeypatch.delenv(UPDATE_ENV, raising=False)
    (tmp_path / "t.bin").write_bytes(b"\x1b@abcdef\n")
    check_golden("t", b"\x1b@abcdef\n", tmp_path)  # same bytes: passes
    with pytest.raises(pytest.fail.Exception, match=f"offset 5 .*{UPDATE_ENV}=1") as exc:
        check_golden("t", b"\x1b@abcXef\n", tmp_path)
    assert "+1x1    |abcXef" in str(exc.value)  # a readable diff of the paper


def test_update_mode_writes_the_golden_file(tmp_path, monkeypatch):
    monkeypatch.setenv(UPDATE_ENV, "1")
    check_golden("new", b"\x1b@x\n", tmp_path / "sub")
    assert (tmp_path / "sub" / "new.bin").read_bytes() == b"\x1b@x\n"


# =========================================================================
# Encodings
# =========================================================================


def test_chinese_text_is_gb18030_inside_fs_and_fs_dot():
    data = GOLDEN_CASES["receipt_80_zh"]()
    paper = read_escpos(data)  # every byte >= 0x80 is inside FS & ... FS .
    assert b"\x1c&" + "宫保鸡丁".encode("gb18030") + b"\x1c." in data
    assert "宫保鸡丁".encode("utf-8") not in data
    assert "宫保鸡丁" in paper.all_text() and "取餐号" in paper.all_text()
    # only non-ASCII text is sent in Chinese mode; ASCII stays single-byte
    assert paper.chinese_runs and all(all(b >= 0x80 for b in run) for run in paper.chinese_runs)
    # yuan sign: U+00A5 has a four-byte GB18030 code the fonts lack; the
    # full-width one has a two-byte code
    assert "￥35.00" in paper.all_text()


def test_the_printer_starts_from_init_and_single_byte_mode():
    for opts in (W80_ZH, W58_BOTH):
        assert GOLDEN_CASES["receipt_80_zh"]().startswith(b"\x1b@\x1c.")
        assert layouts.test_page("p", opts, now="x").startswith(b"\x1b@\x1c.")
    assert layouts.test_page("p", W80_ASCII, now="x").startswith(b"\x1b@")


@pytest.mark.parametrize("lang", ["zh", "en", "both"])
def test_an_ascii_printer_gets_only_ascii_whatever_the_language_and_data(lang):
    opts = PrintOptions(58, "ascii", lang)
    o = order(ORDER_A, LINES_A, note="不要辣，谢谢 🌶 café")
    outputs = [
        layouts.receipt(receipt_data(o, 7), opts, reprint=True),
        layouts.receipt(receipt_data(OFFLINE_B, 8), opts),
        layouts.kitchen_ticket(kitchen_data(o, 7, "wok", fallback=True, note="先上"), opts, reprint=True),
        layouts.test_page("kitchen-1", opts, now="2026-11-01 09:00:00"),
    ]
    for data in outputs:
        assert max(data) < 0x80
        assert b"\x1c" not in data  # no FS & / FS . to a printer without Chinese mode
        read_escpos(data)
    text = read_escpos(outputs[0]).all_text()
    assert "Kung Pao Chicken" in text and "RMB 35.00" in text
    assert "Note: ???,?? ? cafe" in text  # Chinese replaced, accents dropped
    assert "REPRINT" in text


def test_a_note_cannot_send_printer_commands():
    # ESC p: kick the cash drawer; GS V: cut; LF would start a fake line.
    evil = "少辣\x1bp\x00\x19\xfa\n\x1dV\x00 ok\u200b"
    o = order(ORDER_A, (SubmitLine(item_id="spring-rolls", qty=1, note=evil),), note=evil)
    for opts in (W80_ZH, W80_ASCII):
        for data in (layouts.receipt(receipt_data(o, 1), opts),
                     layouts.kitchen_ticket(kitchen_data(o, 1, "fryer", note=evil), opts)):
            assert b"\x1bp" not in data and b"\x1dV\x00 " not in data
            paper = read_escpos(data)  # raises on any unexpected command
            assert len(paper.cuts) == 1
    assert "少辣 p" in read_escpos(layouts.receipt(receipt_data(o, 1), W80_ZH)).all_text()


def test_printable_keeps_what_the_printer_can_print():
    assert printable("¥5 宫保·（大）", "gb18030") == "￥5 宫保·（大）"
    assert printable("a\tb\nc\x1bd\u200be", "gb18030") == "a b c de"
    assert printable("🌶辣", "gb18030") == "?辣"  # four-byte GB18030: not in printer fonts
    assert printable("café ¥5 宫（大）", "ascii") == "cafe RMB 5 ?(?)"
    assert printable("Dine in · Table 3", "ascii") == "Dine in - Table 3"


# =========================================================================
# Widths
# =========================================================================


def test_display_width_counts_chinese_as_two_columns():
    assert display_width("") == 0
    assert display_width("Kung Pao") == 8
    assert display_width("宫保鸡丁 ab") == 11
    assert display_width("￥32.00") == 7


def test_fit_cuts_or_pads_to_exact_columns_without_splitting_a_character():
    assert fit("abc", 5) == "abc  "
    assert fit("abcdef", 4) == "abcd"
    assert fit("宫保鸡", 5) == "宫保 "
    assert display_width(fit("宫保鸡丁", 7)) == 7


def test_wrap_breaks_latin_at_spaces_and_chinese_anywhere():
    assert wrap("Kung Pao Chicken Combo", 10) == ["Kung Pao", "Chicken", "Combo"]
    assert wrap("宫保鸡丁宫保鸡丁", 6) == ["宫保鸡", "丁宫保", "鸡丁"]
    assert wrap("Supercalifragilistic", 8) == ["Supercal", "ifragili", "stic"]
    assert wrap("abc def ghi", 7, hang=2) == ["abc def", "  ghi"]
    assert wrap("", 10) == [""]
    # no line starts with closing punctuation
    assert wrap("宫保鸡丁，少辣", 8) == ["宫保鸡", "丁，少辣"]
    # mixed text: break at a nearby space rather than inside a Chinese word
    assert wrap("Payment 付款: at the counter 柜台", 30) == ["Payment 付款: at the counter", "柜台"]
    for s in ("宫保鸡丁 Kung Pao Chicken（加辣）with extra 花生 please", "x" * 100):
        for width in (5, 8, 13, 32):
            lines = wrap(s, width, hang=2)
            assert all(display_width(t) <= width for t in lines)
            assert "".join(t.strip() for t in lines).replace(" ", "") == s.replace(" ", "")


def test_columns_puts_the_price_flush_right_and_wraps_the_name():
    assert columns("1x 宫保鸡丁", "￥32.00", 20) == ["1x 宫保鸡丁  ￥32.00"]  # 11 + 2 + 7 columns
    lines = columns("2x Fried Chicken Wings (4)", "￥36.00", 24, hang=3)
    assert lines == ["2x Fried Chicken ￥36.00", "   Wings (4)"]
    assert columns("- Mild", "", 20, indent=3) == ["   - Mild"]
    assert all(display_width(t) <= 20 for t in columns("x" * 30, "y" * 19, 20))


LONG = PricedLine(
    line=1, item_id="x", name_zh="超级无敌豪华宫保鸡丁双人份特大套餐（含饮料和小食）",
    name_en="Super Deluxe Kung Pao Chicken Feast for Two with Drinks and Sides", qty=99,
    unit_price=999_999, line_total=98_999_901, station="wok",
    modifiers=(PricedModifier(
        id="m", name_zh="加一份非常非常长的特别定制的配料和酱汁", name_en="An extraordinarily long custom modifier name",
        price_delta=-123_456),),
    allergens=tuple(sorted(ALLERGENS)), note="请不要放葱姜蒜香菜，谢谢！Please no scallion, ginger, garlic or coriander." * 2,
)


def stress_receipt(offline=True) -> ReceiptData:
    return ReceiptData(
        store=StoreHeader(name_zh="非常长的店名" * 4, name_en="A Very Long Restaurant Name " * 3,
                          address="上海市徐汇区漕溪北路八十八号一楼 88 Caoxi North Road, Xuhui District",
                          phone="+86 21 6438 8888 ext. 1234567890123456789", tax_id="91310104MA1FL0XX7Q" * 3),
        order_id=ORDER_A, number=99999, business_date="2026-11-01", accepted_at="2026-11-01 23:59",
        channel="delivery", service="dine_in", table="ABCDEFGH", lines=(LONG, LONG), subtotal=197_999_802,
        tax=11_207_536, total=197_999_802, tax_rate_bp=1325, payment_method="card", payment_status="approved",
        payment_reference="REF" * 20, offline=offline, provisional_number="K-1234567890123", note=LONG.note,
        loyalty=LoyaltyResult(member="8521****12345678", earned=9_999_999, redeemed=9_999_999,
                              discount=99_999_990, balance=-99_999_999),
    )


def stress_ticket(fallback=True) -> KitchenData:
    item = TicketItem(line=1, item_id="x", name_zh=LONG.name_zh, name_en=LONG.name_en, qty=99,
                      modifiers=(Words(LONG.modifiers[0].name_zh, LONG.modifiers[0].name_en),) * 3,
                      allergens=LONG.allergens, note=LONG.note, state="done", part_of=LONG.name_en)
    t = StationTicket(ticket_id="t", order_id=ORDER_A, number=99999, station="wok", channel="delivery",
                      service="dine_in", table="ABCDEFGH", items=(item, item), note=LONG.note, accepted_at="x")
    return KitchenData(station_name=Words("炸炉烧烤和特别长的工位名称", "Fryer & Grill and a Long Station Name"),
                       ticket=t, printed_at="2026-11-01 23:59:59", fallback=fallback)


ALL_OPTIONS = [PrintOptions(w, e, l) for w in (58, 80) for e in ("gb18030", "ascii") for l in ("zh", "en", "both")]


@pytest.mark.parametrize("opts", ALL_OPTIONS, ids=lambda o: f"{o.width_mm}-{o.encoding}-{o.lang}")
def test_no_line_is_wider_than_the_paper(opts):
    cols = {58: 32, 80: 48}[opts.width_mm]
    cases = [  # (ops, bytes, at least this many lines)
        (layouts.receipt_ops(stress_receipt(), opts, reprint=True),
         layouts.receipt(stress_receipt(), opts, reprint=True), 40),
        (layouts.kitchen_ops(stress_ticket(), opts, reprint=True),
         layouts.kitchen_ticket(stress_ticket(), opts, reprint=True), 30),
        (layouts.test_page_ops("printer-with-a-long-name-0123456", opts, now="2026-11-01 09:00:00"),
         layouts.test_page("printer-with-a-long-name-0123456", opts, now="2026-11-01 09:00:00"), 10),
    ]
    for ops, data, at_least in cases:
        lines = [op for op in ops if isinstance(op, layouts.Line)]
        assert len(lines) >= at_least
        too_wide = [(op.text, op.columns) for op in lines if op.columns > cols]
        assert not too_wide
        # and the same read back from the bytes
        paper = read_escpos(data)
        assert max(sum(s.columns for s in line) for line in paper.lines) <= cols
        assert [t for t in paper.texts() if t] == [op.text for op in lines if op.text]


def test_long_names_wrap_instead_of_being_cut():
    for opts in (W58_BOTH, W80_BOTH):
        text = "".join(read_escpos(layouts.kitchen_ticket(stress_ticket(), opts)).texts()).replace(" ", "")
        assert LONG.name_zh in text
        assert LONG.name_en.replace(" ", "") in text
        receipt = read_escpos(layouts.receipt(stress_receipt(), opts)).texts()
        first = next(k for k, t in enumerate(receipt) if t.startswith("99x "))
        assert receipt[first].endswith("￥989,999.01")  # the price stays on the first line
        assert receipt[first + 1].startswith("    ")  # the name goes on, under itself


def test_the_ruler_on_the_test_page_is_exactly_the_line_width():
    for opts, cols in ((W80_BOTH, 48), (W58_EN, 32), (PrintOptions(58, "ascii", "en"), 32)):
        texts = read_escpos(layouts.test_page("p", opts, now="t")).texts()
        ruler = [t for t in texts if t.startswith("----+----1")]
        assert len(ruler) == 1 and len(ruler[0]) == cols
    zh = read_escpos(layouts.test_page("p", W58_BOTH, now="t")).texts()
    assert "一二三四五六七八九十一二三四五六" in zh  # 16 Chinese characters = 32 columns
    assert not any(ord(c) >= 0x80 for t in read_escpos(layouts.test_page("p", PrintOptions(58, "ascii", "zh"), now="t")).texts() for c in t)


# =========================================================================
# Content
# =========================================================================


def test_the_qr_code_is_native_and_holds_the_order_id():
    paper = read_escpos(GOLDEN_CASES["receipt_58_both"]())
    assert paper.qr == [ORDER_B.encode()] and len(paper.qr_at) == 1  # stored, then printed
    assert read_escpos(GOLDEN_CASES["kitchen_fallback"]()).qr == []


def code128_modules(text: str) -> int:
    """Modules of the CODE128 symbol layouts.code128 makes of ``text``:
    11 a symbol (start, a character of set B or two digits of set C, a
    code set switch, the check), 13 for the stop."""
    body = layouts.code128(text)
    symbols, i = 2, 0  # start and check
    while i < len(body):
        if body[i:i + 1] == b"{" and body[i + 1:i + 2] in (b"B", b"C"):
            symbols += 1 if i else 0  # the first code set is the start symbol itself
            i += 2
        else:
            symbols += 1
            i += 1
    return symbols * 11 + 13


@pytest.mark.parametrize("name,code", [
    ("receipt_80_zh", "R2026110157"), ("receipt_80_en_ascii", "R2026110157"), ("receipt_58_both", "R2026110158"),
    ("receipt_offline_unpaid", "R2026110159"), ("receipt_reprint", "R2026110157"),
    ("receipt_provisional_58_both", "P20261101K-17"),
])
def test_every_receipt_carries_the_orders_code_as_a_barcode_with_its_text_under_it(name, code):
    paper = read_escpos(GOLDEN_CASES[name]())
    assert paper.barcodes == [code]
    (at,) = paper.barcode_at
    assert paper.texts()[at].strip() == code  # the text, on the line right under the symbol
    # what the counter's scanner types back names the order
    parsed = parse_order_code(code + "\n")
    if name.startswith("receipt_provisional"):
        assert parsed == OrderCode("2026-11-01", provisional_number="K-17") and parsed.provisional
    else:
        assert parsed == OrderCode("2026-11-01", number=int(code[9:])) and not parsed.provisional


@pytest.mark.parametrize("opts", [W58_BOTH, W80_ZH])
@pytest.mark.parametrize("number,provisional", [(1, ""), (99_999, ""), (0, "K1-007"), (0, "C12-999")])
def test_the_codes_fit_the_printable_width_at_two_dots_a_module_or_more(opts, number, provisional):
    """The longest numbers the hub gives and the provisional numbers of up to
    99 kiosks or counters (kiosk.viewmodel.texts.provisional_number); the
    quiet zones are the paper's margins either side of the printable width."""
    data = receipt_data(OFFLINE_B, number, provisional_number=provisional, business_date="2026-12-31")
    paper = read_escpos(layouts.receipt(data, opts))
    (code,) = paper.barcodes
    (module,) = paper.barcode_module
    dots = {58: 384, 80: 576}[opts.width_mm]
    assert code128_modules(code) * module <= dots and 2 <= module <= 3
    margin = {58: 40, 80: 32}[opts.width_mm]  # (paper - printable) / 2, at 8 dots a mm
    assert margin >= 10 * module  # the quiet zone
    assert layouts.code128_modules(code) == code128_modules(code)


def test_a_code_too_long_for_the_paper_prints_as_text_only():
    data = receipt_data(OFFLINE_B, 0, provisional_number="ABCD-1234567890")  # not a kiosk's
    paper = read_escpos(layouts.receipt(data, W58_BOTH))
    assert paper.barcodes == [] and "P20261101ABCD-1234567890" in [t.strip() for t in paper.texts()]


def test_a_receipt_without_a_day_or_a_number_has_no_barcode_rather_than_a_wrong_one():
    assert read_escpos(layouts.receipt(receipt_data(DINE_IN_A, 57, business_date=""), W80_ZH)).barcodes == []
    assert read_escpos(layouts.receipt(receipt_data(OFFLINE_B, 0, provisional_number=""), W80_ZH)).barcodes == []
    # a provisional number a scanner cannot type back (a hand-edited kiosk.db) is no code
    assert read_escpos(layouts.receipt(receipt_data(OFFLINE_B, 0, provisional_number="临时1"), W80_ZH)).barcodes == []


def test_order_codes_read_back_and_anything_else_is_no_order():
    assert order_code("2026-12-05", 17) == "R2026120517"
    assert order_code("2026-12-05", 0, "C1-003") == "P20261205C1-003"
    assert parse_order_code("r2026120517\r\n") == OrderCode("2026-12-05", number=17)
    assert parse_order_code(" P20261205c1-003\t") == OrderCode("2026-12-05", provisional_number="C1-003")
    for bad in ("", "R", "R20261205", "R2026120500017", "R20261205123456", "R20261305017", "R2026120５17",
                "X2026120517", "P20261205-", "P20261205K1_007", "2026120517", "R2026-12-0517", None):
        assert parse_order_code(bad) is None, bad
    assert code128_modules("R2026120517") == 112  # start B, R, code C, 5 pairs, check: 9 symbols + stop


def test_the_order_number_is_printed_in_large_type():
    big = [s for s in read_escpos(GOLDEN_CASES["receipt_80_zh"]()).segs() if s.text.strip() == "57"]
    assert big and all(s.width >= 2 and s.height >= 2 for s in big)
    big = [s for s in read_escpos(GOLDEN_CASES["kitchen_58_en"]()).segs() if s.text.strip() == "57"]
    assert big and all(s.width >= 3 and s.height >= 3 for s in big)


def test_a_kiosk_printed_offline_receipt_shows_the_provisional_number_large_and_no_order_number():
    data = receipt_data(OFFLINE_B, 0)
    paper = read_escpos(layouts.receipt(data, W58_BOTH))
    texts = [s.text.strip() for s in paper.segs()]
    big = [s for s in paper.segs() if s.text.strip() == "K-17"]
    assert big and all(s.width >= 2 and s.height >= 2 for s in big)
    assert "0" not in texts  # no order number 0 for the diner to look for
    assert any("Provisional No." in t for t in texts)
    assert any("network is back" in t for t in texts)
    # the hub's receipt for the same order, once numbered, shows its number and the provisional one
    later = [s.text for s in read_escpos(layouts.receipt(receipt_data(OFFLINE_B, 59), W58_BOTH)).segs()]
    assert any(t.strip() == "59" for t in later) and any("K-17" in t for t in later)


def test_money_is_integer_fen_with_two_decimals():
    assert money(0) == "¥0.00"
    assert money(1) == "¥0.01"
    assert money(100) == "¥1.00"
    assert money(123456) == "¥1,234.56"
    assert money(-100) == "-¥1.00"
    assert money(500, "USD") == "USD 5.00"
    assert signed_money(300) == "+¥3.00" and signed_money(-100) == "-¥1.00"
    for bad in (1.5, True, "100"):
        with pytest.raises(TypeError):
            money(bad)


def test_receipt_totals_tax_and_modifier_prices():
    text = read_escpos(layouts.receipt(receipt_data(DINE_IN_A, 57), W80_BOTH)).all_text()
    priced = price_order(DINE_IN_A, IDX)
    assert priced.total == 15000
    assert "TOTAL 合计" in text and "￥150.00" in text
    assert "Tax 6% incl. 含税 6%" in text
    assert "+￥2.00" in text  # the extra egg
    assert "2x 珍珠奶茶" in text and "   Bubble Milk Tea" in text
    excl = read_escpos(layouts.receipt(receipt_data(DINE_IN_A, 57, tax_inclusive=False), W80_ASCII)).all_text()
    assert "Tax 6%" in excl and "incl." not in excl
    total = [s for s in read_escpos(layouts.receipt(receipt_data(DINE_IN_A, 57), W80_ZH)).segs() if "合计" in s.text]
    assert total and all(s.bold for s in total)


def test_payment_says_paid_or_asks_to_pay_at_the_counter():
    paid = read_escpos(layouts.receipt(receipt_data(DINE_IN_A, 57), W80_ASCII)).all_text()
    assert "Paid by card, ref T-88123" in paid and "Please pay" not in paid
    unpaid = read_escpos(layouts.receipt(receipt_data(OFFLINE_B, 59), W80_BOTH)).all_text()
    assert "Please pay at the counter 请到柜台付款" in unpaid and "Paid by" not in unpaid


def _inverted(data: bytes) -> str:
    return " ".join(s.text for s in read_escpos(data).segs() if s.invert)


def test_allergens_are_printed_white_on_black_in_both_languages():
    data = layouts.kitchen_ticket(kitchen_data(DINE_IN_A, 57, "wok"), W80_BOTH)
    assert b"\x1dB\x01" in data and b"\x1dB\x00" in data
    inv = _inverted(data)
    assert "ALLERGEN: egg, gluten, peanut, soy" in inv
    assert "过敏原：蛋类、麸质、花生、大豆" in inv
    # fries have no allergens: nothing highlighted on that line's ticket part
    fries = order(ORDER_B, (SubmitLine(item_id="fries", qty=1),))
    assert _inverted(layouts.kitchen_ticket(kitchen_data(fries, 3, "fryer"), W80_BOTH)) == ""


def test_every_menu_allergen_has_a_chinese_name_the_printer_font_has():
    assert set(layouts.ALLERGEN_NAMES) == set(ALLERGENS)
    for zh, en in layouts.ALLERGEN_NAMES.values():
        zh.encode("gb2312")  # the smallest Chinese printer font
        assert en.isascii()


def test_combo_parts_say_which_combo_they_belong_to():
    text = read_escpos(GOLDEN_CASES["kitchen_80_zh_allergens_combo"]()).all_text()
    assert "锅贴（3个）" in text and "所属: 宫保鸡丁套餐" in text
    en = read_escpos(layouts.kitchen_ticket(kitchen_data(DINE_IN_A, 57, "drinks"), W58_EN)).all_text()
    assert "for: Kung Pao Chicken Combo" in en


def test_kitchen_items_are_large_and_done_items_are_marked():
    paper = read_escpos(GOLDEN_CASES["kitchen_58_en"]())
    item_lines = [line for line in paper.lines if line and "x " in line[0].text and line[0].text[:1] in "[0123456789"]
    assert item_lines and all(s.height == 2 for line in item_lines for s in line)
    texts = paper.texts()
    assert "[DONE] 2x Bubble Milk Tea" in texts  # line 3 was bumped
    assert "1x Bubble milk tea" in texts  # the combo's drink is still open


@pytest.mark.parametrize("reprint", [False, True])
def test_reprint_banner_appears_exactly_when_asked(reprint):
    for data in (layouts.receipt(receipt_data(DINE_IN_A, 57), W80_BOTH, reprint=reprint),
                 layouts.kitchen_ticket(kitchen_data(DINE_IN_A, 57, "wok"), W58_BOTH, reprint=reprint)):
        assert ("REPRINT 重印" in _inverted(data)) is reprint
        assert ("REPRINT" in read_escpos(data).all_text()) is reprint


@pytest.mark.parametrize("offline", [False, True])
def test_offline_mark_appears_exactly_for_offline_orders(offline):
    o = order(ORDER_B, LINES_B, offline=offline, provisional_number="K-17" if offline else "")
    for opts in (W80_BOTH, W58_BOTH, W80_ASCII):
        texts = read_escpos(layouts.receipt(receipt_data(o, 59), opts)).texts()
        assert any("OFFLINE ORDER" in t for t in texts) is offline
        assert any("K-17" in t for t in texts) is offline
    zh = read_escpos(layouts.receipt(receipt_data(o, 59), W80_ZH)).texts()
    assert any("| " in t and "离线订单" in t for t in zh) is offline  # inside the box


@pytest.mark.parametrize("opts", [W80_BOTH, W58_BOTH, W80_ZH, W58_EN, W80_ASCII])
def test_a_kitchen_ticket_of_an_offline_order_shows_both_numbers_large(opts):
    """docs/operations.md: the kitchen's ticket shows the hub's number and
    the provisional one the diner holds, so staff can call out either."""
    paper = read_escpos(layouts.kitchen_ticket(kitchen_data(OFFLINE_B, 42, "wok", provisional_number="K1-007"),
                                               opts))
    big = [s for s in paper.segs() if "K1-007" in s.text]
    assert big and all(s.height >= 2 and s.bold for s in big)
    assert any(s.text.strip() == "42" and s.height >= 3 for s in paper.segs())
    online = read_escpos(layouts.kitchen_ticket(kitchen_data(OFFLINE_B, 42, "wok"), opts)).all_text()
    assert "K1-007" not in online and "rovisional" not in online and "临时" not in online


@pytest.mark.parametrize("fallback", [False, True])
def test_fallback_banner_appears_exactly_for_fallback_prints(fallback):
    data = layouts.kitchen_ticket(kitchen_data(DINE_IN_A, 57, "wok", fallback=fallback), W80_BOTH)
    inv = _inverted(data)
    assert ("FALLBACK PRINT" in inv) is fallback
    assert ("屏幕未确认" in inv) is fallback
    assert "REPRINT" not in inv


def test_receipts_cut_partially_and_kitchen_tickets_fully():
    assert read_escpos(GOLDEN_CASES["receipt_80_zh"]()).cuts == [1]
    assert read_escpos(GOLDEN_CASES["kitchen_fallback"]()).cuts == [0]
    assert GOLDEN_CASES["receipt_80_zh"]().endswith(b"\x1bd\x06\x1dV\x01")


def test_service_and_table_in_the_printed_language():
    zh = read_escpos(layouts.receipt(receipt_data(DINE_IN_A, 57), W80_ZH)).texts()
    en = read_escpos(layouts.receipt(receipt_data(DINE_IN_A, 57), W80_ASCII)).texts()
    assert "堂食 · 12号桌" in zh and "Dine in - Table 12" in en
    assert "Takeaway" in read_escpos(GOLDEN_CASES["receipt_58_both"]()).texts()


def test_sparse_data_still_prints_a_sane_ticket():
    bare = ReceiptData(store=StoreHeader(name_zh="", name_en="Shop"), order_id="", number=1,
                       business_date="", accepted_at="", channel="x", service="y", lines=(),
                       subtotal=0, tax=0, total=0, payment_status="weird")
    paper = read_escpos(layouts.receipt(bare, W58_BOTH))
    assert paper.qr == [] and paper.cuts == [1]
    assert "Shop" in paper.texts() and "TOTAL 合计                ￥0.00" in paper.texts()
    assert "Payment 付款: at the counter" in paper.texts()  # not "...counter 柜" / "台"
    empty = KitchenData(station_name=Words("", ""), printed_at="", ticket=StationTicket(
        ticket_id="", order_id="", number=0, station="s", channel="", service="", items=(), accepted_at=""))
    assert read_escpos(layouts.kitchen_ticket(empty, W80_ASCII)).cuts == [0]


def test_the_same_input_always_gives_the_same_bytes():
    a = layouts.receipt(receipt_data(DINE_IN_A, 57), W80_BOTH, reprint=True)
    assert a == layouts.receipt(receipt_data(DINE_IN_A, 57), W80_BOTH, reprint=True)
    assert a != layouts.receipt(receipt_data(DINE_IN_A, 58), W80_BOTH, reprint=True)


# =========================================================================
# Options
# =========================================================================


def test_print_options_come_from_any_printer_config():
    raw = {"port": "virtual", "id": "kitchen-1", "directory": "/tmp/x", "width_mm": 58,
           "encoding": "ascii", "lang": "zh"}
    cfg = msgspec.convert(raw, cfgmod.PrinterConfig)
    opts = PrintOptions.from_printer(cfg)
    assert opts == PrintOptions(width_mm=58, encoding="ascii", lang="zh")
    assert opts.columns == 32 and opts.language == "en" and not opts.chinese
    assert PrintOptions() == PrintOptions(80, "gb18030", "both") and PrintOptions().columns == 48


@pytest.mark.parametrize("bad", [dict(width_mm=76), dict(encoding="utf-8"), dict(lang="fr")])
def test_print_options_refuse_values_no_printer_has(bad):
    with pytest.raises(ValueError):
        PrintOptions(**bad)


if __name__ == "__main__":  # python -m tests.test_print_layouts tests/golden/printing/x.bin
    for arg in sys.argv[1:]:
        print(f"== {arg}")
        print(preview(Path(arg).read_bytes()))


def test_loyalty_on_a_receipt_shows_only_the_masked_phone_and_the_points():
    pts = LoyaltyResult(member="138****5678", earned=41, redeemed=500, discount=500, balance=1041)
    for opts, said in ((W80_ZH, ("会员", "本单积分", "+41", "使用积分", "-500", "积分余额", "1041", "积分抵扣", "-￥5.00")),
                       (W58_EN, ("Member", "Points earned", "+41", "Points used", "-500", "Points balance", "1041", "Points off"))):
        paper = "\n".join(read_escpos(layouts.receipt(receipt_data(MEMBER_B, 60, loyalty=pts), opts)).texts())
        assert "138****5678" in paper
        for s in said:
            assert s in paper, (s, paper)
    # a receipt printed before the hub has the order: the member, no figures yet
    off = receipt_data(OFFLINE_B, 0, loyalty=LoyaltyResult(member="138****5678"))
    paper = "\n".join(read_escpos(layouts.receipt(off, W58_EN)).texts())
    assert "138****5678" in paper and "Points are added when" in paper and "Points earned" not in paper
    # loyalty switched off at the hub: nothing about points
    paper = "\n".join(read_escpos(layouts.receipt(receipt_data(
        TAKEAWAY_B, 60, loyalty=LoyaltyResult(member="138****5678", credited=False)), W58_EN)).texts())
    assert "Member" not in paper and "Points" not in paper
