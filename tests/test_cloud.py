"""``restobox cloud`` itself: migrations that keep every row, tokens hashed
at rest and revocable, a chain menu with each store's own prices that
reaches the store's hub through its menu sync, bad input refused with a
reason and counted, the delivery webhook's checks, and the files a chain
deploys it with. On PostgreSQL (a database of the test's own) unless it
says SQLite."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import httpx
import msgspec
import pytest

from restobox.cloud import config as cconfig
from restobox.cloud import db as cdb
from restobox.cloud.chain import Chain, Refused, token_hash
from restobox.data import sample_menu_bytes
from tests.cloud_support import ChainCloud, create_pg_database, drop_pg_database
from tests.support import REPO, HubProcess
from tests.test_sync import sync_config

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_url():
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = ChainCloud(tmp_path_factory.mktemp("cloud"), "postgres", stores=("store-1", "store-2")).start()
    yield c
    c.close()


def sample(version: str, kung_pao: int = 3200) -> bytes:
    m = msgspec.json.decode(sample_menu_bytes())
    m["version"] = version
    for i in m["items"]:
        if i["id"] == "kung-pao-chicken":
            i["price"] = kung_pao
    return msgspec.json.encode(m)


def store_get(cloud: ChainCloud, store: str, path: str, **kw) -> httpx.Response:
    return httpx.get(f"{cloud.url}/v1/stores/{store}/{path}", timeout=10,
                     headers={"Authorization": f"Bearer {cloud.token_of(store)}", **kw.pop("headers", {})}, **kw)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_a_migration_keeps_every_row_and_a_newer_schema_is_refused_untouched(tmp_path, backend, request):
    url = create_pg_database() if backend == "postgres" else f"sqlite:///{tmp_path / 'cloud.db'}"
    if backend == "postgres":
        request.addfinalizer(lambda: drop_pg_database(url))
    database = cdb.connect(url, pool=2)
    assert cdb.migrate(database, upto=1) == (0, 1)  # a database of the first release
    chain = Chain(database)
    token = chain.enroll("store-9", "九号店")
    chain.ingest("store-9", [{"event_id": "e1", "seq": 1, "kind": "order.accepted", "order_id": "o1",
                              "at": "2026-12-06T01:00:00+00:00",
                              "payload": {"order": {"number": 7, "total": 1800, "business_date": "2026-12-06"}}}])
    assert cdb.migrate(database) == (1, cdb.current())  # this release's steps, once
    assert cdb.migrate(database) == (cdb.current(), cdb.current())
    assert chain.authenticate(f"Bearer {token}", "store") == ("store", "store-9")
    assert [e["event_id"] for e in chain.events("store-9")] == ["e1"]
    with chain.tx():
        assert chain.sql("SELECT number, total FROM store_order") == [(7, 1800)]
        assert chain.sql("SELECT COUNT(*) FROM delivery_order") == [(0,)]  # step 2's tables are there
        chain.sql("INSERT INTO schema_migration (version, what, applied_at) VALUES (?, 'from a newer release', 0)",
                  (cdb.current() + 1,))
    with pytest.raises(cdb.CloudDbError) as e:
        cdb.migrate(database)
    assert e.value.reason == "schema_too_new" and "newer than this release" in str(e.value)
    assert [e["event_id"] for e in chain.events("store-9")] == ["e1"]
    database.close()


def test_tokens_are_kept_as_hashes_open_only_their_store_and_revoking_one_refuses_at_once(pg_url, tmp_path):
    database = cdb.connect(pg_url, pool=2)
    cdb.migrate(database)
    chain = Chain(database)
    token = chain.enroll("store-1")
    chain.enroll("store-2")
    with chain.tx():
        stored = [h for (h,) in chain.sql("SELECT token_hash FROM api_token")]
    assert token not in stored and token_hash(token) in stored
    chain.store_for(f"Bearer {token}", "store-1")
    with pytest.raises(Refused) as e:
        chain.store_for(f"Bearer {token}", "store-2")
    assert (e.value.status, e.value.reason) == (403, "wrong_store")
    for bad in (None, "Basic abc", "Bearer nope"):
        with pytest.raises(Refused) as e:
            chain.store_for(bad, "store-1")
        assert e.value.status == 401
    # the CLI as the office uses it
    run = [sys.executable, "-m", "restobox.cli", "cloud", "--database", pg_url]
    r = subprocess.run([*run, "revoke", "store-1"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and "1 token(s) revoked" in r.stdout, r.stdout + r.stderr
    with pytest.raises(Refused):
        chain.store_for(f"Bearer {token}", "store-1")
    tf = tmp_path / "store-1.token"
    r = subprocess.run([*run, "enroll", "store-1", "--token-file", str(tf)], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tf.stat().st_mode & 0o777) == 0o600
    chain.store_for(f"Bearer {tf.read_text().strip()}", "store-1")
    database.close()


def test_a_chain_menu_with_a_stores_own_prices_reaches_that_stores_hub(cloud, broker, monitor, hub, tmp_path):
    admin = cloud.admin()
    r = httpx.put(f"{cloud.url}/v1/admin/menu", content=sample("2026-12-06.1"), headers=admin, timeout=10)
    assert r.status_code == 200, r.text
    overrides = {"prices": {"kung-pao-chicken": 3600}, "unavailable": ["mapo-tofu"],
                 "additions": {"items": [{"id": "store1-noodles", "category": "rice-noodles", "name": {"zh": "本店拌面",
                                          "en": "House noodles"}, "price": 1900, "station": "wok"}]}}
    r = httpx.put(f"{cloud.url}/v1/admin/stores/store-1/menu", json=overrides, headers=admin, timeout=10)
    assert r.status_code == 200, r.text
    one = store_get(cloud, "store-1", "menu")
    two = store_get(cloud, "store-2", "menu")
    m1, m2 = msgspec.json.decode(one.content), msgspec.json.decode(two.content)
    assert m1["version"] == "2026-12-06.1+store-1.1" and m2["version"] == "2026-12-06.1"
    price = {i["id"]: i for i in m1["items"]}
    assert price["kung-pao-chicken"]["price"] == 3600 and price["mapo-tofu"]["available"] is False
    assert "store1-noodles" in price and "store1-noodles" not in {i["id"] for i in m2["items"]}
    assert {i["id"]: i["price"] for i in m2["items"]}["kung-pao-chicken"] == 3200
    assert store_get(cloud, "store-1", "menu", headers={"If-None-Match": one.headers["etag"]}).status_code == 304
    # the store's own sync service brings it to its hub, and the next chain version after it
    svc = HubProcess(sync_config(tmp_path / "sync.toml", cloud, tmp_path, broker, menu_poll_s=0.3,
                                 health_interval_s=1.0), tmp_path / "sync.log", service="sync", device="sync")
    try:
        svc.start(monitor)
        monitor.wait_json("restobox/v1/menu/current", lambda m: m["menu"]["version"] == "2026-12-06.1+store-1.1", 20)
        r = httpx.put(f"{cloud.url}/v1/admin/menu", content=sample("2026-12-06.2", kung_pao=3300), headers=admin,
                      timeout=10)
        assert r.status_code == 200
        cur = monitor.wait_json("restobox/v1/menu/current",
                                lambda m: m["menu"]["version"] == "2026-12-06.2+store-1.1", 20)
        assert {i["id"]: i["price"] for i in cur["menu"]["items"]}["kung-pao-chicken"] == 3600  # the store's price
    finally:
        svc.stop()
    # a chain menu that would break a store's own changes is refused, naming the store
    clash = msgspec.json.decode(sample("2026-12-06.3"))
    clash["items"].append({"id": "store1-noodles", "category": "rice-noodles", "name": {"zh": "拌面", "en": "Noodles"},
                           "price": 1500, "station": "wok"})
    r = httpx.put(f"{cloud.url}/v1/admin/menu", content=msgspec.json.encode(clash), headers=admin, timeout=10)
    assert r.status_code == 409 and r.json()["error"] == "store_menu_invalid" and "store-1" in r.json()["message"]
    # a version names one menu for good; a broken menu says what is wrong
    r = httpx.put(f"{cloud.url}/v1/admin/menu", content=sample("2026-12-06.2", kung_pao=9900), headers=admin,
                  timeout=10)
    assert r.status_code == 409 and r.json()["error"] == "version_taken"
    r = httpx.put(f"{cloud.url}/v1/admin/menu", content=b'{"version": "x"}', headers=admin, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "menu_invalid"
    assert msgspec.json.decode(store_get(cloud, "store-2", "menu").content)["version"] == "2026-12-06.2"


def test_bad_requests_get_a_reason_and_a_sentence_and_store_nothing(cloud):
    url = f"{cloud.url}/v1/stores/store-1/events"
    auth = {"Authorization": "Bearer t0ken"}
    before = len(cloud.events("store-1"))
    cases = [
        (b"not json", 400, "bad_json"),
        (b'{"v": 1, "store_id": "store-1"}', 400, "bad_batch"),
        (b'{"v": 1, "store_id": "store-2", "events": []}', 400, "store_mismatch"),
    ]
    for body, status, reason in cases:
        r = httpx.post(url, content=body, headers=auth, timeout=10)
        assert (r.status_code, r.json()["error"]) == (status, reason), r.text
        assert r.json()["message"]
    r = httpx.post(url, content=b"{}", headers={"Authorization": "Bearer t0ken-store-2"}, timeout=10)
    assert (r.status_code, r.json()["error"]) == (403, "wrong_store")
    # an event the cloud finds wrong is stored and flagged (a refused one would stop the store's stream);
    # one without an id ends what is acknowledged
    batch = {"v": 1, "store_id": "store-1", "events": [
        {"event_id": "bad-1", "seq": "x", "kind": "order.accepted", "order_id": None, "at": 5, "payload": []},
        {"seq": 2, "kind": "order.accepted"},
        {"event_id": "after-gap", "seq": 3, "kind": "x", "at": "", "payload": {}}]}
    r = httpx.post(url, json=batch, headers=auth, timeout=10)
    assert r.status_code == 200 and r.json()["acked"] == ["bad-1"]
    got = cloud.events("store-1")[before:]
    assert [(e["event_id"], bool(e["flagged"])) for e in got] == [("bad-1", True)]
    assert "seq is not an integer" in got[0]["flagged"]
    # what PostgreSQL itself would refuse (a seq beyond 64 bits, NUL characters) is stored flagged too,
    # and the store's next events go on
    odd = {"v": 1, "store_id": "store-1", "events": [
        {"event_id": "odd-\u0000-1", "seq": 2 ** 70, "kind": "x\u0000", "order_id": None, "at": "",
         "payload": {"note": "a\u0000b"}},
        {"event_id": "after-odd", "seq": 4, "kind": "order.ready", "order_id": None, "at": "", "payload": {}}]}
    for _ in range(2):  # and a retry finds it stored
        r = httpx.post(url, json=odd, headers=auth, timeout=10)
        assert r.status_code == 200 and r.json()["acked"] == ["odd-\u0000-1", "after-odd"], r.text
    got = cloud.events("store-1")[before + 1:]
    assert [e["event_id"] for e in got] == ["odd-\ufffd-1", "after-odd"]
    assert "seq beyond 64 bits" in got[0]["flagged"] and "NUL character in the payload" in got[0]["flagged"]
    big = b'{"v":1,"store_id":"store-1","events":[' + b" " * (17 * 1024 * 1024) + b"]}"
    r = httpx.post(url, content=big, headers=auth, timeout=30)
    assert r.status_code == 413 and r.json()["error"] == "too_large"


def test_the_delivery_webhook_is_refused_unsigned_stale_or_from_an_unknown_platform(tmp_path):
    from restobox import delivery as dp

    secret = tmp_path / "mt.secret"
    secret.write_bytes(b"s3cret")
    with ChainCloud(tmp_path / "cloud", "sqlite", config=f"""
[[cloud.platform]]
name = "mt"
url = "http://127.0.0.1:9"
app_id = "chain-1"
secret_file = "{secret}"
""") as cloud:
        url = f"{cloud.url}/v1/delivery/mt/webhook"
        body = b'{"type": "order.cancelled", "event_id": "e1", "shop_id": "s", "platform_order_id": "p", "reason": "x"}'
        assert httpx.post(url, content=body, timeout=10).json()["code"] == "bad_signature"
        stale = dp.signed_headers("chain-1", b"s3cret", body, now=time.time() - 3600)
        r = httpx.post(url, content=body, headers=stale, timeout=10)
        assert (r.status_code, r.json()["code"]) == (401, "stale_timestamp")
        r = httpx.post(url, content=body, headers=dp.signed_headers("chain-1", b"wrong", body), timeout=10)
        assert (r.status_code, r.json()["code"]) == (401, "bad_signature")
        r = httpx.post(f"{cloud.url}/v1/delivery/nope/webhook", content=body, timeout=10)
        assert (r.status_code, r.json()["code"]) == (404, "unknown_platform")
        for _ in range(2):  # a webhook that comes twice is kept once
            r = httpx.post(url, content=body, headers=dp.signed_headers("chain-1", b"s3cret", body), timeout=10)
            assert r.status_code == 200 and r.json()["code"] == 0
        stats = cloud.stats()
        assert stats["delivery.bad_signature"] == 2 and stats["delivery.stale_timestamp"] == 1
        assert stats["delivery.webhook_repeat"] == 1


def test_the_deploy_files_are_what_the_cloud_and_systemd_accept(tmp_path):
    cfg = cconfig.load(REPO / "deploy" / "cloud" / "cloud.toml")
    assert cfg.database.startswith("postgresql://") and cfg.offline_after_s == 90
    bad = tmp_path / "cloud.toml"
    bad.write_text("[cloud]\nofline_after_s = 3\n")
    with pytest.raises(Exception) as e:
        cconfig.load(bad)
    assert "ofline_after_s" in str(e.value)
    if shutil.which("systemd-analyze"):
        unit = tmp_path / "restobox-cloud@8701.service"
        unit.write_text((REPO / "deploy" / "cloud" / "restobox-cloud@.service").read_text())
        r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
        problems = [ln for ln in r.stderr.splitlines() if "opt/restobox" not in ln and "restobox" in ln]
        assert not problems, r.stderr


def test_two_processes_start_at_once_on_a_new_database_and_migrate_it_once(pg_url, tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "restobox.cli", "cloud", "--database", pg_url, "migrate"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
             for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted("0 -> " in o for o in outs) == [False, True], outs  # one migrated, the other found it done
    database = cdb.connect(pg_url, pool=1)
    with Chain(database).tx():
        assert Chain(database).sql("SELECT COUNT(*) FROM schema_migration") == [(cdb.current(),)]
    database.close()
