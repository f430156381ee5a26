"""The paper preview: ESC/POS bytes drawn as a thermal printer prints them."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import qrcode
from escpos.printer import Dummy
from PIL import Image

from restobox.printing import preview
from restobox.printing.preview import FontNotFound, render_image, render_png

ORDER_URL = "https://example.com/o/7c9e6679-7425-40de-944b-e07fc1f90ae7"
INIT, CHINESE = b"\x1b@", b"\x1c&"


def receipt(qr_size: int = 6) -> bytes:
    """A receipt as a layout would make it: python-escpos commands, Chinese
    text in GB18030 after FS &, a native QR code and a cut."""
    p = Dummy()
    p.hw("INIT")
    p._raw(CHINESE)
    p.set(align="center", double_height=True, double_width=True, bold=True)
    p._raw("老王面馆\n".encode("gb18030"))
    p.set(align="center", normal_textsize=True)
    p._raw("订单号 Order No.\n".encode("gb18030"))
    p._raw(b"\x1d!\x33A042\n\x1d!\x00")
    p.set(align="left")
    p._raw(("-" * 48 + "\n").encode())
    p._raw("2 x 红烧牛肉面 Beef noodles         56.00\n".encode("gb18030"))
    p._raw("1 x 凉拌黄瓜 Cucumber salad         12.00\n".encode("gb18030"))
    p._raw(b"\x1dB\x01" + " 外带 TAKE-AWAY ".encode("gb18030") + b"\x1dB\x00\n")
    p._raw(b"\x1b-\x01" + "合计 Total".encode("gb18030") + b"\x1b-\x00" + b"          68.00\n")
    p.set(align="center")
    p.qr(ORDER_URL, native=True, size=qr_size)
    p._raw("\n谢谢惠顾 Thank you!\n".encode("gb18030"))
    p.cut()
    return p.output


def ink(img: Image.Image) -> int:
    """Number of black dots."""
    return img.convert("L").histogram()[0]


def bbox(img: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box of the ink."""
    box = Image.eval(img.convert("L"), lambda v: 255 - v).getbbox()
    assert box, "no ink at all"
    return box


def qr_matrix(data: str, ec=qrcode.constants.ERROR_CORRECT_L) -> list[list[bool]]:
    qr = qrcode.QRCode(version=None, error_correction=ec, box_size=1, border=0)
    qr.add_data(data.encode())
    qr.make(fit=True)
    return qr.get_matrix()


def read_qr(img: Image.Image, n: int, module: int) -> list[list[bool]]:
    """Sample the centred n x n QR code with this module size from the paper.

    Its top row is the first row where both upper finder patterns (seven dark
    modules each) are dark."""
    gray = img.convert("L")
    px = gray.load()
    x0 = (img.width - n * module) // 2
    side = n * module
    for y in range(img.height - side):
        left = all(px[x0 + x, y] == 0 for x in range(7 * module))
        right = all(px[x0 + side - 1 - x, y] == 0 for x in range(7 * module))
        if left and right:
            break
    else:
        raise AssertionError("no QR code finder patterns on the paper")
    half = module // 2
    return [[px[x0 + c * module + half, y + r * module + half] == 0 for c in range(n)] for r in range(n)]


# =========================================================================


@pytest.mark.parametrize("width_mm, dots", [(80, 576), (58, 384)])
def test_receipt_is_drawn_on_paper_of_the_right_width(tmp_path, width_mm, dots):
    path = tmp_path / f"receipt-{width_mm}.png"
    render_png(receipt(), width_mm, path)
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width == dots
        assert img.height > 600
        assert ink(img) > 5_000
        # white paper: most of it is not ink
        assert ink(img) < img.width * img.height // 3


@pytest.mark.parametrize("width_mm", [80, 58])
@pytest.mark.parametrize("size", [3, 6])
def test_native_qr_code_is_drawn_module_for_module(width_mm, size):
    expected = qr_matrix(ORDER_URL)
    img = render_image(receipt(qr_size=size), width_mm)
    assert read_qr(img, len(expected), size) == expected


def test_qr_code_follows_its_error_correction_level():
    p = Dummy()
    p.set(align="center")
    p.qr("A042", native=True, size=4, ec=3)  # H
    img = render_image(p.output)
    high = qr_matrix("A042", qrcode.constants.ERROR_CORRECT_H)
    assert read_qr(img, len(high), 4) == high
    assert high != qr_matrix("A042")  # the test would notice a wrong level


def test_qr_code_with_too_much_data_is_a_note_not_a_crash():
    p = Dummy()
    p.qr("x" * 8000, native=True)
    img = render_image(p.output)
    assert ink(img) > 0


def test_chinese_characters_are_real_glyphs_not_tofu():
    def one(ch: str) -> Image.Image:
        return render_image(INIT + CHINESE + ch.encode("gb18030") + b"\n")

    pictures = [one(ch).tobytes() for ch in "麻辣烫面"]
    assert len(set(pictures)) == 4  # missing glyphs would all be the same box
    run = bbox(one("麻辣烫面"))
    assert 3 * 24 < run[2] - run[0] <= 4 * 24  # one 24-dot cell each
    box = bbox(one("面"))
    assert 16 <= box[2] - box[0] <= 24 and 16 <= box[3] - box[1] <= 24  # a 24x24 cell


def test_without_chinese_mode_the_bytes_are_single_byte_characters():
    text = "面".encode("gb18030")
    chinese = render_image(INIT + CHINESE + text + b"\n")
    single = render_image(INIT + text + b"\n")
    assert chinese.tobytes() != single.tobytes()
    assert render_image(INIT + b"\x1c." + text + b"\n", chinese=True).tobytes() == single.tobytes()
    assert render_image(INIT + text + b"\n", chinese=True).tobytes() == chinese.tobytes()


def test_alignment_moves_the_line():
    left, centre, right = (bbox(render_image(INIT + b"\x1ba" + bytes([a]) + b"X\n")) for a in (0, 1, 2))
    assert left[0] < 12
    assert abs((centre[0] + centre[2]) / 2 - 576 / 2) <= 6
    assert right[2] > 576 - 12


def test_character_size_enlarges_the_dots():
    normal = bbox(render_image(INIT + b"H\n"))
    big = bbox(render_image(INIT + b"\x1d!\x11H\n"))  # double width and height
    assert big[2] - big[0] == 2 * (normal[2] - normal[0])
    assert big[3] - big[1] == 2 * (normal[3] - normal[1])
    wide = bbox(render_image(INIT + b"\x1d!\x10H\n"))  # double width only
    assert (wide[2] - wide[0], wide[3] - wide[1]) == (big[2] - big[0], normal[3] - normal[1])
    esc_big = bbox(render_image(INIT + b"\x1b!\x30H\n"))  # ESC ! double height+width
    assert esc_big[2] - esc_big[0] == big[2] - big[0]


def test_bold_underline_and_reverse_add_ink():
    plain = ink(render_image(INIT + b"Total\n"))
    assert ink(render_image(INIT + b"\x1bE\x01Total\n")) > plain
    underlined = render_image(INIT + b"\x1b-\x02Total\n")
    assert ink(underlined) >= plain + 2 * 5 * 12 - 10  # a 2-dot line under 5 cells
    assert ink(render_image(INIT + b"\x1dB\x01Total\n")) == 5 * 12 * 24 - plain  # white on black
    # ESC @ resets every style
    assert ink(render_image(INIT + b"\x1bE\x01\x1b-\x02\x1dB\x01\x1b@Total\n")) == plain


def test_line_feeds_and_wrapping_make_the_paper_longer():
    one = render_image(INIT + b"a\nb\n").height
    assert render_image(INIT + b"a\n\n\nb\n").height == one + 2 * 30
    assert render_image(INIT + b"a\x1bd\x03b\n").height == one + 2 * 30
    assert render_image(INIT + b"x" * 48 + b"\n").height == render_image(INIT + b"x\n").height
    assert render_image(INIT + b"x" * 49 + b"\n").height == render_image(INIT + b"x\nx\n").height


def test_cut_draws_a_dashed_line_across_the_paper():
    img = render_image(INIT + b"a\n\x1dV\x00").convert("L")
    px = img.load()
    rows = [y for y in range(img.height) if sum(px[x, y] == 0 for x in range(img.width)) > img.width // 3]
    assert rows, "no cut line"
    row = [px[x, rows[0]] == 0 for x in range(img.width)]
    assert any(row[: img.width // 4]) and any(row[-img.width // 4:])
    assert not all(row)  # dashed


def test_raster_image_is_drawn_dot_for_dot():
    # GS v 0: 2 bytes (16 dots) wide, 16 rows, all black
    img = render_image(INIT + b"\x1dv0\x00\x02\x00\x10\x00" + b"\xff" * 32)
    box = bbox(img)
    assert (box[2] - box[0], box[3] - box[1]) == (16, 16)
    assert ink(img) == 256


def test_column_bit_image_is_part_of_the_line():
    # ESC * 33 (24-dot double density), 2 columns, all dots; then text on the same line
    img = render_image(INIT + b"\x1b*\x21\x02\x00" + b"\xff" * 6 + b"A\n")
    image_only = render_image(INIT + b"\x1b*\x21\x02\x00" + b"\xff" * 6 + b"\n")
    assert ink(image_only) == 2 * 24
    assert bbox(image_only)[2] - bbox(image_only)[0] == 2
    assert ink(img) > ink(image_only)  # the A after the image is printed
    assert img.height == image_only.height  # on the same line


def test_random_bytes_never_crash_the_preview():
    rnd = random.Random(20240607)
    prefixes = [b"\x1b", b"\x1d", b"\x1c", b"\x10", b"\x1d(k", b"\x1dv0", b"\x1b*", b"\x1dV", b"\x1c&",
                b"\x1d!", b"\x1dk", b"\x1b&", b"\x1cq", b"\x1b!", b"\n", "汉".encode("gb18030")]
    for case in range(300):
        size = rnd.choice([0, 1, 2, 3, 7, 64, 500, 4000])
        if case % 2:
            data = rnd.randbytes(size)
        else:  # dense with command prefixes and random parameters
            data = b"".join(rnd.choice(prefixes) + rnd.randbytes(rnd.randrange(8)) for _ in range(size // 6 + 1))
        width = rnd.choice([58, 80])
        img = render_image(data, width)
        assert img.width == preview.PAPER_DOTS[width]
        assert img.height <= preview.MAX_HEIGHT + 2 * preview.MARGIN


def test_every_command_cut_short_at_the_end_is_safe():
    full = receipt() + b"\x1dv0\x00\x02\x00\x02\x00\xff\xff\xff\xff" + b"\x1b*\x21\x02\x00" + b"\xff" * 6
    for end in range(len(full)):
        render_image(full[:end], 58)


def test_runaway_feeds_stop_at_the_height_limit():
    img = render_image(b"\x1bd\xff" * 1000 + b"\x1d!\x77" + "满".encode("gb18030") * 5000)
    assert img.height == preview.MAX_HEIGHT + 2 * preview.MARGIN


def test_png_can_be_written_to_a_file_object():
    buf = io.BytesIO()
    render_png(b"hello\n", 58, buf)
    assert buf.getvalue().startswith(b"\x89PNG")


def test_paper_width_must_be_58_or_80():
    with pytest.raises(ValueError, match="58 or 80"):
        render_image(b"x", 76)


def test_missing_chinese_font_names_the_debian_package(monkeypatch):
    monkeypatch.delenv(preview.FONT_ENV, raising=False)
    monkeypatch.setattr(preview, "FONT_CANDIDATES", ())
    monkeypatch.setattr(preview, "FONT_GLOBS", ())
    preview.find_cjk_font.cache_clear()
    try:
        with pytest.raises(FontNotFound, match="fonts-noto-cjk"):
            render_image(b"x")
    finally:
        preview.find_cjk_font.cache_clear()


def test_a_font_without_chinese_is_refused(monkeypatch):
    latin = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    # ./run installs fonts-dejavu-core for this test
    assert latin.is_file(), "DejaVu Sans (fonts-dejavu-core) is not installed"
    monkeypatch.setenv(preview.FONT_ENV, str(latin))
    preview.find_cjk_font.cache_clear()
    try:
        with pytest.raises(FontNotFound, match="no Chinese characters"):
            preview.find_cjk_font()
    finally:
        monkeypatch.delenv(preview.FONT_ENV)
        preview.find_cjk_font.cache_clear()
