"""A picture of the paper: ESC/POS bytes drawn as a thermal printer prints them.

Interprets the subset of ESC/POS that receipts and kitchen tickets use (text
styles, alignment, character size, Chinese mode with GB18030, native QR
codes, raster images, feeds, cuts) and steps over every other command by its
length, so arbitrary bytes never crash it. The paper is 384 dots wide for
58 mm and 576 for 80 mm; font A cells are 12x24 dots, Chinese 24x24.

Chinese text needs a real CJK font: Noto Sans CJK (Debian package
fonts-noto-cjk) is found by path; RESTOBOX_CJK_FONT names another file.
Barcodes (GS k) are drawn as a labelled stand-in, not a scannable code.
"""

from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageDraw, ImageFont

PAPER_DOTS = {58: 384, 80: 576}
MAX_HEIGHT = 40_000
"""Dots; a runaway job's picture stops here (about 5 m of paper)."""
MARGIN = 12  # white paper above the first line and below the last

# ------------------------------------------------------------------ fonts

FONT_ENV = "RESTOBOX_CJK_FONT"
DEBIAN_FONT_PACKAGE = "fonts-noto-cjk"
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian, Ubuntu: fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch: noto-fonts-cjk
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",  # fonts-wqy-zenhei
)
FONT_GLOBS = (
    "/usr/share/fonts/**/NotoSans*CJK*-Regular.tt[cf]",
    "/usr/share/fonts/**/NotoSans*CJK*-Regular.otf",
    "/usr/local/share/fonts/**/NotoSans*CJK*-Regular.*",
    "~/.local/share/fonts/**/NotoSans*CJK*-Regular.*",
)


class FontNotFound(RuntimeError):
    """No usable Chinese font on this machine; ``str()`` says what to install."""


def _covers_chinese(path: str) -> bool:
    try:
        font = ImageFont.truetype(path, 24)
    except OSError:
        return False
    # Tofu (the missing-glyph box) is the same picture for every character.
    a, b = font.getmask("汉"), font.getmask("字")
    return a.getbbox() is not None and bytes(a) != bytes(b)


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> Path:
    """The Chinese font file for previews, or FontNotFound."""
    env = os.environ.get(FONT_ENV)
    if env:
        if not Path(env).is_file():
            raise FontNotFound(f"{FONT_ENV}={env} is not a file")
        if not _covers_chinese(env):
            raise FontNotFound(f"{FONT_ENV}={env} has no Chinese characters")
        return Path(env)
    found = [p for p in FONT_CANDIDATES if Path(p).is_file()]
    for pattern in FONT_GLOBS:
        found += sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
    for p in found:
        if _covers_chinese(p):
            return Path(p)
    raise FontNotFound(
        "no Chinese font found for the printer preview: install the Debian package "
        f"{DEBIAN_FONT_PACKAGE} (apt-get install {DEBIAN_FONT_PACKAGE}) "
        f"or set {FONT_ENV} to a .ttc/.otf file with Chinese characters"
    )


def _face_index(path: Path) -> int:
    """In a collection, the monospaced Simplified Chinese face if there is one:
    its Latin letters are exactly half as wide as its Chinese ones, like the
    printer's 12x24 and 24x24 fonts."""
    best, best_rank = 0, 9
    for i in range(32):
        try:
            name = " ".join(ImageFont.truetype(str(path), 12, index=i).getname())
        except OSError:
            break
        rank = 0 if "Mono CJK SC" in name else 1 if "CJK SC" in name else 2
        if rank < best_rank:
            best, best_rank = i, rank
    return best


@functools.lru_cache(maxsize=16)
def _font(bold: bool, size: int) -> tuple[ImageFont.FreeTypeFont, bool]:
    """(font, is_real_bold)."""
    regular = find_cjk_font()
    path = regular
    if bold:
        sibling = regular.with_name(regular.name.replace("Regular", "Bold"))
        if sibling != regular and sibling.is_file():
            path = sibling
    return ImageFont.truetype(str(path), size, index=_face_index(path)), path != regular


# Cell sizes in dots: font A 12x24, font B 9x17, Chinese 24x24. (font size,
# baseline) fit Noto Sans CJK's glyphs inside the cell with a dot to spare.
_CELLS = {"A": (12, 24, 23, 20), "B": (9, 17, 16, 14), "CJK": (24, 24, 23, 20)}


@functools.lru_cache(maxsize=8192)
def _glyph(ch: str, kind: str, bold: bool) -> Image.Image:
    """A character as a 1-bit mask ("L", 255 = ink) the size of its cell."""
    w, h, size, baseline = _CELLS[kind]
    font, real_bold = _font(bold, size)
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    d.text((w / 2, baseline), ch, fill=255, font=font, anchor="ms")
    if bold and not real_bold:  # double-strike, as a printer does
        d.text((w / 2 + 1, baseline), ch, fill=255, font=font, anchor="ms")
    return img.point(lambda v: 255 if v >= 110 else 0)


# ------------------------------------------------------------------ the paper

_CODEPAGES = {0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
              16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858"}
_QR_EC = {48: 1, 49: 0, 50: 3, 51: 2}  # ESC/POS L M Q H -> qrcode.constants values

# Commands with a fixed number of parameter bytes after ESC x / GS x / FS x.
_ESC_ARGS = {
    "!": 1, "E": 1, "G": 1, "-": 1, "a": 1, "d": 1, "J": 1, "e": 1, "t": 1, "M": 1,
    "R": 1, " ": 1, "3": 1, "2": 0, "@": 0, "V": 1, "{": 1, "c": 2, "p": 3, "$": 2,
    "\\": 2, "i": 0, "m": 0, "=": 1, "r": 1, "U": 1, "S": 0, "L": 0, "T": 1,
    "W": 8, "%": 1, "?": 1, "u": 1, "v": 0, "<": 0, "K": 1,
}
_GS_ARGS = {
    "!": 1, "B": 1, "H": 1, "h": 1, "w": 1, "f": 1, "a": 1, "r": 1, "I": 1, "L": 2,
    "W": 2, "P": 2, "$": 2, "\\": 2, "b": 1, "/": 1, "^": 3, ":": 0, "T": 1, "E": 1,
    "j": 1, "g": 2,
}
_FS_ARGS = {"&": 0, ".": 0, "!": 1, "-": 1, "S": 2, "W": 1, "C": 1, "p": 2, "?": 1, "2": 74}


@dataclass
class _Cell:
    mask: Image.Image  # "L", 255 = ink
    width: int  # includes right-side spacing
    underline: int = 0
    reverse: bool = False


@dataclass
class _Style:
    bold: bool = False
    underline: int = 0
    align: int = 0
    wmul: int = 1
    hmul: int = 1
    font_b: bool = False
    reverse: bool = False
    right_space: int = 0
    line_spacing: int = 30  # ESC 2 default: 1/6 inch
    codepage: str = "cp437"
    # FS ! / FS -: Chinese character modes
    cjk_double_w: bool = False
    cjk_double_h: bool = False
    cjk_underline: int = 0


@dataclass
class _Paper:
    width: int
    chinese_default: bool
    blocks: list[Image.Image] = field(default_factory=list)
    height: int = 0
    line: list[_Cell] = field(default_factory=list)
    line_x: int = 0
    line_align: int = 0
    chinese: bool = False
    style: _Style = field(default_factory=_Style)
    qr_data: bytes = b""
    qr_module: int = 3
    qr_ec: int = 48
    barcode_height: int = 162
    barcode_module: int = 3
    hri: int = 0

    def __post_init__(self) -> None:
        self.chinese = self.chinese_default

    @property
    def full(self) -> bool:
        return self.height >= MAX_HEIGHT

    # -- blocks of paper
    def add_block(self, img: Image.Image) -> None:
        room = MAX_HEIGHT - self.height
        if room <= 0 or img.height <= 0:
            return
        if img.height > room:
            img = img.crop((0, 0, self.width, room))
        self.blocks.append(img)
        self.height += img.height

    def feed(self, dots: int) -> None:
        if dots > 0:
            self.add_block(Image.new("L", (self.width, min(dots, MAX_HEIGHT)), 255))

    def add_centered(self, mask: Image.Image) -> None:
        """A picture (mask, 255 = ink) on its own, aligned like text."""
        if mask.width > self.width:
            mask = mask.crop((0, 0, self.width, mask.height))
        img = Image.new("L", (self.width, mask.height), 255)
        x = (self.width - mask.width) * self.style.align // 2
        img.paste(0, (x, 0), mask)
        self.add_block(img)

    # -- text
    def put(self, cell: _Cell) -> None:
        if self.full:
            return
        if not self.line:
            self.line_align = self.style.align
        if self.line_x + cell.width > self.width and self.line:
            self.print_line()  # wrap: the printer prints the full line and feeds
            self.line_align = self.style.align
        self.line.append(cell)
        self.line_x += cell.width

    def put_char(self, ch: str, wide: bool) -> None:
        if self.full:
            return
        s = self.style
        kind = "CJK" if wide else ("B" if s.font_b else "A")
        wmul = max(s.wmul, 2 if wide and s.cjk_double_w else 1)
        hmul = max(s.hmul, 2 if wide and s.cjk_double_h else 1)
        mask = _glyph(ch, kind, s.bold)
        if wmul > 1 or hmul > 1:  # the printer enlarges dots, it has no bigger font
            mask = mask.resize((mask.width * wmul, mask.height * hmul), Image.NEAREST)
        underline = max(s.underline, s.cjk_underline if wide else 0)
        self.put(_Cell(mask, mask.width + s.right_space * wmul, underline, s.reverse))

    def tab(self) -> None:
        step = 8 * 12  # default tab stops: every 8 font A characters
        nxt = (self.line_x // step + 1) * step
        if nxt <= self.width:
            self.put(_Cell(Image.new("L", (nxt - self.line_x, 1), 0), nxt - self.line_x))

    def print_line(self, feed_lines: int = 1, feed_dots: int | None = None) -> None:
        """Print the line buffer and feed (LF, ESC d n, ESC J n)."""
        feed = feed_dots if feed_dots is not None else feed_lines * self.style.line_spacing
        if not self.line:
            self.feed(feed)
            return
        cells, self.line, width, self.line_x = self.line, [], self.line_x, 0
        tallest = max(c.mask.height for c in cells)
        img = Image.new("L", (self.width, max(tallest, feed)), 255)
        x = (self.width - width) * self.line_align // 2 if width < self.width else 0
        draw = ImageDraw.Draw(img)
        for c in cells:
            y = tallest - c.mask.height  # characters of a line share the baseline
            if c.reverse:
                draw.rectangle((x, y, x + c.width - 1, tallest - 1), fill=0)
                img.paste(255, (x, y), c.mask)
            else:
                img.paste(0, (x, y), c.mask)
            if c.underline:
                draw.rectangle((x, tallest - c.underline, x + c.width - 1, tallest - 1),
                               fill=255 if c.reverse else 0)
            x += c.width
        self.add_block(img)

    def flush(self) -> None:
        if self.line:
            self.print_line(feed_lines=0)

    # -- pictures
    def qr_print(self) -> None:
        self.flush()
        if not self.qr_data or self.full:
            return
        import qrcode
        from qrcode.exceptions import DataOverflowError

        qr = qrcode.QRCode(version=None, error_correction=_QR_EC.get(self.qr_ec, 0), box_size=1, border=0)
        try:
            qr.add_data(self.qr_data)
            qr.make(fit=True)
        except (DataOverflowError, ValueError):
            for ch in "[QR: too much data]":
                self.put_char(ch, False)
            self.print_line()
            return
        matrix = qr.get_matrix()
        n = len(matrix)
        module = max(1, min(self.qr_module, self.width // n))
        mask = Image.new("L", (n, n), 0)
        mask.putdata([255 if dark else 0 for row in matrix for dark in row])
        self.add_centered(mask.resize((n * module, n * module), Image.NEAREST))

    def raster(self, mode: int, width_bytes: int, rows: int, data: bytes) -> None:
        self.flush()
        if not width_bytes or not rows or self.full:
            return
        rows = min(rows, MAX_HEIGHT)
        data = data[: width_bytes * rows]
        # "1" mode raw: a set bit is white in PIL, a dot of ink on paper.
        mask = Image.frombytes("1", (width_bytes * 8, rows), data).convert("L")
        mask = mask.crop((0, 0, min(mask.width, self.width), rows))
        sx, sy = (1 + (mode & 1), 1 + (mode >> 1 & 1))
        if sx > 1 or sy > 1:
            mask = mask.resize((min(mask.width * sx, self.width), mask.height * sy), Image.NEAREST)
        self.add_centered(mask)

    def bit_image(self, m: int, cols: int, data: bytes) -> None:
        """ESC * column image: part of the current line."""
        dots = 24 if m in (32, 33) else 8
        per_col = dots // 8
        cols = min(cols, len(data) // per_col, self.width)
        if not cols:
            return
        mask = Image.new("L", (cols, dots), 0)
        px = mask.load()
        for c in range(cols):
            for k in range(per_col):
                byte = data[c * per_col + k]
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        px[c, k * 8 + bit] = 255
        if m in (0, 32):  # single density: each column is two dots wide
            mask = mask.resize((min(cols * 2, self.width), dots), Image.NEAREST)
        self.put(_Cell(mask, mask.width))

    def barcode(self, data: bytes) -> None:
        """A stand-in: bars from the data's bits, and the text under them."""
        self.flush()
        if self.full:
            return
        bits = "11010010000" + "".join(f"{b:08b}" for b in data[:40]) + "1100011101011"
        module = max(1, min(self.barcode_module, self.width // max(1, len(bits))))
        h = max(1, min(self.barcode_height, 255))
        mask = Image.new("L", (len(bits) * module, h), 0)
        d = ImageDraw.Draw(mask)
        for i, bit in enumerate(bits):
            if bit == "1":
                d.rectangle((i * module, 0, (i + 1) * module - 1, h - 1), fill=255)
        self.add_centered(mask)
        if self.hri:
            for ch in data[:48].decode("ascii", "replace"):
                self.put_char(ch if ch.isprintable() else "?", False)
            self.print_line()

    def cut(self) -> None:
        self.flush()
        img = Image.new("L", (self.width, 24), 255)
        d = ImageDraw.Draw(img)
        for x in range(0, self.width, 16):
            d.line((x, 12, x + 9, 12), fill=0, width=2)
        self.add_block(img)

    def reset(self) -> None:
        self.flush()
        self.style = _Style()
        self.chinese = self.chinese_default

    def image(self) -> Image.Image:
        self.flush()
        height = MARGIN * 2 + self.height
        paper = Image.new("L", (self.width, height), 255)
        y = MARGIN
        for block in self.blocks:
            paper.paste(block, (0, y))
            y += block.height
        return paper.convert("1", dither=Image.Dither.NONE)


def _u16(data: bytes, i: int) -> int:
    return data[i] | data[i + 1] << 8


def _interpret(paper: _Paper, data: bytes) -> None:  # noqa: C901 - one switch over the command set
    n = len(data)
    i = 0
    s = paper.style
    while i < n:
        s = paper.style
        b = data[i]
        if b >= 0x20 and b != 0x7F:
            if paper.chinese and 0x81 <= b <= 0xFE:
                ch, used = _gb18030(data, i)
                paper.put_char(ch, True)
                i += used
            elif b < 0x80:
                paper.put_char(chr(b), False)
                i += 1
            else:
                paper.put_char(bytes([b]).decode(s.codepage, "replace"), False)
                i += 1
            continue
        if b == 0x0A:  # LF
            paper.print_line()
            i += 1
            continue
        if b == 0x09:  # HT
            paper.tab()
            i += 1
            continue
        if b == 0x0C:  # FF (page mode print): a line feed in standard mode
            paper.print_line()
            i += 1
            continue
        if b not in (0x1B, 0x1D, 0x1C, 0x10) or i + 1 >= n:
            i += 1  # CR, CAN and other controls print nothing
            continue
        c = chr(data[i + 1])
        a = data[i + 2 : i + 12]  # parameters (may be short at the end of data)
        if b == 0x10:  # DLE: real-time commands print nothing
            i += 5 if c == "\x14" else 3
            continue
        if b == 0x1B:  # ESC
            if c == "*":  # ESC * m nL nH d...
                if len(a) < 3:
                    break
                m, cols = a[0], _u16(a, 1)
                k = cols * (3 if m in (32, 33) else 1)
                paper.bit_image(m, cols, data[i + 5 : i + 5 + k])
                i += 5 + k
                continue
            if c == "D":  # ESC D n1..nk NUL: tab stops
                end = data.find(b"\x00", i + 2, i + 2 + 33)
                i = end + 1 if end >= 0 else i + 2
                continue
            if c == "&":  # ESC & y c1 c2 [x d1..d(y*x)]...: user-defined characters
                if len(a) < 3:
                    break
                y, c1, c2 = a[0], a[1], a[2]
                j = i + 5
                for _ in range(max(0, c2 - c1 + 1)):
                    if j >= n:
                        break
                    j += 1 + y * data[j]
                i = j
                continue
            if c == "(":  # ESC ( X pL pH ...
                if len(a) < 3:
                    break
                i += 5 + _u16(a, 1)
                continue
            args = _ESC_ARGS.get(c, 0)
            if len(a) < args:
                break
            p = a[0] if args else 0
            if c == "@":
                paper.reset()
            elif c == "!":
                s.font_b, s.bold = bool(p & 1), bool(p & 8)
                s.hmul, s.wmul = (2 if p & 16 else 1), (2 if p & 32 else 1)
                s.underline = 1 if p & 128 else 0
            elif c in "EG":
                s.bold = bool(p & 1)
            elif c == "-":
                s.underline = {0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(p, s.underline)
            elif c == "a":
                s.align = {0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(p, s.align)
            elif c == "d":
                paper.print_line(feed_lines=p)
            elif c == "J":
                paper.print_line(feed_dots=p)
            elif c == "t":
                s.codepage = _CODEPAGES.get(p, "cp437")
            elif c == "M":
                s.font_b = bool(p & 1)
            elif c == " ":
                s.right_space = p
            elif c == "3":
                s.line_spacing = p
            elif c == "2":
                s.line_spacing = 30
            elif c == "$":  # absolute position in the line; backwards is ignored
                gap = min(_u16(a, 0), paper.width) - paper.line_x
                if gap > 0:
                    paper.put(_Cell(Image.new("L", (gap, 1), 0), gap))
            i += 2 + args
            continue
        if b == 0x1D:  # GS
            if c == "V":  # GS V m [n]: cut
                if not a:
                    break
                paper.cut()
                i += 4 if a[0] in (65, 66, 97, 98, 103, 104) else 3
                continue
            if c == "(":  # GS ( X pL pH payload
                if len(a) < 3:
                    break
                length = _u16(a, 1)
                payload = data[i + 5 : i + 5 + length]
                if a[0] == ord("k") and len(payload) >= 2 and payload[0] == 49:
                    _qr(paper, payload)
                i += 5 + length
                continue
            if c == "v":  # GS v 0 m xL xH yL yH d...
                if len(a) < 6:
                    break
                xw, rows = _u16(a, 2), _u16(a, 4)
                k = xw * rows
                paper.raster(a[1] & 3, xw, min(rows, (n - i - 8) // max(1, xw)), data[i + 8 : i + 8 + k])
                i += 8 + k
                continue
            if c == "8":  # GS 8 L p1..p4 payload: graphics (not drawn)
                if len(a) < 5:
                    break
                i += 7 + int.from_bytes(a[1:5], "little")
                continue
            if c == "*":  # GS * x y d...: define a downloaded image
                if len(a) < 2:
                    break
                i += 4 + a[0] * a[1] * 8
                continue
            if c == "k":  # GS k m ...: barcode
                if not a:
                    break
                if a[0] <= 6:
                    end = data.find(b"\x00", i + 3)
                    end = n if end < 0 else end
                    paper.barcode(data[i + 3 : end])
                    i = end + 1
                else:
                    if len(a) < 2:
                        break
                    paper.barcode(data[i + 4 : i + 4 + a[1]])
                    i += 4 + a[1]
                continue
            args = _GS_ARGS.get(c, 0)
            if len(a) < args:
                break
            p = a[0] if args else 0
            if c == "!":
                s.wmul, s.hmul = (p >> 4 & 7) + 1, (p & 7) + 1
            elif c == "B":
                s.reverse = bool(p & 1)
            elif c == "h":
                paper.barcode_height = p or 1
            elif c == "w":
                paper.barcode_module = p
            elif c == "H":
                paper.hri = p & 3
            i += 2 + args
            continue
        # FS
        if c == "q":  # FS q n [xL xH yL yH d...]...: define NV images
            if not a:
                break
            j = i + 3
            for _ in range(a[0]):
                if j + 4 > n:
                    break
                j += 4 + _u16(data, j) * _u16(data, j + 2) * 8
            i = j
            continue
        if c == "(":
            if len(a) < 3:
                break
            i += 5 + _u16(a, 1)
            continue
        args = _FS_ARGS.get(c, 0)
        if len(a) < args:
            break
        p = a[0] if args else 0
        if c == "&":
            paper.chinese = True
        elif c == ".":
            paper.chinese = False
        elif c == "!":
            s.cjk_double_w, s.cjk_double_h = bool(p & 4), bool(p & 8)
            s.cjk_underline = 1 if p & 128 else 0
        elif c == "-":
            s.cjk_underline = {0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(p, s.cjk_underline)
        i += 2 + args


def _gb18030(data: bytes, i: int) -> tuple[str, int]:
    """One Chinese-mode character at ``i``: (text, bytes used)."""
    for size in (2, 4):
        chunk = data[i : i + size]
        if len(chunk) == size:
            try:
                text = chunk.decode("gb18030")
            except UnicodeDecodeError:
                continue
            if len(text) == 1:
                return text, size
    return "?", 1  # a lead byte without a valid trail: the printer shows junk too


def _qr(paper: _Paper, payload: bytes) -> None:
    """GS ( k for QR (cn = 49): payload is cn fn parameters."""
    fn, rest = payload[1], payload[2:]
    if fn == 67 and rest:  # module size
        if 1 <= rest[0] <= 16:
            paper.qr_module = rest[0]
    elif fn == 69 and rest:  # error correction L M Q H
        if rest[0] in _QR_EC:
            paper.qr_ec = rest[0]
    elif fn == 80 and rest:  # store the data (m = 48, then the data)
        paper.qr_data = bytes(rest[1:])
    elif fn == 81:  # print the stored data
        paper.qr_print()


# ------------------------------------------------------------------ API


def render_image(data: bytes, width_mm: int = 80, *, chinese: bool = False) -> Image.Image:
    """The paper as a 1-bit image, ``PAPER_DOTS[width_mm]`` dots wide.

    ``chinese``: the printer starts in Chinese mode (some do at power-on);
    otherwise only FS & turns it on. Never raises on any ``data``; raises
    FontNotFound if no Chinese font is installed.
    """
    if width_mm not in PAPER_DOTS:
        raise ValueError(f"width_mm must be 58 or 80, not {width_mm!r}")
    find_cjk_font()
    paper = _Paper(PAPER_DOTS[width_mm], chinese)
    _interpret(paper, bytes(data))
    return paper.image()


def render_png(data: bytes, width_mm: int, path_or_file: str | os.PathLike | BinaryIO,
               *, chinese: bool = False) -> Image.Image:
    """Draw ``data`` and save it as PNG to a path or a binary file; return the image."""
    img = render_image(data, width_mm, chinese=chinese)
    img.save(path_or_file, format="PNG")
    return img
