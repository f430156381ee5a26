"""The diner's self-order kiosk (Kivy), portrait 1080×1920 (also 800×1280).

    python -m kiosk --config /etc/restobox/kiosk.toml

Layout lives in screens.kv; all state and logic in kiosk.viewmodel; the bus and
the payment worker in kiosk.controller. Every touch goes to
``KioskViewModel.tap`` through the controller; redraws are coalesced with a
Clock trigger. Each screen's widgets are built once and kept: a change sets
the properties that changed on the widgets already there (tiles, rows and
buttons are reused, kiosk.tiles.sync_children), so a tap costs what changed,
not a new widget tree. Menu photos are textures made off the UI thread
(kiosk.tiles.PhotoTextures, bounded). The view model ticks once a second
(idle "still there?", confirm timeout).

Env: RESTOBOX_KIOSK_SIZE="800x1280" (window size), RESTOBOX_KIOSK_STATE (a
JSON file saying which button is where, for UI tests and diagnostics),
RESTOBOX_SCREENSHOT_DIR (F12 screenshots), RESTOBOX_KIOSK_PHOTOS (a folder of
tile-sized photos named as the menu's ``image`` names, shown as if the store
had delivered them: UI tests and the benchmark).
"""

from __future__ import annotations

import bisect
import gc
import logging
import math
import os
import signal
import time
from pathlib import Path

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")

from restobox import config as config_mod  # noqa: E402

log = logging.getLogger("restobox.kiosk")

BASE_WIDTH = 1080
PHOTO_DP = 230  # a tile's photo, as high as screens.kv's ItemTileW draws it
BAND_DP = 330  # the item screen's photo (screens.kv: ItemScreen's band)
TOPBAR_DP = 120  # screens.kv: KioskRoot's topbar, over every screen but attract (not in reach mode)
# KioskApp._warm_up: the screens built and filled ahead, in order, and how
# many labels draw their text in one step (a frame)
WARM_SCREENS = ("menu", "language", "service", "item", "cart", "pay", "confirm")
WARM_LABELS = 10
PRESS_SHOWN_S = 0.1  # a button is drawn pressed once held this long (KButton)


def screen_size(env: str, default: tuple[int, int]) -> tuple[int, int]:
    """``default``, or the environment's ``env``=WIDTHxHEIGHT when set (the
    kiosk's and the counter's windows)."""
    raw = os.environ.get(env)
    if not raw:
        return default
    try:
        w, h = (int(v) for v in raw.lower().split("x"))
    except ValueError:
        log.warning("%s=%r is not WIDTHxHEIGHT; using %dx%d", env, raw, *default)
        return default
    return w, h


def configure_window(section, *, env: str, default: tuple[int, int], base_width: int) -> tuple[int, int]:
    """Window settings (the kiosk's and the counter's); call before Kivy
    opens its window. The size is the config ``section``'s width × height
    (``default`` without a config), or ``env``=WxH when set. Sizes in a .kv
    are in dp for a ``base_width`` wide screen: the density scales them to
    the width."""
    w, h = screen_size(env, (section.width, section.height) if section is not None else default)
    fullscreen = section is not None and section.fullscreen
    os.environ.setdefault("KIVY_METRICS_DENSITY", f"{w / base_width:.4f}")
    from kivy.config import Config as KivyConfig

    KivyConfig.set("graphics", "width", str(w))
    KivyConfig.set("graphics", "height", str(h))
    KivyConfig.set("graphics", "fullscreen", "auto" if fullscreen else "0")
    KivyConfig.set("graphics", "resizable", "0")
    KivyConfig.set("graphics", "position", "custom")
    KivyConfig.set("graphics", "left", "0")
    KivyConfig.set("graphics", "top", "0")
    KivyConfig.set("kivy", "exit_on_escape", "0")
    # one input provider: a touch screen seen twice would deliver every tap twice
    KivyConfig.set("input", "mouse", "mouse,disable_multitouch")
    return w, h


class TouchApp:
    """What the kiosk's and the counter's Kivy apps share (mixed in before
    kivy's App): a touch goes to the controller (``ctl``) and is drawn at
    once; a screenshot of the window (F12)."""

    SHOT_NAME = "screen"

    def tap(self, target: str) -> None:
        self.ctl.tap(target)
        # at once, not on the next frame: the frame that draws the
        # released button then draws the new screen too (one frame less
        # between a touch and its answer)
        self._redraw.cancel()
        self.refresh()

    def screenshot(self, path: str | None = None) -> str | None:
        """The window as a PNG at ``path``, or as ``<SHOT_NAME>-<ms>.png`` in
        RESTOBOX_SCREENSHOT_DIR; None (logged) when it cannot be written."""
        from kds.common import save_screenshot

        shot_dir = Path(os.environ.get("RESTOBOX_SCREENSHOT_DIR", "."))
        target = path or str(shot_dir / f"{self.SHOT_NAME}-{int(time.time() * 1000)}.png")
        try:
            return save_screenshot(target)
        except OSError:
            log.exception("screenshot failed")
            return None


def configure_kivy(cfg=None) -> tuple[int, int]:
    """The kiosk's window: [kiosk] width × height, or RESTOBOX_KIOSK_SIZE=WxH when set."""
    return configure_window(cfg.kiosk if cfg is not None else None, env="RESTOBOX_KIOSK_SIZE",
                            default=(1080, 1920), base_width=BASE_WIDTH)


def run(cfg_path: str | None, deep_link: str | None = None) -> int:
    from kds.common import map_large_buffers

    map_large_buffers()
    cfg = config_mod.load(cfg_path)
    # kiosk.db is opened on the io thread: a file from a newer release
    # stops the kiosk here, with the sentence, before a window opens
    from restobox.migrations import check

    check(cfg.kiosk.database, "kiosk")
    configure_kivy(cfg)
    build_app(cfg, deep_link=deep_link).run()
    return 0


# Text is drawn in these sizes only (pixels; each about 12 % above the last):
# SDL_ttf opens the Chinese font once per size and weight, about 2.5 MB each
# (a CFF font of 65,000 glyphs), and the .kv's sizes times the density and
# large text made 37 of them after one order, 24 on this scale. A text is
# never drawn larger than the .kv asks (it fits where it fit), at most 10 %
# smaller.
TYPE_SCALE = tuple(sorted({round(15 * 1.12 ** k) for k in range(30)}))


def on_type_scale(px: float) -> float:
    """The largest size of TYPE_SCALE not above ``px`` (``px`` itself below the scale)."""
    i = bisect.bisect_right(TYPE_SCALE, px)
    return float(TYPE_SCALE[i - 1]) if i else px


def faux_bold_px(px: float) -> int:
    """The outline that makes a regular face read as bold at ``px`` (a bold
    span in a text that is not all bold): about as much more ink as a real
    bold face has (Noto Sans CJK Bold: +52 %)."""
    return max(1, round(px / 55))


def bold_spread_px(px: float) -> int:
    """How far a text all in bold is spread (right and down) at ``px``:
    1 pixel to about 60, then more; about the ink of a real bold face."""
    return max(1, round(px / 40))


def embolden(data: bytes, width: int, height: int, colour, spread: int) -> bytes:
    """RGBA text in one colour spread ``spread`` pixels right and down: each
    pixel as covered as the most covered of its neighbours up and left, in
    the text's colour."""
    from PIL import Image, ImageChops

    def along(a, dx: int, dy: int):
        out = a
        for d in range(1, spread + 1):
            moved = ImageChops.offset(a, d * dx, d * dy)
            moved.paste(0, (0, 0, d, height) if dx else (0, 0, width, d))  # what offset wrapped round
            out = ImageChops.lighter(out, moved)
        return out

    alpha = along(along(Image.frombytes("RGBA", (width, height), data).getchannel("A"), 1, 0), 0, 1)
    out = Image.new("RGB", (width, height), tuple(round(c * 255) for c in colour[:3]))
    out.putalpha(alpha)
    return out.tobytes()


def tight_render(render):
    """Kivy's core label ``render`` making a texture only as wide as its
    text, not as its ``text_size``: for centred text (drawn centred by the
    widget, as before) and for text whose label's options say ``tight``
    (placed by its widget's own code, the menu tiles'). A texture's area is
    memory (a button's text 980 px wide held four times the pixels of its
    word) and pixels blended every frame. Bold keeps room for its spread."""

    def render_tight(self, real=False):
        size = render(self, real)
        if real or not size:
            return size
        o = self.options
        uw, uh = self._text_size  # what the layout used (the widget's text_size; options may lag)
        w, h = size
        room = bold_spread_px(o["font_size"]) if o["bold"] else 0
        if uw and (o["halign"] == "center" or o.get("tight")):
            w = min(w, max(2, int(math.ceil(self._internal_size[0])) + room * (2 if o["halign"] == "center" else 1)))
        if uh and o["valign"] in ("middle", "center"):  # drawn centred by the widget, as before
            h = min(h, max(2, int(math.ceil(self._internal_size[1])) + room * 2))
        return w, h

    return render_tight


def use_screen_text(faux_bold: bool = False) -> None:
    """Every text the kiosk draws (Kivy's core label, markup included) in a
    size of TYPE_SCALE; with ``faux_bold``, bold drawn with the regular face
    instead of a face of its own: a text all in bold drawn regular, then
    spread a pixel or more (embolden); a bold span in another text drawn
    with an outline of its own colour (faux_bold_px). Through SDL_ttf every
    size and weight opens the font again: a Noto Sans CJK Bold face (for a
    screen font with no bold) holds 2.8 MB, and the kiosk draws bold in
    about twelve sizes; the regular face at the same size is shared (0.5 MB,
    often open already). The spread costs about 0.2 ms a dish name, the
    outline 0.7 ms (SDL_ttf outlines every glyph again, each time)."""
    from kivy.core.text import Label as CoreLabel, LabelBase

    if not getattr(LabelBase, "_type_scale", False):
        refresh = LabelBase.refresh

        def scaled_refresh(self):
            # the size is read when the text is laid out and drawn, here (Kivy's
            # layout code takes only a plain dict, so the options are not wrapped)
            self.options["font_size"] = on_type_scale(self.options["font_size"])
            return refresh(self)

        LabelBase.refresh = scaled_refresh
        LabelBase._type_scale = True
        from kivy.core.text.markup import MarkupLabel

        for cls in (LabelBase, MarkupLabel):
            cls.render = tight_render(cls.render)
    if not faux_bold or getattr(CoreLabel, "_faux_bold", False) or not hasattr(CoreLabel, "_get_font_id"):
        return
    keys = ("font_size", "font_name_r", "italic", "underline", "strikethrough")

    def font_id(self):
        # the file (font_name_r) already says regular or bold: bold and
        # regular in one file are one face
        return "|".join(str(self.options[k]) for k in keys)

    render_begin, render_text, render_end = CoreLabel._render_begin, CoreLabel._render_text, CoreLabel._render_end

    def faux_render_begin(self):
        o = self.options
        # all in bold and in one colour (a markup label's text comes in one [color] tag)
        self._spread = o["bold"] and not o["outline_width"] and str(self.text).count("[color") <= 1
        return render_begin(self)

    def faux_render_text(self, text, x, y):
        o = self.options  # a markup word's own options while it is drawn
        if not o["bold"] or o["outline_width"] or getattr(self, "_spread", False):
            return render_text(self, text, x, y)
        w = faux_bold_px(o["font_size"])
        o["outline_width"], o["outline_color"] = w, o["color"]
        try:
            # the outlined text is w pixels wider on each side: drawn w up
            # and left, its strokes stand where the layout put the regular ones
            return render_text(self, text, x - w, y - w)
        finally:
            o["outline_width"] = None

    def faux_render_end(self):
        data = render_end(self)
        if getattr(self, "_spread", False) and data is not None and data.fmt == "rgba" \
                and data.rowlength in (0, data.width):
            self._spread = False
            data.mipmaps[0][2] = embolden(bytes(data.data), data.width, data.height, self.options["color"],
                                          bold_spread_px(self.options["font_size"]))
        return data

    CoreLabel._get_font_id = font_id
    CoreLabel._render_begin = faux_render_begin
    CoreLabel._render_text = faux_render_text
    CoreLabel._render_end = faux_render_end
    CoreLabel._faux_bold = True


def use_screen_font() -> bool:
    """The screen font as Kivy's default. With no bold face of its own (the
    bold kds.common finds is another font), bold is the regular face drawn
    with use_screen_text's outline: True then."""
    from kivy.core.text import DEFAULT_FONT, LabelBase

    from kds.common import find_screen_font

    font, bold = find_screen_font()
    own_bold = bold != font and Path(bold).name == Path(font).name.replace("-Regular.", "-Bold.")
    LabelBase.register(DEFAULT_FONT, font, None, bold if own_bold else font, None)
    return not own_bold


def rgba(hex_colour: str, alpha: float = 1.0) -> list[float]:
    h = hex_colour.lstrip("#")
    if len(h) != 6:
        return [0.38, 0.49, 0.55, alpha]
    return [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)] + [alpha]


# Colours by role; screens.kv reads them as app.c_<role>. NORMAL is the
# kiosk's own look. HIGH_CONTRAST is white and yellow on black: every text is
# at least 7:1 against what it stands on (WCAG 2.2, 1.4.6 Contrast (Enhanced)),
# tests/test_kiosk_a11y_ui.py checks the pairs.
NORMAL: dict[str, tuple[float, float, float, float]] = {
    "red": (0.757, 0.153, 0.176, 1),       # brand; primary buttons, chosen options, prices
    "red_dark": (0.56, 0.09, 0.11, 1),     # top bar buttons that are off
    "gold": (0.98, 0.77, 0.29, 1),
    "ink": (0.13, 0.12, 0.12, 1),          # text
    "muted": (0.42, 0.40, 0.38, 1),        # secondary text
    "paper": (0.973, 0.957, 0.933, 1),     # background
    "card": (1, 1, 1, 1),
    "line": (0.88, 0.85, 0.81, 1),         # outlines
    "green": (0.13, 0.55, 0.33, 1),        # pay, done
    "on_red": (1, 1, 1, 1),                # text on red and green
    "bar": (0.757, 0.153, 0.176, 1),       # the top and bottom bars
    "chip": (1, 1, 1, 1),                  # the language button
    "chip_on": (1, 1, 1, 1),               # a top bar toggle that is on
    "chip_ink": (0.757, 0.153, 0.176, 1),  # text on chip and chip_on
    "disabled": (0.85, 0.84, 0.82, 1),
    "disabled_ink": (0.42, 0.40, 0.38, 1),
    "warn": (0.72, 0.36, 0.0, 1),          # allergens, payment to check
    "pill": (0.88, 0.85, 0.81, 1),         # an optional group's rule
    "tint": (1, 0.96, 0.85, 1),            # the drink suggestion
    "tint_ink": (0.56, 0.09, 0.11, 1),
    "shade": (0.13, 0.12, 0.12, 0.92),     # notices over the screen
}
_YELLOW = (1, 0.85, 0.0, 1)
HIGH_CONTRAST: dict[str, tuple[float, float, float, float]] = {
    "red": _YELLOW,
    "red_dark": (0, 0, 0, 1),
    "gold": _YELLOW,
    "ink": (1, 1, 1, 1),
    "muted": (0.9, 0.9, 0.9, 1),
    "paper": (0, 0, 0, 1),
    "card": (0.09, 0.09, 0.09, 1),
    "line": (1, 1, 1, 1),
    "green": (0.45, 0.95, 0.55, 1),
    "on_red": (0, 0, 0, 1),
    "bar": (0, 0, 0, 1),
    "chip": (1, 1, 1, 1),
    "chip_on": _YELLOW,
    "chip_ink": (0, 0, 0, 1),
    "disabled": (0.2, 0.2, 0.2, 1),
    "disabled_ink": (0.8, 0.8, 0.8, 1),
    "warn": (1, 0.7, 0.3, 1),
    "pill": (0.25, 0.25, 0.25, 1),
    "tint": (0, 0, 0, 1),
    "tint_ink": _YELLOW,
    "shade": (0, 0, 0, 0.95),
}


def build_app(cfg, deep_link: str | None = None):
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window  # noqa: I001  (the window before the text provider)
    from kivy.core.text import Label as CoreLabel
    from kivy.core.text.markup import MarkupLabel
    from kivy.factory import Factory
    from kivy.graphics import Color, Line, Rectangle, RoundedRectangle
    from kivy.metrics import dp, sp
    from kivy.properties import BooleanProperty, ListProperty, NumericProperty, ObjectProperty, StringProperty
    from kivy.uix.behaviors import ButtonBehavior
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.floatlayout import FloatLayout
    from kivy.uix.label import Label
    from kivy.uix.scrollview import ScrollView
    from kivy.uix.widget import Widget

    from kds.common import trim_heap, window_rect, write_state
    from kds.health import alert_rows, alert_strip
    from restobox.service import ScreenWatchdog
    from kiosk.controller import KioskController
    from kiosk.tiles import PhotoTextures, sync_children

    use_screen_text(faux_bold=use_screen_font())

    class KButton(ButtonBehavior, Label):
        """A touch target: ``target`` is what goes to the view model's tap()."""

        target = StringProperty("")
        bg = ListProperty([0.78, 0.16, 0.16, 1])
        fg = ListProperty([1, 1, 1, 1])
        selected = BooleanProperty(False)
        radius = NumericProperty(18)
        base_font = NumericProperty(30)
        bg_cut = NumericProperty(0)  # the top of the background not drawn (covered: a tile's photo)
        # drawn pressed once held PRESS_SHOWN_S: a tap's release then draws the
        # next screen at once, not after a frame of the pressed button (a
        # whole frame to redraw: 30-60 ms here, more on a Pi); a longer
        # press shows it, as touch screens delay it in lists
        pressed = BooleanProperty(False)
        _press_ev = None

        def on_state(self, _, state):
            if self._press_ev is not None:
                self._press_ev.cancel()
                self._press_ev = None
            if state == "down":
                self._press_ev = Clock.schedule_once(lambda dt: setattr(self, "pressed", self.state == "down"),
                                                     PRESS_SHOWN_S)
            else:
                self.pressed = False

        def __init__(self, **kw):
            super().__init__(**kw)
            app = App.get_running_app()
            if app is not None and app.hc:
                # High contrast: every button that can be pressed has a clear
                # edge. Only then: a wide Line, even a transparent one, costs a
                # software renderer several milliseconds a frame per button
                # (the window is built again when the mode changes).
                with self.canvas.after:
                    self._edge_colour = Color(rgba=(0, 0, 0, 0))
                    self._edge = Line(width=dp(2))
                self.fbind("pos", self._draw_edge)
                self.fbind("size", self._draw_edge)
                self.fbind("fg", self._draw_edge)
                self.fbind("disabled", self._draw_edge)
                self._draw_edge()

        def _draw_edge(self, *_):
            self._edge_colour.rgba = (0, 0, 0, 0) if self.disabled else self.fg
            r = min(dp(self.radius), self.width / 2, self.height / 2)
            self._edge.rounded_rectangle = (self.x, self.y, self.width, self.height, r)

        def on_release(self):
            if self.target:
                App.get_running_app().tap(self.target)

    class BusySpinner(Widget):
        """An arc that turns while it is shown (``spin(True)``): every wait shows progress."""

        angle = NumericProperty(0)

        def __init__(self, **kw):
            super().__init__(**kw)
            self._turn = Clock.create_trigger(self._step, 1 / 10, interval=True)

        def spin(self, on: bool) -> None:
            self.opacity = 1 if on else 0
            if on:
                self._turn()
            else:
                self._turn.cancel()

        def _step(self, dt):
            if self.get_root_window() is None or self.opacity == 0:
                self._turn.cancel()  # the screen is not shown: spin() starts it again
                return
            self.angle = (self.angle - 36) % 360

    class ItemTileW(KButton):
        """A dish on the menu: its photo, name, allergens, price and badge,
        drawn by this one widget (screens.kv draws the photo and the card;
        the texts are core-label textures placed here as a vertical box of
        name, allergens and a price row would place them). A Label widget
        holds about 37 KB and its rules more: a tile of five was 330 KB."""

        item_id = StringProperty("")
        name_text = StringProperty("")
        price_text = StringProperty("")
        badge_text = StringProperty("")
        sub_text = StringProperty("")
        sold_out = BooleanProperty(False)
        photo = StringProperty("")  # the file the view model names; "" a colour tile
        photo_tex = ObjectProperty(None, allownone=True)  # its texture once made
        with_photos = BooleanProperty(False)  # the menu shows photos: every tile as high
        # set by screens.kv from the app: the scale of large text and the texts' colours
        text_scale = NumericProperty(1.0)
        name_ink = ListProperty([1, 1, 1, 1])
        sub_ink = ListProperty([1, 1, 1, 1])
        price_ink = ListProperty([1, 1, 1, 1])

        PARTS = ("name", "sub", "price", "badge")

        def __init__(self, **kw):
            self._parts = {}
            self._place = Clock.create_trigger(self._place_texts, -1)
            super().__init__(**kw)
            with self.canvas:
                self._badge_colour = Color(rgba=(0, 0, 0, 0))
                self._badge_bg = RoundedRectangle(size=(0, 0))
                for part in self.PARTS:
                    self._parts[part] = [Color(rgba=(1, 1, 1, 1)), Rectangle(size=(0, 0)), None]
            for prop in ("name_text", "sub_text", "price_text", "badge_text", "photo", "pos", "size",
                         "text_scale", "name_ink", "sub_ink", "price_ink"):
                self.fbind(prop, self._place)
            self._place()

        def textures(self) -> list:
            """The texts' textures (KioskApp's warm-up draws them ahead)."""
            return [r.texture for _, r, _ in self._parts.values() if r.texture is not None]

        def _text(self, part, text, size, bold, ink, width, box, align="centre", markup=True):
            """``text`` in its texture, placed in ``box`` (x, y, w, h): centred
            vertically (a Label's texture), or on its bottom ("bottom").
            ``markup``: the view model's names come escaped (kiosk.app esc)."""
            colour, rect, key = self._parts[part]
            new = (text, size, bold, tuple(ink), width)
            if new != key:
                self._parts[part][2] = new
                if text and (width is None or width > 0):
                    core = (MarkupLabel if markup else CoreLabel)(
                        text=text, font_size=size, bold=bold, color=list(ink), text_size=(width, None),
                        halign="left" if width else "center")
                    core.options["tight"] = True  # placed here: as wide as the text (tight_render)
                    core.refresh()
                    rect.texture = core.texture
                    rect.size = core.texture.size if core.texture is not None else (0, 0)
                else:
                    rect.texture, rect.size = None, (0, 0)
            x, y, w, h = box
            tw, th = rect.size
            rect.pos = (int(x + (w - tw) / 2) if width is None else int(x),
                        int(y) if align == "bottom" else int(y + (h - th) / 2))

        def _place_texts(self, *_):
            photo, s = bool(self.photo), self.text_scale
            # screens.kv's card below the photo: padding, spacing, the rows' heights
            left, top, right, bottom = (dp(20), dp(12), dp(20), dp(10)) if photo else (dp(22),) * 4
            gap = dp(2)
            x, w = self.x + left, self.width - left - right
            row_h = dp(56) if photo else dp(70)
            sub_h = dp(30) if self.sub_text or not photo else 0
            row_y = self.y + bottom
            sub_y = row_y + row_h + gap
            name_y = sub_y + sub_h + gap
            name_h = self.top - (dp(PHOTO_DP) if photo else 0) - top - name_y
            badge_w = dp(170) if self.badge_text else 0
            self._text("name", self.name_text, sp(32 if photo else 38) * s, True, self.name_ink, w,
                       (x, name_y, w, name_h))
            self._text("sub", self.sub_text, sp(20) * s, False, self.sub_ink, w, (x, sub_y, w, sub_h))
            self._text("price", self.price_text, sp(36 if photo else 40) * s, True, self.price_ink,
                       max(0, w - badge_w), (x, row_y, w - badge_w, row_h), "bottom", markup=False)
            bx = x + w - badge_w
            self._text("badge", self.badge_text, sp(28) * s, True, (1, 1, 1, 1), None, (bx, row_y, badge_w, row_h),
                       markup=False)
            self._badge_colour.rgba = (0.2, 0.2, 0.2, 0.9) if self.badge_text else (0, 0, 0, 0)
            self._badge_bg.pos = (bx, row_y + dp(8))
            self._badge_bg.size = (badge_w, row_h - dp(16)) if self.badge_text else (0, 0)
            self._badge_bg.radius = [dp(27)]

    class PhotoBand(Widget):
        """The item screen's photo, across the screen above the dish's name."""

        photo = StringProperty("")
        photo_tex = ObjectProperty(None, allownone=True)

    class OptionW(KButton):
        name_text = StringProperty("")
        delta_text = StringProperty("")

    class GroupW(BoxLayout):
        name_text = StringProperty("")
        rule_text = StringProperty("")
        error_text = StringProperty("")
        required = BooleanProperty(False)

    class CartLineW(BoxLayout):
        name_text = StringProperty("")
        mods_text = StringProperty("")
        qty_text = StringProperty("")
        total_text = StringProperty("")
        problem_text = StringProperty("")

    class ScreenBase(BoxLayout):
        pass

    class ClipScroll(ScrollView):
        """A ScrollView clipped by the scissor test instead of a stencil: a
        stencil fills the view's whole area twice a frame, which a software
        renderer pays pixel by pixel (screens.kv's rule replaces ScrollView's)."""

    class ChromeButtons(BoxLayout):
        """Language, accessibility toggles, cancel: in the top bar, or the bottom bar in reach mode."""

        kr = ObjectProperty(None, rebind=True)  # the KioskRoot whose labels they show
        wide = BooleanProperty(False)  # share the bar's width

    class LeftLabel(Label):
        """A label aligned left in a texture only as wide as its text (not its
        ``text_size``), which screens.kv's rule draws at the left edge where
        Label would centre it: a label 1000 px wide with one word held a
        texture 1000 px wide (tight_render)."""

        def _create_label(self):
            super()._create_label()
            self._label.options["tight"] = True

    for cls in (KButton, BusySpinner, ItemTileW, PhotoBand, OptionW, GroupW, CartLineW, ChromeButtons, ClipScroll,
                LeftLabel):
        Factory.register(cls.__name__, cls=cls)

    class KioskRoot(FloatLayout):
        store_zh = StringProperty(cfg.store.name_zh)
        store_en = StringProperty(cfg.store.name_en)
        notice_text = StringProperty("")
        link_text = StringProperty("")
        show_chrome = BooleanProperty(False)
        lang_label = StringProperty("")
        lang_target = StringProperty("")
        cancel_label = StringProperty("")
        large_label = StringProperty("")
        large_on = BooleanProperty(False)
        contrast_label = StringProperty("")
        contrast_on = BooleanProperty(False)
        reach_label = StringProperty("")
        reach_on = BooleanProperty(False)
        staff_text = StringProperty("")
        staff_alert_text = StringProperty("")  # the store's alerts, one line
        staff_severity = StringProperty("")  # the most severe of them
        # reach mode: what the screen is about, at the top, out of the way of the controls
        head_title = StringProperty("")
        head_price = StringProperty("")
        head_info = StringProperty("")
        head_warn = StringProperty("")

    Factory.register("KioskRoot", cls=KioskRoot)
    from kivy.lang import Builder

    path = str(Path(__file__).with_name("screens.kv"))
    Builder.unload_file(path)
    Builder.load_file(path)

    state_file = os.environ.get("RESTOBOX_KIOSK_STATE")
    shot_dir = Path(os.environ.get("RESTOBOX_SCREENSHOT_DIR", "."))
    shown_log = os.environ.get("RESTOBOX_KIOSK_SHOWN")  # bench/kiosk_ui.py: when each screen was drawn

    def log_shown(screen: str, frame: int) -> None:
        """Append "<screen> shown at <time.time()>" once a frame with the new screen has been drawn."""
        if Clock.frames_displayed <= frame:
            Clock.schedule_once(lambda dt: log_shown(screen, frame), 0)
            return
        with open(shown_log, "a", encoding="utf-8") as f:
            f.write(f"{screen} shown at {time.time():.6f}\n")

    fits: dict[tuple, bool] = {}

    def cramped(wdg) -> bool:
        """A button whose text does not fit: a word broken over two lines, or lines cut off
        (with no text height set, nothing is cut: the lines' own spacing may overhang a little)."""
        if not wdg.text:
            return False
        key = (wdg.text, wdg.font_size, wdg.bold, tuple(wdg.text_size), wdg.height)
        if key not in fits:
            def measure(text: str, width=None) -> tuple[float, float]:
                core = (MarkupLabel if wdg.markup else CoreLabel)(
                    text=text, font_size=wdg.font_size, bold=wdg.bold, font_name=wdg.font_name,
                    text_size=(width, None))
                # laid out as refresh() would (its size on the type scale), no texture made
                core.options["font_size"] = on_type_scale(core.options["font_size"])
                core.resolve_font_name()
                return core.render()  # the texture's size: the content's, no padding set
            width = wdg.text_size[0] or wdg.width
            room = wdg.height if wdg.text_size[1] is not None else wdg.height * 1.1
            fits[key] = all(measure(word)[0] <= width for word in wdg.text.split()) \
                and measure(wdg.text, width)[1] <= room
        return not fits[key]

    def in_sight(wdg) -> bool:
        """The widget's middle is inside every ScrollView it is in."""
        cx, cy = wdg.to_window(wdg.center_x, wdg.center_y)
        p = wdg.parent
        while p is not None and p is not p.parent:
            if isinstance(p, ScrollView):
                x, y = p.to_window(p.x, p.y)
                if not (x <= cx <= x + p.width and y <= cy <= y + p.height):
                    return False
            p = p.parent
        return True

    def scroll_views(screen) -> list:
        return [w for w in screen.walk(restrict=True) if isinstance(w, ScrollView)] if screen else []

    def photo_rect(wdg, height: float) -> list[float] | None:
        """Where a photo is drawn in the window (the top ``height`` of ``wdg``),
        clipped to the scroll view it is in; None when it is out of sight."""
        x, y, w, h = window_rect(wdg)
        top, bottom = y, y + height
        p = wdg.parent
        while p is not None and p is not p.parent:
            if isinstance(p, ScrollView):
                _, sy, _, sh = window_rect(p)
                top, bottom = max(top, sy), min(bottom, sy + sh)
            p = p.parent
        return [x, top, w, bottom - top] if bottom > top else None

    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("[", "&bl;").replace("]", "&br;")

    class KioskApp(TouchApp, App):
        SHOT_NAME = "kiosk"
        title = f"Restobox — {cfg.store.name_zh} {cfg.store.name_en}"
        text_scale = NumericProperty(1.0)
        store_zh = StringProperty(cfg.store.name_zh)
        store_en = StringProperty(cfg.store.name_en)
        reach = BooleanProperty(False)  # controls in the lower part of the screen
        hc = BooleanProperty(False)  # high contrast: the c_* below are HIGH_CONTRAST
        c_red = ListProperty(NORMAL["red"])
        c_red_dark = ListProperty(NORMAL["red_dark"])
        c_gold = ListProperty(NORMAL["gold"])
        c_ink = ListProperty(NORMAL["ink"])
        c_muted = ListProperty(NORMAL["muted"])
        c_paper = ListProperty(NORMAL["paper"])
        c_card = ListProperty(NORMAL["card"])
        c_line = ListProperty(NORMAL["line"])
        c_green = ListProperty(NORMAL["green"])
        c_on_red = ListProperty(NORMAL["on_red"])
        c_bar = ListProperty(NORMAL["bar"])
        c_chip = ListProperty(NORMAL["chip"])
        c_chip_on = ListProperty(NORMAL["chip_on"])
        c_chip_ink = ListProperty(NORMAL["chip_ink"])
        c_disabled = ListProperty(NORMAL["disabled"])
        c_disabled_ink = ListProperty(NORMAL["disabled_ink"])
        c_warn = ListProperty(NORMAL["warn"])
        c_pill = ListProperty(NORMAL["pill"])
        c_tint = ListProperty(NORMAL["tint"])
        c_tint_ink = ListProperty(NORMAL["tint_ink"])
        c_shade = ListProperty(NORMAL["shade"])

        def build(self):
            self._redraw = Clock.create_trigger(self.refresh, 0)
            self._dump = Clock.create_trigger(lambda dt: self._dump_state(), 0.08)  # a few frames: the layout is done
            self.ctl = KioskController(cfg, post=lambda fn: Clock.schedule_once(lambda dt: fn()),
                                       changed=lambda: self._redraw(), deep_link=deep_link)
            self.ctl.vm.on_change = lambda: self._redraw()  # set_photos
            self._given_photos()
            self.photo_tex = PhotoTextures(lambda fn: Clock.schedule_once(lambda dt: fn()),
                                           loaded=self._photo_loaded, after_frame=self._after_frame)
            self._screens: dict[str, Widget] = {}  # built once per window (palette)
            self._pools: dict = {}  # widgets kept aside for reuse, by container
            self.root_w = None
            Window.clearcolor = self.c_paper  # the paper under every screen (screens.kv)
            self._new_root()
            self._shown = None  # (screen, view, lang flags) last drawn
            self._placed = None  # _place() of the screen last drawn
            self._screen_w = None
            self._shown_screen = None
            # once the attract screen is drawn: the next diner may tap within a second
            self._tidy_later = lambda: self._after_frame(self._tidy)
            self._tidied = 0  # orders tidied after (the state dump says, for bench/kiosk_ui.py)
            Window.bind(on_key_down=self._on_key)
            signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda dt: self.stop()))
            # systemd: READY after the first frame, the watchdog from the UI loop
            self.watchdog = ScreenWatchdog(self.ctl.health_check).attach(self)
            Clock.schedule_interval(lambda dt: self.ctl.tick(), 1.0)
            every = float(os.environ.get("RESTOBOX_SCREENSHOT_EVERY", "0") or 0)
            if every > 0:  # a picture of the screen for remote support and the demo
                Clock.schedule_interval(lambda dt: self.screenshot(str(shot_dir / "kiosk.png")), every)
            self.refresh()
            self.ctl.start()
            Clock.schedule_once(lambda dt: self._settle_memory(), 1.0)
            return self.root_w

        @staticmethod
        def _after_frame(fn) -> None:
            """``fn`` on the UI thread once the frame being made is drawn."""
            frame = Clock.frames_displayed

            def run(dt):
                if Clock.frames_displayed <= frame:
                    Clock.schedule_once(run, 0)
                else:
                    fn()
            Clock.schedule_once(run, 0)

        def _given_photos(self) -> None:
            """RESTOBOX_KIOSK_PHOTOS: these photos, and any the store delivers."""
            folder = os.environ.get("RESTOBOX_KIOSK_PHOTOS")
            if not folder:
                return
            given = {p.name: str(p) for p in sorted(Path(folder).iterdir()) if p.is_file()}
            vm = self.ctl.vm
            delivered = type(vm).set_photos
            vm.set_photos = lambda photos: delivered(vm, {**given, **photos})
            vm.set_photos({})

        @staticmethod
        def _settle_memory(freeze: bool = True) -> None:
            """After start-up (and once the screens are built ahead): what
            Kivy, the fonts, the menu and the screens made lives as long as
            the app. Freezing it keeps the garbage collector's full passes
            (measured at 26-221 ms, inside a diner's tap) to the objects of
            the current screen. Then the C heap's free pages go back to the
            system (about 3 MB after an order)."""
            gc.collect()
            if freeze:
                gc.freeze()
            trim_heap()

        def _tidy(self, dt=None) -> None:
            """Back on the attract screen after an order, while it still waits:
            the order's garbage collected and the heap trimmed."""
            if self.ctl.vm.screen == "attract" and self._warming is None:
                self._settle_memory(freeze=False)
                self._tidied += 1
                if state_file:
                    self._dump()

        def on_stop(self):
            self.photo_tex.stop()
            self.ctl.stop()

        # ------------------------------------------------------ input
        def _on_key(self, window, key, scancode, codepoint, modifiers):
            if key == 293:  # F12
                self.screenshot()
                return True
            return False

        # ---------------------------------------------------- drawing
        def _new_root(self) -> None:
            old, self.root_w = self.root_w, Factory.KioskRoot()
            self._still = self.root_w.ids.still.__self__  # a strong reference: it is off the tree when hidden
            ids = self.root_w.ids
            self._bar_w = {n: ids[n].__self__ for n in ("topbar", "reach_head", "content", "bottombar")}
            self._bars_on = None
            if old is not None:
                Window.remove_widget(old)
                Window.add_widget(self.root_w)
                self.root = self.root_w
                self._shown = None
            self._screens, self._pools, self._screen_w = {}, {}, None
            self._warming, self._warmed, self._warm_on, self._ahead = None, False, "attract", False
            self._warm_done: set[str] = set()  # screens built and drawn ahead
            self._filled: set[str] = set()  # screens filled once (shown, or with a preview)

        def _use_palette(self, high_contrast: bool) -> None:
            """Switch every colour. The window is built again: a rule on a base
            class (``<Label>: color: app.c_ink``) re-applied on a change would
            overwrite the colours the widgets set for themselves."""
            for role, value in (HIGH_CONTRAST if high_contrast else NORMAL).items():
                setattr(self, f"c_{role}", list(value))
            Window.clearcolor = self.c_paper  # the paper under every screen
            self.hc = high_contrast
            self._new_root()

        def _place_bars(self, chrome: bool, reach: bool) -> None:
            """Only the bars in use are in the window. A hidden widget is still
            drawn (a software renderer pays for it in every frame) and can
            still catch a touch."""
            on = (chrome and not reach, chrome and reach)
            if on == self._bars_on:
                return
            self._bars_on = on
            bars = self._bar_w
            box = bars["content"].parent
            box.clear_widgets()
            if on[0]:
                box.add_widget(bars["topbar"])
            if on[1]:
                box.add_widget(bars["reach_head"])
            box.add_widget(bars["content"])
            if on[1]:
                box.add_widget(bars["bottombar"])

        def refresh(self, *_):
            vm, ctl = self.ctl.vm, self.ctl
            if vm.high_contrast != self.hc:
                self._use_palette(vm.high_contrast)
            r = self.root_w
            self.text_scale = 1.2 if vm.large_text else 1.0
            self.reach = vm.reach
            chrome = vm.chrome()
            r.show_chrome = vm.screen != "attract"
            self._place_bars(r.show_chrome, vm.reach)
            r.lang_label, r.lang_target = chrome.language.label, chrome.language.id
            r.cancel_label = chrome.cancel.label if chrome.cancel else ""
            r.large_label, r.large_on = chrome.large_text.label, chrome.large_text.selected
            r.contrast_label, r.contrast_on = chrome.high_contrast.label, chrome.high_contrast.selected
            r.reach_label, r.reach_on = chrome.reach.label, chrome.reach.selected
            r.notice_text = ctl.current_notice() or ""
            if not ctl.has_menu:
                r.link_text = "" if ctl.link_up else "正在连接门店主机…  Connecting to the store…"
            elif not ctl.reachable:
                # still selling: orders wait in this kiosk's outbox
                r.link_text = "门店网络中断，订单先保存在本机  ·  Store network down: orders are kept on this kiosk"
            else:
                r.link_text = ""
            # for staff, on the attract screen only: never in a diner's way
            staff = ctl.staff.words() if ctl.staff is not None else None
            alerts, severity = alert_strip(ctl.alerts)
            attract = vm.screen == "attract"
            r.staff_text = f"{staff.zh}  ·  {staff.en}" if staff is not None and attract else ""
            r.staff_alert_text = alerts if attract else ""
            r.staff_severity = severity if attract else ""
            view = vm.view()
            r.head_title, r.head_price, r.head_info, r.head_warn = self._headline(vm.screen, view)
            key = (vm.screen, view, vm.lang, vm.large_text, vm.high_contrast, vm.reach)
            if key != self._shown:
                # the same list drawn again (an option ticked, a mode switched) stays
                # where the diner scrolled to: in reach mode a dish's choices scroll
                place = self._place(vm.screen, view)
                self._shown = key
                self._show(vm.screen, view)
                if place != self._placed:  # another list: from its top
                    self._placed = place
                    for sv in scroll_views(self._screen_w):
                        sv.scroll_y = 1
            ov = vm.overlay()
            still = self._still
            if ov is None:
                if still.parent is not None:  # hidden, it must not catch touches
                    r.remove_widget(still)
            else:
                if still.parent is None:
                    r.add_widget(still)
                still.ids.title.text, still.ids.text.text = ov.title, ov.text
                still.ids.yes.text, still.ids.yes.target = ov.yes.label, ov.yes.id
                still.ids.no.text, still.ids.no.target = ov.no.label, ov.no.id
            if vm.screen == "attract":
                self._ahead = False
                if not self._warmed:
                    self._warm_up()
            elif vm.screen == "service" and not self._ahead and self._warming is None and self._warmed:
                self._ahead = True
                self._fill_ahead()
            if vm.screen == "attract" and self._shown_screen not in (None, "attract"):
                self._tidy_later()  # an order ended (or was given up)
            self._shown_screen = vm.screen
            if state_file:
                self._dump()

        def _screen(self, screen: str):
            """The screen's widgets, built the first time."""
            w = self._screens.get(screen)
            if w is None:
                w = self._screens[screen] = getattr(Factory, f"{screen.capitalize()}Screen")()
                if state_file:  # where a list is scrolled to decides what is on the screen
                    for sv in scroll_views(w):
                        sv.fbind("scroll_y", lambda *_: self._dump())
            return w

        # ------------------------------------------------------ warm-up
        def _warm_up(self) -> None:
            """While the attract screen waits for a diner: build the screens
            a diner goes through, fill them with what they would first show
            (KioskViewModel.preview: the first category's tiles and photos, a
            dish's choices, a cart, the ways to pay), laid out at the size
            they are shown at, their texts drawn into textures. One small step
            a frame (WARM_SCREENS, WARM_LABELS); it stops as soon as someone
            orders (a tap never waits for more than one step) and goes on
            where it stopped on the next attract screen. A first visit then only
            fills in what differs (measured: service -> menu first 195 ms,
            menu -> item first 155, cart -> pay first 140; the screens
            visited again 60-110)."""
            if self._warming is None and self.ctl.has_menu and not self.ctl.vm.reach:
                self._warm_on = "attract"
                self._warming = self._warm_steps(WARM_SCREENS)
                self._after_frame(self._warm_step)  # the screen shown is drawn first

        def _fill_ahead(self) -> None:
            """On the service screen, the language chosen: the menu filled with
            what it will first show in that language (the first category;
            the last diner may have left another), its texts drawn, in the
            same small steps, stopped by a tap. service -> menu then only
            swaps the screens (it redrew every text: 110-135 ms)."""
            if self._warming is None and self._warmed and self.ctl.has_menu and not self.ctl.vm.reach:
                self._warm_on = self.ctl.vm.screen
                self._warming = self._warm_steps(("menu",), again=True)
                self._after_frame(self._warm_step)

        def _warm_step(self, dt=None) -> None:
            steps = self._warming
            if steps is None:
                return
            if self.ctl.vm.screen != self._warm_on or self.ctl.vm.reach:
                self._warming = None  # someone orders: never in their way (again on the next attract)
                return
            try:
                next(steps)
            except StopIteration:
                self._warming = None
                if self._warm_on == "attract":
                    self._warmed = True
                    Clock.schedule_once(lambda dt: self._settle_memory(), 0)
                return
            Clock.schedule_once(self._warm_step, 0)  # the next frame

        def _warm_steps(self, screens, again: bool = False):
            """The steps: build, fill with the preview (``again``: even a
            screen filled before), lay out, draw the texts."""
            vm = self.ctl.vm
            # where a screen stands under the top bar (screens.kv: topbar, content)
            size = (Window.width, Window.height - dp(TOPBAR_DP))
            for screen in screens:
                if screen in self._warm_done and not again:  # on an earlier attract screen (a diner came meanwhile)
                    continue
                w = self._screen(screen)
                if w.parent is None:
                    w.pos, w.size = (0, 0), size  # laid out now, not when first shown
                yield
                view = vm.preview(screen) if again or screen not in self._filled else None
                if view is not None:
                    self._filled.add(screen)
                    getattr(self, f"_fill_{screen}")(w, view)
                    yield  # laid out and the texts measured before the next frame
                    yield
                texs = [t for x in w.walk(restrict=True) for t in (
                    x.textures() if isinstance(x, ItemTileW) else [x.texture] if isinstance(x, Label) else [])
                    if t is not None]
                for i in range(0, len(texs), WARM_LABELS):
                    if w.parent is not None:  # shown meanwhile
                        break
                    for t in texs[i:i + WARM_LABELS]:
                        t.bind()  # the text drawn into its texture (Kivy does it when first drawn)
                    yield
                self._warm_done.add(screen)

        def _show(self, screen: str, v) -> None:
            """Bring the screen's widgets (built the first time) up to date and show them."""
            w = self._screen(screen)
            self._filled.add(screen)
            getattr(self, f"_fill_{screen}")(w, v)
            if w is not self._screen_w:
                host = self.root_w.ids.content
                host.clear_widgets()
                host.add_widget(w)
                self._screen_w = w
            if shown_log:
                log_shown(screen, Clock.frames_displayed)

        def _sync(self, box, specs) -> list:
            return sync_children(box, specs, self._pools)

        @staticmethod
        def _bspec(b, cls=None, fn=None, **kw):
            """A button of the view model as a widget spec (every property it shows)."""
            return (cls or KButton, {"text": esc(b.label), "target": b.id, "selected": b.selected,
                                     "disabled": not b.enabled, **kw}, fn)

        # ------------------------------------------------------ photos
        def _tile_px(self) -> tuple[int, int]:
            """A tile's photo in pixels (screens.kv: MenuScreen and ItemTileW)."""
            return int((Window.width - dp(84)) / 2), int(dp(PHOTO_DP))

        def _band_px(self) -> tuple[int, int]:
            return int(Window.width - dp(80)), int(dp(BAND_DP))

        def _photo_loaded(self, path: str) -> None:
            """A texture was made: the tiles showing that file get it."""
            w = self._screens.get("menu")
            if w is not None:
                for t in w.ids.grid.children:
                    if t.photo == path:
                        t.photo_tex = self.photo_tex.get(path, *self._tile_px())
            w = self._screens.get("item")
            if w is not None and w.ids.band.photo == path:
                w.ids.band.photo_tex = self.photo_tex.get(path, *self._band_px())
            if state_file:
                self._dump()

        # ------------------------------------------------------ screens
        def _fill_attract(self, w, v):
            w.ids.title.text = v.title
            w.ids.touch.text = v.touch
            w.ids.start.target = v.start.id
            self._sync(w.ids.langs, [self._bspec(b, bg=[1, 1, 1, 1], fg=[0.55, 0.1, 0.1, 1], base_font=38,
                                                 bold=True) for b in v.languages])

        def _fill_language(self, w, v):
            w.ids.title.text = v.title
            kw = {"bg": self.c_red, "fg": self.c_on_red} if self.hc else {}
            self._sync(w.ids.langs, [self._bspec(b, **kw) for b in v.languages])
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id

        def _fill_service(self, w, v):
            w.ids.title.text = v.title
            self._sync(w.ids.options, [self._bspec(b, cls=Factory.BigChoice) for b in v.options])
            w.ids.table_prompt.text = v.table_prompt or ""
            w.ids.table.text = v.table if v.table_prompt else ""
            w.ids.table_note.text = v.table_note or ""
            w.ids.table_box.opacity = 1 if v.table_prompt else 0
            w.ids.table_box.disabled = not v.table_prompt
            self._sync(w.ids.keypad, [self._bspec(b, cls=Factory.KeyButton) for b in v.keys])
            w.ids.next.text, w.ids.next.target, w.ids.next.disabled = v.next.label, v.next.id, not v.next.enabled
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id

        def _fill_menu(self, w, v):
            w.ids.title.text = v.title
            hc = self.hc
            tabs = []
            for c in v.categories:
                if hc:  # the chosen tab in yellow, not in its category's colour
                    bg, fg = (self.c_red, self.c_on_red) if c.selected else (self.c_card, self.c_ink)
                else:
                    bg = rgba(c.color) if c.selected else [1, 1, 1, 1]
                    fg = [1, 1, 1, 1] if c.selected else [0.13, 0.12, 0.12, 1]
                tabs.append((Factory.TabButton, {"text": esc(c.name), "target": c.tap, "selected": c.selected,
                                                 "bg": bg, "fg": fg}, None))
            self._sync(w.ids.tabs, tabs)
            px = self._tile_px()
            framed = any(it.photo for it in v.items)
            tiles = []
            for it in v.items:
                if hc:
                    bg = self.c_disabled if it.sold_out else self.c_card
                elif it.photo:  # the card under the photo
                    bg = [0.9, 0.9, 0.9, 1] if it.sold_out else list(self.c_card)
                else:
                    bg = [0.62, 0.62, 0.62, 1] if it.sold_out else rgba(it.color)
                tiles.append((ItemTileW, {
                    "item_id": it.id, "target": it.tap, "name_text": esc(it.name), "price_text": it.price,
                    "badge_text": it.badge or "", "sub_text": esc(it.allergens), "sold_out": it.sold_out, "bg": bg,
                    # the texture when it is made, else none: never the last item's picture
                    "photo": it.photo, "photo_tex": self.photo_tex.get(it.photo, *px), "with_photos": framed}, None))
            self._sync(w.ids.grid, tiles)
            w.ids.cart.text, w.ids.cart.target, w.ids.cart.disabled = (
                esc(v.cart.label), v.cart.id, not v.cart.enabled)
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id

        def _fill_item(self, w, v):
            w.ids.band.photo = v.photo
            w.ids.band.photo_tex = self.photo_tex.get(v.photo, *self._band_px())
            w.ids.name.text = esc(v.name)
            w.ids.description.text = esc(v.description)
            w.ids.allergens.text = f"▲ {esc(v.allergens)}" if v.allergens else ""
            w.ids.base_price.text = v.base_price

            def options(g):
                def fill(gw):
                    self._sync(gw.ids.options, [(OptionW, {
                        "target": o.tap, "name_text": esc(o.name), "delta_text": o.delta, "selected": o.selected,
                        "disabled": not o.enabled}, None) for o in g.options])
                return fill

            self._sync(w.ids.groups, [(GroupW, {
                "name_text": esc(g.name), "rule_text": g.rule, "error_text": g.error or "", "required": g.required},
                options(g)) for g in v.groups])
            w.ids.qty.text = str(v.qty)
            w.ids.minus.target, w.ids.minus.disabled = v.minus.id, not v.minus.enabled
            w.ids.plus.target, w.ids.plus.disabled = v.plus.id, not v.plus.enabled
            w.ids.add.text, w.ids.add.target = esc(v.add.label), v.add.id
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id

        def _fill_cart(self, w, v):
            w.ids.title.text = v.title
            w.ids.empty.text = v.empty or ""

            def buttons(ln):
                def fill(lw):
                    lw.ids.minus.target, lw.ids.minus.disabled = ln.minus.id, not ln.minus.enabled
                    lw.ids.plus.target, lw.ids.plus.disabled = ln.plus.id, not ln.plus.enabled
                    self._sync(lw.ids.actions, [self._bspec(a, cls=Factory.SmallButton) for a in ln.actions])
                return fill

            self._sync(w.ids.lines, [(CartLineW, {
                "name_text": esc(ln.name), "mods_text": esc(" · ".join(ln.modifiers)), "qty_text": str(ln.qty),
                "total_text": ln.line_total, "problem_text": esc(ln.problem or "")}, buttons(ln)) for ln in v.lines])
            w.ids.subtotal.text, w.ids.tax.text, w.ids.total.text = v.subtotal, v.tax, v.total
            w.ids.blocked.text = v.blocked or ""
            up = w.ids.upsell
            if v.upsell is not None:
                up.text, up.target, up.opacity, up.disabled = esc(v.upsell.label), v.upsell.id, 1, False
            else:  # its height follows its opacity (screens.kv)
                up.text, up.target, up.opacity, up.disabled = "", "", 0, True
            w.ids.checkout.text, w.ids.checkout.target = v.checkout.label, v.checkout.id
            w.ids.checkout.disabled = not v.checkout.enabled
            w.ids.more.text, w.ids.more.target = v.more.label, v.more.id

        def _fill_member(self, w, v):
            w.ids.title.text = v.title
            w.ids.prompt.text = v.prompt
            w.ids.phone.text = v.phone
            w.ids.balance.text = esc(v.balance or "")
            w.ids.message.text = esc(v.message or "")
            w.ids.total.text = v.total
            if v.phase == "entry":
                self._sync(w.ids.keypad, [self._bspec(b, cls=Factory.KeyButton) for b in v.keys])
                self._sync(w.ids.choices, [self._bspec(v.ok, cls=Factory.PrimaryButton)])
            else:
                self._sync(w.ids.keypad, [])
                # a row of its own, lower than a big choice (these widgets serve only here)
                self._sync(w.ids.choices, [
                    self._bspec(b, cls=cls, size_hint_x=share, size_hint_y=None, height=dp(150), base_font=font)
                    for b, cls, share, font in ((v.redeem, Factory.BigChoice, 0.7, 36),
                                                (v.change, Factory.SmallButton, 0.3, 24)) if b is not None])
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id
            w.ids.skip.text, w.ids.skip.target = v.skip.label, v.skip.id
            w.ids.go.text, w.ids.go.target, w.ids.go.disabled = v.go.label, v.go.id, not v.go.enabled

        def _fill_pay(self, w, v):
            w.ids.title.text = v.title
            w.ids.total.text = v.total
            w.ids.prompt.text = v.prompt if v.phase == "choose" else ""
            w.ids.message.text = esc(v.message or "")
            w.ids.spinner.spin(v.busy)
            self._sync(w.ids.methods, [self._bspec(b, cls=Factory.PayChoice) for b in v.methods])
            self._sync(w.ids.actions, [self._bspec(b, cls=Factory.SmallButton) for b in v.actions])
            back = w.ids.back
            if v.back is not None:
                back.text, back.target, back.opacity, back.disabled = v.back.label, v.back.id, 1, False
            else:
                back.text, back.target, back.opacity, back.disabled = "", "", 0, True

        def _fill_confirm(self, w, v):
            w.ids.title.text = v.title
            w.ids.label.text = v.label
            w.ids.number.text = v.number
            w.ids.note.text = v.note
            w.ids.payment.text = v.payment
            w.ids.total.text = v.total
            w.ids.points.text = esc(v.points or "")
            w.ids.done.text, w.ids.done.target = v.done.label, v.done.id

        def _fill_help(self, w, v):
            w.ids.title.text = v.title
            w.ids.message.text = esc(v.message)
            w.ids.reference.text = v.reference
            w.ids.done.text, w.ids.done.target = v.done.label, v.done.id

        @staticmethod
        def _place(screen: str, v) -> tuple:
            """Which list a screen shows: a dish's choices, a category's dishes, the cart."""
            if screen == "item":
                return screen, v.item_id
            if screen == "menu":
                return screen, next((c.id for c in v.categories if c.selected), None)
            return screen, None

        def _headline(self, screen: str, v) -> tuple[str, str, str, str]:
            """Reach mode: title, price, info and allergens for the top of the screen."""
            if screen == "item":
                allergens = f"▲ {esc(v.allergens)}" if v.allergens else ""
                return esc(v.name), v.base_price, esc(v.description), allergens
            if screen == "pay":
                return v.title, v.total, "", ""
            if screen == "menu":
                return v.title, "", esc(next((c.name for c in v.categories if c.selected), "")), ""
            return getattr(v, "title", ""), "", "", ""

        # ---------------------------------------------------- state file
        def _dump_state(self):
            buttons = {}
            clipped = set()  # scrolled out of sight: on the screen only after a swipe
            tight = set()  # text that does not fit its button
            scrolls = []
            for wdg in self.root_w.walk(restrict=True):
                if isinstance(wdg, ScrollView) and wdg.get_root_window() is not None:
                    scrolls.append(window_rect(wdg))
                if isinstance(wdg, KButton) and wdg.target and not wdg.disabled and wdg.opacity > 0 \
                        and wdg.get_root_window() is not None:
                    rect = window_rect(wdg)
                    if wdg.target not in buttons and not in_sight(wdg):
                        clipped.add(wdg.target)
                    if cramped(wdg):
                        tight.add(wdg.target)
                    buttons.setdefault(wdg.target, rect)
            r = self.root_w
            bars = {name: window_rect(r.ids[name]) for name in ("topbar", "reach_head", "bottombar")
                    if r.ids[name].parent is not None and r.ids[name].height > 0 and r.ids[name].opacity > 0}
            vm = self.ctl.vm
            write_state(state_file, {
                "screen": vm.screen, "lang": vm.lang, "menu": self.ctl.has_menu, "link": self.ctl.link_up,
                "notice": self.root_w.notice_text, "number": vm.number, "order_id": vm.order_id,
                "still_there": vm.still_there, "buttons": buttons, "at": time.time(), "tidied": self._tidied,
                "provisional": vm.provisional, "reachable": self.ctl.reachable,
                "member": vm.member_phase if vm.screen == "member" else None,
                # what the loyalty screens say (the tests check the number is masked)
                "texts": [wdg.text for wdg in self._screen_w.walk(restrict=True) if isinstance(wdg, Label)]
                if vm.screen in ("member", "pay", "confirm") else [],
                "staff": "\n".join(t for t in (self.root_w.staff_text, self.root_w.staff_alert_text) if t),
                "alerts": alert_rows(self.ctl.alerts),
                "large_text": vm.large_text, "high_contrast": vm.high_contrast, "reach": vm.reach,
                "clipped": sorted(clipped), "cramped": sorted(tight), "scrolls": scrolls, "bars": bars,
                # the menu's tiles as drawn: which dish, its price, its photo (and whether it is on the tile yet)
                "tiles": [{"item": t.item_id, "target": t.target, "name": t.name_text, "price": t.price_text,
                           "photo": t.photo, "photo_shown": t.photo_tex is not None,
                           "photo_rect": photo_rect(t, dp(PHOTO_DP)) if t.photo_tex is not None else None}
                          for t in reversed(self._screen_w.ids.grid.children)] if vm.screen == "menu" else [],
                "item": {"id": vm.editor.item_id if vm.editor else None, "name": self._screen_w.ids.name.text,
                         "price": self._screen_w.ids.base_price.text, "photo": self._screen_w.ids.band.photo,
                         "photo_shown": self._screen_w.ids.band.photo_tex is not None,
                         "photo_rect": photo_rect(self._screen_w.ids.band, self._screen_w.ids.band.height)
                         if self._screen_w.ids.band.photo_tex is not None and self._screen_w.ids.band.height
                         else None}
                if vm.screen == "item" else None,
                "photos": len(vm.photos), "photo_textures": len(self.photo_tex),
            })

    return KioskApp()
