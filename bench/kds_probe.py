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

    python bench/kds_probe.py parts                       # about 40 s
    python bench/kds_probe.py parts all nothing only:opaque hide:timers
    python bench/kds_probe.py bumps                       # about 40 s

Figures per variant: frame work (wall) p50 and p95, and the process's CPU
per frame (every thread: the rasteriser's too) p50, with the floor (an empty
Kivy window redrawn every frame) for scale. Results: docs/performance.md,
Kitchen screen, "Seventh pass".
"""

from __future__ import annotations

import argparse
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

    def enter(part):
        v = state["v"]
        if v == "hide:" + part:
            hide()
        elif v == "only:" + part:
            show()

    def leave(part):
        v = state["v"]
        if v == "hide:" + part:
            show()
        elif v == "only:" + part:
            hide()

    def wrap(group, part, start=0, end=None):
        group.insert(start, Callback(lambda i: enter(part)))
        if end is None:
            group.add(Callback(lambda i: leave(part)))
        else:
            group.insert(end, Callback(lambda i: leave(part)))

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


def child() -> str:
    code = kf.CHILD.replace("        instrument(app, True)\n        return app",
                            "        instrument(app, True)\n"
                            "        from kivy.clock import Clock\n"
                            "        Clock.schedule_once(lambda dt: _probe_hook(app), 1)\n"
                            "        return app")
    assert code != kf.CHILD, "bench/kds_frames.CHILD changed: the probe's hook no longer fits"
    return code.replace("orig_build = kapp.build_app", HOOK + "\norig_build = kapp.build_app")


def pct(xs: list[float], p: float) -> float:
    return kf.pct(xs, p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("probe", choices=("parts", "bumps"))
    ap.add_argument("variants", nargs="*", help="parts: all nothing kivyclear hide:PART only:PART; bumps: hot static bump")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5, help="per variant per round")
    args = ap.parse_args()
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
        x = broker = hub = None
        probes = []
        try:
            x = kf.Xvfb()
            broker = kf.Broker(tmp / "broker").start_with_devices()
            hub = kf.start_hub(tmp, broker)
            cfg = kf.kds_config(tmp / "kds.toml", broker, tmp / "tickets.db")
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
        finally:
            for pr in probes:
                pr.kill()
            if hub is not None:
                kf.terminate(hub)
            if broker is not None:
                broker.stop()
            if x is not None:
                x.close()

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


if __name__ == "__main__":
    sys.exit(main())
