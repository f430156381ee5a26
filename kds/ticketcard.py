"""The station screen's cards drawn by hand: a card part (TicketCard), an
all-day row (AllDayRow) and the grid of cards (CardGrid), each one widget
with no children and a canvas of its own, instead of a kv tree of layouts
and labels.

What a bump costs on the wall is mostly the cards that move: a card of
nested layouts laid every child out again (and each child's kv rules ran
again) when it only changed its place. This card keeps its texts as core
labels and its boxes in a few instructions; moving it sets the position of
each, once per frame (no layout, no rule, no text rendered), and a text is
rendered only when it changes. Its opaque boxes are the screen's box
layer's (kds.boxlayer), and so is its body (its text rendered on the paper,
drawn with blending off); the timers of all cards are one mesh of a texture
of their digits, drawn by the grid (no text rendered as they tick). What a
card does not show (the unpaid badge, the "cont'd" strip, the selection
frame) is not in its canvas at all.

It looks as the kv card did (station.kv's history): a header in the
ticket's colour (the number on the left, the timer over the service on the
right, the "未付 UNPAID" badge between them), the strip of a ticket going
on over more cards, then every line of the part in one markup text drawn
line by line (kds.cardkit.line_quads). For the state dump and taps it has
``ids.header``, ``ids.part`` and ``ids.body``: boxes in window coordinates
(the station's widgets are never transformed), the body with the text's
``refs`` and ``texture_size`` as a Label's."""

from __future__ import annotations

from kds.boxlayer import current_layer
from kds.cardkit import BACKDROP, PAPER, STRIP_DP, line_quads, nearest

SELECTED_RGBA = (1, 0.80, 0.10, 1)
STRIP_RGBA = (0.36, 0.25, 0.62, 1)
BODY_RGBA = (0.08, 0.08, 0.08, 1)
UNPAID_RGBA = (0.78, 0.10, 0.10, 1)

_CLASS = None


class Box:
    """A part of a card (header, strip, body): where it is, in window
    coordinates, with what kds.common.window_rect and a tap need."""

    __slots__ = ("x", "y", "width", "height", "refs", "texture_size")

    def __init__(self) -> None:
        self.x = self.y = self.width = self.height = 0.0
        self.refs: dict = {}
        self.texture_size = [0, 0]

    def set(self, x: float, y: float, w: float, h: float) -> None:
        self.x, self.y, self.width, self.height = x, y, w, h

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def top(self) -> float:
        return self.y + self.height

    @property
    def center_x(self) -> float:
        return self.x + self.width / 2.0

    @property
    def center_y(self) -> float:
        return self.y + self.height / 2.0

    def to_window(self, x, y, initial=True, relative=False):
        return x, y

    def collide_point(self, x, y) -> bool:
        return self.x <= x <= self.x + self.width and self.y <= y <= self.y + self.height


def ticket_card_class():
    """The TicketCard widget class (Kivy imported on the first call)."""
    return _classes()[0]


def all_day_row_class():
    """The AllDayRow widget class: one dish of the all-day panel."""
    return _classes()[1]


def _classes():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from kivy.clock import Clock
    from kivy.core.text import Label as CoreLabel
    from kivy.core.image import ImageData
    from kivy.core.text.markup import MarkupLabel as CoreMarkupLabel
    from kivy.factory import Factory
    from kivy.graphics import Color, InstructionGroup, Line, Mesh, Rectangle
    from kivy.metrics import dp, sp
    from kivy.properties import NumericProperty
    from kivy.uix.widget import Widget
    from kivy.utils import get_hex_from_color

    def on_paper(data):
        """A rendered text's pixels over the paper's colour (opaque)."""
        w, h = data.width, data.height
        if data.fmt != "rgba" or len(data.data) != w * h * 4:
            return data
        from PIL import Image

        text = Image.frombytes("RGBA", (w, h), bytes(data.data))
        paper = Image.new("RGB", (w, h), tuple(round(v * 255) for v in PAPER[:3]))
        paper.paste(text, (0, 0), text)  # the text over the paper by its alpha
        return ImageData(w, h, "rgba", paper.convert("RGBA").tobytes(), flip_vertical=data.flip_vertical)

    class OnPaper(CoreMarkupLabel):
        """A markup label rendered on the paper: an opaque texture, drawn
        with blending off (a blended text costs a software rasteriser about
        half as much again per pixel). Only for text that lies on the paper."""

        def _render_end(self):
            return on_paper(super()._render_end())

    class PlainOnPaper(CoreLabel):
        """A plain label rendered on the paper (see OnPaper)."""

        def _render_end(self):
            return on_paper(super()._render_end())

    class Text:
        """One text of a card: a core label rendered only when its text or
        its wrapping width changes, and the rectangle that draws it."""

        def __init__(self, markup: bool = False, colour=(1, 1, 1, 1), core=None, **options) -> None:
            self.markup = markup
            self.colour = colour
            options.setdefault("color", colour)
            self.core = (core or (CoreMarkupLabel if markup else CoreLabel))(**options)
            self.text = None
            self.usersize = (None, None)
            self.rect = Rectangle(size=(0, 0))
            self.size = (0, 0)

        def set(self, text: str, usersize=(None, None)) -> bool:
            """True when the texture's size changed (the card places it again)."""
            usersize = tuple(usersize)
            if text == self.text and usersize == self.usersize:
                return False
            self.text, self.usersize = text, usersize
            core = self.core
            core.usersize = usersize
            if not text:
                core.text = ""
                self.rect.texture = None
                old, self.size = self.size, (0, 0)
                return old != self.size
            # as kivy.uix.label.Label renders markup: its colour around it
            core.text = f"[color={get_hex_from_color(self.colour)}]{text}[/color]" if self.markup else text
            core.refresh()
            tex = core.texture
            if tex is not None and tex is not core.texture_1px:
                tex.bind()  # rendered now (and a markup label's refs made)
                nearest(tex)
                self.rect.texture = tex
                size = tuple(tex.size)
            else:
                self.rect.texture = None
                size = (0, 0)
            old, self.size = self.size, size
            return old != size

        def place(self, x: float, y: float) -> None:
            """The texture's bottom left corner at (x, y), whole pixels."""
            self.rect.pos = (int(x), int(y))
            self.rect.size = self.size

    class TicketCard(Widget):
        """One card part of a ticket on the station's grid; the app keeps a
        fixed set of these and moves them with their ticket (see
        kds.cardkit.place)."""

        def __init__(self, app, **kwargs) -> None:
            super().__init__(**kwargs)
            self.app = app
            self.ticket_id = ""
            self.key = None  # (ticket_id, part, parts) shown
            self.lines: list = []  # the item lines of this part
            self.selected = False
            self.number_text = self.timer_text = self.service_text = ""
            self.part_text = self.body_text = self.unpaid_text = ""
            self.header_rgba = (0.2, 0.5, 0.2, 1)
            self.body_h = 0.0
            self.ids = {"header": Box(), "part": Box(), "body": Box()}  # as a kv widget's ids
            self._number = Text(font_size=sp(40), bold=True, halign="left", valign="middle")
            self._unpaid = Text(font_size=sp(14), bold=True, colour=UNPAID_RGBA, halign="center", valign="middle")
            # the timer over the service; the timer's digits are drawn by the
            # grid, all cards' in one mesh (see Digits), the service here
            self._service = Text(font_size=sp(15), halign="right", valign="middle")
            self.timer_at = None  # (right, bottom) of the timer on screen
            self._timer_drawn = None  # the timer text the grid was last told of
            self._part = Text(font_size=sp(15), bold=True, halign="left", valign="middle",
                              padding=[dp(10), 0, dp(10), 0])
            self._body = Text(markup=True, core=OnPaper, colour=BODY_RGBA, font_size=sp(15), line_height=0.9,
                              halign="left", valign="top", padding=[dp(10), dp(6), dp(10), dp(6)])
            # its opaque boxes are the screen's box layer's (kds.boxlayer),
            # while the card is on the grid; its texts are drawn over them
            self._layer = current_layer()
            self._keys = {name: (id(self), name) for name in ("backdrop", "head", "badge", "strip")}
            self._texts = InstructionGroup()
            self._texts.add(Color(1, 1, 1, 1))
            for t in (self._number, self._service):
                self._texts.add(t.rect)
            # (a vertex instruction is added with its texture's binding: add,
            # never insert, or it is drawn with the texture bound before it)
            self._badge_slot, self._strip_slot = InstructionGroup(), InstructionGroup()
            self._texts.add(self._badge_slot)
            self._texts.add(self._strip_slot)
            # the body's lines: drawn with the screen's opaque boxes (OnPaper)
            self._mesh = Mesh(mode="triangles")
            if self._layer is None:  # no box layer: with the other texts
                self._texts.add(self._mesh)
            self._frame = InstructionGroup()
            self._frame.add(Color(*SELECTED_RGBA))
            self._frame_line = Line(points=[], close=True, width=dp(3))
            self._frame.add(self._frame_line)
            self._shown: dict[str, bool] = {}
            # laid out once per frame, before it is drawn, whatever moved or changed
            self._lay_soon = Clock.create_trigger(self._lay, -1)
            self.fbind("pos", self._lay_soon)
            self.fbind("parent", self._lay_soon)
            self.fbind("size", self._resized)

        # ----------------------------------------------------- content
        def blank(self) -> None:
            """An empty slot: the backdrop, nothing else."""
            if self.key is None:
                return
            self.ticket_id, self.key, self.selected, self.lines = "", None, False, []
            self.number_text = self.timer_text = self.service_text = ""
            self.part_text = self.body_text = self.unpaid_text = ""
            self.body_h = 0.0
            for t in (self._number, self._unpaid, self._service, self._part, self._body):
                t.set("")
            self._body_lines()
            self._lay_soon()

        def show(self, ticket_id: str, key, number_text: str, timer_text: str, service_text: str,
                 unpaid_text: str, selected: bool, header_rgba, part_text: str, body_h: float,
                 body_text: str, lines: list) -> None:
            """The card part's content; only the texts that changed are rendered again."""
            self.ticket_id, self.key, self.lines = ticket_id, key, lines
            self.number_text, self.timer_text, self.service_text = number_text, timer_text, service_text
            self.unpaid_text, self.selected, self.part_text = unpaid_text, selected, part_text
            self.body_h, self.body_text = body_h, body_text
            self.header_rgba = tuple(header_rgba)
            self._unpaid.set(unpaid_text)
            if self.timer_text != self._timer_drawn:
                self._timer_drawn = self.timer_text
                self._timers_moved()
            self._service.set(service_text)
            self._part.set(part_text)
            self._body_text()
            self._lay_soon()

        def _body_text(self) -> None:
            w = max(0.0, self.width - 2 * dp(4))
            self._body.set(self.body_text, (w, self.body_h or None) if self.body_text else (None, None))
            self._body_lines()

        def _body_lines(self) -> None:
            core = self._body.core
            b = self.ids.body
            b.refs = dict(core.refs) if self.body_text else {}
            b.texture_size = list(self._body.size)

        def _resized(self, *_) -> None:
            if self.key is not None:
                self._body_text()
            self._lay_soon()

        # ------------------------------------------------------ drawing
        def _show(self, name: str, on: bool) -> None:
            if self._shown.get(name, False) == on:
                return
            self._shown[name] = on
            group, where = {"texts": (self._texts, self.canvas),
                            "badge_text": (self._unpaid.rect, self._badge_slot),
                            "strip_text": (self._part.rect, self._strip_slot),
                            "frame": (self._frame, self.canvas.after)}[name]
            if on:
                where.add(group)
            else:
                where.remove(group)

        def _lay(self, *_) -> None:
            """Every instruction where the card now is (a move: positions only)."""
            x, y, w, h = self.x, self.y, self.width, self.height
            filled = self.key is not None
            box = self._box  # (a spare, off the grid, has none on the screen)
            if not filled:
                box("backdrop", ((x, y), (w, h), BACKDROP))
                for name in ("head", "badge", "strip"):
                    box(name, None)
                if self.timer_at is not None:
                    self.timer_at = None
                    self._timers_moved()
                for name in ("texts", "frame"):
                    self._show(name, False)
                self._show_body(False)
                return
            pad = dp(4)
            hx, hw, hh = x + pad, w - 2 * pad, dp(74)
            hy = y + h - pad - hh
            self.ids.header.set(hx, hy, hw, hh)
            box("backdrop", None)
            box("head", ((hx, hy), (hw, hh), self.header_rgba), 1)
            # the header's row: padding 10 / 4, the number, the badge, the timer
            ix, iw, cy = hx + dp(10), hw - 2 * dp(10), hy + hh / 2.0
            unpaid = bool(self.unpaid_text)
            provisional = " · " in self.number_text
            badge_w = dp(62) if unpaid else 0
            if unpaid and not provisional:
                # only as wide as the number: the timer and service keep the rest
                self._number.set(self.number_text)
                num_w = self._number.size[0] + dp(8)
            else:
                num_w = (iw - badge_w) / 2.0
                self._number.set(self.number_text, (num_w, None) if provisional else (None, None))
            tim_x = ix + num_w + badge_w
            tim_w = iw - num_w - badge_w
            self._number.place(ix, cy - self._number.size[1] / 2.0)
            # as one text of two lines, right aligned, in the middle of the header
            digits = _digits()
            h1, h2 = digits.height, self._service.size[1]
            top = int(cy - (h1 + h2) / 2.0) + h1 + h2
            right = tim_x + tim_w
            timer_at = (int(right - digits.width(self.timer_text)), top - h1)
            if timer_at != self.timer_at:
                self.timer_at = timer_at
                self._timers_moved()
            self._service.place(right - self._service.size[0], top - h1 - h2)
            self._show("badge_text", unpaid)
            box("badge", None)
            if unpaid:
                bx, th = ix + num_w, self._unpaid.size[1]
                box("badge", ((bx, cy - th / 2.0 - dp(4)), (badge_w, th + dp(8)), (1, 1, 1, 1)), 2)
                self._unpaid.place(bx + badge_w / 2.0 - self._unpaid.size[0] / 2.0, cy - th / 2.0)
            top = hy
            strip = bool(self.part_text)
            self._show("strip_text", strip)
            box("strip", None)
            if strip:
                sh = dp(STRIP_DP)
                top -= sh
                self.ids.part.set(hx, top, hw, sh)
                box("strip", ((hx, top), (hw, sh), STRIP_RGBA), 1)
                self._part.place(hx, top + sh / 2.0 - self._part.size[1] / 2.0)
            else:
                self.ids.part.set(hx, top, hw, 0)
            body = self.ids.body
            body.set(hx, top - self.body_h, hw, self.body_h)
            self._lay_body()
            self._show_body(bool(self.body_text))
            self._show("texts", True)
            self._show("frame", self.selected)
            if self.selected:
                d = dp(2)
                self._frame_line.points = [x + d, y + d, x + w - d, y + d, x + w - d, y + h - d, x + d, y + h - d]

        def _box(self, name: str, spec, z: int = 0) -> None:
            """One of the card's opaque boxes: ``(pos, size, rgba)``, or None."""
            layer = self._layer
            if layer is None:
                return
            if spec is None or self.parent is None:
                layer.drop(self._keys[name])
            else:
                layer.set(self._keys[name], *spec, z)

        def _show_body(self, on: bool) -> None:
            if self._layer is not None:
                self._layer.show_opaque(self._mesh, on and self.parent is not None)

        def _timers_moved(self) -> None:
            grid = self.parent
            if grid is not None and hasattr(grid, "timers_soon"):
                grid.timers_soon()

        def _lay_body(self) -> None:
            tex = self._body.rect.texture
            if tex is None or not self.body_text:
                self._mesh.vertices, self._mesh.indices = [], []
                return
            b = self.ids.body
            tw, th = tex.size
            bx = int(b.center_x - tw / 2.0)
            top = int(b.center_y - th / 2.0) + th
            vs, idx = line_quads(self._body.core._cached_lines, tw, th, bx, top)
            self._mesh.texture = tex
            self._mesh.vertices, self._mesh.indices = vs, idx

        # -------------------------------------------------------- touch
        def on_touch_down(self, touch):
            if not self.collide_point(*touch.pos):
                return False
            if self.ticket_id:
                touch.ud["card"] = self.ticket_id
            return True  # an empty slot takes its taps too (as a disabled card did)

        def on_touch_up(self, touch):
            if not self.ticket_id or touch.ud.get("card") != self.ticket_id or not self.collide_point(*touch.pos):
                return False
            ids = self.ids
            if ids.header.collide_point(*touch.pos) or (self.part_text and ids.part.collide_point(*touch.pos)):
                self.app.bump(self.ticket_id)
                return True
            line = self.line_at(*touch.pos)
            if line is not None:
                self.app.bump_item(self.ticket_id, line)
                return True
            self.app.select(self.ticket_id)
            return True

        def line_at(self, x, y):
            from kds.cardkit import ref_boxes

            for name, (x0, y0, x1, y1) in ref_boxes(self.ids.body).items():
                if name.startswith("L") and y0 <= y <= y1 and self.x <= x <= self.right:
                    return int(name[1:].split("~")[0])
            return None

    class AllDayRow(Widget):
        """One dish on the all-day panel: its count, right aligned in a
        column of its own, drawn as quads of the digits rendered once
        (all_day_digits), and its names wrapped beside it. A row keeps its
        dish while shown, so a bump renders no text (a count is quads); a
        row that moves only changes its position. The panel is on the paper:
        both are drawn with the screen's opaque boxes (blended, the panel's
        rows cost the rasteriser over twice as much)."""

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.key = None  # (name_zh, name_en)
            self.qty = 0
            self.name = ""
            self._layer = current_layer()
            self._name = Text(markup=True, core=OnPaper if self._layer is not None else None, colour=BODY_RGBA,
                              font_size=sp(15), halign="left", valign="top")
            self._count = Mesh(mode="triangles")
            if self._layer is None:
                self.canvas.add(Color(1, 1, 1, 1))
                self.canvas.add(self._count)
                self.canvas.add(self._name.rect)
            self._lay_soon = Clock.create_trigger(self._lay, -1)
            self.fbind("pos", self._lay_soon)
            self.fbind("size", self._lay_soon)
            self.fbind("parent", self._lay_soon)

        def set(self, qty: int, name: str) -> None:
            if (qty, name) != (self.qty, self.name):
                self.qty, self.name = qty, name
                self._lay_soon()

        @staticmethod
        def column() -> float:
            """The width of the counts' column, left of the names."""
            return all_day_digits().column

        @staticmethod
        def height_for(name_h: float, line_h: float) -> float:
            """A row's height for names ``name_h`` tall in lines ``line_h`` tall."""
            digits = all_day_digits()
            return max(digits.height, (digits.height - line_h) / 2.0 + name_h)

        def _lay(self, *_) -> None:
            digits = all_day_digits()
            col = digits.column
            self._name.set(self.name, (max(1, self.width - col), None))
            top = self.top
            # the names' first line centred on the count
            line_h = self._name.core._cached_lines[0].h if self.name and self._name.core._cached_lines else 0
            self._name.place(self.x + col, top - max(0.0, (digits.height - line_h) / 2.0) - self._name.size[1])
            vs: list = []
            idx: list = []
            text = str(self.qty) if self.name else ""
            gap = dp(8)
            # (a count of four digits or more starts at the row's left edge)
            cx = max(self.x, self.x + col - gap - digits.width(text))
            digits.quads(text, int(cx), int(top - digits.height), vs, idx)
            self._count.texture = digits.texture
            self._count.vertices, self._count.indices = vs, idx
            if self._layer is not None:
                shown = self.parent is not None and bool(self.name)
                self._layer.show_opaque(self._count, shown)
                self._layer.show_opaque(self._name.rect, shown)

    class Digits:
        """The timers' characters ("0"-"9", ":"), bold 26 sp, rendered once
        into one texture: a timer is a few quads of it, so the timers that
        change every second render no text, and all of a page's timers are
        one mesh (one draw)."""

        CHARS = "0123456789:"

        def __init__(self, font_size=None, colour=(1, 1, 1, 1), core=None) -> None:
            core = (core or CoreLabel)(text=self.CHARS, font_size=font_size or sp(26), bold=True, color=colour)
            core.refresh()
            tex = core.texture
            tex.bind()
            nearest(tex)
            self.texture = tex
            self.height = tex.height
            xs = [0] + [core.get_extents(self.CHARS[:k + 1])[0] for k in range(len(self.CHARS))]
            self.box = {c: (xs[k], xs[k + 1]) for k, c in enumerate(self.CHARS)}

        def width(self, text: str) -> int:
            return sum(self.box[c][1] - self.box[c][0] for c in text if c in self.box)

        def quads(self, text: str, x: float, y: float, vs: list, idx: list) -> None:
            """``text`` with its bottom left corner at (x, y), as quads of the texture."""
            tw, th = self.texture.size
            for c in text:
                if c not in self.box:
                    continue
                x0, x1 = self.box[c]
                w = x1 - x0
                n = len(vs) // 4
                u0, u1 = x0 / tw, x1 / tw
                vs += [x, y, u0, 1.0, x + w, y, u1, 1.0, x + w, y + th, u1, 0.0, x, y + th, u0, 0.0]
                idx += [n, n + 1, n + 2, n, n + 2, n + 3]
                x += w

    _DIGITS = []

    def _digits() -> Digits:
        if not _DIGITS:
            _DIGITS.append(Digits())
        return _DIGITS[0]

    _ALLDAY_DIGITS = []

    def all_day_digits() -> Digits:
        """The all-day counts' digits: bold 22 sp on the paper; ``column``
        is the count's column (three digits and a gap)."""
        if not _ALLDAY_DIGITS:
            d = Digits(sp(22), BODY_RGBA, PlainOnPaper)
            d.column = d.width("888") + dp(12)
            _ALLDAY_DIGITS.append(d)
        return _ALLDAY_DIGITS[0]

    class CardGrid(Widget):
        """The station's cards in ``cols`` x ``rows`` slots, in the order of
        its children (as a GridLayout of cards sized by hint), laid out
        before the frame or at once with :meth:`lay` (the app does after
        placing the cards, so a card that moved is laid out once)."""

        cols = NumericProperty(1)
        rows = NumericProperty(1)
        spacing = NumericProperty(0)

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            trigger = Clock.create_trigger(self.lay, -1)
            for name in ("pos", "size", "cols", "rows", "spacing", "children"):
                self.fbind(name, trigger)
            self.timers_soon = Clock.create_trigger(self._draw_timers, -1)
            self.fbind("children", self.timers_soon)
            self._layer = current_layer()  # the gaps between the cards: backdrop
            with self.canvas.after:
                Color(1, 1, 1, 1)
                self._timers = Mesh(mode="triangles")

        def _draw_timers(self, *_) -> None:
            """Every card's timer, in one mesh of the digits' texture."""
            digits = _digits()
            vs: list = []
            idx: list = []
            for c in self.children:
                at = getattr(c, "timer_at", None)
                if at is not None and c.timer_text:
                    digits.quads(c.timer_text, at[0], at[1], vs, idx)
            self._timers.texture = digits.texture
            self._timers.vertices, self._timers.indices = vs, idx

        def lay(self, *_) -> None:
            cols, rows, sp = max(1, int(self.cols or 1)), max(1, int(self.rows or 1)), self.spacing
            cw = (self.width - sp * (cols - 1)) / cols
            ch = (self.height - sp * (rows - 1)) / rows
            x0, top = self.x, self.top
            for k, c in enumerate(reversed(self.children)):
                col, row = k % cols, k // cols
                c.pos = (x0 + col * (cw + sp), top - (row + 1) * ch - row * sp)
                c.size = (cw, ch)
            if self._layer is not None:
                gaps = [((x0 + k * (cw + sp) - sp, self.y), (sp, self.height)) for k in range(1, cols)]
                gaps += [((x0, self.y + k * (ch + sp) - sp), (self.width, sp)) for k in range(1, rows)]
                for k in range(16):
                    key = (id(self), "gap", k)
                    if k < len(gaps):
                        self._layer.set(key, *gaps[k], BACKDROP)
                    else:
                        self._layer.drop(key)

    Factory.register("CardGrid", cls=CardGrid)
    _CLASS = (TicketCard, AllDayRow)
    return _CLASS

