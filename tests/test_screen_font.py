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
    assert bold == regular  # no bold face in the collection: SDL_ttf emboldens


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

