"""Draw the sample menu's photos (restobox/data/menu_images/, 640x480 JPEG).

    python -m restobox.data.draw_menu_images [--out DIR] [--only ID,ID]

Every dish is drawn with Pillow from shapes (no photo is downloaded): a
plate, bowl, tray or glass on a table, the food as many small pieces in the
dish's own colours, glossy sauce and garnish, drawn at twice the size and
reduced for smooth edges. Random placement is seeded by the item's id, so a
run draws the same pictures again.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
W, H = 640, 480
S = 2  # drawn at twice the size
CW, CH = W * S, H * S


def rgb(h) -> tuple[int, int, int]:
    if isinstance(h, tuple):
        return h[:3]
    h = h.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def shade(c, f: float):
    c = rgb(c) if isinstance(c, str) else c
    if f >= 0:
        return tuple(int(v + (255 - v) * f) for v in c)
    return tuple(int(v * (1 + f)) for v in c)


def jitter(c, r: random.Random, amt: float = 0.12):
    return shade(c, r.uniform(-amt, amt))


class Canvas:
    def __init__(self, rng: random.Random, table: str = "wood") -> None:
        self.r = rng
        self.im = Image.new("RGB", (CW, CH))
        self.table(table)

    # ----------------------------------------------------------- the table
    def table(self, kind: str) -> None:
        r = self.r
        d = ImageDraw.Draw(self.im)
        base = {"wood": "#8a5a36", "dark": "#3b3430", "slate": "#4a4f55", "cafe": "#c9b49a",
                "red": "#7a2a22", "tray": "#8a5a36"}[kind]
        d.rectangle((0, 0, CW, CH), fill=rgb(base))
        if kind in ("wood", "red", "tray", "cafe"):
            y = 0
            while y < CH:
                h = r.randint(6, 26)
                d.rectangle((0, y, CW, y + h), fill=jitter(base, r, 0.10))
                y += h
            for _ in range(60):
                y = r.randint(0, CH)
                d.line((0, y, CW, y + r.randint(-30, 30)), fill=shade(base, -0.25), width=r.randint(1, 3))
            if kind != "cafe":
                for x in (r.randint(CW // 5, CW // 3), r.randint(2 * CW // 3, 4 * CW // 5)):
                    d.line((0, x, CW, x + 8), fill=shade(base, -0.45), width=5)
        else:
            for _ in range(3000):
                x, y = r.randint(0, CW), r.randint(0, CH)
                d.point((x, y), fill=jitter(base, r, 0.15))
        self.im = self.im.filter(ImageFilter.GaussianBlur(2))
        # light from the top left
        light = Image.radial_gradient("L").resize((CW * 2, CH * 2))
        light = light.crop((CW // 2, CH // 2, CW // 2 + CW, CH // 2 + CH))
        dark = Image.new("RGB", (CW, CH), (0, 0, 0))
        self.im = Image.composite(dark, self.im, light.point(lambda v: int(v * 0.55)))

    # ------------------------------------------------------------- helpers
    def layer(self):
        lay = Image.new("RGBA", (CW, CH), (0, 0, 0, 0))
        return lay, ImageDraw.Draw(lay)

    def put(self, lay, blur: float = 0.0) -> None:
        if blur:
            lay = lay.filter(ImageFilter.GaussianBlur(blur))
        self.im.paste(lay, (0, 0), lay)

    def shadow(self, box, blur=30, alpha=130, dx=18, dy=26) -> None:
        lay, d = self.layer()
        x0, y0, x1, y1 = box
        d.ellipse((x0 + dx, y0 + dy, x1 + dx, y1 + dy), fill=(0, 0, 0, alpha))
        self.put(lay, blur)

    def inside(self, cx, cy, rx, ry):
        while True:
            a = self.r.uniform(0, 2 * math.pi)
            t = math.sqrt(self.r.uniform(0, 1))
            yield cx + math.cos(a) * rx * t, cy + math.sin(a) * ry * t

    # -------------------------------------------------------------- dishes
    def plate(self, cx, cy, rx, ry, color="#f4f1ea", rim="#ffffff", well=0.78):
        self.shadow((cx - rx, cy - ry, cx + rx, cy + ry))
        lay, d = self.layer()
        d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=rgb(shade(color, -0.12)))
        d.ellipse((cx - rx + 6, cy - ry + 4, cx + rx - 6, cy + ry - 8), fill=rgb(rim))
        wx, wy = rx * well, ry * well
        d.ellipse((cx - wx, cy - wy, cx + wx, cy + wy), fill=rgb(shade(color, -0.06)))
        d.ellipse((cx - wx + 8, cy - wy + 10, cx + wx - 4, cy + wy - 2), fill=rgb(color))
        self.put(lay, 1.5)
        return wx, wy

    def bowl(self, cx, cy, rx, ry, color="#f7f5f0", inner="#e9e4da", band=None):
        self.shadow((cx - rx, cy - ry, cx + rx, cy + ry), blur=34, alpha=150)
        lay, d = self.layer()
        d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=rgb(shade(color, -0.18)))
        d.ellipse((cx - rx + 5, cy - ry + 3, cx + rx - 5, cy + ry - 9), fill=rgb(color))
        if band:
            bw = rx * 0.05
            d.ellipse((cx - rx + bw * 1.4, cy - ry + bw * 1.2, cx + rx - bw * 1.4, cy + ry - bw * 1.6),
                      outline=rgb(band), width=int(bw * 0.6))
        ix, iy = rx * 0.84, ry * 0.84
        d.ellipse((cx - ix, cy - iy, cx + ix, cy + iy), fill=rgb(inner))
        self.put(lay, 1.5)
        return ix, iy

    def pool(self, cx, cy, rx, ry, color, gloss=True, blur=6, spots=True):
        lay, d = self.layer()
        d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=rgb(color) + (255,))
        self.put(lay, blur)
        lay, d = self.layer()
        for _ in range(int(rx * ry / 900) if spots else 0):
            x, y = next(self.inside(cx, cy, rx * 0.95, ry * 0.95))
            s = self.r.uniform(6, 22)
            d.ellipse((x - s, y - s * 0.7, x + s, y + s * 0.7), fill=jitter(color, self.r, 0.12) + (150,))
        self.put(lay, 5)
        if gloss:
            self.gloss(cx, cy, rx, ry, n=int(rx / 25))

    def gloss(self, cx, cy, rx, ry, n=12, alpha=150):
        lay, d = self.layer()
        for _ in range(n):
            x, y = next(self.inside(cx - rx * 0.1, cy - ry * 0.1, rx * 0.85, ry * 0.85))
            s = self.r.uniform(3, 9)
            d.ellipse((x - s * 1.8, y - s, x + s * 1.8, y + s), fill=(255, 255, 255, alpha))
        self.put(lay, 2)

    def pieces(self, cx, cy, rx, ry, n, colors, size=(20, 34), shape="chunk", outline=-0.3, hl=0.25,
               blur=0.8, squash=0.8):
        lay, d = self.layer()
        it = self.inside(cx, cy, rx, ry)
        for _ in range(n):
            x, y = next(it)
            col = jitter(self.r.choice(colors), self.r, 0.1)
            s = self.r.uniform(*size)
            a0 = self.r.uniform(0, math.pi)
            if shape == "chunk":
                k = self.r.randint(5, 8)
                pts = [(x + math.cos(a0 + 2 * math.pi * i / k) * s * self.r.uniform(0.7, 1.1),
                        y + math.sin(a0 + 2 * math.pi * i / k) * s * squash * self.r.uniform(0.7, 1.1))
                       for i in range(k)]
                d.polygon(pts, fill=shade(col, outline) + (255,))
                inner = [(x + (px - x) * 0.82 - s * 0.05, y + (py - y) * 0.82 - s * 0.06) for px, py in pts]
                d.polygon(inner, fill=col + (255,))
                d.ellipse((x - s * 0.45, y - s * 0.45, x - s * 0.05, y - s * 0.2), fill=shade(col, hl) + (200,))
            elif shape == "oval":
                d.ellipse((x - s, y - s * squash, x + s, y + s * squash), fill=shade(col, outline) + (255,))
                d.ellipse((x - s * 0.88, y - s * squash * 0.9, x + s * 0.85, y + s * squash * 0.8), fill=col + (255,))
                d.ellipse((x - s * 0.5, y - s * 0.5 * squash, x - s * 0.1, y - s * 0.15 * squash),
                          fill=shade(col, hl) + (220,))
            elif shape == "strip":
                dx, dy = math.cos(a0) * s, math.sin(a0) * s
                w = max(4, int(s * 0.28))
                d.line((x - dx, y - dy, x + dx, y + dy), fill=shade(col, outline) + (255,), width=w + 4)
                d.line((x - dx, y - dy, x + dx, y + dy), fill=col + (255,), width=w)
                d.line((x - dx * 0.7, y - dy * 0.7 - w * 0.2, x + dx * 0.2, y + dy * 0.2 - w * 0.2),
                       fill=shade(col, hl) + (170,), width=max(2, w // 3))
            elif shape == "ring":  # scallion or squid rings
                d.ellipse((x - s, y - s * squash, x + s, y + s * squash), outline=col + (255,), width=max(3, int(s * 0.35)))
            elif shape == "dot":
                d.ellipse((x - s, y - s * squash, x + s, y + s * squash), fill=col + (255,))
            elif shape == "grain":
                dx, dy = math.cos(a0) * s, math.sin(a0) * s * 0.5
                d.line((x - dx, y - dy, x + dx, y + dy), fill=col + (255,), width=int(s * 0.9))
            elif shape == "leaf":
                pts = [(x + math.cos(a0) * s, y + math.sin(a0) * s),
                       (x + math.cos(a0 + 1.9) * s * 0.45, y + math.sin(a0 + 1.9) * s * 0.45),
                       (x - math.cos(a0) * s, y - math.sin(a0) * s),
                       (x + math.cos(a0 - 1.2) * s * 0.45, y + math.sin(a0 - 1.2) * s * 0.45)]
                d.polygon(pts, fill=col + (255,))
            elif shape == "chilli":
                dx, dy = math.cos(a0) * s, math.sin(a0) * s
                d.line((x - dx, y - dy, x + dx, y + dy), fill=col + (255,), width=int(s * 0.35))
                d.ellipse((x - dx - 4, y - dy - 4, x - dx + 4, y - dy + 4), fill=(60, 120, 40, 255))
        self.put(lay, blur)

    def noodles(self, cx, cy, rx, ry, color, n=60, width=9):
        lay, d = self.layer()
        it = self.inside(cx, cy, rx * 0.85, ry * 0.85)
        for _ in range(n):
            x, y = next(it)
            a = self.r.uniform(0, 2 * math.pi)
            pts = []
            L = self.r.uniform(rx * 0.4, rx * 1.0)
            amp = self.r.uniform(8, 26)
            for i in range(24):
                t = i / 23
                px = x + math.cos(a) * (t - 0.5) * L - math.sin(a) * math.sin(t * 9 + a) * amp
                py = y + (math.sin(a) * (t - 0.5) * L + math.cos(a) * math.sin(t * 9 + a) * amp) * 0.8
                if ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 <= 0.97:
                    pts.append((px, py))
                elif len(pts) > 1:
                    break
            if len(pts) > 1:
                c = jitter(color, self.r, 0.08)
                d.line(pts, fill=shade(c, -0.25) + (255,), width=width + 3, joint="curve")
                d.line(pts, fill=c + (255,), width=width, joint="curve")
                d.line([(px - 2, py - 2) for px, py in pts], fill=shade(c, 0.35) + (160,), width=max(2, width // 3))
        self.put(lay, 0.8)

    def glass(self, cx, base_y, w, h, liquid, fill=0.85, ice=True, straw="#e53935", pearls=False, foam=None,
              top=None, lemon=False):
        top_y = base_y - h
        tw, bw = w, w * 0.82
        self.shadow((cx - bw * 0.6, base_y - 20, cx + bw * 0.6 + 40, base_y + 30), blur=22, alpha=120, dx=30, dy=0)
        body = [(cx - tw / 2, top_y), (cx + tw / 2, top_y), (cx + bw / 2, base_y), (cx - bw / 2, base_y)]
        lay, d = self.layer()
        d.polygon(body, fill=(255, 255, 255, 45))
        self.put(lay)
        lay, d = self.layer()
        # liquid
        ly = base_y - h * fill
        frac = (ly - top_y) / h
        lw = tw - (tw - bw) * frac
        liq = [(cx - lw / 2, ly), (cx + lw / 2, ly), (cx + bw / 2, base_y - 10), (cx - bw / 2, base_y - 10)]
        d.polygon(liq, fill=rgb(liquid) + (245,))
        for i in range(12):  # darker at the bottom
            t = i / 12
            yy = ly + (base_y - 10 - ly) * t
            ww = lw - (lw - bw) * t
            d.line((cx - ww / 2 + 4, yy, cx + ww / 2 - 4, yy), fill=shade(liquid, -0.25 * t) + (120,), width=int(h / 12))
        if pearls:
            for _ in range(34):
                px = self.r.uniform(cx - bw / 2 + 16, cx + bw / 2 - 16)
                py = self.r.uniform(base_y - 90, base_y - 26)
                d.ellipse((px - 13, py - 13, px + 13, py + 13), fill=(45, 28, 22, 255))
                d.ellipse((px - 7, py - 9, px - 1, py - 3), fill=(150, 120, 110, 200))
        if foam:
            d.ellipse((cx - lw / 2, ly - 16, cx + lw / 2, ly + 18), fill=rgb(foam) + (255,))
        else:
            d.ellipse((cx - lw / 2, ly - 10, cx + lw / 2, ly + 10), fill=shade(liquid, 0.15) + (255,))
        if ice:
            for _ in range(4):
                ix = self.r.uniform(cx - lw / 2 + 40, cx + lw / 2 - 40)
                iy = ly + self.r.uniform(-6, 70)
                s = self.r.uniform(30, 44)
                d.rounded_rectangle((ix - s, iy - s * 0.8, ix + s, iy + s * 0.8), radius=10,
                                    fill=shade(liquid, 0.55) + (150,), outline=(255, 255, 255, 180), width=3)
        if lemon:
            for k in range(2):
                lx, lyy = cx - lw * 0.18 + k * lw * 0.3, ly + 40 + k * 70
                d.ellipse((lx - 46, lyy - 46, lx + 46, lyy + 46), fill=(250, 214, 50, 235))
                d.ellipse((lx - 38, lyy - 38, lx + 38, lyy + 38), fill=(252, 238, 140, 235))
                for j in range(8):
                    a = j * math.pi / 4
                    d.line((lx, lyy, lx + math.cos(a) * 36, lyy + math.sin(a) * 36), fill=(250, 214, 50, 235), width=3)
        if top:
            top(d, cx, ly, lw)
        if straw:
            sx0, sy0 = cx + lw * 0.12, base_y - 60
            sx1, sy1 = cx + lw * 0.42, top_y - h * 0.28
            d.line((sx0, sy0, sx1, sy1), fill=rgb(straw) + (255,), width=22)
            d.line((sx0 - 6, sy0, sx1 - 6, sy1), fill=shade(straw, 0.35) + (255,), width=5)
        self.put(lay, 1.0)
        # the glass itself
        lay, d = self.layer()
        d.line(body + [body[0]], fill=(255, 255, 255, 170), width=5)
        d.ellipse((cx - tw / 2, top_y - 16, cx + tw / 2, top_y + 16), outline=(255, 255, 255, 200), width=5)
        d.line((cx - tw / 2 + 30, top_y + 30, cx - bw / 2 + 26, base_y - 30), fill=(255, 255, 255, 130), width=14)
        d.rectangle((cx - bw / 2, base_y - 12, cx + bw / 2, base_y), fill=(255, 255, 255, 90))
        self.put(lay, 1.0)

    def finish(self, zoom: float = 1.0) -> Image.Image:
        # a close-up, as food is photographed: the dish fills the frame
        cw, ch = CW / zoom, CH / zoom
        box = ((CW - cw) / 2, (CH - ch) / 2, (CW + cw) / 2, (CH + ch) / 2)
        im = self.im.resize((W, H), Image.Resampling.LANCZOS, box=box)
        # warm and a little contrast: food looks better in warm light
        warm = Image.new("RGB", (W, H), (255, 200, 140))
        im = Image.blend(im, ImageChops.multiply(im, warm), 0.12)
        return im.filter(ImageFilter.UnsharpMask(radius=1.2, percent=60, threshold=2))


# ============================================================ the recipes
CX, CY = CW // 2, CH // 2 + 10


def stir_fry(c: Canvas, main, sauce, extras=(), plate="#f4f1ea", n=70, size=(20, 34), shape="chunk", garnish=(),
             hl=0.25):
    wx, wy = c.plate(CX, CY, 520, 400, color=plate)
    c.pool(CX, CY, wx * 0.8, wy * 0.78, sauce)
    k = 1.5
    c.pieces(CX, CY, wx * 0.7, wy * 0.68, int(n * 1.6), main, size=(size[0] * k, size[1] * k), shape=shape,
             hl=hl)
    for colors, count, sz, shp in extras:
        c.pieces(CX, CY, wx * 0.7, wy * 0.68, int(count * 1.3), colors, size=(sz[0] * 1.3, sz[1] * 1.3), shape=shp)
    c.gloss(CX, CY, wx * 0.7, wy * 0.68, n=26, alpha=120)
    for colors, count, sz, shp in garnish:
        c.pieces(CX, CY, wx * 0.7, wy * 0.68, count, colors, size=sz, shape=shp)


def kung_pao(c):
    stir_fry(c, ["#c8743a", "#d98b4a", "#b5652e"], "#a8321e",
             extras=[(["#d9a066", "#e2b07a"], 40, (11, 15), "oval"),  # peanuts
                     (["#b71c1c", "#8e1a12"], 22, (20, 34), "chilli"),
                     (["#e9e2c8"], 14, (8, 12), "chunk")],  # scallion whites
             garnish=[(["#4caf50", "#66bb6a"], 26, (7, 11), "ring")])


def yuxiang_pork(c):
    stir_fry(c, ["#c0603a", "#b5532e"], "#b4361f", shape="strip", n=130, size=(26, 46),
             extras=[(["#3e2a1e", "#4e342e"], 40, (24, 40), "strip"),  # wood ear
                     (["#f08a3a"], 40, (22, 38), "strip"),  # carrot
                     (["#7cb342"], 30, (22, 36), "strip")],
             garnish=[(["#4caf50"], 16, (7, 10), "ring")])


def mapo_tofu(c):
    ix, iy = c.bowl(CX, CY, 500, 390, color="#2b2b2b", inner="#3a1a12")
    c.pool(CX, CY, ix, iy, "#b3261e", blur=5)
    c.pieces(CX, CY, ix * 0.85, iy * 0.85, 60, ["#f6ecd6", "#f1e4c8"], size=(30, 40), shape="chunk", outline=-0.08,
             hl=0.3, squash=0.95)
    c.pieces(CX, CY, ix * 0.85, iy * 0.85, 60, ["#7a3b1e", "#5d2c16"], size=(5, 10), shape="chunk")  # minced beef
    c.gloss(CX, CY, ix * 0.8, iy * 0.8, n=30)
    c.pieces(CX, CY, ix * 0.7, iy * 0.7, 40, ["#43a047", "#66bb6a"], size=(7, 11), shape="ring")
    c.pieces(CX, CY, ix * 0.8, iy * 0.8, 160, ["#2a1a12"], size=(2, 4), shape="dot")  # Sichuan pepper


def twice_cooked(c):
    stir_fry(c, ["#e8c7a6", "#d6a57a", "#c98a5a"], "#9e3219", n=38, size=(36, 52), shape="chunk",
             extras=[(["#6a9a2a", "#7cb342"], 40, (26, 42), "strip"),  # garlic leaves
                     (["#c62828"], 12, (22, 30), "chilli")])


def tomato_egg(c):
    stir_fry(c, ["#f6c93b", "#ffd54f", "#f2b82a"], "#d9452a", n=44, size=(32, 48), shape="chunk", hl=0.35,
             extras=[(["#e53935", "#d32f2f", "#ef5350"], 34, (26, 36), "chunk")],
             garnish=[(["#43a047"], 18, (7, 10), "ring")])


def green_beans(c):
    stir_fry(c, ["#5f8a2c", "#6f9a33", "#4f7a22"], "#6b4a1e", n=110, size=(40, 70), shape="strip",
             extras=[(["#5d3a22"], 40, (5, 9), "chunk"), (["#b71c1c"], 16, (16, 24), "chilli")], plate="#ffffff")


def black_pepper_beef(c):
    stir_fry(c, ["#5a2e1c", "#6b3a22", "#4a2416"], "#3a2216", n=56, size=(30, 42), shape="chunk",
             extras=[(["#2e7d32", "#43a047"], 26, (26, 36), "chunk"), (["#f9a825"], 18, (22, 32), "chunk"),
                     (["#e8dfc8"], 20, (20, 30), "strip")],
             garnish=[(["#1a1a1a"], 200, (2, 4), "dot")], plate="#2c2c2c")


def eggplant(c):
    stir_fry(c, ["#5b2a5e", "#6a3270", "#4a2350"], "#b23a22", n=40, size=(40, 60), shape="strip",
             extras=[(["#c9a27a"], 30, (24, 34), "chunk")],
             garnish=[(["#43a047"], 30, (7, 10), "ring"), (["#c62828"], 10, (18, 24), "chilli")])


def shrimp_egg(c):
    stir_fry(c, ["#ffe082", "#ffd54f", "#fff1b0"], "#f3e1a0", n=40, size=(36, 52), shape="chunk", hl=0.4,
             extras=[(["#f48a6a", "#f59a7a"], 24, (22, 30), "oval")], plate="#ffffff",
             garnish=[(["#43a047"], 24, (6, 9), "ring")])


def boiled_fish(c):
    ix, iy = c.bowl(CX, CY, 540, 410, color="#f2efe8", inner="#8a1c10", band="#b71c1c")
    c.pool(CX, CY, ix, iy, "#c62a14", blur=4)
    c.pieces(CX, CY, ix * 0.8, iy * 0.8, 34, ["#fbf6ee", "#f5ecdf"], size=(40, 56), shape="chunk", outline=-0.1,
             hl=0.3)
    c.pieces(CX, CY, ix * 0.85, iy * 0.85, 70, ["#9e1b10", "#7f1208"], size=(16, 28), shape="chilli")
    c.pieces(CX, CY, ix * 0.85, iy * 0.85, 220, ["#3a1a10"], size=(3, 5), shape="dot")
    c.pieces(CX, CY, ix * 0.6, iy * 0.6, 30, ["#4caf50"], size=(16, 26), shape="leaf")
    c.gloss(CX, CY, ix * 0.85, iy * 0.85, n=40)


def fried_rice(c, scale=1.0, cx=CX, cy=CY):
    wx, wy = c.plate(cx, cy, 520 * scale, 400 * scale)
    rx, ry = wx * 0.76, wy * 0.74
    c.pool(cx, cy, rx, ry, "#e5b84a", gloss=False)
    c.pieces(cx, cy, rx, ry, int(1400 * scale * scale), ["#f3d27a", "#eec463", "#f7dc8e"], size=(6, 9),
             shape="grain", blur=0.5)
    c.pieces(cx, cy, rx * 0.95, ry * 0.95, int(60 * scale), ["#ffd54f"], size=(14, 20), shape="chunk")  # egg
    c.pieces(cx, cy, rx * 0.95, ry * 0.95, int(50 * scale), ["#66bb6a", "#7cb342"], size=(8, 10), shape="oval")
    c.pieces(cx, cy, rx * 0.95, ry * 0.95, int(40 * scale), ["#f4511e"], size=(8, 11), shape="chunk")  # carrot
    c.pieces(cx, cy, rx * 0.95, ry * 0.95, int(30 * scale), ["#f48a6a"], size=(14, 18), shape="oval")  # shrimp
    c.pieces(cx, cy, rx * 0.95, ry * 0.95, int(30 * scale), ["#c2185b"], size=(10, 14), shape="chunk")  # char siu


def chow_fun(c):
    wx, wy = c.plate(CX, CY, 520, 400)
    c.pool(CX, CY, wx * 0.78, wy * 0.76, "#6b3d1e")
    c.noodles(CX, CY, wx * 0.78, wy * 0.76, "#b07a45", n=50, width=26)
    c.pieces(CX, CY, wx * 0.7, wy * 0.7, 40, ["#5a2e1c", "#4a2416"], size=(22, 30), shape="chunk")
    c.pieces(CX, CY, wx * 0.7, wy * 0.7, 60, ["#f5f1e0"], size=(22, 36), shape="strip")  # bean sprouts
    c.pieces(CX, CY, wx * 0.7, wy * 0.7, 40, ["#43a047"], size=(24, 40), shape="strip")
    c.gloss(CX, CY, wx * 0.7, wy * 0.7, n=30)


def noodle_bowl(c, broth, noodle, toppings, scale=1.0, cx=CX, cy=CY, bowl="#f2efe8", band="#1565c0", width=8):
    ix, iy = c.bowl(cx, cy, 520 * scale, 405 * scale, color=bowl, inner=broth, band=band)
    c.pool(cx, cy, ix, iy, broth, blur=4)
    c.noodles(cx, cy, ix * 0.9, iy * 0.9, noodle, n=int(110 * scale), width=int(width * 1.7))
    for colors, count, sz, shp, where in toppings:
        ox, oy, rr = where
        c.pieces(cx + ox * ix, cy + oy * iy, ix * rr, iy * rr, int(count * max(scale, 0.5)), colors,
                 size=(sz[0] * scale, sz[1] * scale), shape=shp)
    c.gloss(cx, cy, ix * 0.85, iy * 0.85, n=24)


def dan_dan(c):
    noodle_bowl(c, "#a8331c", "#f0d9a0", [
        (["#6b3a22", "#5a2e1c"], 160, (5, 10), "chunk", (0.05, -0.1, 0.3)),
        (["#3e7d2a", "#4caf50"], 30, (14, 24), "leaf", (-0.35, 0.2, 0.25)),
        (["#d9a066"], 40, (6, 9), "oval", (0.1, 0.1, 0.5)),
        (["#43a047"], 30, (6, 9), "ring", (0, 0, 0.6)),
    ], bowl="#2b2b2b", band=None)


def beef_noodle_soup(c, scale=1.0, cx=CX, cy=CY):
    noodle_bowl(c, "#8a3a1a", "#f3e3b8", [
        (["#8a4a2a", "#9a5632", "#7a3e22"], 14, (50, 66), "chunk", (0.0, -0.15, 0.45)),
        (["#4caf50", "#66bb6a"], 24, (20, 32), "leaf", (0.35, 0.25, 0.3)),
        (["#3e8e2a"], 40, (6, 10), "ring", (0, 0, 0.7)),
        (["#2e7d32"], 8, (40, 60), "leaf", (-0.4, 0.3, 0.2)),
    ], scale=scale, cx=cx, cy=cy, width=max(4, int(8 * scale)))


def zhajiang(c):
    noodle_bowl(c, "#efe3c0", "#f4e4b4", [
        (["#3e2418", "#4a2c1c", "#2e1a10"], 200, (8, 14), "chunk", (0.0, -0.05, 0.32)),
        (["#9ccc65", "#aed581"], 80, (26, 44), "strip", (-0.35, 0.3, 0.22)),  # cucumber
        (["#f5f1e0"], 40, (20, 34), "strip", (0.4, 0.3, 0.2)),  # bean sprouts
        (["#f48fb1"], 20, (16, 26), "strip", (0.4, -0.35, 0.15)),  # radish
    ], band="#2e7d32", width=11)


def chow_mein(c):
    wx, wy = c.plate(CX, CY, 520, 400)
    c.pool(CX, CY, wx * 0.78, wy * 0.76, "#8a5a2a")
    c.noodles(CX, CY, wx * 0.78, wy * 0.76, "#d8a55a", n=90, width=9)
    c.pieces(CX, CY, wx * 0.7, wy * 0.7, 34, ["#f1d3a8", "#e8c090"], size=(20, 28), shape="chunk")
    c.pieces(CX, CY, wx * 0.7, wy * 0.7, 60, ["#f5f1e0"], size=(22, 36), shape="strip")
    c.pieces(CX, CY, wx * 0.7, wy * 0.7, 40, ["#7cb342", "#558b2f"], size=(22, 38), shape="strip")
    c.pieces(CX, CY, wx * 0.7, wy * 0.7, 30, ["#f4511e"], size=(20, 30), shape="strip")
    c.gloss(CX, CY, wx * 0.7, wy * 0.7, n=30)


def braised_pork_rice(c, scale=1.0, cx=CX, cy=CY):
    ix, iy = c.bowl(cx, cy, 500 * scale, 390 * scale, color="#f2efe8", inner="#f6f3ea", band="#c62828")
    c.pieces(cx, cy, ix * 0.95, iy * 0.95, int(1400 * scale * scale), ["#fbfaf5", "#ece8dc", "#ffffff", "#e4dfd2"],
             size=(7 * scale + 2, 10 * scale + 2), shape="oval", outline=-0.05, hl=0.4, blur=0.4)
    px, py = cx + 40 * scale, cy - 30 * scale
    c.pool(px, py, ix * 0.5, iy * 0.42, "#5a2410", blur=12)
    c.pieces(px, py, ix * 0.45, iy * 0.36, int(60 * scale), ["#7a3414", "#8e4a1e", "#6a2a10", "#b0703a"],
             size=(18 * scale, 30 * scale), shape="chunk", hl=0.35)
    c.gloss(px, py, ix * 0.42, iy * 0.34, n=24, alpha=180)
    # half a braised egg: a brown white, a golden yolk
    ex, ey = cx - ix * 0.5, cy + iy * 0.3
    c.pieces(ex, ey, 1, 1, 1, ["#a8652a"], size=(80 * scale, 90 * scale), shape="oval", hl=0.2, squash=0.8)
    c.pieces(ex, ey, 1, 1, 1, ["#f2a93b"], size=(38 * scale, 40 * scale), shape="oval", hl=0.3, squash=0.85)
    c.pieces(cx + ix * 0.5, cy + iy * 0.42, ix * 0.12, iy * 0.1, 8, ["#f5e16a"], size=(14 * scale, 20 * scale),
             shape="chunk")  # pickled radish
    c.pieces(cx + ix * 0.15, cy + iy * 0.55, ix * 0.25, iy * 0.12, 4, ["#2e7d32", "#43a047"],
             size=(50 * scale, 70 * scale), shape="leaf")  # bok choy


def glass_noodles(c):
    noodle_bowl(c, "#b5301a", "#d9c7b0", [
        (["#d9a066", "#e2b07a"], 40, (10, 14), "oval", (0.2, -0.2, 0.3)),
        (["#43a047", "#66bb6a"], 40, (6, 10), "ring", (0, 0, 0.7)),
        (["#4caf50"], 16, (18, 28), "leaf", (-0.3, 0.3, 0.25)),
        (["#5a2e1c"], 60, (5, 9), "chunk", (0.0, 0.0, 0.4)),
    ], bowl="#2b2b2b", band=None, width=6)


def wings(c):
    wx, wy = c.plate(CX, CY, 520, 400)
    c.pieces(CX, CY, wx * 0.7, wy * 0.6, 12, ["#6fa83a", "#8bc34a"], size=(70, 100), shape="leaf")  # lettuce
    lay, d = c.layer()
    for k, (ox, oy, a) in enumerate([(-170, -60, 0.3), (120, -90, -0.4), (-120, 110, -0.2), (170, 80, 0.5)]):
        x, y = CX + ox, CY + oy
        pts = []
        for i in range(24):
            t = 2 * math.pi * i / 24
            rr = 150 + 30 * math.sin(t * 2) + c.r.uniform(-14, 14)
            pts.append((x + math.cos(t + a) * rr, y + math.sin(t + a) * rr * 0.55))
        d.polygon(pts, fill=(150, 72, 20, 255))
        inner = [(x + (px - x) * 0.9 - 8, y + (py - y) * 0.86 - 8) for px, py in pts]
        d.polygon(inner, fill=(206, 120, 38, 255))
        for _ in range(60):
            px, py = c.r.uniform(x - 120, x + 120), c.r.uniform(y - 60, y + 50)
            s = c.r.uniform(5, 14)
            d.ellipse((px - s, py - s, px + s, py + s), fill=jitter((222, 150, 60), c.r, 0.15) + (255,))
    c.put(lay, 1.2)
    c.gloss(CX, CY, wx * 0.7, wy * 0.6, n=30, alpha=110)
    c.pieces(CX + 300, CY + 220, 60, 40, 1, ["#ffca28"], size=(60, 70), shape="oval")  # lemon wedge


def spring_rolls(c):
    wx, wy = c.plate(CX, CY, 520, 400)
    lay, d = c.layer()
    for k in range(4):
        y = CY - 190 + k * 110
        x0, x1 = CX - 300 + k * 20, CX + 260 - k * 10
        d.rounded_rectangle((x0, y, x1, y + 92), radius=46, fill=(168, 98, 30, 255))
        d.rounded_rectangle((x0 + 6, y + 4, x1 - 6, y + 80), radius=40, fill=(222, 160, 66, 255))
        for _ in range(40):
            px, py = c.r.uniform(x0 + 30, x1 - 30), c.r.uniform(y + 12, y + 72)
            d.ellipse((px - 8, py - 5, px + 8, py + 5), fill=jitter((240, 190, 100), c.r, 0.12) + (255,))
        d.line((x0 + 40, y + 22, x1 - 40, y + 22), fill=(255, 230, 170, 160), width=8)
    c.put(lay, 1.2)
    ix, iy = c.bowl(CX + 330, CY + 240, 110, 85, color="#ffffff", inner="#c0392b")
    c.pool(CX + 330, CY + 240, ix, iy, "#d84315", blur=3)


def potstickers(c):
    wx, wy = c.plate(CX, CY, 520, 400)
    for k in range(6):
        col, row = k % 3, k // 3
        x, y = CX - 270 + col * 250 + row * 40, CY - 120 + row * 230
        c.shadow((x - 120, y - 70, x + 120, y + 80), blur=10, alpha=90, dx=8, dy=14)
        lay, d = c.layer()
        d.ellipse((x - 125, y - 78, x + 125, y + 84), fill=(150, 82, 24, 255))  # the crisp base
        d.ellipse((x - 118, y - 70, x + 116, y + 70), fill=(214, 146, 62, 255))
        d.ellipse((x - 108, y - 84, x + 104, y + 52), fill=(238, 226, 196, 255))  # the pleated top
        d.ellipse((x - 90, y - 76, x + 30, y - 20), fill=(252, 246, 230, 220))
        for j in range(7):  # pleats along the ridge
            px = x - 78 + j * 26
            d.arc((px - 18, y - 60, px + 18, y - 4), 200, 340, fill=(205, 188, 150, 255), width=6)
        d.line((x - 96, y - 30, x + 96, y - 30), fill=(222, 206, 170, 255), width=5)
        c.put(lay, 1.4)
        c.gloss(x, y - 30, 80, 30, n=3, alpha=120)
    ix, iy = c.bowl(CX + 340, CY + 270, 110, 86, color="#ffffff", inner="#3a1d10")
    c.pool(CX + 340, CY + 270, ix, iy, "#3a1d10", blur=3)
    c.pieces(CX + 340, CY + 270, ix * 0.6, iy * 0.6, 6, ["#c62828"], size=(6, 9), shape="chunk")


def skewers(c):
    c.shadow((CX - 560, CY - 300, CX + 560, CY + 300), blur=36, alpha=110)
    lay, d = c.layer()
    d.rounded_rectangle((CX - 560, CY - 300, CX + 560, CY + 300), radius=40, fill=(60, 60, 62, 255))
    d.rounded_rectangle((CX - 540, CY - 282, CX + 540, CY + 282), radius=34, fill=(236, 226, 206, 255))
    c.put(lay, 1)
    for k in range(3):
        y = CY - 170 + k * 170
        lay, d = c.layer()
        d.line((CX - 520, y + 20, CX + 520, y - 20), fill=(205, 170, 120, 255), width=12)
        for j in range(7):
            x = CX - 360 + j * 110
            s = c.r.uniform(48, 58)
            col = c.r.choice([(120, 54, 26), (140, 66, 30), (104, 46, 22)])
            d.rounded_rectangle((x - s, y - s * 0.8, x + s, y + s * 0.8), radius=16, fill=col + (255,))
            d.rounded_rectangle((x - s + 8, y - s * 0.8 + 6, x + s - 14, y + s * 0.3), radius=12,
                                fill=shade(col, 0.18) + (255,))
        c.put(lay, 1)
        c.pieces(CX, y, 420, 60, 140, ["#b07a2a", "#8a5a1a"], size=(3, 6), shape="dot")  # cumin
        c.pieces(CX, y, 420, 60, 60, ["#c62828", "#e53935"], size=(3, 6), shape="chunk")  # chilli flakes


def chicken_leg(c, scale=1.0, cx=CX, cy=CY, plate=True):
    if plate:
        wx, wy = c.plate(cx, cy, 520 * scale, 400 * scale)
        c.pieces(cx, cy + 60 * scale, wx * 0.6, wy * 0.4, 10, ["#6fa83a", "#8bc34a"], size=(60 * scale, 90 * scale),
                 shape="leaf")
    m = scale * 1.45  # the leg, larger than its plate's scale
    lay, d = c.layer()
    x, y = cx - 40 * m, cy - 10 * m
    d.line((x + 150 * m, y + 40 * m, x + 330 * m, y + 120 * m), fill=(240, 225, 200, 255),
           width=int(40 * m))
    d.ellipse((x + 300 * m, y + 90 * m, x + 360 * m, y + 150 * m), fill=(240, 225, 200, 255))
    d.ellipse((x - 230 * m, y - 150 * m, x + 200 * m, y + 140 * m), fill=(120, 48, 16, 255))
    d.ellipse((x - 214 * m, y - 140 * m, x + 180 * m, y + 110 * m), fill=(176, 82, 26, 255))
    d.ellipse((x - 150 * m, y - 110 * m, x + 60 * m, y - 10 * m), fill=(212, 120, 50, 255))
    for k in range(4):  # grill marks
        gx = x - 160 * m + k * 80 * m
        d.line((gx, y - 110 * m, gx + 70 * m, y + 100 * m), fill=(80, 30, 8, 200), width=int(14 * m))
    c.put(lay, 2)
    c.pieces(x - 20 * m, y, 180 * m, 110 * m, int(50 * m), ["#3a1a08"], size=(3, 6), shape="dot")
    c.gloss(x - 20 * m, y - 20 * m, 160 * m, 90 * m, n=14, alpha=170)
    c.pieces(x, y, 150 * m, 90 * m, int(30 * m), ["#f5deb3"], size=(3, 5), shape="oval")  # sesame


def fries(c):
    wx, wy = c.plate(CX, CY, 520, 400)
    lay, d = c.layer()
    for _ in range(70):
        x, y = next(c.inside(CX - 60, CY, wx * 0.55, wy * 0.55))
        a = c.r.uniform(0, math.pi)
        L = c.r.uniform(70, 130)
        dx, dy = math.cos(a) * L, math.sin(a) * L * 0.7
        col = jitter((240, 190, 70), c.r, 0.1)
        d.line((x - dx, y - dy, x + dx, y + dy), fill=shade(col, -0.25) + (255,), width=30)
        d.line((x - dx, y - dy, x + dx, y + dy), fill=col + (255,), width=22)
        d.line((x - dx * 0.8, y - dy * 0.8 - 6, x + dx * 0.3, y + dy * 0.3 - 6), fill=shade(col, 0.4) + (200,),
               width=6)
    c.put(lay, 0.8)
    c.pieces(CX - 60, CY, wx * 0.5, wy * 0.5, 120, ["#ffffff"], size=(2, 4), shape="dot")  # salt
    ix, iy = c.bowl(CX + 320, CY + 200, 120, 95, color="#ffffff", inner="#c62828")
    c.pool(CX + 320, CY + 200, ix, iy, "#c62828", blur=3)


def squid(c):
    stir_fry(c, ["#e3b25a", "#d9a24a", "#eec277"], "#f3e3c0", n=46, size=(30, 44), shape="ring", plate="#2b2b2b",
             extras=[(["#e3b25a", "#d9a24a"], 30, (24, 34), "chunk"), (["#c62828"], 30, (6, 10), "ring"),
                     (["#43a047"], 30, (6, 10), "ring")])


def scallion_pancake(c):
    wx, wy = c.plate(CX, CY, 520, 400, color="#faf6ee")
    lay, d = c.layer()
    rx, ry = wx * 0.86, wy * 0.84
    d.ellipse((CX - rx, CY - ry, CX + rx, CY + ry), fill=(176, 112, 40, 255))
    d.ellipse((CX - rx + 10, CY - ry + 8, CX + rx - 10, CY + ry - 14), fill=(228, 170, 80, 255))
    for k in range(14):  # the spiral of the rolled dough
        t = k / 14
        d.arc((CX - rx * t, CY - ry * t, CX + rx * t, CY + ry * t), 0, 330, fill=(200, 140, 60, 255), width=6)
    for k in range(6):  # cut into wedges
        a = k * math.pi / 3
        d.line((CX, CY, CX + math.cos(a) * rx, CY + math.sin(a) * ry), fill=(150, 95, 30, 255), width=8)
    c.put(lay, 1.2)
    c.pieces(CX, CY, rx * 0.9, ry * 0.9, 200, ["#f0c070", "#d89a40", "#b8782a"], size=(6, 14), shape="chunk")
    c.pieces(CX, CY, rx * 0.9, ry * 0.9, 90, ["#43a047", "#2e7d32", "#66bb6a"], size=(6, 10), shape="ring")
    c.gloss(CX, CY, rx * 0.8, ry * 0.8, n=30, alpha=110)


def combo(c, main, drink_color, side="soup"):
    """A tray: the main dish, a drink seen from above, a small side."""
    lay, d = c.layer()
    c.shadow((60, 70, CW - 60, CH - 50), blur=30, alpha=140, dx=10, dy=18)
    d.rounded_rectangle((60, 70, CW - 60, CH - 50), radius=50, fill=(52, 110, 60, 255))
    d.rounded_rectangle((80, 90, CW - 80, CH - 70), radius=40, fill=(72, 140, 80, 255))
    c.put(lay, 1)
    main(c)
    # the drink: a cup from above, a straw
    x, y = CW - 250, 250
    ix, iy = c.bowl(x, y, 150, 140, color="#ffffff", inner=drink_color)
    c.pool(x, y, ix, iy, drink_color, blur=3)
    lay, d = c.layer()
    d.ellipse((x - 14, y - 14, x + 14, y + 14), fill=(230, 57, 53, 255))
    d.line((x, y, x + 120, y - 150), fill=(230, 57, 53, 255), width=26)
    c.put(lay, 1)
    x, y = CW - 250, CH - 250
    if side == "soup":
        ix, iy = c.bowl(x, y, 150, 140, color="#ffffff", inner="#e8d9b0")
        c.pool(x, y, ix, iy, "#e6d3a3", blur=3)
        c.pieces(x, y, ix * 0.8, iy * 0.8, 14, ["#fff8e1"], size=(12, 18), shape="chunk")
        c.pieces(x, y, ix * 0.8, iy * 0.8, 16, ["#43a047"], size=(5, 8), shape="ring")
    else:
        ix, iy = c.bowl(x, y, 150, 140, color="#ffffff", inner="#7cb342")
        c.pieces(x, y, ix * 0.9, iy * 0.9, 40, ["#6fa83a", "#8bc34a", "#558b2f"], size=(20, 34), shape="leaf")


def _main_kungpao(c):
    wx, wy = c.plate(CX - 230, CY, 380, 300)
    cx = CX - 230
    c.pool(cx, CY, wx * 0.8, wy * 0.78, "#a8321e")
    c.pieces(cx, CY, wx * 0.72, wy * 0.7, 40, ["#c8743a", "#d98b4a"], size=(16, 26))
    c.pieces(cx, CY, wx * 0.72, wy * 0.7, 26, ["#d9a066"], size=(9, 12), shape="oval")
    c.pieces(cx, CY, wx * 0.72, wy * 0.7, 12, ["#b71c1c"], size=(16, 26), shape="chilli")
    c.pieces(cx, CY, wx * 0.72, wy * 0.7, 16, ["#4caf50"], size=(6, 9), shape="ring")
    c.gloss(cx, CY, wx * 0.7, wy * 0.68, n=18)


def _main_mapo(c):
    cx = CX - 230
    ix, iy = c.bowl(cx, CY, 370, 300, color="#2b2b2b", inner="#3a1a12")
    c.pool(cx, CY, ix, iy, "#b3261e", blur=5)
    c.pieces(cx, CY, ix * 0.85, iy * 0.85, 40, ["#f6ecd6"], size=(22, 30), outline=-0.08, hl=0.3)
    c.pieces(cx, CY, ix * 0.85, iy * 0.85, 40, ["#7a3b1e"], size=(4, 8))
    c.pieces(cx, CY, ix * 0.7, iy * 0.7, 24, ["#43a047"], size=(6, 9), shape="ring")
    c.gloss(cx, CY, ix * 0.8, iy * 0.8, n=20)


# side view drinks -------------------------------------------------------
def bubble_tea(c):
    c.glass(CX, CH - 110, 420, 720, "#b9875a", fill=0.82, ice=True, straw="#1e88e5", pearls=True)


def hk_milk_tea(c):
    ix, iy = c.bowl(CX - 80, CY + 120, 300, 240, color="#ffffff", inner="#b07a4a", band="#c62828")
    c.pool(CX - 80, CY + 120, ix, iy, "#a8703e", blur=4)
    c.gloss(CX - 80, CY + 100, ix * 0.5, iy * 0.3, n=6)
    c.glass(CX + 330, CH - 100, 300, 560, "#9c6a3c", fill=0.8, ice=True, straw=None)


def lemon_tea(c):
    c.glass(CX, CH - 110, 420, 720, "#b5561a", fill=0.85, ice=True, straw="#fdd835", lemon=True)


def green_tea(c):
    c.glass(CX, CH - 110, 400, 700, "#c9c75a", fill=0.84, ice=True, straw="#43a047")
    c.pieces(CX + 380, CH - 200, 90, 60, 12, ["#f5f5f5", "#fffde7"], size=(18, 26), shape="leaf")  # jasmine


def sour_plum(c):
    c.glass(CX, CH - 110, 400, 700, "#5a1a14", fill=0.85, ice=True, straw="#ff7043")
    c.pieces(CX + 400, CH - 190, 70, 50, 5, ["#4a140e", "#6a1e14"], size=(30, 40), shape="oval")


def soy_milk(c):
    c.glass(CX - 60, CH - 110, 380, 680, "#f3ead6", fill=0.85, ice=False, straw=None)
    c.pieces(CX + 370, CH - 200, 110, 70, 40, ["#f2d98a", "#e6c66a"], size=(16, 20), shape="oval")


# desserts ---------------------------------------------------------------
def mango_sago(c):
    ix, iy = c.bowl(CX, CY, 500, 390, color="#ffffff", inner="#ffb300")
    c.pool(CX, CY, ix, iy, "#ffb74d", blur=4)
    c.pieces(CX, CY, ix * 0.85, iy * 0.85, 160, ["#fffdf4", "#f5f0e0"], size=(8, 12), shape="oval", hl=0.5)
    c.pieces(CX, CY, ix * 0.7, iy * 0.7, 30, ["#ffa000", "#ffb300", "#ff8f00"], size=(26, 36), hl=0.35)
    c.pieces(CX, CY, ix * 0.6, iy * 0.6, 40, ["#f48fb1", "#f06292"], size=(8, 16), shape="strip")
    c.pieces(CX + 100, CY - 100, 40, 30, 2, ["#43a047"], size=(40, 50), shape="leaf")
    c.gloss(CX, CY, ix * 0.8, iy * 0.8, n=20)


def mango_pudding(c):
    wx, wy = c.plate(CX, CY + 40, 500, 380)
    lay, d = c.layer()
    x, y = CX, CY - 20
    d.ellipse((x - 300, y + 40, x + 300, y + 240), fill=(232, 140, 20, 255))
    d.rectangle((x - 300, y - 120, x + 300, y + 140), fill=(246, 164, 30, 255))
    d.ellipse((x - 300, y - 220, x + 300, y - 20), fill=(255, 190, 60, 255))
    d.ellipse((x - 220, y - 190, x - 40, y - 120), fill=(255, 230, 160, 200))
    d.rectangle((x - 260, y - 100, x - 220, y + 160), fill=(255, 210, 120, 160))
    c.put(lay, 2)
    c.pool(CX + 260, CY + 210, 120, 50, "#fff8e7", blur=6)  # milk
    c.pieces(CX, CY - 120, 180, 60, 7, ["#ff9800", "#ffb300"], size=(24, 32), hl=0.35)
    c.pieces(CX + 40, CY - 160, 40, 20, 2, ["#43a047", "#2e7d32"], size=(40, 50), shape="leaf")


def double_skin(c):
    ix, iy = c.bowl(CX, CY, 480, 380, color="#f7f3ea", inner="#fffaf0", band="#1565c0")
    c.pool(CX, CY, ix, iy, "#fbf3dc", blur=8, gloss=False, spots=False)
    lay, d = c.layer()
    for k in range(5):  # the milk's skin: soft folds
        t = 0.35 + k * 0.13
        d.arc((CX - ix * t, CY - iy * t, CX + ix * t, CY + iy * t), 200 + k * 17, 320 + k * 11,
              fill=(236, 220, 180, 150), width=10)
    c.put(lay, 6)
    c.pieces(CX + 30, CY - 10, ix * 0.28, iy * 0.22, 34, ["#6d1b1b", "#7f2020", "#5a1414"], size=(20, 24),
             shape="oval", hl=0.4)
    c.pieces(CX + 130, CY - 110, 20, 14, 2, ["#43a047"], size=(40, 50), shape="leaf")
    c.gloss(CX, CY, ix * 0.7, iy * 0.7, n=14, alpha=140)


def red_bean_soup(c):
    ix, iy = c.bowl(CX, CY, 500, 390, color="#f7f3ea", inner="#5a1a14", band="#ad1457")
    c.pool(CX, CY, ix, iy, "#6a2218", blur=4)
    c.pieces(CX, CY, ix * 0.85, iy * 0.85, 180, ["#7a2418", "#5e1a10", "#8a3020"], size=(12, 17), shape="oval",
             hl=0.4)
    c.pieces(CX, CY, ix * 0.5, iy * 0.5, 8, ["#fdfaf2"], size=(26, 32), shape="oval", hl=0.2)  # glutinous balls
    c.pieces(CX - 80, CY - 60, 40, 30, 6, ["#e3a64a"], size=(10, 20), shape="strip")  # tangerine peel
    c.gloss(CX, CY, ix * 0.8, iy * 0.8, n=24)


RECIPES = {
    "kung-pao-chicken": ("wood", kung_pao),
    "yuxiang-shredded-pork": ("dark", yuxiang_pork),
    "mapo-tofu": ("wood", mapo_tofu),
    "twice-cooked-pork": ("slate", twice_cooked),
    "tomato-egg-stir-fry": ("wood", tomato_egg),
    "dry-fried-green-beans": ("dark", green_beans),
    "black-pepper-beef": ("wood", black_pepper_beef),
    "yuxiang-eggplant": ("slate", eggplant),
    "shrimp-silky-egg": ("wood", shrimp_egg),
    "sichuan-boiled-fish": ("dark", boiled_fish),
    "yangzhou-fried-rice": ("wood", fried_rice),
    "beef-chow-fun": ("slate", chow_fun),
    "dan-dan-noodles": ("wood", dan_dan),
    "beef-noodle-soup": ("dark", beef_noodle_soup),
    "zhajiang-noodles": ("wood", zhajiang),
    "chicken-chow-mein": ("slate", chow_mein),
    "braised-pork-rice": ("wood", braised_pork_rice),
    "hot-sour-glass-noodles": ("dark", glass_noodles),
    "fried-chicken-wings": ("red", wings),
    "spring-rolls": ("wood", spring_rolls),
    "potstickers": ("dark", potstickers),
    "lamb-skewers": ("wood", skewers),
    "grilled-chicken-leg": ("slate", chicken_leg),
    "fries": ("red", fries),
    "salt-pepper-squid": ("wood", squid),
    "scallion-pancake": ("dark", scallion_pancake),
    "combo-kung-pao-chicken": ("tray", lambda c: combo(c, _main_kungpao, "#c0671e")),
    "combo-mapo-tofu": ("tray", lambda c: combo(c, _main_mapo, "#c9c75a", side="salad")),
    "combo-beef-noodle-soup": ("tray", lambda c: combo(c, lambda c: beef_noodle_soup(c, 0.72, CX - 230, CY),
                                                       "#c89f74", side="salad")),
    "combo-yangzhou-fried-rice": ("tray", lambda c: combo(c, lambda c: fried_rice(c, 0.72, CX - 230, CY),
                                                          "#5a1a14")),
    "combo-grilled-chicken-rice": ("tray", lambda c: combo(c, _chicken_rice, "#c0671e", side="salad")),
    "bubble-milk-tea": ("cafe", bubble_tea),
    "hk-milk-tea": ("cafe", hk_milk_tea),
    "lemon-tea": ("cafe", lemon_tea),
    "jasmine-green-tea": ("cafe", green_tea),
    "sour-plum-drink": ("cafe", sour_plum),
    "soy-milk": ("cafe", soy_milk),
    "mango-pomelo-sago": ("slate", mango_sago),
    "mango-pudding": ("cafe", mango_pudding),
    "double-skin-milk": ("wood", double_skin),
    "red-bean-soup": ("slate", red_bean_soup),
}


def _chicken_rice(c):
    cx = CX - 230
    wx, wy = c.plate(cx, CY, 380, 300)
    c.pieces(cx + 70, CY + 20, wx * 0.45, wy * 0.55, 500, ["#fbfaf5", "#f1efe6"], size=(5, 8), shape="grain",
             blur=0.4)
    chicken_leg(c, 0.5, cx - 60, CY - 20, plate=False)
    c.pieces(cx - 120, CY + 150, 60, 30, 8, ["#7cb342", "#558b2f"], size=(16, 24), shape="leaf")


ZOOM = {"cafe": 1.08, "tray": 1.05}


def draw(item_id: str) -> Image.Image:
    table, recipe = RECIPES[item_id]
    c = Canvas(random.Random(item_id), table)
    recipe(c)
    return c.finish(ZOOM.get(table, 1.22))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "menu_images"))
    ap.add_argument("--only", default="", help="comma-separated item ids")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    menu = json.loads((HERE / "sample_menu.json").read_text(encoding="utf-8"))
    only = {s for s in args.only.split(",") if s}
    for item in menu["items"]:
        if only and item["id"] not in only:
            continue
        name = item.get("image") or f"{item['id']}.jpg"
        draw(item["id"]).save(out / name, "JPEG", quality=82, optimize=True, progressive=True)
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
