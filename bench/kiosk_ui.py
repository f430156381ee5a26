"""Diner's kiosk: start-up, tap -> screen change, resident memory of the real
kiosk app (``python -m kiosk``, the production entry point) in a real Kivy
window (portrait 1080x1920) on a private Xvfb, fed the real menu by the real
hub through the real broker, tapped with real X clicks (xdotool).

Figures (docs/architecture.md budgets: app start to usable screen <= 3 s; tap -> next
screen drawn p95 <= 2x the empty window's; resident memory <= 60 MB over an
empty Kivy window, flat over hours):

- ``startup_s``: from spawning ``python -m kiosk`` to the end of the first
  frame that shows the attract screen; the slowest of the first start (no
  menu cached in the kiosk's database: the menu comes from the hub's
  retained message) and the restarts (menu cached). ``startup_menu_s``:
  first start to the first state dump that says the menu is there (the dump
  is written through a 0.08 s trigger, so up to ~0.08 s late);
- ``tap_ms``: median, over the taps that change the screen (the order
  cycles below, in both languages), from
  the X button release (``xdotool mouseup``) to the end of the first frame
  drawn with the new screen; ``tap_p95_ms`` the 95th percentile;
  ``tap_same_screen_ms`` the same for taps that update the screen in place
  (choosing take-away, switching a menu category);
- ``rss_mb``: VmRSS of the kiosk after the menu was shown and every screen of
  the cycles was visited (``rss_peak_mb``: its VmHWM);
- ``tap_p95_ratio``: ``tap_p95_ms`` / the empty window's tap p95 (budget
  <= 2.0), with a photo on every tile (the sample menu has one for every
  dish: the hub publishes them, the kiosk cuts them to tiles; the taps begin
  once the kiosk has them all, ``startup_photos_s``); the tap that places the
  order (pay -> confirm: a round trip to the hub) is not a screen tap and is
  left out;
- ``rss_over_empty_mb``: ``rss_mb`` - the empty window's RSS (budget <= 60);
- ``rss_growth_mb``: RSS after the last order cycle - after the first (the
  first builds the screens and reads the photos; budget <= 5 over 20 cycles:
  the full run does 21 cycles, --quick fewer), each read once the kiosk has
  tidied up after the order on the attract screen (state dump ``tidied``);
- ``cpu_ms_per_tap``: the kiosk process's CPU time (utime + stime from
  /proc/<pid>/stat) over the cycles / the taps made; ``baseline_cpu_ms_per_tap``
  the same for the empty window.

A cycle is one whole order: attract -> language -> service (take-away) -> menu
-> another category -> a dish -> back -> the dish again -> add -> cart ->
checkout -> pay at the counter -> number -> done -> attract.

"Drawn" comes from a hook in kiosk/app.py: with RESTOBOX_KIOSK_SHOWN=FILE the
app appends "<screen> shown at <time.time()>" to FILE once a frame has been
drawn after ``_show`` built a screen (in the next frame's Clock tick, after
that frame's buffer swap; at most one Clock sleep, <= 1/60 s, late). The
click's time is taken just before ``xdotool mouseup`` is spawned, so the
figure includes xdotool's own start-up (``xdotool_mouseup_ms``, median).
Button rectangles come from RESTOBOX_KIOSK_STATE, as in tests/test_kiosk_ui.py.

Baseline, same run, same Xvfb, same Kivy Config (``kiosk.app.configure_kivy``):
an empty Kivy window (``python -c BASELINE``): its start-up to the first
frame drawn, its RSS, and X click -> a new one-label screen drawn, with the
same hook code.

    python bench/kiosk_ui.py --quick      # under 30 s: 2 order cycles (28 taps), no restart
    python bench/kiosk_ui.py              # about 4 min: 21 order cycles (294 taps), 3 restarts

Human-readable lines go to stderr; the figures come last, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.kds_frames import pct, proc_mem, r1, read_json, say, start_hub, stop_store, wait_for  # noqa: E402
from restobox.brokerconf import Broker, terminate  # noqa: E402
from restobox.data import load_sample_menu  # noqa: E402
from restobox.display import Xvfb  # noqa: E402
from tests.support import kiosk_config  # noqa: E402

# ------------------------------------------------------------- the baseline
# argv: kiosk config, shown log. An empty App with the kiosk's Kivy Config;
# each touch (release) replaces its content by one new Label. The drawn
# times are logged exactly as kiosk/app.py's RESTOBOX_KIOSK_SHOWN hook does.
BASELINE = r'''
import os, signal, sys, time
sys.path.insert(0, os.getcwd())
cfg_path, shown_log = sys.argv[1], sys.argv[2]
from restobox import config as config_mod
import kiosk.app as kapp
kapp.configure_kivy(config_mod.load(cfg_path))
from kivy.app import App
from kivy.clock import Clock
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.label import Label


def log_shown(screen, frame):
    if Clock.frames_displayed <= frame:
        Clock.schedule_once(lambda dt: log_shown(screen, frame), 0)
        return
    with open(shown_log, "a", encoding="utf-8") as f:
        f.write(f"{screen} shown at {time.time():.6f}\n")


class Root(FloatLayout):
    n = 0

    def on_touch_up(self, touch):
        self.n += 1
        self.clear_widgets()
        self.add_widget(Label(text=f"tap {self.n}", font_size=60))
        log_shown(f"tap-{self.n}", Clock.frames_displayed)
        return True


class Empty(App):
    title = "empty"
    kv_file = "/nonexistent/empty.kv"  # no kv (the default lookup needs a source file)

    def build(self):
        signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda dt: self.stop()))
        log_shown("empty", Clock.frames_displayed)
        return Root()


Empty().run()
'''


def cpu_ms(pid: int) -> float:
    """utime + stime of a process, in ms (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def bench_kiosk_config(path: Path, broker: Broker, size: tuple[int, int]) -> Path:
    """As the kiosk UI tests; kiosk.db in the run's temp dir, next to the config."""
    return kiosk_config(path, broker, kiosk=f"width = {size[0]}\nheight = {size[1]}")


class AppProcess:
    """A Kivy app process on the Xvfb with the shown-log (and for the kiosk,
    the state file) in ``workdir``; times are ``time.time()``, as the app's."""

    def __init__(self, x: Xvfb, argv: list[str], workdir: Path, name: str) -> None:
        self.x = x
        self.name = name
        self.shown_file = workdir / f"{name}-shown.log"
        self.state_file = workdir / f"{name}-state.json"
        self.log = workdir / f"{name}.log"
        for p in (self.shown_file, self.state_file):
            p.unlink(missing_ok=True)
        env = {**x.env(), "RESTOBOX_KIOSK_SHOWN": str(self.shown_file),
               "RESTOBOX_KIOSK_STATE": str(self.state_file), "RESTOBOX_SCREENSHOT_DIR": str(workdir)}
        for k in ("RESTOBOX_KIOSK_SIZE", "RESTOBOX_SCREENSHOT_EVERY", "RESTOBOX_KIOSK_PHOTOS"):
            env.pop(k, None)
        self.t_spawn = time.time()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def shown(self) -> list[tuple[str, float]]:
        try:
            text = self.shown_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.split("\n")[:-1]:  # complete lines only
            screen, sep, at = line.rpartition(" shown at ")
            if sep:
                out.append((screen, float(at)))
        return out

    def wait_shown(self, after: int, timeout: float = 10, what: str = "a new screen") -> tuple[str, float]:
        """The first screen drawn after the first ``after`` ones."""
        lines = wait_for(lambda: (s := self.shown()) and len(s) > after and s, timeout, what, self.proc, self.log)
        return lines[after]

    def state(self) -> dict | None:
        return read_json(self.state_file)

    def wait_state(self, pred, timeout: float = 10, what: str = "the kiosk's state") -> dict:
        return wait_for(lambda: (s := self.state()) is not None and pred(s) and s, timeout, what, self.proc, self.log)

    def mem(self) -> dict[str, float]:
        return proc_mem(self.proc.pid)

    def stop(self) -> None:
        terminate(self.proc, 10)


def click(x: Xvfb, px: float, py: float) -> tuple[float, float]:
    """Move, press, release; the time just before the release is spawned and
    how long ``xdotool mouseup`` took."""
    x.xdotool("mousemove", str(int(px)), str(int(py)))
    time.sleep(0.1)  # SDL sees the pointer there before the press
    x.xdotool("mousedown", "1")
    time.sleep(0.05)
    t0 = time.time()
    x.xdotool("mouseup", "1")
    return t0, time.time() - t0


def centre(st: dict, target: str) -> tuple[float, float]:
    bx, by, bw, bh = st["buttons"][target]
    left, top = st.get("window_pos", [0, 0])
    return left + bx + bw / 2, top + by + bh / 2


def visible(st: dict, target: str) -> bool:
    r = st["buttons"].get(target)
    if r is None:
        return False
    w, h = st["window"]
    cx, cy = r[0] + r[2] / 2, r[1] + r[3] / 2
    return 0 < cx < w and 0 < cy < h


class Tapper:
    """Taps the kiosk's buttons by target and times each tap to the new screen."""

    def __init__(self, x: Xvfb, k: AppProcess) -> None:
        self.x, self.k = x, k
        self.taps: list[dict] = []
        self.n_taps = 0
        self.xdotool: list[float] = []
        self.screen, self.shown_at = k.shown()[-1]
        self.last: dict[str, float] = {}
        menu = load_sample_menu()
        self.category_of = {i.id: i.category for i in menu.items}
        groups = {g.id: g for g in menu.modifier_groups}
        # dishes added as they are: no choice required
        self.simple = {i.id for i in menu.items if not any(groups[g].required for g in i.modifier_groups)}
        self.categories = [c.id for c in menu.categories]

    def ready_state(self, pred=lambda st: True, what: str = "") -> dict:
        """A state dump written after the current screen was drawn (its rectangles are current)."""
        return self.k.wait_state(lambda st: st["screen"] == self.screen and st["at"] >= self.shown_at and pred(st),
                                 10, what or f"a state dump of the {self.screen} screen")

    def tap(self, target: str, expect: str, *, allow: set[str] = frozenset(), timed: bool = True,
            timeout: float = 10) -> dict:
        st = self.ready_state(lambda st: visible(st, target), f"{target} on the {self.screen} screen")
        # the view model ignores the same target again within 0.3 s (tap guard)
        wait = self.last.get(target, 0) + 0.4 - time.time()
        if wait > 0:
            time.sleep(wait)
        n = len(self.k.shown())
        px, py = centre(st, target)
        t0, xd = click(self.x, px, py)
        self.last[target] = t0
        self.xdotool.append(xd * 1000)
        if not timed:  # the screen may be redrawn on the way (submitting): wait for the one expected
            self.k.wait_state(lambda st: st["screen"] == expect, timeout, f"{expect} after tapping {target}")
            lines = wait_for(lambda: (ls := self.k.shown()) and any(sc == expect for sc, _ in ls[n:]) and ls,
                             timeout, f"{expect} drawn", self.k.proc, self.k.log)
            n = next(j for j in range(n, len(lines)) if lines[j][0] == expect)
        screen, at = self.k.wait_shown(n, timeout, f"a screen drawn after tapping {target} on {self.screen}")
        if screen in allow:
            expect = screen
        if screen != expect:
            raise RuntimeError(f"tapping {target} on {self.screen} showed {screen}, not {expect}")
        rec = {"from": self.screen, "to": screen, "target": target, "ms": (at - t0) * 1000}
        self.n_taps += 1
        if timed:
            self.taps.append(rec)
        self.screen, self.shown_at = screen, at
        return rec

    def cycle(self, i: int) -> None:
        """One whole order: attract -> language -> service (take-away) -> menu ->
        another category -> a dish -> back -> the dish again -> add -> cart ->
        checkout -> pay at the counter -> number -> done -> attract."""
        lang = "en" if i % 2 == 0 else "zh"
        self.tap("start", "language")
        self.tap(f"lang:{lang}", "service")
        self.tap("service:takeaway", "service")
        self.tap("next", "menu")
        st = self.ready_state(lambda st: any(t.startswith("item:") for t in st["buttons"]), "items on the menu")
        showing = {self.category_of.get(t.partition(":")[2]) for t in st["buttons"] if t.startswith("item:")}
        cats = [c for c in self.categories if visible(st, f"category:{c}") and c not in showing]
        self.tap(f"category:{cats[i % len(cats)]}", "menu")
        st = self.ready_state(lambda st: any(t.startswith("item:") and visible(st, t) for t in st["buttons"]),
                              "items of the new category")
        items = [t for t in st["buttons"] if t.startswith("item:") and visible(st, t)]
        top = min(st["buttons"][t][1] for t in items)  # the first row: never under the scroll view's edge
        items = sorted((t for t in items if st["buttons"][t][1] == top), key=lambda t: st["buttons"][t][0])
        # a dish that can be added as it is (no required choice), in the first row if there is one
        simple = [t for t in items if t.partition(":")[2] in self.simple] or \
            sorted((t for t in st["buttons"] if t.startswith("item:") and visible(st, t)
                    and t.partition(":")[2] in self.simple), key=lambda t: st["buttons"][t][1])
        item = (simple or items)[i % len(simple or items)]
        self.tap(item, "item")
        self.tap("back", "menu")
        self.tap(item, "item")
        if not self.ready_state(lambda st: True)["buttons"].get("add"):
            raise RuntimeError(f"no add button for {item}")
        self.tap("add", "item", allow={"menu"})
        if self.screen == "item":  # not added as it is (a choice the dish's defaults do not make)
            raise RuntimeError(f"{item} could not be added as it is")
        self.tap("cart", "cart")
        self.tap("checkout", "pay")
        self.tap("pay:counter", "confirm", timed=False, timeout=20)
        self.tap("done", "attract")


def tap_figures(taps: list[dict]) -> dict:
    ms = [t["ms"] for t in taps]
    return {"n": len(ms), "p50_ms": r1(pct(ms, 50)), "p95_ms": r1(pct(ms, 95)),
            "min_ms": r1(min(ms, default=float("nan"))), "max_ms": r1(max(ms, default=float("nan")))}


def fmt_taps(f: dict) -> str:
    return f"{f['n']} taps: p50 {f['p50_ms']} / p95 {f['p95_ms']} ms (min {f['min_ms']}, max {f['max_ms']})"


# --------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a run under 30 s")
    ap.add_argument("--cycles", type=int, default=None,
                    help="order cycles, 14 taps each, alternately English and Chinese (quick 2, full 21)")
    ap.add_argument("--restarts", type=int, default=None, help="restarts with the menu cached (quick 0, full 3)")
    ap.add_argument("--baseline-taps", type=int, default=None, help="taps on the empty window (quick 5, full 15)")
    ap.add_argument("--size", default="1080x1920", help="the kiosk's window (and display) size, WxH")
    args = ap.parse_args()
    cycles = args.cycles if args.cycles is not None else (2 if args.quick else 21)
    restarts = args.restarts if args.restarts is not None else (0 if args.quick else 3)
    base_taps = args.baseline_taps if args.baseline_taps is not None else (5 if args.quick else 15)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    t_begin = time.monotonic()

    # a SIGTERM to the benchmark still runs the finally below (nothing left behind)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="restobox-kioskbench-", dir=os.environ.get("RESTOBOX_BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        x = broker = hub = None
        apps: list[AppProcess] = []
        try:
            x = Xvfb(*size)
            say(f"private display {x.display} ({size[0]}x{size[1]}); broker and hub ...")
            broker = Broker(tmp / "broker").start_with_devices()
            # the sample menu, a photo for every dish: the hub publishes them, the kiosk cuts them to tiles
            hub = start_hub(tmp, broker)
            n_photos = sum(1 for i in load_sample_menu().items if i.image)
            cfg = bench_kiosk_config(tmp / "kiosk.toml", broker, size)

            # ------------------------------------------------------ baseline
            say(f"baseline: an empty Kivy window (the kiosk's Kivy Config), {base_taps} taps ...")
            b = AppProcess(x, [sys.executable, "-c", BASELINE, str(cfg), str(tmp / "empty-shown.log")],
                           tmp, "empty")
            apps.append(b)
            _, at = b.wait_shown(0, 30, "the empty window's first frame")
            base_start = at - b.t_spawn
            time.sleep(0.5)
            base_tap = []
            cpu0 = cpu_ms(b.proc.pid)
            for i in range(base_taps):
                n = len(b.shown())
                t0, _ = click(x, size[0] / 2, size[1] / 2)
                _, at = b.wait_shown(n, 10, "the empty window's new label")
                base_tap.append((at - t0) * 1000)
                time.sleep(0.3)
            base_cpu = (cpu_ms(b.proc.pid) - cpu0) / max(1, base_taps)
            base_mem = b.mem()
            b.stop()
            say(f"  first frame after {base_start:.2f} s; tap -> drawn p50 {pct(base_tap, 50):.1f} / "
                f"p95 {pct(base_tap, 95):.1f} ms; RSS {base_mem['VmRSS']:.0f} MB")

            # ----------------------------------------------- the kiosk, cold
            say("python -m kiosk, first start (no menu cached) ...")
            k = AppProcess(x, [sys.executable, "-m", "kiosk", "--config", str(cfg)], tmp, "kiosk")
            apps.append(k)
            screen, at = k.wait_shown(0, 30, "the kiosk's first screen")
            if screen != "attract":
                raise RuntimeError(f"the kiosk started on {screen}")
            starts = [at - k.t_spawn]
            st = k.wait_state(lambda st: st["menu"], 30, "the menu from the hub")
            menu_s = st["at"] - k.t_spawn
            st = k.wait_state(lambda st: st["photos"] >= n_photos, 30, "the menu's photos on the kiosk")
            photos_s = st["at"] - k.t_spawn
            time.sleep(0.5)
            mem_start = k.mem()
            say(f"  attract screen drawn after {starts[0]:.2f} s, menu there after <= {menu_s:.2f} s; "
                f"RSS {mem_start['VmRSS']:.0f} MB")

            say(f"  the {n_photos} photos there after <= {photos_s:.2f} s")
            say(f"taps: {cycles} order cycles, a photo on each of the {n_photos} dishes ...")
            tp = Tapper(x, k)
            rss_cycles = []
            cpu0 = cpu_ms(k.proc.pid)
            for i in range(cycles):
                tp.cycle(i)
                # each cycle's figure once the kiosk has tidied up after the order on
                # the attract screen (its garbage collected, its heap trimmed), as
                # it does after every order: the same moment in every cycle
                k.wait_state(lambda st, n=i + 1: st.get("tidied", 0) >= n, 10, f"the kiosk tidied after order {i + 1}")
                rss_cycles.append(k.mem()["VmRSS"])
            cpu_per_tap = (cpu_ms(k.proc.pid) - cpu0) / max(1, tp.n_taps)
            time.sleep(0.5)
            mem_end = k.mem()
            # the menu as drawn: a photo on every tile?
            tp.tap("start", "language")
            tp.tap("lang:en", "service")
            tp.tap("service:takeaway", "service")
            tp.tap("next", "menu")
            st = tp.ready_state(lambda st: st["tiles"] and all(t["photo_shown"] for t in st["tiles"]),
                                "every tile with its photo")
            tiles_with_photo = sum(1 for t in st["tiles"] if t["photo_shown"]), len(st["tiles"])
            changes = [t for t in tp.taps if t["from"] != t["to"]]
            same = [t for t in tp.taps if t["from"] == t["to"]]
            by_step: dict[str, list[dict]] = {}
            for t in tp.taps:
                by_step.setdefault(f"{t['from']}->{t['to']}", []).append(t)
            f_changes, f_same = tap_figures(changes), tap_figures(same)
            say(f"  screen changes: {fmt_taps(f_changes)}")
            say(f"  same screen rebuilt: {fmt_taps(f_same)}")
            for step, ts in by_step.items():
                say(f"    {step:18s} " + ", ".join(f"{t['ms']:.0f}" for t in ts) + " ms")
            say(f"  xdotool mouseup itself: p50 {pct(tp.xdotool, 50):.1f} ms")
            say(f"  RSS {mem_end['VmRSS']:.0f} MB (peak {mem_end['VmHWM']:.0f}); after each cycle: "
                + ", ".join(f"{v:.0f}" for v in rss_cycles) + " MB")
            k.stop()

            # --------------------------------------- restarts, menu cached
            for r in range(restarts):
                k2 = AppProcess(x, [sys.executable, "-m", "kiosk", "--config", str(cfg)], tmp, f"kiosk-restart{r}")
                apps.append(k2)
                screen, at = k2.wait_shown(0, 30, "the kiosk's first screen")
                starts.append(at - k2.t_spawn)
                st = k2.wait_state(lambda st: st["menu"], 30, "the menu")
                say(f"restart {r + 1} (menu cached): attract screen drawn after {starts[-1]:.2f} s, "
                    f"menu there after <= {st['at'] - k2.t_spawn:.2f} s")
                k2.stop()

            figures = {
                "tap_p95_ratio": round(f_changes["p95_ms"] / pct(base_tap, 95), 2),
                "rss_over_empty_mb": r1(mem_end["VmRSS"] - base_mem["VmRSS"]),
                "rss_growth_mb": r1(rss_cycles[-1] - rss_cycles[0]),
                "cpu_ms_per_tap": r1(cpu_per_tap),
                "baseline_cpu_ms_per_tap": r1(base_cpu),
                "order_cycles": cycles,
                "tiles_with_photo": list(tiles_with_photo),
                "startup_photos_s": round(photos_s, 2),
                "startup_s": round(max(starts), 2),
                "tap_ms": f_changes["p50_ms"],
                "rss_mb": r1(mem_end["VmRSS"]),
                "tap_p95_ms": f_changes["p95_ms"],
                "tap_same_screen_ms": f_same["p50_ms"],
                "startup_menu_s": round(menu_s, 2),
                "startups_s": [round(v, 2) for v in starts],
                "rss_peak_mb": r1(mem_end["VmHWM"]),
                "rss_at_start_mb": r1(mem_start["VmRSS"]),
                "rss_by_cycle_mb": [r1(v) for v in rss_cycles],
                "baseline_startup_s": round(base_start, 2),
                "baseline_tap_ms": r1(pct(base_tap, 50)),
                "baseline_tap_p95_ms": r1(pct(base_tap, 95)),
                "baseline_rss_mb": r1(base_mem["VmRSS"]),
                "xdotool_mouseup_ms": r1(pct(tp.xdotool, 50)),
                "taps": {"screen_change": f_changes, "same_screen": f_same,
                         "by_step": {s: tap_figures(ts) for s, ts in by_step.items()}},
                "window": list(size),
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "seconds": r1(time.monotonic() - t_begin),
            }
            say(f"start {figures['startup_s']} s (budget 3; empty window {base_start:.2f} s); tap -> new screen "
                f"p50 {figures['tap_ms']} / p95 {figures['tap_p95_ms']} ms (empty window {figures['baseline_tap_ms']} "
                f"ms; ratio {figures['tap_p95_ratio']}, budget 2.0); RSS {figures['rss_mb']} MB (empty window "
                f"{figures['baseline_rss_mb']} MB: {figures['rss_over_empty_mb']} over, budget 60; growth "
                f"{figures['rss_growth_mb']} MB over {cycles - 1} cycles, budget 5); CPU {figures['cpu_ms_per_tap']} "
                f"ms per tap (empty window {figures['baseline_cpu_ms_per_tap']}); "
                f"{figures['seconds']} s in all")
            print(json.dumps(figures), flush=True)
            return 0
        finally:
            for a in apps:
                a.stop()
            stop_store(hub, broker, x)


if __name__ == "__main__":
    sys.exit(main())
