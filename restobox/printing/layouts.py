"""Ticket layouts: pure functions from contract structs to ESC/POS bytes.

No I/O, no clock: ``receipt``, ``kitchen_ticket`` and ``test_page`` take what
they print and return the bytes a printer port writes. Each is built in two
steps, both pure and both tested:

1. ``*_ops`` lays the ticket out as :class:`Line` objects (text already in
   the form it is printed, at most one line of paper each) plus a QR code and
   a cut. Widths are checked here, in display columns.
2. :func:`render` turns those into ESC/POS with python-escpos's ``Dummy``
   printer, which keeps the bytes.

Chinese text (ESC/POS for Chinese printers, "FS &" / "FS ."): Chinese mode is
entered only around non-ASCII runs, whose bytes are GB18030 and are written
with ``_raw`` so that python-escpos's code-page guessing never touches them.
In Chinese mode every such character is a double-byte glyph, two columns
wide; ASCII stays in single-byte mode, one column.

Printers with ``encoding = "ascii"`` have no Chinese font: they always print
English, and anything non-ASCII (a diner's Chinese note) is transliterated or
replaced by "?". Control characters are removed from all text, so no data can
smuggle printer commands (a cash-drawer kick) onto the paper.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

from escpos.constants import QR_ECLEVEL_M
from escpos.printer import Dummy

from restobox.contract import KitchenData, PricedLine, ReceiptData, ReportData, TicketItem
from restobox.ordercode import order_code

__all__ = [
    "ALLERGEN_NAMES", "Barcode", "COLUMNS", "Cut", "code128", "code128_modules", "center", "Line", "PrintOptions", "QrCode", "Span",
    "columns", "day_report", "day_report_ops", "display_width", "drawer_pulse", "fit", "kitchen_ticket", "kitchen_ops", "money",
    "printable", "receipt", "receipt_ops", "render", "signed_money", "test_page",
    "test_page_ops", "wrap",
]

# Characters per line in font A (12 x 24 dots): 384 dots on 58 mm paper,
# 576 on 80 mm.
COLUMNS = {58: 32, 80: 48}

FS_CHINESE_ON = b"\x1c&"  # FS &: select Chinese (double-byte) character mode
FS_CHINESE_OFF = b"\x1c."  # FS .: cancel Chinese character mode

RECEIPT_NUMBER_SIZE = 3  # GS ! magnification of the number on a receipt
KITCHEN_NUMBER_SIZE = 4
QR_MODULE_DOTS = 6  # a UUID is a version 3 symbol (29 modules): 174 dots
# The order's code as CODE128: its digits in code set C (two a symbol), so
# "R2026120517" is 9 symbols, 112 modules: 336 dots at 3 dots a module on
# 80 mm paper (576 printable), 224 at 2 on 58 mm (384). The quiet zone a
# scanner needs either side (10 modules, 30 dots at most) is the paper's own
# blank margin (4-5 mm, 32-40 dots) when the symbol fills the printable width.
BARCODE_MODULE_DOTS = (3, 2)  # the widest that fits; narrower is hard to scan
BARCODE_HEIGHT_DOTS = 80  # 10 mm at 203 dpi: one pass of a handheld scanner
PAPER_DOTS = {58: 384, 80: 576}

# The 14 allergens of restobox.menu.ALLERGENS, as printed (zh, en).
ALLERGEN_NAMES: dict[str, tuple[str, str]] = {
    "celery": ("芹菜", "celery"),
    "gluten": ("麸质", "gluten"),
    "crustaceans": ("甲壳类", "crustaceans"),
    "egg": ("蛋类", "egg"),
    "fish": ("鱼类", "fish"),
    "lupin": ("羽扇豆", "lupin"),
    "milk": ("牛奶", "milk"),
    "molluscs": ("软体动物", "molluscs"),
    "mustard": ("芥末", "mustard"),
    "peanut": ("花生", "peanut"),
    "sesame": ("芝麻", "sesame"),
    "soy": ("大豆", "soy"),
    "sulphites": ("亚硫酸盐", "sulphites"),
    "tree-nut": ("坚果", "tree nuts"),
}

CHANNELS = {
    "kiosk": ("自助点餐", "Kiosk"),
    "counter": ("柜台", "Counter"),
    "qr": ("扫码点餐", "QR order"),
    "preorder": ("预订", "Pre-order"),
    "delivery": ("外卖", "Delivery"),
}
PAY_METHODS = {
    "counter": ("柜台", "at the counter"),
    "card": ("银行卡", "card"),
    "qr": ("扫码", "QR code"),
    "cash": ("现金", "cash"),
    "voucher": ("团购券", "voucher"),
    "points": ("积分", "points"),
    "gateway": ("手机支付", "phone payment"),
}
CURRENCY_SYMBOLS = {"CNY": "¥"}


# =========================================================================
# Options
# =========================================================================


@dataclass(frozen=True)
class PrintOptions:
    """How one printer prints: paper width, character set, language."""

    width_mm: int = 80
    encoding: str = "gb18030"
    lang: str = "both"

    def __post_init__(self) -> None:
        if self.width_mm not in COLUMNS:
            raise ValueError(f"width_mm must be 58 or 80, not {self.width_mm!r}")
        if self.encoding not in ("gb18030", "ascii"):
            raise ValueError(f"encoding must be gb18030 or ascii, not {self.encoding!r}")
        if self.lang not in ("zh", "en", "both"):
            raise ValueError(f"lang must be zh, en or both, not {self.lang!r}")

    @classmethod
    def from_printer(cls, cfg) -> "PrintOptions":
        """The print options of a printer config (any ``_PrinterBase``)."""
        return cls(width_mm=cfg.width_mm, encoding=cfg.encoding, lang=cfg.lang)

    @property
    def columns(self) -> int:
        return COLUMNS[self.width_mm]

    @property
    def chinese(self) -> bool:
        return self.encoding == "gb18030"

    @property
    def language(self) -> str:
        """The language actually printed: ascii printers print English."""
        return self.lang if self.chinese else "en"


# =========================================================================
# Text: what is printable, how wide it is, wrapping and columns
# =========================================================================

# ASCII stand-ins for printers without a Chinese font. Anything not here and
# not reducible by NFKD (é -> e, full-width forms -> ASCII) becomes "?".
_ASCII_FOR = {
    "¥": "RMB ", "￥": "RMB ", "·": "-", "•": "*", "×": "x", "—": "-", "–": "-",
    "…": "...", "‘": "'", "’": "'", "“": '"', "”": '"', "，": ",", "。": ".",
    "、": ",", "：": ":", "；": ";", "！": "!", "？": "?", "（": "(", "）": ")",
    "【": "[", "】": "]", "《": "<", "》": ">", "「": '"', "」": '"', "　": " ",
}
# The printer fonts hold GB2312/GBK (two-byte codes); GB18030's four-byte
# codes, U+00A5 among them, print as garbage.
_GB_FOR = {"¥": "￥"}


def _cleaned(s: str) -> Iterable[str]:
    """Characters of ``s`` with control and format characters removed."""
    for c in unicodedata.normalize("NFC", str(s)):
        cat = unicodedata.category(c)
        if cat in ("Cc", "Zl", "Zp"):
            yield " "  # tab, newline, ESC, ... : never a command on paper
        elif cat == "Cf":
            continue  # zero-width joiners, bidi marks
        else:
            yield c


def _to_ascii(c: str) -> str:
    if c in _ASCII_FOR:
        return _ASCII_FOR[c]
    plain = "".join(
        d for d in unicodedata.normalize("NFKD", c) if ord(d) < 0x80 and not unicodedata.combining(d)
    )
    return plain if plain and all(0x20 <= ord(d) < 0x7F for d in plain) else "?"


def _to_gb(c: str) -> str:
    c = _GB_FOR.get(c, c)
    if len(c.encode("gb18030")) == 2:
        return c
    alt = unicodedata.normalize("NFKC", c)
    if alt != c and all(ord(d) < 0x80 or len(_GB_FOR.get(d, d).encode("gb18030")) == 2 for d in alt):
        return "".join(_GB_FOR.get(d, d) for d in alt)
    return "?"


def printable(s: str, encoding: str) -> str:
    """``s`` as it will be printed on a printer with ``encoding``.

    No control characters; for ``ascii`` only printable ASCII; for
    ``gb18030`` only ASCII and characters with a two-byte GB18030 code.
    """
    out = []
    for c in _cleaned(s):
        if ord(c) < 0x80:
            out.append(c)
        elif encoding == "ascii":
            out.append(_to_ascii(c))
        else:
            out.append(_to_gb(c))
    return "".join(out)


def _cw(c: str) -> int:
    return 1 if ord(c) < 0x80 else 2


def display_width(s: str) -> int:
    """Columns ``s`` takes on paper: ASCII 1, any other character 2.

    On a Chinese printer every non-ASCII character is printed in Chinese
    mode as a double-byte glyph, twice as wide as an ASCII one (24 vs 12
    dots in font A). Meant for text that went through :func:`printable`.
    """
    return sum(1 if ord(c) < 0x80 else 2 for c in s)


def fit(s: str, width: int) -> str:
    """``s`` cut or padded with spaces to exactly ``width`` columns.

    A double-width character that would straddle the edge is replaced by a
    space, never split.
    """
    out, w = [], 0
    for c in s:
        if w + _cw(c) > width:
            break
        out.append(c)
        w += _cw(c)
    return "".join(out) + " " * (width - w)


def center(s: str, width: int) -> str:
    """``s`` centred in exactly ``width`` columns (cut if longer)."""
    w = display_width(s)
    if w >= width:
        return fit(s, width)
    left = (width - w) // 2
    return " " * left + s + " " * (width - w - left)


# No line starts with closing punctuation, none ends with opening.
_NO_START = set("，。、：；！？）」』”’》】,.:;!?)]}%")
_NO_END = set("（「『“‘《【([{")


def _break_ok(s: str, k: int) -> bool:
    """May a line end before s[k]?"""
    a, b = s[k - 1], s[k]
    if b == " ":
        return True
    if a == " ":
        return False  # the space is the break
    if not (_cw(a) == 2 or _cw(b) == 2):
        return False  # inside a Latin word
    return b not in _NO_START and a not in _NO_END


def wrap(s: str, width: int, hang: int = 0) -> list[str]:
    """Break ``s`` into lines of at most ``width`` columns.

    Latin text breaks at spaces, Chinese between characters; a word longer
    than a line is cut. Lines after the first are indented by ``hang``
    spaces (and so hold ``width - hang`` columns of text). Always at least
    one line, possibly empty.
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    # keep two columns after the indent, so a Chinese character always fits
    hang = max(0, min(hang, width - 2))
    s = s.rstrip()
    lines: list[str] = []
    avail = width
    while display_width(s) > avail:
        k, w = 0, 0
        while w + _cw(s[k]) <= avail:
            w += _cw(s[k])
            k += 1
        # s[:k] fits and s[k] does not: end the line at the last break
        # opportunity at or before k, else cut the word. In mixed text a
        # space a little further back beats splitting a Chinese word.
        breaks = [j for j in range(k, 0, -1) if _break_ok(s, j) and s[:j].strip()]
        cut = breaks[0] if breaks else max(k, 1)
        space = next((j for j in breaks if s[j] == " "), 0)
        if space and display_width(s[space:cut]) <= avail // 4:
            cut = space
        lines.append(s[:cut].rstrip())
        s = s[cut:].lstrip(" ")
        avail = width - hang
    lines.append(s)
    return [lines[0]] + [" " * hang + t for t in lines[1:]]


def columns(left: str, right: str, width: int, *, indent: int = 0, hang: int | None = None) -> list[str]:
    """A "name ... price" line: ``left`` from column ``indent``, ``right``
    flush right on the first line. ``left`` wraps in the columns the right
    side leaves, continuation lines indented by ``hang`` (default: indent).
    """
    hang = indent if hang is None else hang
    rw = display_width(right)
    if rw == 0:
        return [" " * indent + t for t in wrap(left, width - indent, hang - indent)]
    room = width - indent - rw - 1  # at least one space before the right side
    if room < 4:  # the right side does not leave room: it gets its own line
        out = [" " * indent + t for t in wrap(left, width - indent, hang - indent)]
        return out + [" " * (width - rw) + right if rw <= width else fit(right, width)]
    parts = wrap(left, room, max(0, hang - indent))
    first = " " * indent + parts[0]
    out = [first + " " * (width - display_width(first) - rw) + right]
    for t in parts[1:]:
        out.append(" " * indent + t)
    return out


# =========================================================================
# Money
# =========================================================================


def money(minor: int, currency: str = "CNY") -> str:
    """Integer minor units (fen) as ``¥1,234.56``; negative ``-¥1.00``."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"money is an integer number of minor units, not {minor!r}")
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{symbol}{units:,}.{cents:02d}"


def signed_money(minor: int, currency: str = "CNY") -> str:
    """A price change: ``+¥3.00``, ``-¥1.00``."""
    return ("+" if minor > 0 else "") + money(minor, currency)


def _percent(bp: int) -> str:
    whole, frac = divmod(bp, 100)
    return f"{whole}%" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0") + "%"


# =========================================================================
# The page: lines of styled spans, a QR code, a cut
# =========================================================================


@dataclass(frozen=True)
class Span:
    text: str
    bold: bool = False
    invert: bool = False  # white on black, GS B


@dataclass(frozen=True)
class Line:
    """One line of paper. ``width``/``height``: GS ! magnification."""

    spans: tuple[Span, ...]
    width: int = 1
    height: int = 1
    align: str = "left"

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.spans)

    @property
    def columns(self) -> int:
        """Columns of normal-size characters the line uses."""
        return display_width(self.text) * self.width


@dataclass(frozen=True)
class QrCode:
    data: str
    module: int = QR_MODULE_DOTS


@dataclass(frozen=True)
class Barcode:
    """A CODE128 symbol of ``data`` (printable ASCII), no text of its own:
    the layout prints the text under it as a line, the same on every printer."""

    data: str
    module: int = 2
    height: int = BARCODE_HEIGHT_DOTS


@dataclass(frozen=True)
class Cut:
    partial: bool = True


Op = Line | QrCode | Barcode | Cut


class _Page:
    """Builds the ops of one ticket for one printer."""

    def __init__(self, opts: PrintOptions) -> None:
        self.opts = opts
        self.cols = opts.columns
        self.lang = opts.language
        self.ops: list[Op] = []

    # ----------------------------------------------------------- language
    def p(self, s: str) -> str:
        return printable(s, self.opts.encoding)

    def say(self, zh: str, en: str) -> str:
        """A label in the printer's language; "both": English then Chinese."""
        if self.lang == "zh":
            return zh
        if self.lang == "en" or zh == en:
            return en
        return f"{en} {zh}"

    def name(self, zh: str, en: str) -> str:
        """A menu name: Chinese first, it is the menu's own language."""
        if self.lang == "zh":
            return zh
        if self.lang == "en" or zh == en or not zh:
            return en
        return f"{zh} {en}"

    def each(self, zh: str, en: str) -> list[str]:
        """One line per printed language: Chinese, then English."""
        if self.lang == "zh":
            return [zh]
        if self.lang == "en" or zh == en:
            return [en]
        return [t for t in (zh, en) if t] or [""]

    # -------------------------------------------------------------- lines
    def text(self, s: str, *, bold: bool = False, invert: bool = False, align: str = "left",
             size: tuple[int, int] = (1, 1), hang: int = 0) -> None:
        w, h = size
        for part in wrap(self.p(s), self.cols // w, hang):
            self.ops.append(Line((Span(part, bold, invert),), w, h, align))

    def row(self, left: str, right: str = "", *, indent: int = 0, hang: int | None = None,
            bold: bool = False, height: int = 1) -> None:
        for part in columns(self.p(left), self.p(right), self.cols, indent=indent, hang=hang):
            self.ops.append(Line((Span(part, bold),), 1, height))

    def blank(self) -> None:
        self.ops.append(Line((Span(""),)))

    def rule(self, ch: str = "-") -> None:
        self.ops.append(Line((Span(ch * self.cols),)))

    def banner(self, *texts: str) -> None:
        """White on black across the paper, double height."""
        for s in texts:
            for part in wrap(self.p(s), self.cols - 2):
                self.ops.append(Line((Span(center(part, self.cols), True, True),), 1, 2))

    def box(self, texts: Sequence[str]) -> None:
        inner = self.cols - 4
        edge = "+" + "-" * (self.cols - 2) + "+"
        self.ops.append(Line((Span(edge, True),)))
        for s in texts:
            for part in wrap(self.p(s), inner):
                self.ops.append(Line((Span("| " + center(part, inner) + " |", True),)))
        self.ops.append(Line((Span(edge, True),)))

    def highlight(self, s: str, indent: int) -> None:
        """White-on-black text from column ``indent`` (allergens)."""
        for part in wrap(self.p(s), self.cols - indent - 2):
            self.ops.append(Line((Span(" " * indent), Span(f" {part} ", True, True))))

    def qr(self, data: str) -> None:
        self.ops.append(QrCode(printable(data, "ascii")))

    def barcode(self, data: str) -> None:
        """The symbol with its text under it, centred; the text alone when
        the symbol would not fit the paper (the printer would drop it)."""
        modules = code128_modules(data)
        fits = [m for m in BARCODE_MODULE_DOTS if modules * m <= PAPER_DOTS[self.opts.width_mm]]
        if fits:
            self.ops.append(Barcode(data, fits[0]))
        self.text(data, align="center")

    def cut(self, partial: bool) -> None:
        self.ops.append(Cut(partial))


def _service(service: str, table: str | None) -> tuple[str, str]:
    zh, en = {"dine_in": ("堂食", "Dine in"), "takeaway": ("外带", "Takeaway")}.get(
        service, (service, service)
    )
    if table:
        zh, en = f"{zh} · {table}号桌", f"{en} · Table {table}"
    return zh, en


def _allergens(page: _Page, allergens: Sequence[str]) -> list[str]:
    names = [ALLERGEN_NAMES.get(a, (a, a)) for a in allergens]
    zh = "过敏原：" + "、".join(n[0] for n in names)
    en = "ALLERGEN: " + ", ".join(n[1] for n in names)
    return page.each(zh, en)


def _short_id(order_id: str) -> str:
    return order_id.split("-")[0][:8] if order_id else "-"


# =========================================================================
# Customer receipt
# =========================================================================


def receipt_ops(data: ReceiptData, opts: PrintOptions, *, reprint: bool = False) -> list[Op]:
    pg = _Page(opts)
    cur = data.currency
    if reprint:
        pg.banner(pg.say("重印", "REPRINT"))
        pg.blank()
    store = data.store
    for i, name in enumerate(pg.each(store.name_zh, store.name_en)):
        pg.text(name, bold=True, align="center", size=(1, 2) if i == 0 else (1, 1))
    if store.address:
        pg.text(store.address, align="center")
    if store.phone:
        pg.text(f"{pg.say('电话', 'Tel')} {store.phone}", align="center")
    if store.tax_id:
        pg.text(f"{pg.say('税号', 'Tax ID')} {store.tax_id}", align="center")
    pg.rule("=")
    n = RECEIPT_NUMBER_SIZE
    if data.number == 0 and data.provisional_number:
        # printed by the kiosk while the hub could not be reached: the
        # provisional number is the diner's number until the hub has the order
        pg.text(pg.say("临时取餐号", "Provisional No."), align="center")
        pg.text(data.provisional_number, bold=True, align="center", size=(2, 2))
    else:
        pg.text(pg.say("取餐号", "Order No."), align="center")
        pg.text(str(data.number), bold=True, align="center", size=(n, n))
    for s in pg.each(*_service(data.service, data.table)):
        pg.text(s, bold=True, align="center", size=(1, 2))
    if data.offline:
        texts = [pg.say("离线订单", "OFFLINE ORDER")]
        if data.number == 0:
            texts.append(pg.say("门店网络恢复后自动送到厨房", "goes to the kitchen when the store network is back"))
        elif data.provisional_number:
            texts.append(f"{pg.say('临时号', 'provisional number')} {data.provisional_number}")
        pg.box(texts)
    pg.rule()
    pg.row(pg.say("时间", "Time"), data.accepted_at)
    pg.row(pg.say("订单", "Order"), _short_id(data.order_id))
    pg.row(pg.say("渠道", "Channel"), pg.say(*CHANNELS.get(data.channel, (data.channel, data.channel))))
    pg.rule()
    for line in data.lines:
        _receipt_line(pg, line, cur)
    pg.rule()
    if data.loyalty is not None and data.loyalty.discount:
        pg.row(pg.say("积分抵扣", "Points off"), signed_money(-data.loyalty.discount, cur))
    pg.row(pg.say("小计", "Subtotal"), money(data.subtotal, cur))
    if data.tax or data.tax_rate_bp:
        rate = _percent(data.tax_rate_bp)
        if data.tax_inclusive:
            label = pg.say(f"含税 {rate}", f"Tax {rate} incl.")
        else:
            label = pg.say(f"税 {rate}", f"Tax {rate}")
        pg.row(label, money(data.tax, cur))
    pg.row(pg.say("合计", "TOTAL"), money(data.total, cur), bold=True, height=2)
    pg.rule()
    _payment(pg, data)
    if data.loyalty is not None:
        _points(pg, data)
    if data.note:
        pg.row(f"{pg.say('备注', 'Note')}: {data.note}", bold=True, hang=2)
    pg.blank()
    # the counter's scanner finds the order by this (restobox/ordercode.py)
    code = order_code(data.business_date, data.number, data.provisional_number)
    if code:
        pg.barcode(code)
        pg.blank()
    if data.order_id:
        pg.qr(data.order_id)
        pg.blank()
    for s in pg.each("谢谢惠顾，欢迎再来！", "Thank you, see you again!"):
        pg.text(s, align="center")
    pg.cut(partial=True)
    return pg.ops


def _receipt_line(pg: _Page, line: PricedLine, cur: str) -> None:
    lead = f"{line.qty}x "
    hang = len(lead)
    names = pg.each(line.name_zh, line.name_en)
    pg.row(lead + names[0], money(line.line_total, cur), hang=hang)
    for other in names[1:]:
        pg.row(other, indent=hang)
    for m in line.modifiers:
        delta = signed_money(m.price_delta, cur) if m.price_delta else ""
        pg.row(f"- {pg.name(m.name_zh, m.name_en)}", delta, indent=hang, hang=hang + 2)
    if line.note:
        pg.row(f"{pg.say('备注', 'Note')}: {line.note}", indent=hang, hang=hang + 2)


def _paid(pg: _Page, data: ReceiptData) -> None:
    """Money the ledger holds for the order: each tender (the cash handed
    over and the change), then what was given back."""
    cur = data.currency
    title = {"paid": ("已付款", "Paid"), "partly_refunded": ("已付款（部分退款）", "Paid, partly refunded"),
             "refunded": ("已退款", "Refunded")}.get(data.payment, ("付款", "Payment"))
    pg.text(pg.say(*title), bold=True)
    for t in data.tenders:
        zh_m, en_m = PAY_METHODS.get(t.method, (t.method, t.method))
        ref = f" {t.reference}" if t.reference and t.method != "cash" else ""
        pg.row(pg.say(zh_m, en_m.capitalize()) + ref, money(t.amount, cur))
        if t.method == "cash" and t.tendered > t.amount:
            pg.row("  " + pg.say("收到现金", "Cash tendered"), money(t.tendered, cur))
    if data.change:
        pg.row(pg.say("找零", "Change"), money(data.change, cur), bold=True)
    if data.refunded:
        pg.row(pg.say("已退款", "Refunded"), signed_money(-data.refunded, cur), bold=True)


def _payment(pg: _Page, data: ReceiptData) -> None:
    if data.payment and data.payment != "unpaid" and data.tenders:
        _paid(pg, data)
        return
    zh_m, en_m = PAY_METHODS.get(data.payment_method, (data.payment_method, data.payment_method))
    ref = data.payment_reference
    if data.payment_status == "approved":
        zh, en = f"已付款（{zh_m}）", f"Paid by {en_m}"
        if ref:
            zh, en = f"{zh}参考号 {ref}", f"{en}, ref {ref}"
        for s in pg.each(zh, en):
            pg.text(s, bold=True)
    elif data.payment_status == "unpaid":
        pg.text(pg.say("请到柜台付款", "Please pay at the counter"), bold=True, size=(1, 2))
        pg.row(pg.say("应付", "Amount due"), money(data.total, data.currency), bold=True)
    else:
        pg.text(f"{pg.say('付款', 'Payment')}: {pg.say(zh_m, en_m)} {data.payment_status} {ref}".rstrip())


def _points(pg: _Page, data: ReceiptData) -> None:
    """The member's points: the phone number only masked, as the hub sent it."""
    pts = data.loyalty
    if not pts.credited:
        return
    pg.rule()
    pg.row(pg.say("会员", "Member"), pts.member)
    if data.number == 0:  # a provisional receipt: the hub counts the points
        pg.text(pg.say("积分将在订单送达门店后计入", "Points are added when the order reaches the store"), hang=2)
        return
    pg.row(pg.say("本单积分", "Points earned"), f"+{pts.earned}")
    if pts.redeemed:
        pg.row(pg.say("使用积分", "Points used"), f"-{pts.redeemed}")
    pg.row(pg.say("积分余额", "Points balance"), str(pts.balance), bold=True)


def receipt(data: ReceiptData, opts: PrintOptions, *, reprint: bool = False) -> bytes:
    """The customer receipt, as ESC/POS bytes."""
    return render(receipt_ops(data, opts, reprint=reprint), opts)


# =========================================================================
# Kitchen ticket
# =========================================================================


def kitchen_ops(data: KitchenData, opts: PrintOptions, *, reprint: bool = False) -> list[Op]:
    pg = _Page(opts)
    t = data.ticket
    if reprint:
        pg.banner(pg.say("重印", "REPRINT"))
    if data.fallback:
        pg.banner(*pg.each("屏幕未确认，已打印", "FALLBACK PRINT - no screen confirmed"))
    if reprint or data.fallback:
        pg.blank()
    for i, s in enumerate(pg.each(data.station_name.zh, data.station_name.en)):
        pg.text(s, bold=True, align="center", size=(2, 2) if i == 0 else (1, 2))
    n = KITCHEN_NUMBER_SIZE
    pg.text(str(t.number), bold=True, align="center", size=(n, n))
    if t.provisional_number:
        # placed while the kiosk could not reach the hub: the diner holds
        # this number, so the kitchen can call out either
        pg.text(pg.say("临时取餐号", "Provisional No."), align="center")
        pg.text(t.provisional_number, bold=True, align="center", size=(2, 2))
    ch = CHANNELS.get(t.channel, (t.channel, t.channel))
    sv = _service(t.service, t.table)
    for s in pg.each(f"{ch[0]} · {sv[0]}", f"{ch[1]} · {sv[1]}"):
        pg.text(s, bold=True, align="center", size=(1, 2))
    pg.rule()
    pg.row(pg.say("打印", "Printed"), data.printed_at)
    pg.row(pg.say("订单", "Order"), _short_id(t.order_id))
    if t.note:
        pg.row(f"{pg.say('备注', 'Note')}: {t.note}", bold=True, hang=2)
    pg.rule("=")
    for i, item in enumerate(t.items):
        if i:
            pg.blank()
        _kitchen_item(pg, item)
    pg.rule("=")
    pg.row(pg.say("件数", "Items"), str(sum(i.qty for i in t.items)))
    pg.cut(partial=False)
    return pg.ops


def _kitchen_item(pg: _Page, item: TicketItem) -> None:
    done = f"[{pg.say('已做', 'DONE')}] " if item.state == "done" else ""
    lead = f"{done}{item.qty}x "
    hang = display_width(pg.p(f"{item.qty}x "))
    names = pg.each(item.name_zh, item.name_en)
    pg.text(lead + names[0], bold=True, size=(1, 2), hang=hang)
    for other in names[1:]:
        pg.row(other, indent=hang, bold=True, height=2)
    if item.part_of:
        combo = pg.name(item.part_of_zh or item.part_of, item.part_of)
        pg.row(f"{pg.say('所属', 'for')}: {combo}", indent=hang, hang=hang + 2)
    for m in item.modifiers:
        pg.row(f"- {pg.name(m.zh, m.en)}", indent=hang, hang=hang + 2, bold=True)
    if item.allergens:
        for s in _allergens(pg, item.allergens):
            pg.highlight(s, hang)
    if item.note:
        pg.row(f"{pg.say('备注', 'Note')}: {item.note}", indent=hang, hang=hang + 2, bold=True)


def kitchen_ticket(data: KitchenData, opts: PrintOptions, *, reprint: bool = False) -> bytes:
    """A station's kitchen ticket, as ESC/POS bytes."""
    return render(kitchen_ops(data, opts, reprint=reprint), opts)


# =========================================================================
# Test page
# =========================================================================


def _ruler(width: int) -> str:
    """``----+----1----+----2``: the column number every ten columns."""
    return "".join(
        str(i // 10 % 10) if i % 10 == 0 else "+" if i % 5 == 0 else "-" for i in range(1, width + 1)
    )


def test_page_ops(printer_id: str, opts: PrintOptions, *, now: str) -> list[Op]:
    pg = _Page(opts)
    pg.text(pg.say("测试页", "TEST PAGE"), bold=True, align="center", size=(2, 2))
    pg.rule("=")
    pg.row(pg.say("打印机", "Printer"), printer_id)
    pg.row(pg.say("纸宽", "Width"), f"{opts.width_mm} mm, {opts.columns} col")
    pg.row(pg.say("编码", "Encoding"), opts.encoding)
    pg.row(pg.say("语言", "Language"), opts.language)
    pg.row(pg.say("时间", "Time"), now)
    pg.rule("=")
    pg.text(_ruler(opts.columns))
    if opts.chinese:
        digits = "一二三四五六七八九十"
        pg.text((digits * opts.columns)[: opts.columns // 2])
        pg.text("中文 宫保鸡丁 ￥32.00")
    pg.blank()
    pg.text("OK", bold=True, align="center", size=(2, 2))
    pg.cut(partial=True)
    return pg.ops


# The name starts with "test_" because the CLI command is ``test-print``;
# tell pytest it is not a test.
def test_page(printer_id: str, opts: PrintOptions, *, now: str) -> bytes:
    """A short page that shows a printer works: name, width, encoding, a
    ruler of the line width, Chinese when the printer has the font, OK."""
    return render(test_page_ops(printer_id, opts, now=now), opts)


test_page.__test__ = False  # type: ignore[attr-defined]
test_page_ops.__test__ = False  # type: ignore[attr-defined]


# =========================================================================
# End-of-day summary
# =========================================================================


def day_report_ops(data: ReportData, opts: PrintOptions, *, reprint: bool = False) -> list[Op]:
    pg = _Page(opts)
    if reprint:
        pg.banner(pg.say("重印", "REPRINT"))
        pg.blank()
    for i, name in enumerate(pg.each(data.store.name_zh, data.store.name_en)):
        pg.text(name, bold=True, align="center", size=(1, 2) if i == 0 else (1, 1))
    pg.rule("=")
    for i, s in enumerate(pg.each("日结报表", "END OF DAY")):
        pg.text(s, bold=True, align="center", size=(2, 2) if i == 0 else (1, 2))

    def figure(zh: str, en: str, value: str, bold: bool = False) -> None:
        # both languages on one line when they fit beside the value, else
        # Chinese beside it and English under it, never a word cut in two
        one = pg.say(zh, en)
        if display_width(pg.p(one)) + 1 + display_width(pg.p(value)) <= pg.cols:
            pg.row(one, value, bold=bold)
            return
        first, *rest = pg.each(zh, en)
        pg.row(first, value, hang=2, bold=bold)
        for other in rest:
            pg.row(other, indent=2, hang=4)

    figure("营业日", "Business day", data.business_date, bold=True)
    figure("打印时间", "Printed", data.made_at)
    for section in data.sections:
        pg.rule("=")
        for s in pg.each(section.title.zh, section.title.en):
            pg.text(s, bold=True)
        pg.rule()
        for r in section.rows:
            figure(r.label.zh, r.label.en, r.value)
    pg.rule("=")
    pg.cut(partial=True)
    return pg.ops


def day_report(data: ReportData, opts: PrintOptions, *, reprint: bool = False) -> bytes:
    """The manager's end-of-day summary (``restobox report --print``), as ESC/POS bytes."""
    return render(day_report_ops(data, opts, reprint=reprint), opts)


# =========================================================================
# Cash drawer
# =========================================================================

DRAWER_PIN = 2
"""The drawer connector pin the pulse goes to (ESC p m: pin 2 is m = 0, the
one nearly every drawer is wired to)."""


def drawer_pulse(pin: int = DRAWER_PIN) -> bytes:
    """The drawer kick alone: ESC p m t1 t2 (python-escpos ``cashdraw``),
    nothing printed, no initialise (ESC @ would clear a job the printer is
    still holding in its buffer) and no cut."""
    if pin not in (2, 5):
        raise ValueError(f"a drawer is on pin 2 or 5, not {pin!r}")
    p = Dummy()
    p.cashdraw(pin)
    return p.output


# =========================================================================
# Rendering
# =========================================================================


def _runs(s: str) -> Iterable[tuple[bool, str]]:
    """Split into (is_ascii, text) runs."""
    start = 0
    for k in range(1, len(s) + 1):
        if k == len(s) or (ord(s[k]) < 0x80) != (ord(s[start]) < 0x80):
            yield ord(s[start]) < 0x80, s[start:k]
            start = k


def render(ops: Sequence[Op], opts: PrintOptions) -> bytes:
    """ESC/POS for ``ops``. Style commands are sent only when they change."""
    p = Dummy()
    p.hw("INIT")  # ESC @
    if opts.chinese:
        # Many Chinese printers power up in Chinese mode and ESC @ does not
        # leave it: start from a known state.
        p._raw(FS_CHINESE_OFF)
    # Single-byte text is ASCII only: fix the code table once (ESC t 0)
    # rather than let python-escpos switch tables on its own.
    p.magic.force_encoding("CP437")
    align, size, bold, invert = "left", (1, 1), False, False
    for op in ops:
        if isinstance(op, Line):
            if op.align != align:
                p.set(align=op.align)  # ESC a: only at the start of a line
                align = op.align
            if (op.width, op.height) != size:
                # GS ! (not ESC !): it magnifies Chinese characters too.
                p.set(custom_size=True, width=op.width, height=op.height)
                size = (op.width, op.height)
            for span in op.spans:
                if not span.text:
                    continue
                if span.bold != bold:
                    p.set(bold=span.bold)
                    bold = span.bold
                if span.invert != invert:
                    p.set(invert=span.invert)
                    invert = span.invert
                _write(p, span.text, opts)
            if invert:
                p.set(invert=False)
                invert = False
            p.text("\n")
        elif isinstance(op, QrCode):
            if not op.data:
                continue
            if align != "center":
                p.set(align="center")
                align = "center"
            p.qr(op.data, native=True, size=op.module, ec=QR_ECLEVEL_M)
        elif isinstance(op, Barcode):
            if not op.data:
                continue
            if align != "center":
                p.set(align="center")
                align = "center"
            # GS h, GS w, GS f, GS H 0 (no HRI: the text is a line of its
            # own), GS k 73 n d1..dn. _hw_barcode: barcode() prints to stdout.
            p._hw_barcode(code128(op.data).decode("latin-1"), "CODE128", height=op.height, width=op.module,
                          pos="OFF", align_ct=False, function_type="B", check=False)
        elif isinstance(op, Cut):
            if (align, size, bold) != ("left", (1, 1), False):
                p.set(align="left", custom_size=True, width=1, height=1, bold=False)
                align, size, bold = "left", (1, 1), False
            p.cut(mode="PART" if op.partial else "FULL")  # ESC d 6, GS V
    return p.output


def code128(data: str) -> bytes:
    """The data bytes of GS k 73 for printable ASCII ``data``: code set B,
    switching to code set C ({C: a byte 0-99 per two digits) for runs of
    four digits or more, as the ESC/POS reference gives them ("{B", "{C")."""
    if not data or not all(0x20 <= ord(c) < 0x7F for c in data):
        raise ValueError(f"CODE128 takes printable ASCII, not {data!r}")
    out = bytearray()
    mode = ""
    i = 0
    while i < len(data):
        run = 0
        while i + run < len(data) and data[i + run].isdigit():
            run += 1
        if run >= 4:
            if run % 2:  # the odd digit in code set B, the pairs in C
                if mode != "B":
                    out += b"{B"
                    mode = "B"
                out += data[i].encode()
                i, run = i + 1, run - 1
            if mode != "C":
                out += b"{C"
                mode = "C"
            for k in range(i, i + run, 2):
                out.append(int(data[k:k + 2]))
            i += run
            continue
        if mode != "B":
            out += b"{B"
            mode = "B"
        c = data[i]
        out += b"{{" if c == "{" else c.encode()  # "{" itself is sent twice
        i += 1
    return bytes(out)


def code128_modules(data: str) -> int:
    """Width of ``code128(data)``'s symbol in modules: 11 per symbol (start,
    each character of set B or digit pair of set C, each switch of set, the
    check character) and 13 for the stop."""
    body = code128(data)
    symbols, i = 2, 0
    while i < len(body):
        if body[i] == 0x7B and body[i + 1:i + 2] in (b"B", b"C"):  # {B, {C: the start, then a switch
            symbols += 1 if i else 0
            i += 2
        else:
            i += 2 if body[i:i + 2] == b"{{" else 1
            symbols += 1
    return symbols * 11 + 13


def _write(p: Dummy, text: str, opts: PrintOptions) -> None:
    if not opts.chinese:
        p.text(printable(text, "ascii"))
        return
    for is_ascii, run in _runs(text):
        if is_ascii:
            p.text(run)
        else:
            # _raw: python-escpos would re-encode text() on its own.
            p._raw(FS_CHINESE_ON + printable(run, "gb18030").encode("gb18030") + FS_CHINESE_OFF)
