"""All of the station screen's opaque boxes (headers, bars, backdrop, the
cont'd strips, badges) in one mesh, drawn first, with blending off.

A clear of a scissor box per box (the earlier ``Solid``) is cheap to fill,
but each one costs Mesa's software rasteriser about 0.12 ms on the UI thread
(a clear inside a scissor is drawn as a quad of its own, with its own
state), and the station had about 35 of them in every frame. Here each box
is a quad of one mesh whose texture is a row of colours (a palette, one
texel per colour, sampled nearest at its centre): one draw for all of them.
Opaque, so blending is off for it (a blended quad costs the rasteriser more
per pixel). Nothing on the screen is under a box (each was its widget's
``canvas.before``), so drawing them all first draws the same picture.

``Opaque`` is the kv instruction (``pos``, ``size``, ``rgba``, ``z``) of a box of a
widget that is always on the screen; the cards set their boxes themselves
while they are on the grid (kds.ticketcard)."""

from __future__ import annotations

_LAYER = []
_OPAQUE = None

PALETTE = 64  # colours (texels) in the palette row


def current_layer():
    """The box layer of the screen being built (see BoxLayer.install)."""
    return _LAYER[-1] if _LAYER else None


class BoxLayer:
    def __init__(self) -> None:
        from kivy.clock import Clock
        from kivy.graphics import Callback, Color, InstructionGroup, Mesh
        from kivy.graphics import opengl as gl
        from kivy.graphics.texture import Texture

        self.boxes: dict = {}  # key -> (z, x0, y0, x1, y1, colour index)
        self.colours: dict = {}  # rgba bytes -> palette index
        self._index: dict = {}  # rgba as given -> palette index (the bytes computed once)
        self.texture = Texture.create(size=(PALETTE, 1), colorfmt="rgba")
        self.texture.mag_filter = self.texture.min_filter = "nearest"
        self._pixels = bytearray(PALETTE * 4)
        self.group = InstructionGroup()
        self.group.add(Callback(lambda instr: gl.glDisable(gl.GL_BLEND)))
        self.group.add(Color(1, 1, 1, 1))
        self.mesh = Mesh(mode="triangles", texture=self.texture)
        self.group.add(self.mesh)
        # opaque texts (the cards' bodies: their text on the paper, see
        # kds.ticketcard), drawn here too, with blending off
        self.opaque = InstructionGroup()
        self.group.add(self.opaque)
        self.group.add(Callback(lambda instr: gl.glEnable(gl.GL_BLEND)))
        self._build_soon = Clock.create_trigger(self._build, -1)

    def make_current(self) -> None:
        """The screen's ``Opaque`` instructions made from now on go here."""
        _LAYER.append(self)

    def attach(self, canvas) -> None:
        """Draw the boxes first in ``canvas`` (the root's ``canvas.before``)."""
        canvas.insert(0, self.group)

    def uninstall(self) -> None:
        if self in _LAYER:
            _LAYER.remove(self)

    def set(self, key, pos, size, rgba, z: int = 0) -> None:
        """Box ``key`` at ``pos``, ``size`` (window pixels) in ``rgba``;
        none when its alpha is 0 or it is empty. ``z``: boxes of a higher z
        are drawn over those of a lower one."""
        x, y = pos
        w, h = size
        x0, y0, x1, y1 = round(x), round(y), round(x + w), round(y + h)
        if rgba[3] <= 0 or x1 <= x0 or y1 <= y0:
            self.drop(key)
            return
        box = (z, x0, y0, x1, y1, self._colour(rgba))
        if self.boxes.get(key) != box:
            self.boxes[key] = box
            self._build_soon()

    def show_opaque(self, instruction, on: bool) -> None:
        """Draw ``instruction`` (opaque: every pixel it covers is drawn
        over, nothing shows through) with the boxes, blending off."""
        shown = self.opaque.indexof(instruction) >= 0
        if on and not shown:
            self.opaque.add(instruction)
        elif shown and not on:
            self.opaque.remove(instruction)

    def drop(self, key) -> None:
        if self.boxes.pop(key, None) is not None:
            self._build_soon()

    def _colour(self, rgba) -> int:
        key = tuple(rgba)
        k = self._index.get(key)
        if k is not None:
            return k
        b = bytes(max(0, min(255, round(v * 255))) for v in (rgba[0], rgba[1], rgba[2], 1.0))
        k = self.colours.get(b)
        if k is None:
            if len(self.colours) >= PALETTE:  # a screen uses about ten; start over if ever full
                self.colours.clear()
                self._index.clear()
                self.boxes.clear()
            k = self.colours[b] = len(self.colours)
            self._pixels[4 * k:4 * k + 4] = b
            self.texture.blit_buffer(bytes(self._pixels), colorfmt="rgba", bufferfmt="ubyte")
        if len(self._index) >= 4 * PALETTE:  # bounded, whatever colours come
            self._index.clear()
        self._index[key] = k
        return k

    def _build(self, *_) -> None:
        vs: list[float] = []
        idx: list[int] = []
        for z, x0, y0, x1, y1, k in sorted(self.boxes.values(), key=lambda b: b[0]):
            u = (k + 0.5) / PALETTE
            n = len(vs) // 4
            vs += [x0, y0, u, 0.5, x1, y0, u, 0.5, x1, y1, u, 0.5, x0, y1, u, 0.5]
            idx += [n, n + 1, n + 2, n, n + 2, n + 3]
        self.mesh.vertices, self.mesh.indices = vs, idx


def register_opaque():
    """The ``Opaque`` instruction (for .kv files): a box (``pos``, ``size``,
    ``rgba``) of the current BoxLayer; it draws nothing itself."""
    global _OPAQUE
    if _OPAQUE is not None:
        return _OPAQUE
    from kivy.factory import Factory
    from kivy.graphics import InstructionGroup

    def box_property(name: str, convert=tuple):
        """A box's ``name``: each set keeps the value and updates the layer."""
        attr = "_" + name

        def put(self, value):
            setattr(self, attr, convert(value))
            self._update()

        return property(lambda self: getattr(self, attr), put)

    class Opaque(InstructionGroup):
        pos = box_property("pos")
        size = box_property("size")
        rgba = box_property("rgba")
        z = box_property("z", int)

        def __init__(self, **kwargs):
            super().__init__()
            self._layer = current_layer()
            self._pos, self._size, self._rgba, self._z = (0, 0), (0, 0), (1, 1, 1, 1), 0
            for k, v in kwargs.items():
                setattr(self, k, v)
            self._update()

        def _update(self):
            if self._layer is not None:
                self._layer.set(id(self), self._pos, self._size, self._rgba, self._z)

    Factory.register("Opaque", cls=Opaque)
    _OPAQUE = Opaque
    return Opaque
