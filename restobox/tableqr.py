"""The tables' QR codes (`restobox table-qr`).

One PNG per table (a card: the store's name, the QR code of the table's
page, the table number in Chinese and English, "scan to order") and one
printable sheet, ``tables.pdf``: A4 pages of nine cards to cut out. They are
rendered only: print the sheet on an office printer (a receipt printer's
thermal paper fades on a table in a few weeks).
"""

from __future__ import annotations

from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont

from restobox.config import Config

CARD_W, CARD_H = 600, 840  # px; 50.8 x 71.1 mm at 300 dpi
A4_W, A4_H = 2480, 3508  # 300 dpi
RED = (193, 39, 45)
RED_DARK = (143, 23, 28)
GOLD = (250, 196, 74)
INK = (33, 31, 31)
PAPER = (248, 244, 238)


def _font(size: int) -> ImageFont.FreeTypeFont:
    from restobox.printing.preview import find_cjk_font

    path = find_cjk_font()
    return ImageFont.truetype(str(path), size, index=0)


def _centered(d: ImageDraw.ImageDraw, y: int, text: str, font, fill, width: int = CARD_W) -> None:
    w = d.textlength(text, font=font)
    d.text(((width - w) / 2, y), text, font=font, fill=fill)


def render_card(cfg: Config, table: str, url: str) -> Image.Image:
    """One table's card."""
    card = Image.new("RGB", (CARD_W, CARD_H), PAPER)
    d = ImageDraw.Draw(card)
    d.rectangle((0, 0, CARD_W, 120), fill=RED)
    _centered(d, 18, cfg.store.name_zh, _font(44), (255, 255, 255))
    _centered(d, 72, cfg.store.name_en, _font(26), (255, 255, 255))
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2, box_size=10)
    qr.add_data(url)
    qr.make(fit=True)
    qr.box_size = max(1, 400 // (qr.modules_count + 2 * qr.border))  # whole pixels per module: scans well
    img = qr.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    d.rounded_rectangle((90, 150, 510, 570), radius=18, fill=(255, 255, 255), outline=(224, 217, 207), width=3)
    card.paste(img, ((CARD_W - img.width) // 2, 360 - img.height // 2))
    d.rounded_rectangle((150, 598, 450, 690), radius=46, fill=GOLD)
    _centered(d, 606, f"{table} 号桌", _font(52), RED_DARK)
    _centered(d, 704, f"Table {table}", _font(38), INK)
    _centered(d, 758, "扫码点餐 · 到柜台付款", _font(28), RED)
    _centered(d, 796, "Scan to order · pay at the counter", _font(22), (107, 102, 97))
    return card


def render_sheet(cards: list[Image.Image]) -> list[Image.Image]:
    """A4 pages at 300 dpi, nine cards (3 x 3) each, outlined to cut out."""
    per_row, rows = 3, 3
    gap_x = (A4_W - per_row * CARD_W) // (per_row + 1)
    gap_y = (A4_H - rows * CARD_H) // (rows + 1)
    pages = []
    for start in range(0, len(cards), per_row * rows):
        page = Image.new("RGB", (A4_W, A4_H), (255, 255, 255))
        d = ImageDraw.Draw(page)
        for i, card in enumerate(cards[start:start + per_row * rows]):
            r, c = divmod(i, per_row)
            x, y = gap_x + c * (CARD_W + gap_x), gap_y + r * (CARD_H + gap_y)
            page.paste(card, (x, y))
            d.rectangle((x - 2, y - 2, x + CARD_W + 1, y + CARD_H + 1), outline=(200, 200, 200), width=2)
        pages.append(page)
    return pages


def cmd_table_qr(cfg: Config, *, out: str | None = None, tables: str | None = None) -> int:
    import sys

    from restobox.printing.preview import FontNotFound
    from restobox.web import table_url

    known = cfg.web.table_ids()
    wanted = [t.strip() for t in tables.split(",") if t.strip()] if tables else known
    unknown = [t for t in wanted if t not in known]
    if unknown:
        print(f"restobox table-qr: not tables of [web]: {', '.join(unknown)} (tables: {', '.join(known)})",
              file=sys.stderr)
        return 2
    folder = Path(out or cfg.web.qr_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"restobox table-qr: cannot make {folder}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        cards = []
        for t in wanted:
            url = table_url(cfg, t)
            card = render_card(cfg, t, url)
            card.save(folder / f"table-{t}.png", dpi=(300, 300))
            cards.append(card)
            print(f"table {t}: {url} -> {folder / f'table-{t}.png'}")
    except FontNotFound as exc:
        print(f"restobox table-qr: {exc}", file=sys.stderr)
        return 2
    pages = render_sheet(cards)
    sheet = folder / "tables.pdf"
    pages[0].save(sheet, save_all=True, append_images=pages[1:], resolution=300)
    print(f"{len(cards)} tables; print {sheet} ({len(pages)} A4 page{'s' if len(pages) > 1 else ''}) "
          "on an office printer and cut along the lines")
    return 0
