"""Where a kitchen-screen frame goes: two probes for the work on
``bench/kds_frames.py``'s budget (not a benchmark with a budget itself).

Both run the real station screen (the probe child of ``bench/kds_frames.py``,
with one more hook) on a private Xvfb with the real broker and hub and 324
open tickets, and switch between variants *inside one screen process*, a
second or so each, round after round: on this shared 2-core machine the
speed swings between runs by more than most changes are worth, but not
within a few seconds.

``parts``: the screen redrawn every frame while parts of it are hidden from
the rasteriser (a 1x1 scissor around their instructions: Kivy still walks
them, llvmpipe fills nothing). Variants: ``all``; ``nothing`` (everything
hidden: the clear, the swap and Kivy's drawing remain); ``hide:PART`` (that
part hidden); ``only:PART`` (only that part shown); ``kivyclear`` (Kivy's own clear of
colour, depth and stencil instead of the screens' colour-only one). Parts:
``boxes`` (the opaque boxes' mesh), ``opaque`` (the card bodies and the
all-day rows, drawn with the boxes, blending off), ``cards`` (the card
headers' texts), ``timers``, ``labels``, ``buttons``.

``bumps``: frames drawn every 150 ms: ``static`` (nothing changed), ``hot``
(the screen redrawn every frame, as the floor is measured), ``bump`` (the
bump key's action from inside the app, as ``kds.app`` handles the key, each
step timed: the view model, sending, ``refresh()``, Kivy's pre-frame work,
drawing, the swap).

``bound``: the least a frame showing the station's content can cost here.
The station's card and all-day panel rectangles (from its state dump with
the tickets open) drawn as opaque textures made once (no text, no layout,
no Python per frame, blending off: what a screen that keeps each card as
one texture would draw), in a window like the screens' (no depth, no
stencil), against the same window empty: redrawn every frame and once every
150 ms (the bump storm's rhythm). Its ratio is a lower bound for
``drawn_work_ratio``.

    python bench/kds_probe.py parts                       # about 40 s
    python bench/kds_probe.py parts all nothing only:opaque hide:timers
    python bench/kds_probe.py bumps                       # about 40 s
    python bench/kds_probe.py bound                       # about 40 s

Figures per variant: frame work (wall) p50 and p95, and the process's CPU
per frame (every thread: the rasteriser's too) p50, with the floor (an empty
Kivy window redrawn every frame) for scale. Results: docs/performance.md,
Kitchen screen, "Seventh pass".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench.kds_frames as kf  # noqa: E402

PARTS = ("boxes", "opaque", "cards", "timers", "labels", "buttons")

# runs in the probe child (bench/kds_frames.CHILD), one second after build;
# reads the variant from the file next to its output (OUT.variant)
HOOK = r'''
def _probe_hook(app):
    import os
    from kivy.base import EventLoop
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.graphics import Callback
    from kivy.graphics import opengl as gl
    from kivy.lang import Builder
    from kivy.uix.button import Button
    from kivy.uix.label import Label

    state = {"v": "all"}
    control = out_path + ".variant"
    rec["marks"] = []
    rec["steps"] = []

    def hide():
        gl.glEnable(gl.GL_SCISSOR_TEST)
        gl.glScissor(0, 0, 1, 1)

    def show():
        gl.glDisable(gl.GL_SCISSOR_TEST)

    def switch(part, entering):
        # hide:PART hides the part (shown again after it); only:PART shows
        # it alone (the rest hidden around it)
        v = state["v"]
        if v in ("hide:" + part, "only:" + part):
            (hide if v.startswith("hide:") == entering else show)()

    def wrap(group, part, start=0, end=None):
        group.insert(start, Callback(lambda i: switch(part, True)))
        if end is None:
            group.add(Callback(lambda i: switch(part, False)))
        else:
            group.insert(end, Callback(lambda i: switch(part, False)))

    root = app.root_w

    def begin(i):
        v = state["v"]
        if v == "nothing" or v.startswith("only:"):
            hide()
        else:
            show()
    root.canvas.before.insert(0, Callback(begin))
    root.canvas.after.add(Callback(lambda i: show()))  # the next frame's clear is whole
    g = app.boxes.group  # [blend off, colour, mesh, opaque group, blend on]
    k = g.indexof(app.boxes.mesh)
    wrap(g, "boxes", k, k + 2)
    k = g.indexof(app.boxes.opaque)
    wrap(g, "opaque", k, k + 2)
    for c in app.cards + app.spares:
        wrap(c.canvas, "cards")
    wrap(root.ids.grid.canvas.after, "timers")
    for w in root.walk(restrict=True):
        if isinstance(w, Button):
            wrap(w.canvas, "buttons")
        elif isinstance(w, Label):
            wrap(w.canvas, "labels")

    colour_clear = Window.clear
    def clear():
        if state["v"] == "kivyclear":
            gl.glClearColor(*Window.clearcolor)
            gl.glClear(gl.GL_COLOR_BUFFER_BIT | gl.GL_DEPTH_BUFFER_BIT | gl.GL_STENCIL_BUFFER_BIT)
        else:
            colour_clear()
    Window.clear = clear

    def every_frame(dt):
        v = state["v"]
        if v in ("all", "nothing", "hot", "kivyclear") or v.startswith(("hide:", "only:")):
            rec["marks"].append((mono(), v))
            Window.canvas.ask_update()
    Clock.schedule_interval(every_frame, 0)

    def bump_steps():
        vm, ctl = app.ctl.vm, app.ctl
        if vm.selected_ticket_id is None:
            vm.perform("select_next")
        t = [mono()]
        events = vm.perform("bump"); t.append(mono())
        ctl._send(events); ctl.save_soon(); t.append(mono())
        app._redraw.cancel(); app.refresh(); t.append(mono())
        Builder.sync(); Clock.tick_draw(); Builder.sync(); t.append(mono())
        win = EventLoop.window
        win.dispatch("on_draw"); t.append(mono())
        win.dispatch("on_flip"); t.append(mono())
        rec["steps"].append([(b - a) * 1000 for a, b in zip(t, t[1:])])

    def every_150ms(dt):
        v = state["v"]
        if v == "static":
            rec["marks"].append((mono(), v))
            Window.canvas.ask_update()
        elif v == "bump":
            rec["marks"].append((mono(), v))
            bump_steps()
    Clock.schedule_interval(every_150ms, 0.15)

    def poll(dt):
        try:
            state["v"] = open(control).read().strip() or state["v"]
        except OSError:
            pass
    Clock.schedule_interval(poll, 0.05)
'''

STEPS = ("view model", "send", "refresh()", "pre-frame", "draw", "swap")

# argv: rects (JSON: [[x, y, w, h], ...], window pixels from the top left),
# redraw period in s (0: every frame), seconds, output (JSON: draw + swap
# time of each frame, ms). Opens its window as the screens do.
BOUND = r'''
import json, os, random, sys, time
os.environ["KIVY_NO_ARGS"] = "1"
os.environ["KIVY_NO_CONSOLELOG"] = "1"
sys.path.insert(0, os.getcwd())
from restobox.glvisual import use_plain_visual
use_plain_visual()
from kivy.config import Config
Config.set("graphics", "width", "1920")
Config.set("graphics", "height", "1080")
Config.set("graphics", "resizable", "0")
from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.graphics import Callback, Color, Rectangle
from kivy.graphics import opengl as gl
from kivy.graphics.texture import Texture
from kivy.uix.widget import Widget
from kds.common import clear_colour_only

rects, period, seconds, out = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
times, t = [], [0.0]
draw, flip = Window.on_draw, Window.flip
def on_draw(*a):
    t[0] = time.perf_counter()
    return draw(*a)
def on_flip():
    flip()
    times.append((time.perf_counter() - t[0]) * 1000)
Window.on_draw, Window.flip = on_draw, on_flip
rng = random.Random(1)
def texture(w, h):
    tx = Texture.create(size=(w, h), colorfmt="rgba")
    row = bytes(rng.getrandbits(8) for _ in range(w * 4))
    tx.blit_buffer(row * h, colorfmt="rgba", bufferfmt="ubyte")
    tx.mag_filter = tx.min_filter = "nearest"
    return tx
class Bound(App):
    kv_file = "/nonexistent/bound.kv"
    def build(self):
        clear_colour_only()
        w = Widget()
        with w.canvas:
            Callback(lambda i: gl.glDisable(gl.GL_BLEND))
            Color(1, 1, 1, 1)
            for x, y, rw, rh in rects:
                rw, rh = int(rw), int(rh)
                Rectangle(texture=texture(rw, rh), pos=(int(x), 1080 - int(y) - rh), size=(rw, rh))
            Callback(lambda i: gl.glEnable(gl.GL_BLEND))
        if period:
            Clock.schedule_interval(lambda dt: Window.canvas.ask_update(), period)
        else:
            Clock.schedule_interval(lambda dt: Window.canvas.ask_update(), 0)
        Clock.schedule_once(lambda dt: self.stop(), seconds)
        return w
Bound().run()
with open(out, "w") as f:
    json.dump(times[3:], f)
'''


def bound(x, tmp: Path, rects: list, seconds: float = 3.0) -> dict[str, list[float]]:
    """Frame times (draw + swap, ms) of BOUND: the rectangles and an empty
    window, each redrawn every frame and every 150 ms, alternated."""
    out: dict[str, list[float]] = {}
    for rnd in range(2):
        for name, rs in (("empty", []), ("content", rects)):
            for period in (0.0, 0.15):
                key = f"{name} {'every frame' if not period else 'every 150 ms'}"
                f = tmp / f"bound-{rnd}-{name}-{period}.json"
                subprocess.run([sys.executable, "-c", BOUND, json.dumps(rs), str(period), str(seconds), str(f)],
                               env=x.env(), cwd=kf.REPO, check=True, timeout=60,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                out.setdefault(key, []).extend(json.loads(f.read_text()))
    return out


def child() -> str:
    code = kf.CHILD.replace("        instrument(app, True)\n        return app",
                            "        instrument(app, True)\n"
                            "        from kivy.clock import Clock\n"
                            "        Clock.schedule_once(lambda dt: _probe_hook(app), 1)\n"
                            "        return app")
    assert code != kf.CHILD, "bench/kds_frames.CHILD changed: the probe's hook no longer fits"
    return code.replace("orig_build = kapp.build_app", HOOK + "\norig_build = kapp.build_app")


@contextlib.contextmanager
def rig(tmp: Path):
    """A private display, broker and hub, and the station's config; all
    stopped after. (display, broker, config)"""
    x = broker = hub = None
    try:
        x = kf.Xvfb()
        broker = kf.Broker(tmp / "broker").start_with_devices()
        hub = kf.start_hub(tmp, broker)
        yield x, broker, kf.kds_config(tmp / "kds.toml", broker, tmp / "tickets.db")
    finally:
        if hub is not None:
            kf.terminate(hub)
        if broker is not None:
            broker.stop()
        if x is not None:
            x.close()


@contextlib.contextmanager
def killing(probes: list):
    """The probes started inside are killed after (a finished one is gone already)."""
    try:
        yield
    finally:
        for pr in probes:
            pr.kill()


def pct(xs: list[float], p: float) -> float:
    return kf.pct(xs, p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("probe", choices=("parts", "bumps", "bound"))
    ap.add_argument("variants", nargs="*", help="parts: all nothing kivyclear hide:PART only:PART; bumps: hot static bump")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5, help="per variant per round")
    args = ap.parse_args()
    if args.probe == "bound":
        return main_bound()
    if args.probe == "parts":
        variants = args.variants or ["all", "nothing", "kivyclear"] + [f"hide:{p}" for p in PARTS]
    else:
        variants = args.variants or ["hot", "static", "bump"]
    bumps = round(args.rounds * args.seconds / 0.15) + 10 if "bump" in variants else 0
    kf.CHILD = child()

    with tempfile.TemporaryDirectory(prefix="restobox-kdsprobe-") as tmp:
        tmp = Path(tmp)
        control = tmp / "probe-station.json.variant"  # the child's OUT.variant
        control.write_text("off")
        probes = []
        with rig(tmp) as (x, broker, cfg), killing(probes):
            # the floor: an empty window redrawn every frame
            b = kf.Probe(x, "empty", cfg, tmp, "empty")
            probes.append(b)
            b.wait_ready()
            time.sleep(0.5)
            span = kf.redrawn_for(b, 3)
            floor = kf.frames(b.finish(), [span])
            # the station
            p = kf.Probe(x, "kds", cfg, tmp, "station", state_file=tmp / "state.json")
            probes.append(p)
            p.wait_state()
            p.wait_ready()
            n = 324 + bumps
            kf.submit_wok_orders(broker, n)
            p.wait_open(lambda k: k >= n, 60, f"{n} open tickets")
            time.sleep(1.5)
            spans: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for v in variants:
                    control.write_text(v)
                    time.sleep(0.3)
                    t0 = kf.mono()
                    time.sleep(args.seconds)
                    spans[v].append((t0, kf.mono()))
            control.write_text("off")
            time.sleep(0.3)
            rec = p.finish()

    fw, fc = floor["drawn_work_p50_ms"], floor["drawn_cpu_p50_ms"]
    print(f"floor (empty window redrawn every frame): work p50 {fw:.1f} p95 {floor['drawn_work_p95_ms']:.1f} ms, "
          f"CPU p50 {fc:.1f} ms")
    ticks = rec["ticks"]
    for v in variants:
        if args.probe == "parts":
            f = kf.frames(rec, spans[v])
            work, cpu = f["drawn_work_p50_ms"], f["drawn_cpu_p50_ms"]
            print(f"{v:12s} work p50 {work:6.1f} ({work / fw:.2f}) p95 {f['drawn_work_p95_ms']:6.1f}  "
                  f"CPU p50 {cpu:6.1f} ({cpu / fc:.2f})  swap {f['per_drawn_frame_ms']['swap']:5.1f}  "
                  f"draw {f['per_drawn_frame_ms']['draw']:4.1f}  frames {f['drawn']}")
            continue
        marks = [t for t, m in rec["marks"] if m == v and any(a <= t <= b for a, b in spans[v])]
        rows = []
        for t in marks:  # the loop pass that holds the mark, when it drew
            tk = next((tk for tk in ticks if tk[0] <= t <= tk[1]), None)
            if tk is not None and tk[6] > 0 and tk not in rows:
                rows.append(tk)
        work = [(tk[1] - tk[0]) * 1000 for tk in rows]
        cpu = [tk[7] * 1000 for tk in rows]
        print(f"{v:12s} work p50 {pct(work, 50):6.1f} ({pct(work, 50) / fw:.2f}) p95 {pct(work, 95):6.1f}  "
              f"CPU p50 {pct(cpu, 50):6.1f}  swap p50 {pct([tk[6] * 1000 for tk in rows], 50):5.1f}  "
              f"frames {len(rows)}")
    steps = rec.get("steps") or []
    if steps:
        print("a bump, step by step (ms): " + ", ".join(
            f"{name} {pct([s[k] for s in steps], 50):.2f} / {pct([s[k] for s in steps], 95):.2f}"
            for k, name in enumerate(STEPS)) + "  (p50 / p95)")
    return 0


def main_bound() -> int:
    """The station with its tickets open, for its rectangles; then BOUND."""
    with tempfile.TemporaryDirectory(prefix="restobox-kdsprobe-") as tmp:
        tmp = Path(tmp)
        probes = []
        with rig(tmp) as (x, broker, cfg), killing(probes):
            p = kf.Probe(x, "kds", cfg, tmp, "station", state_file=tmp / "state.json")
            probes.append(p)
            p.wait_state()
            p.wait_ready()
            kf.submit_wok_orders(broker, 324)
            st = p.wait_open(lambda k: k >= 324, 60, "324 open tickets")
            time.sleep(1.0)
            st = p.state()
            p.finish()
            rects = [c["rect"] for c in st["cards"]] + [st["allday"]["rect"]]
            times = bound(x, tmp, rects)
    area = sum(w * h for _, _, w, h in rects) / (1920 * 1080)
    print(f"{len(rects)} rectangles (the cards and the all-day panel), {area:.0%} of the window")
    for key, ts in times.items():
        print(f"{key:26s} draw + swap p50 {pct(ts, 50):5.1f} p95 {pct(ts, 95):5.1f} ms  frames {len(ts)}")
    for cadence in ("every frame", "every 150 ms"):
        c, e = times[f"content {cadence}"], times[f"empty {cadence}"]
        print(f"content / empty, {cadence}: p50 {pct(c, 50) / pct(e, 50):.2f}, p95 {pct(c, 95) / pct(e, 95):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
