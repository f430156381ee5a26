"""A window without a depth or a stencil buffer, for screens that use
neither (the kitchen screens).

Kivy asks SDL for a 16-bit depth and an 8-bit stencil buffer before it
creates its window, and on X the GL driver then gives it a visual with
24-bit depth and 8-bit stencil. Mesa's software rasteriser (llvmpipe: a
Pi's X desktop without its GPU driver, or Xvfb) draws into a frame buffer
without depth and stencil on its much faster "linear" path, and its clear
and swap touch a third of the memory. Measured on the station screen with
324 tickets: a drawn frame 41 → 19 ms p50, an empty redraw 20 → 4.5 ms
(docs/performance.md, Kitchen screen, "Eighth pass").

SDL creates its X window with the visual named in
``SDL_VIDEO_X11_WINDOW_VISUALID``, and its GL 2 context from that visual.
:func:`use_plain_visual` finds the X server's double-buffered 8-bit RGBA
visual whose GLX config has no depth, stencil, accumulation buffer or
multisampling, and names it there, before Kivy opens the window. Nothing
changes where there is no X display (a Pi drawing through KMS or Wayland),
no such visual, or when ``RESTOBOX_GL_VISUAL=default`` (Kivy's own choice,
for comparison or for a driver that draws it wrong); a visual named in
``SDL_VIDEO_X11_WINDOW_VISUALID`` already is kept.

A screen that clips with a StencilView or a ScrollView (the kiosk's lists)
needs the stencil buffer and must not use this.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass

log = logging.getLogger("restobox.glvisual")

SDL_VISUAL_ENV = "SDL_VIDEO_X11_WINDOW_VISUALID"
CHOICE_ENV = "RESTOBOX_GL_VISUAL"  # "default": leave the visual to Kivy and SDL

# GLX attribute numbers (GL/glx.h, GL/glxext.h)
_GLX = {"use_gl": 1, "rgba": 4, "double": 5, "red": 8, "green": 9, "blue": 10, "alpha": 11,
        "depth": 12, "stencil": 13, "accum_red": 14, "caveat": 0x20, "sample_buffers": 100000}
_TRUE_COLOR = 4  # X.h
_VISUAL_SCREEN_MASK = 0x2  # Xutil.h VisualScreenMask
_GLX_NONE = 0x8000  # GLX_NONE: no caveat


class _XVisualInfo(ctypes.Structure):
    _fields_ = [("visual", ctypes.c_void_p), ("visualid", ctypes.c_ulong), ("screen", ctypes.c_int),
                ("depth", ctypes.c_int), ("c_class", ctypes.c_int), ("red_mask", ctypes.c_ulong),
                ("green_mask", ctypes.c_ulong), ("blue_mask", ctypes.c_ulong),
                ("colormap_size", ctypes.c_int), ("bits_per_rgb", ctypes.c_int)]


@dataclass(frozen=True)
class Visual:
    visual_id: int
    attrs: dict[str, int]

    @property
    def hex_id(self) -> str:
        return hex(self.visual_id)


def _libs():
    # the sonames SDL itself loads (no ldconfig run to find them)
    x11 = ctypes.CDLL("libX11.so.6")
    gl = ctypes.CDLL("libGL.so.1")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultScreen.argtypes = [ctypes.c_void_p]
    x11.XGetVisualInfo.restype = ctypes.POINTER(_XVisualInfo)
    x11.XGetVisualInfo.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.POINTER(_XVisualInfo),
                                   ctypes.POINTER(ctypes.c_int)]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    gl.glXQueryExtension.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    gl.glXGetConfig.argtypes = [ctypes.c_void_p, ctypes.POINTER(_XVisualInfo), ctypes.c_int,
                                ctypes.POINTER(ctypes.c_int)]
    return x11, gl


def visuals(display: str | None = None) -> list[Visual]:
    """Every visual of the display's default screen that GL can draw to,
    with its GLX attributes; [] when the display cannot be opened or has
    no GLX."""
    x11, gl = _libs()
    dpy = x11.XOpenDisplay(display.encode() if display else None)
    if not dpy:
        return []
    try:
        dummy = ctypes.c_int()
        if not gl.glXQueryExtension(dpy, ctypes.byref(dummy), ctypes.byref(dummy)):
            return []
        template = _XVisualInfo(screen=x11.XDefaultScreen(dpy))
        n = ctypes.c_int()
        found = x11.XGetVisualInfo(dpy, _VISUAL_SCREEN_MASK, ctypes.byref(template), ctypes.byref(n))
        if not found:
            return []
        try:
            out = []
            for i in range(n.value):
                info = found[i]
                attrs = {"class": info.c_class, "x_depth": info.depth}
                for name, number in _GLX.items():
                    value = ctypes.c_int()
                    # GLX_BAD_ATTRIBUTE for what the driver does not know: read as 0
                    value.value = 0 if name != "caveat" else _GLX_NONE
                    gl.glXGetConfig(dpy, ctypes.byref(info), number, ctypes.byref(value))
                    attrs[name] = value.value
                if attrs["use_gl"]:
                    out.append(Visual(info.visualid, attrs))
            return out
        finally:
            x11.XFree(found)
    finally:
        x11.XCloseDisplay(dpy)


def plain(v: Visual) -> bool:
    """Double-buffered 8-bit RGBA on a true-colour X visual, and nothing else:
    no depth, no stencil, no accumulation buffer, no multisampling, no caveat."""
    a = v.attrs
    return (a["class"] == _TRUE_COLOR and a["x_depth"] == 24 and a["rgba"] == 1 and a["double"] == 1
            and (a["red"], a["green"], a["blue"], a["alpha"]) == (8, 8, 8, 8)
            and a["depth"] == 0 and a["stencil"] == 0 and a["accum_red"] == 0
            and a["sample_buffers"] == 0 and a["caveat"] in (0, _GLX_NONE))


def find_plain_visual(display: str | None = None) -> Visual | None:
    """The first plain visual (:func:`plain`) of the display, or None."""
    return next((v for v in visuals(display) if plain(v)), None)


def use_plain_visual() -> str:
    """Before Kivy opens its window: have SDL create it with a plain visual
    (no depth, no stencil) where there is one. Returns what was done, for
    the log; never raises (the window then opens as Kivy makes it)."""
    if os.environ.get(CHOICE_ENV, "").strip().lower() == "default":
        return f"window visual: Kivy's own ({CHOICE_ENV}=default)"
    if os.environ.get(SDL_VISUAL_ENV):
        return f"window visual: {os.environ[SDL_VISUAL_ENV]} ({SDL_VISUAL_ENV} set already)"
    if not os.environ.get("DISPLAY"):
        return "window visual: no X display, left to SDL"
    try:
        v = find_plain_visual()
    except OSError as exc:  # no libX11 or libGL to ask: SDL will not find them either
        return f"window visual: left to SDL (cannot ask the X server: {exc})"
    if v is None:
        return f"window visual: none without depth and stencil on {os.environ['DISPLAY']}; Kivy's own"
    os.environ[SDL_VISUAL_ENV] = v.hex_id
    return f"window visual: {v.hex_id}, without depth and stencil buffers"


def buffer_bits() -> dict[str, int]:
    """The depth and stencil bits of the current GL context's window (after
    Kivy opened it): 0 and 0 with a plain visual."""
    from kivy.graphics import opengl as gl

    return {"depth_bits": int(gl.glGetIntegerv(gl.GL_DEPTH_BITS)[0]),
            "stencil_bits": int(gl.glGetIntegerv(gl.GL_STENCIL_BITS)[0])}
