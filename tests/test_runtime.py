"""The service runtime (restobox/runtime.py) the hub, printing and sync run in:
its one backoff, its explicit states, its wait that keeps the watchdog fed
and the health on time, and that no service module pulls in the development
harness (restobox/dev/).

The services themselves are run in tests/test_sd_notify.py (READY, WATCHDOG,
STATUS over a real NOTIFY_SOCKET) and in their own tests (health records)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading

import pytest

from restobox.runtime import STATES, Backoff, Runtime
from tests.support import REPO, wait


def test_backoff_grows_with_full_jitter_and_never_passes_its_cap():
    b = Backoff(0.5, 8.0, rng=random.Random(7))
    assert b.delay(0) == 0.5  # the first retry comes after the first wait
    for n in range(1, 40):
        waits = [b.delay(n) for _ in range(200)]
        top = min(8.0, 0.5 * 2 ** n)
        assert all(0.5 <= w <= top for w in waits), n
        assert len(set(waits)) > 1  # jittered: devices that failed together do not retry in step
    assert max(b.delay(30) for _ in range(500)) > 6.0  # the cap is reached, not just approached

    assert [b.failed() for _ in range(3)] and b.failures == 3
    b.succeeded()
    assert b.failures == 0 and b.delay() == 0.5
    assert Backoff(3.0, 1.0).delay(5) == 3.0  # a cap below the first wait: the first wait
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_states_are_explicit_degraded_has_a_code_and_stopping_is_final():
    changes = []
    rt = Runtime("t", on_change=lambda: changes.append((rt.state, rt.code, rt.reason)), env={})
    assert rt.state == "starting" and set(STATES) == {"starting", "ready", "degraded", "stopping"}
    assert rt.ready("serving")
    assert not rt.ready("serving")  # no change, no call
    assert rt.degraded("broker_lost", "lost the broker: gone")
    assert (rt.state, rt.code) == ("degraded", "broker_lost")
    rt.ready("serving")
    assert rt.code == ""  # a code belongs to degraded only
    rt.enter("stopping", "asked to stop")
    assert not rt.ready("serving") and rt.state == "stopping"
    assert changes == [("ready", "", "serving"), ("degraded", "broker_lost", "lost the broker: gone"),
                       ("ready", "", "serving"), ("stopping", "", "asked to stop")]
    with pytest.raises(ValueError):
        rt.enter("asleep")  # type: ignore[arg-type]


def test_serve_feeds_the_watchdog_publishes_health_and_stops_when_asked():
    checks, published, order = [], [], []
    rt = Runtime("t", check=lambda: (checks.append(1) or True, "fine"), publish_health=lambda: published.append(1),
                 health_every_s=0.05, env={})
    done = threading.Event()

    def start():
        order.append("start")
        rt.ready("serving")

    def stop():
        order.append("stop")
        done.set()

    t = threading.Thread(target=rt.serve, args=(start, stop), daemon=True)
    t.start()
    wait(lambda: len(published) >= 3, 5, "the health published every 0.05 s")
    assert checks and rt.state == "ready"
    rt.request_stop()
    assert done.wait(5) and order == ["start", "stop"]
    t.join(5)
    assert rt.wait(10) is True  # once asked to stop, a wait returns at once


def test_no_service_module_imports_the_development_harness():
    code = ("import sys, restobox.cli, restobox.hub.service, restobox.printing.spooler, restobox.sync,"
            " restobox.runtime, restobox.service, restobox.staff, restobox.web;"
            " print(sorted(m for m in sys.modules if m.startswith('restobox.dev')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
