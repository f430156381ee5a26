"""The kiosk's accessibility modes in a real Kivy window under Xvfb, driven by
real X clicks and swipes (xdotool), against the real broker and hub: high
contrast turns every screen white and yellow on black, reach mode brings every
control into the lower 60 % of the screen, the top bar holds all its buttons
in both languages, and a full order still reaches the wok station with the
modes on, on the big and on the small screen.

RESTOBOX_DOCS_SCREENSHOTS=docs/screenshots keeps kiosk-high-contrast.png and
kiosk-reach.png for the README.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from kiosk.app import HIGH_CONTRAST, NORMAL
from tests.test_kiosk_ui import KioskProcess, start_kiosk, wok_ticket_for

REACH_TOP = 0.4
"""Reach mode: nothing to press above this fraction of the screen's height."""

TOGGLES = ("a11y:large_text", "a11y:high_contrast", "a11y:reach")


# ------------------------------------------------------------- contrast

def luminance(c) -> float:
    """Relative luminance of an sRGB colour (WCAG 2.2, definitions)."""
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(v) for v in c[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg, bg) -> float:
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# every text colour on what it is drawn on, as screens.kv pairs them
TEXT_ON = [
    ("ink", "paper"), ("ink", "card"), ("ink", "bar"), ("ink", "red_dark"), ("ink", "shade"),
    ("ink", "tint"), ("muted", "paper"), ("muted", "card"), ("muted", "pill"),
    ("red", "paper"), ("red", "card"), ("gold", "paper"), ("green", "paper"), ("green", "card"),
    ("warn", "paper"), ("warn", "card"), ("on_red", "red"), ("on_red", "green"),
    ("chip_ink", "chip"), ("chip_ink", "chip_on"), ("tint_ink", "tint"), ("disabled_ink", "disabled"),
]


def test_high_contrast_gives_every_text_at_least_7_to_1():
    assert HIGH_CONTRAST.keys() == NORMAL.keys()
    weak = {f"{fg} on {bg}": round(contrast(HIGH_CONTRAST[fg], HIGH_CONTRAST[bg]), 1)
            for fg, bg in TEXT_ON if contrast(HIGH_CONTRAST[fg], HIGH_CONTRAST[bg]) < 7}
    assert not weak, f"below WCAG AAA (7:1): {weak}"


# ------------------------------------------------------------- pictures

def share(picture: Path, colour, tolerance: int = 3, photos: list | None = None) -> float:
    """The part of the picture that has this colour; with ``photos`` (window
    rectangles of the dishes' photos), the part of what is not a photo."""
    want = [round(v * 255) for v in colour[:3]]
    img = Image.open(picture).convert("RGB")
    total = img.width * img.height
    if photos:
        mask = Image.new("L", img.size, 0)
        for x, y, w, h in photos:
            mask.paste(255, (int(x), int(y), int(x + w) + 1, int(y + h) + 1))
        # photo pixels become one colour no text role has, then are left out of the count
        img.paste((1, 2, 3), (0, 0), mask)
        total -= sum(n for n, px in img.getcolors(total) if px == (1, 2, 3))
    hits = sum(n for n, px in img.getcolors(img.width * img.height)
               if px != (1, 2, 3) and all(abs(a - b) <= tolerance for a, b in zip(px, want)))
    return hits / total


def assert_high_contrast(picture: Path, st: dict | None = None) -> None:
    """Mostly black, none of the normal colours, but for the dishes' photos (they stay as they are)."""
    photos = [t["photo_rect"] for t in (st or {}).get("tiles", []) if t.get("photo_rect")]
    item = (st or {}).get("item") or {}
    if item.get("photo_rect"):
        photos.append(item["photo_rect"])
    dark = share(picture, HIGH_CONTRAST["paper"], photos=photos) + share(picture, HIGH_CONTRAST["card"], photos=photos)
    assert dark > 0.5, f"high contrast: a black screen, not {dark:.0%} of it"
    for role in ("paper", "muted", "line", "red"):
        assert share(picture, NORMAL[role], photos=photos) < 0.001, \
            f"high contrast still shows the normal {role} colour"


def assert_same_picture(a: Path, b: Path, scrolls: list) -> None:
    """Pixel for pixel, but for the scroll bars (they fade out after a while)."""
    pics = [Image.open(p).convert("RGB") for p in (a, b)]
    for x, y, w, h in scrolls:
        for pic in pics:
            pic.paste((0, 0, 0), (int(x + w) - 12, int(y), int(x + w), int(y + h)))
    box = ImageChops.difference(*pics).getbbox()
    assert box is None, f"{a.name} and {b.name} differ in {box}"


# ------------------------------------------------------------- geometry

def overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def assert_bar_fits(st: dict, bar: str) -> None:
    """The language switch, the three toggles and cancel sit side by side in the bar."""
    w, h = st["window"]
    box = st["bars"][bar]
    chrome = [t for t in (*TOGGLES, "lang:zh", "lang:en", "cancel_order") if t in st["buttons"]]
    assert len(chrome) == 5, f"{bar}: {chrome}"
    rects = [st["buttons"][t] for t in chrome]
    for t, (x, y, bw, bh) in zip(chrome, rects):
        assert 0 <= x and x + bw <= w, f"{t} leaves the screen: {x, bw}"
        assert box[1] <= y and y + bh <= box[1] + box[3] + 1, f"{t} is not in the {bar}"
        assert bw >= 0.1 * w and bh >= 0.04 * h, f"{t} is too small to touch: {bw}x{bh}"
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not overlap(a, b), f"{bar}: buttons overlap {a} {b}"
    assert not set(chrome) & set(st["cramped"]), f"{bar}: text does not fit in {st['cramped']}"


def assert_in_reach(st: dict) -> None:
    """Every button on the screen is in the lower 60 %; the top bar's are at the very bottom."""
    w, h = st["window"]
    assert st["reach"] and "topbar" not in st["bars"]
    head = st["bars"]["reach_head"]
    assert head[1] == 0 and abs(head[3] - REACH_TOP * h) <= 1
    for target, (x, y, bw, bh) in st["buttons"].items():
        if target in st["clipped"]:
            continue
        assert y + bh / 2 >= REACH_TOP * h, f"{st['screen']}: {target} is out of reach at y={y}"
        assert 0 <= x + bw / 2 <= w and y + bh / 2 <= h
    bottom = st["bars"]["bottombar"]
    assert bottom[1] + bottom[3] == pytest.approx(h, abs=1) and bottom[1] > 0.85 * h
    for t in TOGGLES:
        assert st["buttons"][t][1] >= bottom[1]
    assert not st["cramped"], f"{st['screen']}: text does not fit in {st['cramped']}"


# ------------------------------------------------------------- driving

def settled(k: KioskProcess, target: str) -> dict:
    """The state once the target's rectangle stops moving (a swipe glides on)."""
    last = None
    for _ in range(40):
        st = k.wait(lambda st: target in st["buttons"])
        if st["buttons"][target] == last:
            return st
        last = st["buttons"][target]
        time.sleep(0.25)
    return st


def swipe(k: KioskProcess, x: float, y0: float, y1: float, steps: int = 12) -> None:
    """A finger's swipe: press, move quickly, let go."""
    moves = []
    for i in range(1, steps + 1):
        moves += ["mousemove", str(int(x)), str(int(y0 + (y1 - y0) * i / steps)), "sleep", "0.015"]
    k.x.xdotool("mousemove", str(int(x)), str(int(y0)), "sleep", "0.15", "mousedown", "1", *moves,
                "sleep", "0.05", "mouseup", "1")


def into_sight(k: KioskProcess, target: str, beyond: int = 0) -> dict:
    """Swipe the list the target is in until it is in sight (and ``beyond`` swipes more)."""
    st = settled(k, target)
    for _ in range(8):
        if target not in st["clipped"] and beyond == 0:
            break
        if target not in st["clipped"]:
            beyond -= 1
        x, y, w, h = st["buttons"][target]
        sx, sy, sw, sh = next(s for s in st["scrolls"] if s[0] <= x + w / 2 <= s[0] + s[2])
        below = y + h / 2 > sy + sh
        a, b = (sy + 0.8 * sh, sy + 0.3 * sh) if below else (sy + 0.3 * sh, sy + 0.8 * sh)
        swipe(k, sx + sw / 2, a, b)
        st = settled(k, target)
    assert target not in st["clipped"], f"{target} never came into sight"
    return st


def reach_tap(k: KioskProcess, target: str) -> dict:
    """Scroll the target into sight if it is not, check it is within reach, tap it."""
    st = into_sight(k, target)
    x, y, w, h = st["buttons"][target]
    assert y + h / 2 >= REACH_TOP * st["window"][1], f"{target} is out of reach"
    k.x.click(x + w / 2, y + h / 2)
    return st


def look(k: KioskProcess, name: str) -> Path:
    """A picture of the screen once it has been drawn (for a person to look at)."""
    time.sleep(0.6)
    return k.screenshot(name)


def order_in_reach_mode(k: KioskProcess, shots: str) -> tuple[int, str]:
    """From the menu: kung pao (hot, brown rice, no coriander) -> cart -> counter -> number,
    every tap in the lower 60 % of the screen."""
    k.on("menu")
    reach_tap(k, "category:wok-dishes")
    assert_in_reach(settled(k, "item:kung-pao-chicken"))
    look(k, f"{shots}-menu.png")
    reach_tap(k, "item:kung-pao-chicken")
    k.on("item")
    assert_in_reach(settled(k, "add"))
    for option in ("option:spice-hot", "option:rice-brown", "option:hold-cilantro"):
        reach_tap(k, option)
        time.sleep(0.3)
    assert_in_reach(settled(k, "add"))
    look(k, f"{shots}-item.png")
    reach_tap(k, "add")
    k.on("menu")
    reach_tap(k, "cart")
    k.on("cart")
    assert_in_reach(settled(k, "checkout"))
    look(k, f"{shots}-cart.png")
    reach_tap(k, "checkout")
    k.on("pay")
    assert_in_reach(settled(k, "pay:counter"))
    look(k, f"{shots}-pay.png")
    reach_tap(k, "pay:counter")
    st = k.wait(lambda st: st["screen"] == "confirm" and st["number"], 20)
    assert_in_reach(settled(k, "done"))
    look(k, f"{shots}-confirm.png")
    return st["number"], st["order_id"]


# ------------------------------------------------------------- the tests

@pytest.mark.integration
def test_high_contrast_and_reach_take_a_full_order_on_the_big_screen(broker, hub, monitor, tmp_path):
    x, k = start_kiosk(broker, tmp_path, "1080x1920")
    try:
        k.wait(lambda st: st["menu"], 20)
        k.tap("lang:en")
        k.on("service", lang="en")
        assert_bar_fits(k.state(), "topbar")

        k.tap("service:takeaway")
        k.wait(lambda st: "next" in st["buttons"])
        k.tap("next")
        k.on("menu")
        k.tap("category:wok-dishes")
        k.wait(lambda st: "item:kung-pao-chicken" in st["buttons"])
        before = look(k, "menu-before.png")
        assert share(before, HIGH_CONTRAST["paper"]) < 0.001

        k.tap("a11y:high_contrast")
        k.wait(lambda st: st["high_contrast"] and "item:kung-pao-chicken" in st["buttons"])
        assert_high_contrast(k.keep("kiosk-high-contrast.png"), k.state())

        # off again: exactly the kiosk's own look
        k.tap("a11y:high_contrast")
        st = k.wait(lambda st: not st["high_contrast"] and "item:kung-pao-chicken" in st["buttons"])
        assert_same_picture(before, look(k, "menu-after.png"), st["scrolls"])

        # reach alone for the README's picture, then both for the rest of the order
        k.tap("a11y:reach")
        k.wait(lambda st: st["reach"] and "bottombar" in st["bars"])
        st = settled(k, "a11y:reach")
        assert_bar_fits(st, "bottombar")
        assert_in_reach(st)
        reach_tap(k, "item:kung-pao-chicken")
        k.on("item")
        for option in ("option:spice-hot", "option:rice-brown", "option:hold-cilantro"):
            reach_tap(k, option)
            time.sleep(0.5)
        # the last choice was scrolled to: drawn again, the list stays there
        assert "option:hold-cilantro" not in settled(k, "option:hold-cilantro")["clipped"]
        into_sight(k, "option:spice-mild", beyond=1)  # back to the top for the picture
        assert_in_reach(settled(k, "add"))
        k.keep("kiosk-reach.png")
        reach_tap(k, "a11y:high_contrast")
        k.wait(lambda st: st["high_contrast"] and st["reach"] and "add" in st["buttons"])
        assert_high_contrast(look(k, "hc-reach-item.png"), k.state())
        reach_tap(k, "add")
        k.on("menu")
        reach_tap(k, "cart")
        k.on("cart")
        assert_in_reach(settled(k, "checkout"))
        assert_high_contrast(look(k, "hc-reach-cart.png"))
        reach_tap(k, "checkout")
        k.on("pay")
        assert_in_reach(settled(k, "pay:counter"))
        assert_high_contrast(look(k, "hc-reach-pay.png"))
        reach_tap(k, "pay:counter")
        st = k.wait(lambda st: st["screen"] == "confirm" and st["number"], 20)
        number, order_id = st["number"], st["order_id"]
        assert_in_reach(settled(k, "done"))
        assert_high_contrast(look(k, "hc-reach-confirm.png"))

        ticket = wok_ticket_for(monitor, order_id)
        assert ticket["number"] == number
        [item] = ticket["items"]
        assert item["item_id"] == "kung-pao-chicken" and len(item["modifiers"]) == 3
        reach_tap(k, "done")
        st = k.on("attract")
        assert not (st["high_contrast"] or st["reach"]), "the next diner starts with the usual screen"
    finally:
        k.stop()
        x.close()


@pytest.mark.integration
def test_every_mode_on_the_small_screen_in_chinese(broker, hub, monitor, tmp_path):
    x, k = start_kiosk(broker, tmp_path, "800x1280")
    try:
        assert k.state()["window"] == [800, 1280]
        k.wait(lambda st: st["menu"], 20)
        k.tap("lang:zh")
        k.on("service", lang="zh")
        # the top bar holds its five buttons in both languages, with large text too
        assert_bar_fits(settled(k, "cancel_order"), "topbar")
        look(k, "topbar-zh.png")
        for tap, lang, large in (("lang:en", "en", False), ("a11y:large_text", "en", True),
                                 ("lang:zh", "zh", True)):
            k.tap(tap)
            st = k.wait(lambda st: st["lang"] == lang and st["large_text"] == large)
            assert_bar_fits(settled(k, "cancel_order"), "topbar")
            look(k, f"topbar-{lang}{'-large' if large else ''}.png")

        k.tap("a11y:high_contrast")
        k.wait(lambda st: st["high_contrast"])
        k.tap("a11y:reach")
        k.wait(lambda st: st["reach"] and "bottombar" in st["bars"])
        st = settled(k, "a11y:reach")
        assert_bar_fits(st, "bottombar")
        assert_in_reach(st)
        reach_tap(k, "service:dine_in")
        for key in ("table:key:1", "table:key:2"):
            reach_tap(k, key)
            time.sleep(0.2)
        assert_in_reach(settled(k, "next"))
        assert_high_contrast(look(k, "small-service.png"))
        reach_tap(k, "next")
        number, order_id = order_in_reach_mode(k, "small")
        ticket = wok_ticket_for(monitor, order_id)
        assert ticket["number"] == number
        assert ticket["items"][0]["item_id"] == "kung-pao-chicken"
        assert k.state()["lang"] == "zh"
    finally:
        k.stop()
        x.close()
