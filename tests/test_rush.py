"""The lunch rush with chaos (bench/rush.py --quick): virtual kiosks and
kitchen screens against the real broker, hub, printing, sync and cloud
receiver while processes of every kind are SIGKILLed; not one order the
kiosks saw accepted may be lost or doubled anywhere.

And the ledger check itself: shown a store that did lose an order (and a
cloud that received one twice), it says so."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.integration

sys.path.insert(0, str(REPO / "bench"))
import rush  # noqa: E402


@pytest.mark.timeout(420)
def test_quick_chaos_rush_loses_and_doubles_nothing(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "bench" / "rush.py"), "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=400, cwd=REPO)
    last = r.stdout.strip().splitlines()[-1]
    res = json.loads(last)
    assert list(res)[:5] == ["orders", "p99_ms", "lost", "duplicated", "kills"]
    assert res["lost"] == 0 and res["duplicated"] == 0, (res, r.stderr[-3000:])
    assert res["kills"] >= 30 and set(res["kills_by_kind"]) == set(rush.KINDS), res
    assert res["unanswered"] == 0 and res["drained"] and res["integrity"] == "ok", res
    assert res["orders"] >= 50 and res["refused"] == {}
    assert r.returncode == 0
    for f in ("report.md", "latency.png", "throughput.png", "backlog.png", "resources.png"):
        assert (tmp_path / f).stat().st_size > 1000


@pytest.mark.timeout(180)
def test_the_ledger_check_finds_a_lost_order_and_a_doubled_one(tmp_path):
    rr = rush.Rush(tmp_path, kiosks=2, profile=rush.Profile(per_hour=7200, burst_at_s=1e9), calm_s=8, chaos_s=0,
                   kill_every=1, prep=(0.5, 1.0), seed=3, cloud_flaps=False)
    try:
        res = rr.run()
    finally:
        rr.stop_all()
    assert res["orders"] >= 4 and res["lost"] == 0 and res["duplicated"] == 0, res
    state = tmp_path / "state"
    store = sqlite3.connect(state / "store.db")
    gone = store.execute('SELECT id FROM "order" ORDER BY number LIMIT 1').fetchone()[0]
    with store:
        store.execute("DELETE FROM ticket WHERE order_id = ?", (gone,))
        store.execute('DELETE FROM "order" WHERE id = ?', (gone,))
    cloud = sqlite3.connect(state / "cloud.db")
    twice = cloud.execute("SELECT order_id FROM event WHERE kind = 'order.accepted' AND order_id != ? LIMIT 1",
                          (gone,)).fetchone()[0]
    with cloud:
        cloud.execute("INSERT INTO event (store_id, event_id, seq, kind, order_id, at, payload, received_at) "
                      "SELECT store_id, event_id || '-again', seq, kind, order_id, at, payload, received_at "
                      "FROM event WHERE kind = 'order.accepted' AND order_id = ?", (twice,))
    again = rr.check(drained=True)
    assert again["lost"] == 1 and again["lost_by"] == {"hub": [gone]}
    assert again["duplicated"] == 1 and again["duplicated_by"] == {"cloud": [twice]}


def test_the_rush_profile_has_its_bursts():
    p = rush.Profile(per_hour=3600, burst_factor=3, burst_s=60, burst_every_s=300, burst_at_s=120)
    assert p.rate(0) == 1.0 and p.rate(119) == 1.0
    assert p.rate(120) == 3.0 and p.rate(179) == 3.0 and p.rate(180) == 1.0
    assert p.rate(420) == 3.0 and p.peak == 3.0
