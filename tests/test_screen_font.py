"""The screens' Chinese font: the TrueType one the provisioning installs,
chosen over Noto Sans CJK because each text size a screen shows opens a face
of its own (docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kds.common import SCREEN_FONT_CANDIDATES, find_screen_font
from restobox.printing.preview import FontNotFound


def test_the_screens_draw_with_the_truetype_chinese_font_that_run_installs():
    assert Path(SCREEN_FONT_CANDIDATES[0]).is_file(), "./run installs fonts-wqy-microhei"
    regular, bold = find_screen_font()
    assert regular == SCREEN_FONT_CANDIDATES[0]
    assert bold == "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"  # SDL_ttf never emboldens by itself


def test_a_font_named_in_the_environment_is_used_and_a_wrong_one_refused(monkeypatch, tmp_path):
    noto = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    monkeypatch.setenv("RESTOBOX_SCREEN_FONT", noto)
    assert find_screen_font() == (noto, noto.replace("-Regular.", "-Bold."))
    latin = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    monkeypatch.setenv("RESTOBOX_SCREEN_FONT", latin)
    with pytest.raises(FontNotFound, match="no Chinese|Chinese characters"):
        find_screen_font()
    monkeypatch.setenv("RESTOBOX_SCREEN_FONT", str(tmp_path / "none.ttf"))
    with pytest.raises(FontNotFound):
        find_screen_font()



def test_every_character_the_screens_show_is_in_their_font():
    """A character the font lacks is drawn as an empty box: on a kitchen
    screen that was the allergen warning sign. Every character in the
    screens' code, layouts and texts, and in the sentences of the reason
    codes and alerts they show, is in the font they draw with."""
    from PIL import ImageFont

    root = Path(__file__).resolve().parent.parent
    font = ImageFont.truetype(find_screen_font()[0], 40)
    missing_glyph = bytes(font.getmask("\U000F0000"))  # a private-use character: the font's box
    files = [p for d in ("kiosk", "kds") for p in (root / d).rglob("*") if p.suffix in (".py", ".kv")]
    files += [root / "restobox" / "contract.py", root / "restobox" / "alerts.py", root / "restobox" / "photos.py"]
    chars = {c for p in files for c in p.read_text(encoding="utf-8") if ord(c) > 0x7F and c.isprintable()}
    absent = sorted(c for c in chars if bytes(font.getmask(c)) == missing_glyph and not c.isspace())
    assert not absent, "not in the screens' font: " + " ".join(f"{c} (U+{ord(c):04X})" for c in absent)
