"""Kitchen screen under load: the real station screen (``kds.app``) with 300
open tickets, in a real Kivy window on a private Xvfb, fed by the real broker
and the real hub, bumped with real X key presses (XTEST through one X
connection, as a bump bar's keyboard: no process started per key).

Figures (docs/architecture.md budgets: p95 frame <= 20 ms, bump -> redraw <= 50 ms,
start -> usable screen <= 3 s, <= 150 MB resident per Kivy app):

- ``p95_frame_ms``: the 95th percentile of the app's frame time (Kivy's
  ``Clock.frametime``, the time from one frame to the next) while the
  tickets are open: an idle stretch (the timers tick once a second), a bump
  storm (``--bumps`` presses of the bump key, one every
  ``--bump-interval-ms``) and single bumps a second apart;
- ``bump_redraw_ms``: 95th percentile over all those bumps, from the bump
  key reaching the app (its ``on_key_down``) to the end of the buffer swap of
  the first frame whose grid no longer shows the bumped ticket;
- ``startup_s``: ``python -m kds`` (the production entry point, unmodified)
  with 300 tickets in its cache, from process start to its first state dump
  (the signal of tests/ui_support.ScreenProcess.start);
- ``rss_mb``: VmRSS of the app with the tickets open: the larger of
  ``python -m kds`` 2 s after its start and the probe at the end of its run.

Frame times are measured inside the app and nothing is added to kds/: the
probe is a child process of this benchmark (``python -c CHILD``) that runs
``kds.app.run`` itself, so the Kivy Config is set exactly as in production,
with ``kds.app.build_app`` wrapped to attach probes: a
``Clock.schedule_interval(.., 0)`` callback recording Clock's dt, and
wrappers around ``Clock.idle`` (the frame-rate sleep), ``Window.on_draw``,
``Window.flip``, ``Label.texture_update`` (text rendering), the app's
``refresh`` and ``_on_key``, and ``StationController.save``.

Budgets (docs/architecture.md; ratios to the floor measured in the same run):

- ``drawn_work_ratio``: drawn-frame work p95 with the tickets open (idle,
  storm, single bumps) / the empty window's drawn-frame work p95 when it is
  redrawn every frame (<= 2.0); a frame's work is the time from its start
  (Clock waking from its wait for the frame slot, or a key whose handler
  draws the frame itself) to the next wait or key;
- ``bump_redraw_over_floor_ms``: ``bump_redraw_ms`` less that floor (<= 50);
- ``rss_over_empty_mb``: ``rss_mb`` less the empty window's (<= 60);
- ``rss_growth_mb``: VmRSS after the single bumps less before the storm (<= 5);
- ``cpu_ms_per_bump``: CPU time of the screen's process (/proc/PID/stat
  utime + stime) over the storm, less the idle rate over the same time
  (``cpu_idle_ms_per_s``, the timers), per bump.

Not a budget: ``redraw_work_p50_ratio``, the station with its tickets
redrawn every frame (after the single bumps; no text rendered), work p50 /
the empty window's redraw p50: the fill alone, over as many frames as the
floor, so much steadier between runs than the p95 of a few dozen drawn frames.

Not budgets either: ``drawn_cpu_p50_ratio`` and ``redraw_cpu_p50_ratio``,
the same two kinds of frame measured in CPU time of the whole process (its
rasteriser threads too) per drawn frame, p50, over the floor's: what the
frames cost a slower CPU, and the least disturbed by other work on the
machine.

Baseline, same run, same display: the same child with an empty Kivy window
(same Config, no content; like the screens' window, without depth and
stencil buffers: restobox/glvisual.py): frame time idle, frame time with a
full redraw forced every frame (what the software GL costs per drawn frame),
start-up and RSS. And, not for a budget, the same empty window as Kivy makes
it when not told (24-bit depth, 8-bit stencil here:
``RESTOBOX_GL_VISUAL=default``), the floor of the passes before the eighth:
``drawn_work_ratio_kivy_window`` is the drawn-frame work p95 over its redraw
p95.

    python bench/kds_frames.py --quick      # about 30 s
    python bench/kds_frames.py              # about 70 s: 100-bump storm, 3 restarts

Human-readable lines go to stderr; the figures come last, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from restobox import contract, glvisual  # noqa: E402
from restobox.brokerconf import Broker, terminate  # noqa: E402
from restobox.bus import Bus, Incoming  # noqa: E402
from restobox.contract import topics  # noqa: E402
from restobox.data import load_sample_menu  # noqa: E402
from restobox.dev.sim import random_order  # noqa: E402
from bench.storekit import proc_stat  # noqa: E402
from tests.ui_support import ScreenProcess, Xvfb  # noqa: E402

STATION = "wok"
mono = time.monotonic  # CLOCK_MONOTONIC: the same clock in every process

# ---------------------------------------------------------------- the probe
# argv: mode ("kds": the station screen | "empty": an empty App), config,
# output path. Runs kds.app.run(config) with build_app wrapped. SIGUSR1
# toggles a full redraw every frame (baseline); SIGTERM stops the App
# cleanly (so the station saves its ticket cache); the records are then
# written as JSON. The first buffer swap touches OUT.ready.
CHILD = r'''
import json, logging, os, signal, sys, time
mono = time.monotonic
T0 = mono()
mode, cfg_path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.getcwd())
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
import kds.app as kapp

# ticks: one per frame: [wake, sleep_start, text_s, text_n, refresh_s, draw_s, flip_s, cpu_s]
# (cpu_s: the process's CPU time in the frame, every thread: the rasteriser's too)
rec = {"mode": mode, "t0": T0, "ticks": [], "dts": [], "flips": [], "refresh": [], "keys": [],
       "bumps": [], "saves": [], "force": []}
st = {"force": False, "ready": False, "awaiting": [], "wake": None, "cpu": 0.0}
acc = [0.0, 0, 0.0, 0.0, 0.0]  # text_s, text_n, refresh_s, draw_s, flip_s in the current frame


def write_out():
    rec["t_exit"] = mono()
    with open(out_path + ".tmp", "w") as f:
        json.dump(rec, f)
    os.replace(out_path + ".tmp", out_path)


def instrument(app, station):
    from kivy.clock import Clock
    from kivy.core.window import Window

    orig_idle = Clock.idle  # the sleep up to the next frame (maxfps)
    def idle():
        t = mono()
        if st["wake"] is not None:
            rec["ticks"].append([st["wake"], t] + acc + [time.process_time() - st["cpu"]])
        acc[:] = [0.0, 0, 0.0, 0.0, 0.0]
        r = orig_idle()
        st["wake"] = mono()
        st["cpu"] = time.process_time()
        return r
    Clock.idle = idle

    def every_frame(dt):  # Clock's own frame time
        rec["dts"].append((mono(), dt))
        if st["force"]:
            Window.canvas.ask_update()
    Clock.schedule_interval(every_frame, 0)

    orig_draw = Window.on_draw
    def on_draw(*a):
        t = mono()
        r = orig_draw(*a)
        acc[3] += mono() - t
        return r
    Window.on_draw = on_draw

    orig_flip = Window.flip
    def flip():
        t0 = mono()
        orig_flip()
        t = mono()
        acc[4] += t - t0
        rec["flips"].append(t)
        if not st["ready"]:
            st["ready"] = True
            open(out_path + ".ready", "w").close()
        for b in st["awaiting"]:
            b["drawn"] = t
        st["awaiting"] = []
    Window.flip = flip

    if not station:
        return
    from kivy.core.window import Keyboard
    from kds.controller import StationController

    orig_save = StationController.save
    def save(self):
        t = mono()
        orig_save(self)
        rec["saves"].append((t, mono() - t))
    StationController.save = save

    pending = []
    orig_refresh = app.refresh
    def refresh(*a):
        t = mono()
        orig_refresh(*a)
        t1 = mono()
        acc[2] += t1 - t
        shown = {c.ticket_id for c in app.cards if c.ticket_id}
        rec["refresh"].append((t, t1 - t))
        for b in list(pending):
            if b["tid"] not in shown:
                b["refreshed"] = t1
                st["awaiting"].append(b)
                pending.remove(b)
    app.refresh = refresh

    enter = Keyboard.keycodes["enter"]
    orig_key = app._on_key
    def on_key(window, key, scancode, codepoint, modifiers):
        t = mono()
        # the handler draws the key's frame itself (kds.app _draw_now), in the
        # loop pass that may already have drawn one: each frame counted alone
        if st["wake"] is not None:
            rec["ticks"].append([st["wake"], t] + acc + [time.process_time() - st["cpu"]])
            acc[:] = [0.0, 0, 0.0, 0.0, 0.0]
            st["wake"], st["cpu"] = t, time.process_time()
        tid = app.ctl.vm.selected_ticket_id if key == enter else None
        b = None
        if tid is not None:  # awaited from the key on: the handler may draw the frame itself
            b = {"tid": tid, "key": t, "handled": None, "refreshed": None, "drawn": None}
            rec["bumps"].append(b)
            pending.append(b)
        r = orig_key(window, key, scancode, codepoint, modifiers)
        t1 = mono()
        rec["keys"].append((t, key, t1 - t))
        if b is not None:
            b["handled"] = t1
        return r
    app._on_key = on_key


def probe_text():
    from kivy.uix.label import Label
    orig = Label.texture_update
    def texture_update(self, *a):
        t = mono()
        orig(self, *a)
        acc[0] += mono() - t
        acc[1] += 1
    Label.texture_update = texture_update


orig_build = kapp.build_app
def build_app(cfg):
    probe_text()
    if mode == "kds":
        app = orig_build(cfg)
        instrument(app, True)
        return app
    from kivy.app import App
    from kivy.uix.widget import Widget
    class Empty(App):
        title = "empty"
        kv_file = "/nonexistent/empty.kv"  # no kv (the default lookup needs a source file)
        def build(self):
            return Widget()
    app = Empty()
    instrument(app, False)
    return app
kapp.build_app = build_app


def on_term(sig, frame):
    from kivy.app import App
    from kivy.clock import Clock
    a = App.get_running_app()
    if a is None:
        write_out()
        os._exit(0)
    Clock.schedule_once(lambda dt: a.stop(), 0)


def on_usr1(sig, frame):
    st["force"] = not st["force"]
    rec["force"].append(mono())


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGUSR1, on_usr1)
rc = kapp.run(cfg_path)
write_out()
sys.exit(rc)
'''


# ------------------------------------------------------------------ helpers
def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def r1(v: float) -> float:
    return round(v, 1)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def proc_mem(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) in MB, from /proc/PID/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) / 1024
    return out


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = mono() + timeout
    while True:
        v = pred()
        if v:
            return v
        tail = f"; log:\n{log.read_text(errors='replace')[-3000:]}" if log and log.exists() else ""
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({proc.returncode}){tail}")
        if mono() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s{tail}")
        time.sleep(0.02)


def kds_config(path: Path, broker: Broker, cache: Path) -> Path:
    """As tests/test_kds_station_ui.py: station wok, 1920x1080, 5 x 2 cards."""
    path.write_text(f"""
[device]
id = "kds-wok-1"
role = "kds"

[mqtt]
port = {broker.port}
password_file = "{broker.creds['kds-wok-1'].password_file}"
keepalive_s = 5
reconnect_max_s = 1

[kds]
mode = "station"
station = "{STATION}"
cache = "{cache}"
width = 1920
height = 1080
""", encoding="utf-8")
    return path


def empty_window(probes: list, x: Xvfb, cfg: Path, tmp: Path, name: str, seconds: float,
                 env: dict[str, str] | None = None, idle_s: float | None = None):
    """The empty window's probe: ``idle_s`` (default ``seconds``) idle, then
    ``seconds`` redrawn every frame. (first frame s, memory, idle frames,
    redrawn frames)"""
    b = Probe(x, "empty", cfg, tmp, name, env=env)
    probes.append(b)
    start = b.wait_ready()
    time.sleep(0.5)
    b0 = mono()
    time.sleep(seconds if idle_s is None else idle_s)
    idle = (b0, mono())
    redrawn = redrawn_for(b, seconds)
    mem = b.mem()
    rec = b.finish()
    return start, mem, frames(rec, [idle]), frames(rec, [redrawn])


def redrawn_for(p: "Probe", seconds: float) -> tuple[float, float]:
    """Have the probe redraw every frame from now on (SIGUSR1), for
    ``seconds``: the span to measure."""
    p.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.1)
    t0 = mono()
    time.sleep(seconds)
    return t0, mono()


class Probe:
    """``python -c CHILD MODE CONFIG OUT`` on the Xvfb."""

    def __init__(self, x: Xvfb, mode: str, config: Path, workdir: Path, name: str,
                 state_file: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.out = workdir / f"probe-{name}.json"
        self.ready = Path(f"{self.out}.ready")
        self.log = workdir / f"probe-{name}.log"
        self.state_file = state_file
        for p in (self.out, self.ready):
            p.unlink(missing_ok=True)
        env = {**x.env(), "RESTOBOX_SCREENSHOT_DIR": str(workdir), **(env or {})}
        env.pop("RESTOBOX_KDS_STATE", None)
        if state_file is not None:
            state_file.unlink(missing_ok=True)
            env["RESTOBOX_KDS_STATE"] = str(state_file)
        self.t_spawn = mono()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(config), str(self.out)],
                                         stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def wait_state(self, timeout: float = 30) -> float:
        """Seconds from spawn to the first state dump."""
        assert self.state_file is not None
        wait_for(self.state_file.exists, timeout, "probe state dump", self.proc, self.log)
        return mono() - self.t_spawn

    def wait_ready(self, timeout: float = 30) -> float:
        """Seconds from spawn to the end of the first buffer swap."""
        wait_for(self.ready.exists, timeout, "probe first frame", self.proc, self.log)
        return mono() - self.t_spawn

    def state(self) -> dict | None:
        return read_json(self.state_file)

    def wait_open(self, pred, timeout: float, what: str) -> dict:
        return wait_for(lambda: (s := self.state()) is not None and pred(s["open"]) and s,
                        timeout, what, self.proc, self.log)

    def mem(self) -> dict[str, float]:
        return proc_mem(self.proc.pid)

    def finish(self, timeout: float = 15) -> dict:
        """SIGTERM: the App stops cleanly (the station saves its cache); the records."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                terminate(self.proc, 2)
                raise RuntimeError(f"the probe did not stop; log:\n{self.log.read_text()[-3000:]}") from None
        rec = read_json(self.out)
        if rec is None:
            raise RuntimeError(f"the probe wrote no records; log:\n{self.log.read_text()[-3000:]}")
        rec["first_flip_s"] = rec["flips"][0] - self.t_spawn if rec["flips"] else float("nan")
        return rec

    def kill(self) -> None:
        terminate(self.proc, 5)


# ----------------------------------------------------------- frame figures
def frames(rec: dict, spans: list[tuple[float, float]]) -> dict:
    """Frames that started within the spans: Clock's dt (the frame time),
    and per frame the time awake (work) split into text rendering, the app's
    refresh, drawing and the buffer swap."""
    def inside(t):
        return any(a <= t <= b for a, b in spans)
    dt = [d * 1000 for t, d in rec["dts"] if inside(t)]
    ticks = [k for k in rec["ticks"] if inside(k[0])]
    total_s = sum(b - a for a, b in spans)
    drawn = [k for k in ticks if k[6] > 0]
    slow = [k for k in ticks if (k[1] - k[0]) * 1000 > 20]
    return {
        "frames": len(dt),
        "p50_ms": round(pct(dt, 50), 2),
        "p95_ms": round(pct(dt, 95), 2),
        "p99_ms": round(pct(dt, 99), 2),
        "max_ms": r1(max(dt, default=float("nan"))),
        "over_20ms": sum(1 for d in dt if d > 20),
        # share of wall time spent inside frames that took more than 20 ms
        "stalled_pct": r1(100 * sum(max(0.0, min(k[1], b) - max(k[0], a)) for k in slow for a, b in spans)
                          / total_s) if total_s else float("nan"),
        "drawn": len(drawn),
        "drawn_work_p50_ms": r1(pct([(k[1] - k[0]) * 1000 for k in drawn], 50)),
        "drawn_work_p95_ms": r1(pct([(k[1] - k[0]) * 1000 for k in drawn], 95)),
        # CPU time of the whole process (the rasteriser's threads too) per
        # drawn frame: far less disturbed than wall time by other work on
        # the machine
        "drawn_cpu_p50_ms": r1(pct([k[7] * 1000 for k in drawn], 50)),
        # mean per drawn frame, ms: where a drawn frame's time goes
        "per_drawn_frame_ms": {
            "text_render": r1(sum(k[2] for k in drawn) * 1000 / len(drawn)) if drawn else 0,
            "labels_rendered": r1(sum(k[3] for k in drawn) / len(drawn)) if drawn else 0,
            "refresh": r1(sum(k[4] for k in drawn) * 1000 / len(drawn)) if drawn else 0,
            "draw": r1(sum(k[5] for k in drawn) * 1000 / len(drawn)) if drawn else 0,
            "swap": r1(sum(k[6] for k in drawn) * 1000 / len(drawn)) if drawn else 0,
            "work": r1(sum(k[1] - k[0] for k in drawn) * 1000 / len(drawn)) if drawn else 0,
        },
    }


def fmt(s: dict) -> str:
    d = s["per_drawn_frame_ms"]
    return (f"frame p50 {s['p50_ms']} / p95 {s['p95_ms']} / p99 {s['p99_ms']} / max {s['max_ms']} ms; "
            f"{s['over_20ms']}/{s['frames']} frames > 20 ms ({s['stalled_pct']}% of the time); "
            f"{s['drawn']} drawn, work p50 {s['drawn_work_p50_ms']} / p95 {s['drawn_work_p95_ms']} ms, CPU p50 {s['drawn_cpu_p50_ms']} ms "
            f"(mean: text {d['text_render']} ms for {d['labels_rendered']} labels, refresh {d['refresh']}, "
            f"draw {d['draw']}, swap {d['swap']} of {d['work']})")


def bump_figures(bumps: list[dict]) -> dict:
    redraw = [(b["drawn"] - b["key"]) * 1000 for b in bumps if b["drawn"] is not None]
    handler = [(b["handled"] - b["key"]) * 1000 for b in bumps]
    refreshed = [(b["refreshed"] - b["key"]) * 1000 for b in bumps if b["refreshed"] is not None]
    return {"n": len(bumps), "redrawn": len(redraw),
            "p50_ms": r1(pct(redraw, 50)), "p95_ms": r1(pct(redraw, 95)),
            "max_ms": r1(max(redraw, default=float("nan"))),
            "key_handler_p50_ms": r1(pct(handler, 50)),
            "key_to_refresh_done_p50_ms": r1(pct(refreshed, 50))}


def fmt_bumps(b: dict) -> str:
    return (f"{b['n']} bumps, {b['redrawn']} redrawn; key → redraw p50 {b['p50_ms']} / p95 {b['p95_ms']} / "
            f"max {b['max_ms']} ms (key handler p50 {b['key_handler_p50_ms']} ms, "
            f"key → refresh() done p50 {b['key_to_refresh_done_p50_ms']} ms)")


# ------------------------------------------------------------------ the load
def start_hub(tmp: Path, broker: Broker) -> subprocess.Popen:
    cfg = tmp / "hub.toml"
    cfg.write_text(
        f'[device]\nid = "hub"\nrole = "hub"\n[mqtt]\nport = {broker.port}\n'
        f'password_file = "{broker.creds["hub"].password_file}"\nkeepalive_s = 5\nreconnect_max_s = 1\n'
        f'[hub]\ndatabase = "{tmp / "store.db"}"\nhealth_interval_s = 5\n',
        encoding="utf-8",
    )
    c = broker.creds["monitor-1"]
    mon = Bus(device="monitor-1", role="monitor", host="127.0.0.1", port=broker.port, username="monitor-1",
              password=c.password, persistent=False, reconnect_max_s=1)
    ready = threading.Event()
    mon.subscribe(topics.health("hub"), lambda m: json.loads(m.payload).get("state") == "ready" and ready.set())
    mon.start()
    with open(tmp / "hub.log", "wb") as log:
        hub = subprocess.Popen([sys.executable, "-m", "restobox.cli", "hub", "--config", str(cfg)],
                               stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        if not ready.wait(20):
            raise RuntimeError("hub did not start:\n" + (tmp / "hub.log").read_text()[-2000:])
    finally:
        mon.stop()
    return hub


def submit_wok_orders(broker: Broker, n: int, seed: int = 7) -> list[int]:
    """n random orders from the sample menu, each with at least one wok line,
    through the real hub as kiosk-1; their numbers once all are accepted."""
    menu = load_sample_menu()
    wok = {i.id for i in menu.items if i.station == STATION}
    rng = random.Random(seed)
    orders = []
    while len(orders) < n:
        o = random_order(menu, rng)
        if any(line.item_id in wok for line in o.lines):
            orders.append(o)
    c = broker.creds["kiosk-1"]
    bus = Bus(device="kiosk-1", role="kiosk", host="127.0.0.1", port=broker.port, username="kiosk-1",
              password=c.password, persistent=False, reconnect_max_s=1)
    replies: dict[str, contract.OrderReply] = {}
    done = threading.Event()
    lock = threading.Lock()

    def on_reply(m: Incoming) -> None:
        r = contract.decode(m.payload, contract.OrderReply)
        with lock:
            replies[r.order_id] = r
            if len(replies) >= n:
                done.set()

    bus.subscribe(topics.order_reply("kiosk-1"), on_reply)
    bus.start()
    try:
        if not bus.wait_connected(10):
            raise RuntimeError("the kiosk could not connect")
        time.sleep(0.2)  # the reply subscription settles
        for o in orders:
            bus.publish(topics.order_submit("kiosk-1"), contract.encode(o), correlation=o.order_id.encode())
        if not done.wait(60):
            raise RuntimeError(f"only {len(replies)} of {n} orders answered")
    finally:
        bus.stop()
    bad = [r for r in replies.values() if r.status != "accepted"]
    if bad:
        raise RuntimeError(f"{len(bad)} orders not accepted, e.g. {bad[0]}")
    return sorted(r.number for r in replies.values())


# --------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a run under 30 s")
    ap.add_argument("--tickets", type=int, default=300, help="open tickets left on the station after all bumps")
    ap.add_argument("--bumps", type=int, default=None, help="bump key presses in the storm (quick 20, full 100)")
    ap.add_argument("--bump-interval-ms", type=float, default=150.0, help="between the storm's key presses")
    ap.add_argument("--single-bumps", type=int, default=None, help="bumps one second apart (quick 4, full 10)")
    ap.add_argument("--idle-s", type=float, default=None, help="idle stretch with the tickets open (quick 2, full 15)")
    ap.add_argument("--restarts", type=int, default=None, help="python -m kds starts from the cache (quick 1, full 3)")
    ap.add_argument("--screenshot", type=Path, default=None, metavar="PNG",
                    help="save the station with its tickets open (after the load) to this file")
    args = ap.parse_args()
    storm_n = args.bumps if args.bumps is not None else (20 if args.quick else 100)
    single_n = args.single_bumps if args.single_bumps is not None else (4 if args.quick else 10)
    idle_s = args.idle_s if args.idle_s is not None else (2.0 if args.quick else 15.0)
    restarts = args.restarts if args.restarts is not None else (1 if args.quick else 3)
    base_s = 1.0 if args.quick else 5.0
    n_orders = args.tickets + storm_n + single_n
    t_begin = mono()

    with tempfile.TemporaryDirectory(prefix="restobox-kdsbench-", dir=os.environ.get("RESTOBOX_BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        x = broker = hub = None
        probes: list[Probe] = []
        screens: list[ScreenProcess] = []
        try:
            x = Xvfb()
            say(f"private display {x.display}; broker and hub ...")
            broker = Broker(tmp / "broker").start_with_devices()
            hub = start_hub(tmp, broker)
            cfg = kds_config(tmp / "kds.toml", broker, tmp / "tickets.db")

            # ------------------------------------------------------ baseline
            # the empty window as the screens open theirs (no depth, no
            # stencil: restobox/glvisual.py), and as Kivy opens one when not
            # told (the floor of the passes before the eighth)
            say(f"baseline: an empty Kivy window, {base_s:g} s idle, then {base_s:g} s redrawn every frame ...")
            base_start, base_mem, base_idle, base_draw = empty_window(probes, x, cfg, tmp, "empty", base_s)
            say(f"  first frame after {base_start:.2f} s; RSS {base_mem['VmRSS']:.0f} MB")
            say(f"  idle:   {fmt(base_idle)}")
            say(f"  redraw: {fmt(base_draw)}")
            say("baseline: the same in the window Kivy makes by itself (16-bit depth and 8-bit stencil asked) ...")
            _, kivy_mem, _, kivy_draw = empty_window(probes, x, cfg, tmp, "empty-kivy", base_s,
                                                     {glvisual.CHOICE_ENV: "default"}, idle_s=0)
            say(f"  RSS {kivy_mem['VmRSS']:.0f} MB; redraw: {fmt(kivy_draw)}")

            # ---------------------------------------- the station, tickets
            say("station screen in the probe, empty cache ...")
            state_file = tmp / "probe-state.json"
            p = Probe(x, "kds", cfg, tmp, "station", state_file=state_file)
            probes.append(p)
            p_state = p.wait_state()
            p_frame = p.wait_ready()
            mem = {"started": p.mem()}
            say(f"  state dump after {p_state:.2f} s, first frame after {p_frame:.2f} s")

            say(f"load: {n_orders} wok orders from a kiosk through the hub ...")
            i0 = mono()
            numbers = submit_wok_orders(broker, n_orders)
            t_acc = mono() - i0
            p.wait_open(lambda n: n >= n_orders, 60, f"{n_orders} open tickets")
            i1 = mono()
            say(f"  all accepted after {t_acc:.2f} s, all {n_orders} on the station after {i1 - i0:.2f} s "
                f"(numbers {numbers[0]}..{numbers[-1]})")
            time.sleep(1.0)
            mem["loaded"] = p.mem()
            if args.screenshot:
                before = set(tmp.glob("kds-*.png"))
                x.key("F12")
                shot = wait_for(lambda: set(tmp.glob("kds-*.png")) - before, 10, "the screenshot")
                args.screenshot.write_bytes(shot.pop().read_bytes())
                say(f"  the station saved to {args.screenshot}")

            say(f"idle with {n_orders} open tickets, {idle_s:g} s ...")
            a0 = mono()
            cpu_a0 = proc_stat(p.proc.pid)[0]
            time.sleep(idle_s)
            a1 = mono()
            cpu_a1 = proc_stat(p.proc.pid)[0]
            mem["idle"] = p.mem()

            say(f"bump storm: {storm_n} × Return, one every {args.bump_interval_ms:g} ms ...")
            kb = x.keyboard()  # one connection for every key: no process per key beside the frames
            x.key("Right")  # select the first ticket; after a bump the next one is selected
            time.sleep(0.3)
            s0 = mono()
            cpu_s0 = proc_stat(p.proc.pid)[0]
            for k in range(storm_n):
                due = s0 + k * args.bump_interval_ms / 1000
                while mono() < due:
                    time.sleep(0.002)
                kb.key("Return")
            p.wait_open(lambda n: n <= n_orders - storm_n, 30, "the storm's tickets gone")
            time.sleep(0.6)  # the hub's copies of the bumped tickets arrive and are drawn
            s1 = mono()
            cpu_s1 = proc_stat(p.proc.pid)[0]
            mem["storm"] = p.mem()

            say(f"single bumps: {single_n}, one a second ...")
            g0 = mono()
            for k in range(single_n):
                kb.key("Return")
                time.sleep(1.0)
            p.wait_open(lambda n: n <= args.tickets, 10, "the single bumps' tickets gone")
            g1 = mono()
            mem["end"] = p.mem()
            # the screen as it stands, redrawn every frame: the fill of a
            # drawn frame with the tickets open, without the text rendering,
            # over as many frames as the floor (a steadier figure than p95)
            q0, q1 = redrawn_for(p, base_s)
            prec = p.finish()
            kb.close()

            bumps = prec["bumps"]
            storm_b = bump_figures([bb for bb in bumps if s0 <= bb["key"] <= s1])
            single_b = bump_figures([bb for bb in bumps if g0 <= bb["key"] <= g1])
            all_b = bump_figures(bumps)
            arrival = frames(prec, [(i0, i1)])
            idle = frames(prec, [(a0, a1)])
            storm = frames(prec, [(s0, s1)])
            single = frames(prec, [(g0, g1)])
            loaded = frames(prec, [(a0, a1), (s0, s1), (g0, g1)])
            redrawn = frames(prec, [(q0, q1)])
            saves = [d * 1000 for t, d in prec["saves"] if s0 <= t <= g1]
            say(f"  arrival: {fmt(arrival)}")
            say(f"  idle:    {fmt(idle)}")
            say(f"  storm:   {fmt(storm)}")
            say(f"  singles: {fmt(single)}")
            say(f"  storm:   {fmt_bumps(storm_b)}")
            say(f"  singles: {fmt_bumps(single_b)}")
            say(f"  ticket cache saves while bumping: {len(saves)}, p50 {pct(saves, 50):.1f} / "
                f"max {max(saves, default=0):.1f} ms")
            say("  RSS MB: " + ", ".join(f"{k} {v['VmRSS']:.0f}" for k, v in mem.items())
                + f" (peak {mem['end']['VmHWM']:.0f})")

            # ------------------------------------------ restarts from the cache
            say("the probe again, from the cache ...")
            p2 = Probe(x, "kds", cfg, tmp, "restart", state_file=state_file)
            probes.append(p2)
            p2_state = p2.wait_state()
            p2_frame = p2.wait_ready()
            shown = p2.state()
            p2.finish()
            say(f"  {shown['open']} open: state dump after {p2_state:.2f} s, first frame (with "
                f"{len(shown['tickets'])} cards) after {p2_frame:.2f} s")

            starts, mems = [], []
            for _ in range(restarts):
                s = ScreenProcess(x, cfg, tmp)
                screens.append(s)
                starts.append(s.start())
                st = s.state()
                time.sleep(2.0)
                mems.append(proc_mem(s.proc.pid))
                s.stop()
                say(f"python -m kds from the cache ({st['open']} open, {len(st['tickets'])} cards): state dump "
                    f"after {starts[-1]:.2f} s; RSS 2 s later {mems[-1]['VmRSS']:.0f} MB")

            rss = max([m["VmRSS"] for m in mems] + [mem["end"]["VmRSS"]])
            # CPU of the screen's process per bump: the storm's CPU time less
            # what the same stretch costs idle (the once-a-second timers)
            idle_rate = (cpu_a1 - cpu_a0) / (a1 - a0)
            cpu_per_bump = ((cpu_s1 - cpu_s0) - idle_rate * (s1 - s0)) * 1000 / storm_n
            floor = base_draw["drawn_work_p95_ms"]
            budgets = {
                # drawn-frame work p95 (tickets open: idle, storm, single bumps) / an empty window's redraw p95
                "drawn_work_ratio": round(loaded["drawn_work_p95_ms"] / floor, 2),
                # not a budget: the same over the window Kivy makes when not told (depth and stencil)
                "drawn_work_ratio_kivy_window": round(loaded["drawn_work_p95_ms"] / kivy_draw["drawn_work_p95_ms"], 2),
                "bump_redraw_over_floor_ms": r1(all_b["p95_ms"] - floor),
                "rss_over_empty_mb": r1(rss - base_mem["VmRSS"]),
                # before the storm to after the single bumps
                "rss_growth_mb": r1(mem["end"]["VmRSS"] - mem["idle"]["VmRSS"]),
                "cpu_ms_per_bump": r1(cpu_per_bump),
                "cpu_idle_ms_per_s": r1(idle_rate * 1000),
            }
            # not a budget: the same screen redrawn every frame, p50 / the floor's p50
            redraw_ratio = round(redrawn["drawn_work_p50_ms"] / base_draw["drawn_work_p50_ms"], 2)
            figures = {
                **budgets,
                "redraw_work_p50_ratio": redraw_ratio,
                # CPU per drawn frame (every thread) / the floor's: the steadiest of these figures
                "drawn_cpu_p50_ratio": round(loaded["drawn_cpu_p50_ms"] / base_draw["drawn_cpu_p50_ms"], 2),
                "redraw_cpu_p50_ratio": round(redrawn["drawn_cpu_p50_ms"] / base_draw["drawn_cpu_p50_ms"], 2),
                "p95_frame_ms": loaded["p95_ms"],
                "bump_redraw_ms": all_b["p95_ms"],
                "startup_s": round(max(starts), 2),
                "rss_mb": r1(rss),
                "baseline_p95_frame_ms": base_idle["p95_ms"],
                "baseline_redraw_p95_frame_ms": base_draw["p95_ms"],
                "baseline_redraw_work_p95_ms": base_draw["drawn_work_p95_ms"],
                "kivy_window_redraw_work_p95_ms": kivy_draw["drawn_work_p95_ms"],
                "kivy_window_rss_mb": r1(kivy_mem["VmRSS"]),
                "baseline_startup_s": round(base_start, 2),
                "baseline_rss_mb": r1(base_mem["VmRSS"]),
                "startup_first_frame_s": round(p2_frame, 2),
                "frames": {"loaded": loaded, "idle": idle, "storm": storm, "single": single,
                           "arrival": arrival, "redrawn": redrawn, "baseline_idle": base_idle,
                           "baseline_redraw": base_draw, "kivy_window_redraw": kivy_draw},
                "bumps": {"all": all_b, "storm": storm_b, "single": single_b},
                "cache_save_p50_ms": r1(pct(saves, 50)),
                "startups_s": [round(v, 2) for v in starts],
                "rss_probe_mb": {k: r1(v["VmRSS"]) for k, v in mem.items()},
                "rss_kds_mb": [r1(m["VmRSS"]) for m in mems],
                "open_tickets": n_orders,
                "storm": {"bumps": storm_n, "interval_ms": args.bump_interval_ms},
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "seconds": r1(mono() - t_begin),
            }
            say(f"budgets: drawn_work_ratio {budgets['drawn_work_ratio']} (<= 2.0), bump_redraw_over_floor_ms "
                f"{budgets['bump_redraw_over_floor_ms']} (<= 50), rss_over_empty_mb {budgets['rss_over_empty_mb']} "
                f"(<= 60), rss_growth_mb {budgets['rss_growth_mb']} (<= 5), cpu_ms_per_bump "
                f"{budgets['cpu_ms_per_bump']} (idle {budgets['cpu_idle_ms_per_s']} ms/s); the screen redrawn every "
                f"frame: work p50 {redrawn['drawn_work_p50_ms']} ms, {redraw_ratio} × the empty window's; "
                f"drawn-frame work p95 over the window Kivy makes by itself: {figures['drawn_work_ratio_kivy_window']}")
            say(f"p95 frame {figures['p95_frame_ms']} ms (budget 20; empty window {base_idle['p95_ms']} ms, "
                f"redrawn every frame {base_draw['p95_ms']} ms); bump → redraw p95 {figures['bump_redraw_ms']} ms "
                f"(budget 50); start {figures['startup_s']} s, first frame {figures['startup_first_frame_s']} s "
                f"(budget 3; empty window {base_start:.2f} s); RSS {figures['rss_mb']} MB (budget 150; empty "
                f"window {base_mem['VmRSS']:.0f} MB); {figures['seconds']} s in all")
            print(json.dumps(figures))
            return 0 if all_b["redrawn"] == storm_n + single_n else 1
        finally:
            for s in screens:
                s.stop()
            for pr in probes:
                pr.kill()
            stop_store(hub, broker, x)


def stop_store(hub, broker, x) -> None:
    """Stop what start_hub, a Broker and an Xvfb started (any may be None)."""
    if hub is not None:
        terminate(hub, 10)
    if broker is not None:
        broker.stop()
    if x is not None:
        x.close()


if __name__ == "__main__":
    sys.exit(main())
