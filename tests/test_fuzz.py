"""One bad message must never stall the store.

20,000 malformed messages (bench/fuzzgen.py: not JSON, truncated, invalid
UTF-8, nested 1,000 deep, huge, out of range, wrong types and versions,
missing, extra and renamed fields, near-miss ids, valid-schema nonsense the
hub must refuse...) go to every topic that the hub, the printing service, the
sync service and the screens read, from a device of every role the ACLs let
publish there, interleaved with valid orders from a well-behaved kiosk.

Everything under test is real: mosquitto with the store's config, ``restobox
hub``, ``restobox printing`` (virtual printers), ``restobox sync`` with
``restobox cloud-dev``, and the station screen, the expo, the pickup board
and the kiosk as their real controllers (no Kivy: their view models and bus
glue are what a bad message reaches) in a process of their own.

The pace is that of a misbehaving device on a store LAN, not a flood: at most
500 messages a second from all the fuzzing devices together (about 50 a
second each), and never more than 32 messages to the hub unanswered at once
(a slot is freed by the answer or the hub's reject notice, or after 2 s), so
a valid order never queues behind more than 32 bad ones. The well-behaved
kiosk orders every 0.2 s, one order at a time.

The seed is fixed (RESTOBOX_FUZZ_SEED overrides it; RESTOBOX_FUZZ_MESSAGES
the count), nothing waits a fixed time, the run is bounded (about a minute
and a half on a 2-core machine). The longer run is bench/fuzz.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import msgspec
import pytest

from restobox import contract
from restobox.contract import topics
from tests.support import KUNG_PAO, MILK_TEA, REPO, Kiosk, new_order

pytestmark = pytest.mark.integration

sys.path.insert(0, str(REPO / "bench"))
import fuzzgen  # noqa: E402

SEED = int(os.environ.get("RESTOBOX_FUZZ_SEED", "20261122"))
MESSAGES = int(os.environ.get("RESTOBOX_FUZZ_MESSAGES", "20000"))
RATE = 500.0  # messages a second, all fuzzing devices together
WINDOW = 32  # messages to the hub unanswered at once
RSS_MARGIN_MB = 8.0


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    """The store, fuzzed once for every test of this module. Every process
    it starts is stopped before the databases are read, also on failure."""
    store = fuzzgen.Store(tmp_path_factory.mktemp("fuzz"))
    run = fuzzgen.Run(store, seed=SEED, messages=MESSAGES, rate=RATE, window=WINDOW)
    t0 = time.monotonic()
    try:
        store.start()
        run.go()
    finally:
        store.stop()
    run.check_stored()
    r = run.results
    r["wall_s"] = round(time.monotonic() - t0, 1)
    r["logs"] = fuzzgen.log_excerpts(store)
    (store.root / "results.json").write_text(json.dumps(r, indent=1, default=str), encoding="utf-8")
    print(f"\nfuzz: seed {SEED}, {r['counts']['sent']} messages in {r['fuzz_s']} s, results in "
          f"{store.root / 'results.json'}")
    return r


def brief(r: dict, *keys: str) -> str:
    return json.dumps({k: r.get(k) for k in keys}, indent=1, default=str, ensure_ascii=False)


def test_the_fuzz_reaches_every_topic_from_every_role_allowed_there(fuzz):
    c = fuzz["counts"]
    assert c["sent"] >= MESSAGES, brief(fuzz, "counts")
    assert set(c["by_family"]) == {f.name for f in fuzzgen.families()}, c["by_family"]
    routes = {f"{fuzzgen.FUZZERS[d]} -> {f.name}" for f in fuzzgen.families() for d, _ in f.routes
              if d in fuzzgen.FUZZERS}
    assert routes <= set(c["by_role"]), routes - set(c["by_role"])
    assert c["kinds"] >= 60, c["kinds"]
    for kind in ("poison", "deep_nesting", "invalid_utf8", "truncated", "number_out_of_range", "version",
                 "id_newline", "duplicate_conflict", "accepted_id_near_miss", "not_on_station"):
        assert any(k.endswith(f" {kind}") for k in c["by_kind"]), kind
    # every message reached the broker's subscribers (no ACL refused one) and
    # no answer went to a response topic other than the device's own
    assert fuzz["tally"]["undelivered"] == 0, brief(fuzz, "tally")
    assert fuzz["tally"]["sink"] == 0 and fuzz["foreign_replies"] == 0, brief(fuzz, "tally", "foreign_replies")
    assert all(fuzz["alive"].values()), brief(fuzz, "alive", "logs")


def test_every_valid_order_is_accepted_within_a_second_throughout(fuzz):
    assert fuzz["latency_during"]["orders"] >= 100, brief(fuzz, "latency_during")
    assert fuzz["valid_not_accepted"] == [], brief(fuzz, "valid_not_accepted", "logs")
    assert fuzz["valid_over_1s"] == 0, brief(fuzz, "valid_slow", "latency_before", "latency_during",
                                              "latency_after")


def test_every_bad_request_is_answered_exactly_once(fuzz):
    t = fuzz["tally"]
    assert t["with_corr"] > 1000 and t["requests"] > t["with_corr"], t
    assert t["unanswered"] == 0, brief(t, "unanswered", "unanswered_by")
    assert t["answered_twice"] == 0, brief(t, "answered_twice", "answered_twice_by")
    assert t["answered_once"] == t["with_corr"]
    assert t["stray_answers"] == 0
    # without correlation data: one answer each, on the device's own reply topic
    assert t["no_corr_missing"] == 0 and t["no_corr_extra"] == 0, brief(t, "no_corr_sent", "no_corr_answers")
    assert t["no_corr_not_refusals"] == 0


def test_every_refusal_is_a_refusal_with_the_reason_it_deserves(fuzz):
    t = fuzz["tally"]
    assert t["wrong_answers"] == 0, brief(t, "wrong_answer_examples")
    # what the hub does not answer (events, resyncs, print states, cloud
    # messages) it announces on hub/reject, in order, each with its reason
    assert t["unannounced"] == 0, brief(t, "unannounced_by")
    assert t["wrong_notices"] == 0, brief(t, "wrong_notice_examples")


def test_nothing_bogus_is_stored(fuzz):
    s = fuzz["stored"]
    assert s["bogus_orders"] == [] and s["missing_orders"] == [], brief(s, "orders", "bogus_orders", "missing_orders")
    assert s["orders"] == fuzz["valid_accepted"] + 1  # and the kiosk's own order, tapped after the fuzz
    assert s["bogus_tickets"] == [] and s["bogus_processed"] == [] and s["bogus_outbox"] == [], s
    assert s["sold_out"] == [] and s["stock"] == [] and s["points"] == [] and len(s["menus"]) == 1, s
    assert s["bogus_print_requests"] == [] and s["bogus_print_jobs"] == [], s
    assert s["preorders"] == [], s


def test_every_database_passes_its_integrity_check(fuzz):
    integrity = fuzz["stored"]["integrity"]
    assert {"store.db", "printing.db", "sync.db", "cloud.db"} <= set(integrity), integrity
    assert all(v == "ok" for v in integrity.values()), integrity


def test_resident_memory_stays_flat(fuzz):
    warm, end = fuzz["rss_warm"], fuzz["rss_end"]
    print("\nresident MB after warm-up -> at the end: " +
          ", ".join(f"{k} {warm[k]} -> {end[k]}" for k in warm))
    for name in ("hub", "printing", "sync", "screens"):
        assert warm[name] is not None and end[name] is not None, (name, warm, end)
        assert end[name] - warm[name] <= RSS_MARGIN_MB, (name, warm, end)


def test_the_screens_and_the_services_still_take_valid_messages(fuzz):
    assert fuzz["screens_took_valid"] == {"station": True, "expo": True, "board": True}, \
        brief(fuzz, "final_order", "screens_took_valid")
    k = fuzz["kiosk_order"]
    assert k.get("screen") == "confirm" and k.get("number") and not k.get("provisional"), k
    assert fuzz["sync_took_valid"], brief(fuzz, "health")
    s = fuzz["stored"]["print_jobs_by_state"]
    assert set(s) == {"done"}, s  # every valid order's tickets and receipts printed


def test_every_screen_and_service_counts_what_it_refused(fuzz):
    shown, expected = fuzz["refusals_shown"], fuzz["refusals_expected"]
    print("\nrefused (health) / bad messages sent: " + ", ".join(f"{k} {shown[k]}/{expected[k]}" for k in expected))
    short = {k: (shown[k], expected[k]) for k in expected if shown[k] is None or shown[k] < expected[k]}
    assert not short, brief(fuzz, "refusals_shown", "refusals_expected", "refusals_sent_by_kind", "health")


def test_the_hub_counts_every_refusal(fuzz):
    h = fuzz["health"]["hub"]
    assert h is not None and h["state"] == "ready", h
    assert h["counters"]["rejected"] >= fuzz["refusals_expected"]["hub"], brief(fuzz, "refusals_expected", "health")


# =========================================================================
# The poison payload, on its own
# =========================================================================


POISON = b"[" * 1000 + b"]" * 1000


@pytest.mark.timeout(60)
def test_a_poison_submission_never_stalls_the_hub(broker, hub, monitor):
    """kiosk-1 sends ``[`` x 1000 ``]`` x 1000 while kiosk-2 orders; then 110
    more of them at once; then kiosk-2 orders again. Every poison request is
    answered (too_deep) once, each valid order accepted within 1 s."""
    bad, good = Kiosk(broker, "kiosk-1"), Kiosk(broker, "kiosk-2")
    try:
        def poison() -> bytes:
            corr = uuid.uuid4().bytes
            bad.bus.publish(topics.order_submit("kiosk-1"), POISON, correlation=corr,
                            response_topic=topics.order_reply("kiosk-1"))
            return corr

        def order() -> tuple[bytes, float]:
            o = new_order(KUNG_PAO, MILK_TEA)
            corr = o.order_id.encode()
            t0 = time.monotonic()
            good.bus.publish(topics.order_submit("kiosk-2"), contract.encode(o), correlation=corr,
                             response_topic=topics.order_reply("kiosk-2"))
            return corr, t0

        def accepted_in(corr: bytes, t0: float) -> float:
            m = good.wait_for(lambda m: m.correlation == corr, 5)
            assert msgspec.json.decode(m.payload)["status"] == "accepted", m.payload
            return m.received - t0

        sent = [poison()]
        first = order()
        sent += [poison() for _ in range(110)]
        second = order()
        latencies = [accepted_in(*first), accepted_in(*second)]
        for corr in sent:
            m = bad.wait_for(lambda m, corr=corr: m.correlation == corr, 10)
            r = msgspec.json.decode(m.payload)
            assert r["status"] == "rejected" and r["reason"] == "too_deep", r
        assert len(bad.received) == len(sent), "a poison request was answered twice"
        assert all(s <= 1.0 for s in latencies), latencies
        h = monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("rejected.too_deep", 0) >= 111)
        assert h["state"] == "ready" and h["counters"]["accepted"] == 2
    finally:
        bad.close()
        good.close()
