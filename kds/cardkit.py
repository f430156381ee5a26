"""What the station and expo screens' cards share: a card part's text as
markup blocks (one ref each, so a touch finds its line and the state dump
finds where each line is drawn), measuring blocks with the real fonts,
cutting a ticket into card parts that fit, fitting the grid to the display,
and moving card widgets with their ticket part instead of refilling them.

The markup helpers are plain Python; the others import Kivy when called."""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Blocks are joined by a newline in the small size: a newline takes the size
# of the text around it and sets the height of the line it starts. (No
# spacer line of its own size: every size of the font is another copy of
# the font in memory.)
JOIN = "[size=15sp]\n[/size]"
STRIP_DP = 30
"""Height of the "cont'd" strip of a card part of a longer ticket."""

# The smallest card a cook reads from a step away (dp); a small display shows
# fewer columns or rows than configured rather than cards too small to hold a dish.
MIN_CARD_W = 230
MIN_CARD_H = 400


def esc(s: str) -> str:
    """Text for a Kivy markup label."""
    return s.replace("&", "&amp;").replace("[", "&bl;").replace("]", "&br;")


def block(ref: str, rows: Sequence[str], done: bool = False) -> str:
    """Rows as one block, a ref. Every row but the first starts with its
    newline (inside its own size, if it has one)."""
    text = "".join(rows)
    if text.startswith("\n"):  # a block's first row starts no new line
        text = text[1:]
    elif rows and rows[0].startswith("[size=") and "]\n" in rows[0][:14]:
        text = text.replace("\n", "", 1)
    if done:
        text = f"[color=#8c8c8c]{text}[/color]"
    return f"[ref={ref}]{text}[/ref]"


def cut(blocks: Sequence[tuple[str, object, Sequence[str], bool, str]], measure: Callable[[str], float],
        room: float) -> list[list[tuple[str, object]]]:
    """Blocks ``(markup, key, rows, done, cont)`` of one ticket cut into card
    parts ``[[(markup, key), ...], ...]`` for a body ``room`` tall: all on
    one card when they fit; otherwise the parts (each with its "cont'd"
    strip) filled in order. A block that fits a card is never cut; a taller
    one is cut between its rows (``ref``, ``ref~2``, ... each piece after
    the first opening with ``cont``); one row taller than a card still has a
    piece of its own."""
    whole = [(markup, key) for markup, key, *_ in blocks]
    if sum(measure(m) for m, _ in whole) <= room:
        return [whole]
    fit = room - _dp(STRIP_DP)
    parts: list[list[tuple[str, object]]] = [[]]
    used = 0.0
    for markup, key, rows, done, cont in blocks:
        h = measure(markup)
        if used + h > fit and h <= fit and parts[-1]:  # whole, on the next card
            parts.append([])
            used = 0.0
        if h <= fit:
            parts[-1].append((markup, key))
            used += h
            continue
        ref = markup[5:markup.index("]")]
        k, piece, content = 1, [], 0
        for row in rows:
            name = ref if k == 1 else f"{ref}~{k}"
            if used + measure(block(name, piece + [row], done)) > fit and (content or used):
                if content:
                    parts[-1].append((block(name, piece, done), key))
                    k += 1
                parts.append([])
                used = 0.0
                piece, content = ([cont] if cont and k > 1 else []), 0
            piece.append(row)
            content += 1
        last = block(ref if k == 1 else f"{ref}~{k}", piece, done)
        parts[-1].append((last, key))
        used += measure(last)
    return [p for p in parts if p]


def body_height(heights: Sequence[float], padding: float, room: float, step: float = 48) -> float:
    """A card body's height for blocks of ``heights``: the text's, rounded up
    to ``step`` (so its texture is reused as the text changes), at most
    ``room``."""
    if not heights:
        return 0.0
    need = sum(heights) + padding
    return min(room, -(-need // step) * step)


def part_text(k: int, n: int) -> str:
    """The strip of card part ``k`` (from 0) of ``n``."""
    return f"续 cont'd {k + 1}/{n}" + ("  ▶" if k + 1 < n else "") if n > 1 else ""


def nearest(texture) -> None:
    """Sample a text texture drawn at its own size on whole pixels nearest,
    not linear: the same pixels, and cheaper for a software rasteriser
    (both filters: a texture whose two filters differ costs more than
    either)."""
    if texture is not None:
        texture.mag_filter = "nearest"
        texture.min_filter = "nearest"


def _dp(v: float) -> float:
    from kivy.metrics import dp

    return dp(v)


class Measure:
    """Heights of markup blocks at a width, from the text layout alone (no
    texture), as the card's body label lays them out; bounded."""

    LIMIT = 4000

    def __init__(self, font_size: float, line_height: float = 1.0) -> None:
        self.font_size = font_size
        self.line_height = line_height
        self.cache: dict[tuple[str, int], float] = {}

    def __call__(self, markup: str, width: int) -> float:
        from kivy.core.text.markup import MarkupLabel

        # a block's ref names its ticket line and draws nothing: the same
        # dish on another line or ticket is the same height (300 tickets
        # from the cache measure a few dozen different blocks, not 1,300)
        key = (markup[markup.index("]"):] if markup.startswith("[ref=") else markup, width)
        h = self.cache.get(key)
        if h is None:
            lbl = MarkupLabel(text=markup, font_size=self.font_size, text_size=(width, None),
                              halign="left", valign="top", line_height=self.line_height)
            lbl.resolve_font_name()
            h = lbl.render()[1]
            if len(self.cache) >= self.LIMIT:
                # the oldest quarter goes, not all: a full clear had the next
                # bump lay out every block on the page again
                for k in list(self.cache)[:self.LIMIT // 4]:
                    del self.cache[k]
            self.cache[key] = h
        return h


def ref_boxes(label) -> dict[str, tuple[float, float, float, float]]:
    """name -> (x0, y0, x1, y1) of each ref of a markup label, in window
    coordinates (Kivy's: origin bottom left)."""
    tw, th = label.texture_size
    left = label.center_x - tw / 2.0
    top = label.center_y + th / 2.0
    out = {}
    for name, zones in label.refs.items():
        x0 = min(z[0] for z in zones)
        x1 = max(z[2] for z in zones)
        y_top = min(z[1] for z in zones)
        y_bottom = max(z[3] for z in zones)
        wx0, wy0 = label.to_window(left + x0, top - y_bottom)
        wx1, wy1 = label.to_window(left + x1, top - y_top)
        out[name] = (wx0, wy0, wx1, wy1)
    return out


def lines_report(card, label) -> list[dict]:
    """For the state dump: each ref of ``label`` with its rect (window
    pixels, origin top left) and whether it lies wholly inside ``card`` and
    the window."""
    from kivy.core.window import Window

    from kds.common import window_rect

    x0, y0, w, h = window_rect(card)
    x1, y1 = x0 + w, y0 + h
    out = []
    for name, (bx0, by0, bx1, by1) in ref_boxes(label).items():
        top, bottom = Window.height - by1, Window.height - by0
        inside = (x0 <= bx0 and bx1 <= x1 + 1 and y0 <= top and bottom <= y1 + 1
                  and 0 <= top and bottom <= Window.height)
        out.append({"ref": name, "rect": [bx0, top, bx1 - bx0, bottom - top], "inside": inside})
    out.sort(key=lambda d: d["rect"][1])
    return out


def anchors_report(card, label) -> list[dict]:
    """For the state dump: each anchor of ``label`` (the start of a line)
    with whether it lies inside ``card`` and the window."""
    from kivy.core.window import Window

    tw, th = label.texture_size
    left = label.center_x - tw / 2.0
    top = label.center_y + th / 2.0
    cx, cy = card.to_window(card.x, card.y)
    out = []
    for name, (ax, ay) in label.anchors.items():
        wx, wy = label.to_window(left + ax, top - ay)
        inside = (cx <= wx <= cx + card.width and cy <= wy <= cy + card.height
                  and 0 <= wx <= Window.width and 0 <= wy <= Window.height)
        out.append({"anchor": name, "pos": [wx, Window.height - wy], "inside": inside})
    out.sort(key=lambda d: d["pos"][1])
    return out


def fit_grid(grid, columns: int, rows: int, chrome_h: float, chrome_w: float):
    """(columns, rows, body width, body height) of the cards that fit the
    grid: at most the configured columns and rows, none smaller than
    MIN_CARD_W x MIN_CARD_H; ``chrome_*`` is what a card gives to its
    padding, header and footer."""
    from kivy.metrics import dp

    sp = grid.spacing[1] if isinstance(grid.spacing, (list, tuple)) else grid.spacing
    cols = max(1, min(columns, int((grid.width + sp) // (dp(MIN_CARD_W) + sp))))
    rws = max(1, min(rows, int((grid.height + sp) // (dp(MIN_CARD_H) + sp))))
    card_w = (grid.width - sp * (cols - 1)) / cols
    card_h = (grid.height - sp * (rws - 1)) / rws
    return cols, rws, int(card_w - chrome_w), card_h - chrome_h


def resize_cards(app, grid, columns: int, rows: int, chrome_h: float, chrome_w: float) -> bool:
    """Fit ``app``'s card grid (its ``card_box``, ``slots``, the root's
    ``columns`` and ``rows`` and the view model's page size) to ``grid``'s
    size (see fit_grid). False when nothing changed; else the caller
    refreshes."""
    cols, rws, width, height = fit_grid(grid, columns, rows, chrome_h, chrome_w)
    box, root = (width, height), app.root_w
    if width <= 0 or height <= 0 or (box, cols, rws) == (app.card_box, root.columns, root.rows):
        return False
    app.card_box = box
    if (cols, rws) != (root.columns, root.rows):
        app.slots = cols * rws
        grid.clear_widgets()  # the refresh puts back as many cards as fit
        root.columns, root.rows = cols, rws
        app.ctl.vm.set_page_size(app.slots)
    return True


PAPER = (0.98, 0.98, 0.96, 1)
BACKDROP = (0.05, 0.06, 0.07, 1)

_LINES = None


def line_quads(lines, tw: int, th: int, x: float, top: float) -> tuple[list[float], list[int]]:
    """A mesh's vertices and indices drawing, of a text texture ``tw`` x
    ``th`` whose top left corner goes at (``x``, ``top``) (window
    coordinates), only its laid-out ``lines`` (Kivy's LayoutLine: ``x``,
    ``y`` from the top, ``w``, ``h``): a quad per line as wide as its text
    (and a pixel either side for overhanging glyphs), from its top to the
    next line's. Texture coordinates for Kivy's text textures (row 0 at the
    top)."""
    vs: list[float] = []
    idx: list[int] = []
    rows = [(ln.x, ln.y, ln.w, ln.h) for ln in lines if ln.w > 0 and ln.h > 0]
    for k, (lx, ly, lw, lh) in enumerate(rows):
        x0 = max(0, int(lx) - 1)
        x1 = min(tw, int(lx + lw) + 2)
        y0 = max(0, int(ly))
        y1 = min(th, int(rows[k + 1][1]) if k + 1 < len(rows) else int(ly + lh) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        u0, u1, v0, v1 = x0 / tw, x1 / tw, y0 / th, y1 / th
        n = len(vs) // 4
        vs += [x + x0, top - y1, u0, v1, x + x1, top - y1, u1, v1,
               x + x1, top - y0, u1, v0, x + x0, top - y0, u0, v0]
        idx += [n, n + 1, n + 2, n, n + 2, n + 3]
    return vs, idx


def register_lines_label():
    """``LinesLabel`` (for .kv files too): a label (markup, refs, anchors,
    texture as any Label's) that draws of its texture only its lines, each
    as wide as its text, in one mesh. A software rasteriser pays for every
    pixel of a quad, blank or not; the text of a card body covers well
    under half of its box."""
    global _LINES
    if _LINES is not None:
        return _LINES
    from kivy.factory import Factory
    from kivy.graphics import Color, Mesh
    from kivy.lang import Builder
    from kivy.uix.label import Label

    # "<-": none of Label's rules (its rectangle); the class draws itself.
    # (A Clear here would also wipe what __init__ drew: kv applies a
    # child's class rules after creating it.)
    Builder.load_string("<-LinesLabel>:\n    halign: 'left'\n")

    class LinesLabel(Label):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.canvas:
                self._tint = Color(1, 1, 1, 1)
                self._mesh = Mesh(mode="triangles")
            self.fbind("texture", self._lay)
            self.fbind("pos", self._lay)
            self.fbind("size", self._lay)
            self._lay()

        def _lay(self, *_):
            tex = self.texture
            if tex is None or not self.text:
                self._mesh.vertices, self._mesh.indices = [], []
                return
            tw, th = tex.size
            # where Label's own rule draws the texture
            x = int(self.center_x - tw / 2.0)
            top = int(self.center_y - th / 2.0) + th
            vs, idx = line_quads(self._label._cached_lines, tw, th, x, top)
            self._mesh.texture = tex
            self._mesh.vertices, self._mesh.indices = vs, idx

    Factory.register("LinesLabel", cls=LinesLabel)
    _LINES = LinesLabel
    return LinesLabel


def place(grid, cards: list, parts: list, slots: int, fill) -> list:
    """Put ``parts`` ``[(key, *data)]`` on ``cards`` in order, the first
    ``slots`` of them on ``grid``. A card keeps its part (and its text's
    texture) while the part stays on screen, only moving in the grid; a part
    already drawn on a card off the grid (see place_ahead) moves onto it
    with its texture; ``fill(card, key, *data)`` updates a card (``key``
    None: blank). Returns the cards left off the grid, their text kept."""
    parts = parts[:slots]
    want = {p[0] for p in parts}
    by_key = {c.key: c for c in cards if c.key in want}
    on_grid = set(grid.children)
    # a new part takes a card freed on the grid before a card drawn ahead
    free = sorted((c for c in cards if c.key not in want), key=lambda c: c not in on_grid)
    order = []
    for key, *data in parts:
        card = by_key.get(key) or free.pop(0)
        fill(card, key, *data)
        order.append(card)
    blanks = free[:max(0, slots - len(order))]
    for card in blanks:
        fill(card, None)
    order += blanks
    if list(reversed(grid.children)) != order:
        grid.clear_widgets()
        for card in order:
            grid.add_widget(card)
    return free[len(blanks):]


def place_ahead(spares: list, parts: list, fill, size) -> None:
    """Draw the parts that come onto the page next (``[(key, *data)]``, at
    most one per card) on ``spares``, cards off the grid, at the grid's card
    ``size``: their text is rendered now, in a frame that draws nothing,
    and a bump only moves them in (see place). A spare already holding one
    of the parts keeps it."""
    parts = parts[:len(spares)]
    want = {p[0] for p in parts}
    by_key = {c.key: c for c in spares if c.key in want}
    free = [c for c in spares if c.key not in want]
    for key, *data in parts:
        card = by_key.get(key) or free.pop(0)
        card.size = size
        fill(card, key, *data)
