"""Schema versions and migrations (restobox/migrations.py) on databases made
by schema version 1 (tests/fixtures/db/, made by make.py there): each is
opened through the function the services use and every row is found; a
migration to a version 2, registered by the test as a release would add
it, keeps every row; one that fails midway leaves the file as it was; a
file from a newer release is refused and not touched."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import peewee as pw
import pytest

from restobox import db, migrations
from restobox.migrations import SchemaError, Step
from tests.support import REPO

FIXTURES = Path(__file__).parent / "fixtures" / "db"

OPEN = {"store.db": db.open_store_db, "store-unversioned.db": db.open_store_db, "printing.db": db.open_printing_db,
        "tickets.db": db.open_cache_db, "kiosk.db": db.open_kiosk_db, "sync.db": db.open_sync_db}
KIND = {"store.db": "store", "store-unversioned.db": "store", "printing.db": "printing", "tickets.db": "cache",
        "kiosk.db": "kiosk", "sync.db": "sync"}

#: What make.py put in each file: table -> rows (the test fails if a fixture loses any).
EXPECTED = {
    "store.db": {"order": 7, "ticket": 11, "outbox": 17, "print_request": 14, "processed_message": 5,
                 "points_entry": 4, "menu_version": 1, "sold_out_item": 1, "day_counter": 1, "stock_level": 0},
    "printing.db": {"print_job": 4, "printer_fault": 1},
    "tickets.db": {"screen_cache": 2},
    "kiosk.db": {"payment_intent": 2, "order_outbox": 2, "kiosk_value": 2},
    "sync.db": {"sync_cursor": 1, "preorder": 1, "sync_value": 1, "sync_outage": 1},
}
EXPECTED["store-unversioned.db"] = EXPECTED["store.db"]


def rows(path: Path, columns: dict[str, list[str]] | None = None) -> dict[str, list[tuple]]:
    """Every row of every table (only ``columns`` of a table, if given), sorted."""
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%'")]
        out = {}
        for t in names:
            cols = ", ".join(f'"{c}"' for c in (columns or {}).get(t, ["*"])).replace('"*"', "*")
            out[t] = sorted(con.execute(f'SELECT {cols} FROM "{t}"').fetchall(), key=repr)
        return out
    finally:
        con.close()


def columns_of(path: Path) -> dict[str, list[str]]:
    con = sqlite3.connect(path)
    try:
        return {t: [c[1] for c in con.execute(f'PRAGMA table_info("{t}")')]
                for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite_%'")}
    finally:
        con.close()


def user_version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


def copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copyfile(FIXTURES / name, dst)
    return dst


@pytest.mark.parametrize("name", sorted(OPEN))
def test_every_fixture_opens_through_its_service_s_open_function_with_every_row(name, tmp_path):
    before = rows(FIXTURES / name)
    assert {t: len(r) for t, r in before.items()} == EXPECTED[name]
    path = copy(name, tmp_path)
    old_columns = columns_of(path)
    database = OPEN[name](path)
    assert db.schema_version(database) == migrations.current(KIND[name])
    database.close()
    assert old_rows(path, old_columns) == before


def old_rows(path: Path, old_columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """The rows of the tables a file had, in the columns they had."""
    return {t: r for t, r in rows(path, old_columns).items() if t in old_columns}


def test_version_2_gives_the_store_its_payment_ledger_with_the_kiosks_paid_orders_in_it(tmp_path):
    path = copy("store.db", tmp_path)
    con = sqlite3.connect(path)
    paid_id, total = con.execute('SELECT "id", "total" FROM "order" WHERE "state" != \'voided\' '
                                 'ORDER BY "number" LIMIT 1').fetchone()
    con.execute('UPDATE "order" SET "payment_method" = \'card\', "payment_status" = \'approved\', '
                '"payment_reference" = \'TRM-9\' WHERE "id" = ?', (paid_id,))
    con.commit()
    con.close()
    database = db.open_store_db(path)
    try:
        assert db.schema_version(database) == migrations.current("store") >= 2
        ledger = list(db.Payment.select())
        assert [(p.entry_id, p.order_id, p.kind, p.method, p.amount, p.reference) for p in ledger] == \
            [(f"{paid_id}:paid", paid_id, "payment", "card", total, "TRM-9")]
        assert {(o.id == paid_id, o.paid, o.payment) for o in db.Order.select()} == \
            {(True, total, "paid"), (False, 0, "unpaid")}
        assert db.ledger_sums(database, paid_id) == (total, 0)
        assert db.Shift.select().count() == 0
        # the models write to the new tables
        db.Shift.insert(id="s1", device="counter-1", business_date="2026-11-20", opened_at="t",
                        float_fen=100).execute()
    finally:
        database.close()


def test_the_store_reads_its_orders_tickets_and_points_through_the_models(tmp_path):
    database = db.open_store_db(copy("store.db", tmp_path))
    try:
        orders = list(db.Order.select())
        assert len(orders) == 7 and {o.state for o in orders} >= {"accepted", "voided"}
        assert sum(len(list(o.tickets)) for o in orders) == 11
        assert [o.provisional_number for o in orders if o.offline] == ["K1-001"]
        member = db.PointsEntry.select().first().member
        assert db.points_balance(database, member) == 49  # earned 40 + 59, redeemed 10, 40 reversed
    finally:
        database.close()


#: The store's version this release writes, before the tests' made-up steps.
STORE_NOW = migrations.current("store")


@pytest.fixture
def store_next(monkeypatch):
    """This release plus one made-up step: the next store.db version gives
    orders a pickup time, with an index."""
    monkeypatch.setitem(migrations.STEPS, "store", list(migrations.STEPS["store"]))

    def pickup_at(m, database):
        m.add_column("order", "pickup_at", pw.CharField(max_length=40, null=True)).run()
        m.add_index("order", ("pickup_at",)).run()

    migrations.register("store", Step(STORE_NOW + 1, "order: add column pickup_at, indexed", pickup_at))
    return migrations.current("store")


@pytest.mark.parametrize("name", ["store.db", "store-unversioned.db"])
def test_a_migration_to_the_next_version_adds_its_column_and_index_and_keeps_every_row(name, store_next, tmp_path):
    path = copy(name, tmp_path)
    old_columns = columns_of(path)
    before = rows(path)
    database = db.open_store_db(path)
    assert db.schema_version(database) == store_next == STORE_NOW + 1
    assert "pickup_at" in [c.name for c in database.get_columns("order")]
    assert "order_pickup_at" in [i.name for i in database.get_indexes("order")]
    db.Order.update(note="kept").execute()  # the models still write to it
    database.close()
    assert old_rows(path, old_columns) == {
        t: sorted((r if t != "order" else _noted(r, old_columns[t]) for r in rs), key=repr)
        for t, rs in before.items()}
    assert {r[0] for r in rows(path, {"order": ["pickup_at"]})["order"]} == {None}
    # opened again: already at that version, nothing to do
    assert db.schema_version(db.open_store_db(path)) == store_next


def _noted(row: tuple, cols: list[str]) -> tuple:
    r = list(row)
    r[cols.index("note")] = "kept"
    return tuple(r)


def test_a_step_that_rebuilds_a_table_keeps_the_rows_that_point_at_it(monkeypatch, tmp_path):
    # What SQLite cannot alter in place (a column's type, NOT NULL; a dropped
    # column before SQLite 3.35) playhouse rebuilds: it copies the table and
    # drops the old one, which with foreign keys on would delete every ticket
    # of every order (ON DELETE CASCADE). legacy=True: that rebuild.
    monkeypatch.setitem(migrations.STEPS, "store", list(migrations.STEPS["store"]))
    migrations.register("store", Step(STORE_NOW + 1, "order: drop column note",
                                      lambda m, d: m.drop_column("order", "note", legacy=True).run()))
    path = copy("store.db", tmp_path)
    tickets = rows(path)["ticket"]
    database = db.open_store_db(path)
    assert "note" not in [c.name for c in database.get_columns("order")]
    database.close()
    assert rows(path)["ticket"] == tickets and len(tickets) == 11
    assert len(rows(path)["order"]) == 7


def test_a_migration_that_fails_midway_leaves_the_file_at_its_version_with_every_row(monkeypatch, tmp_path):
    monkeypatch.setitem(migrations.STEPS, "store", list(migrations.STEPS["store"]))

    def half(m, database):
        m.add_column("order", "pickup_at", pw.CharField(max_length=40, null=True)).run()
        database.execute_sql('DELETE FROM "ticket"')
        raise RuntimeError("disk pulled out")

    migrations.register("store", Step(STORE_NOW + 1, "order: add column pickup_at", half))
    path = copy("store.db", tmp_path)
    before, old_columns = rows(path), columns_of(path)
    with pytest.raises(SchemaError) as e:
        db.open_store_db(path)
    assert e.value.reason == "migration_failed"
    assert f"from schema version 1 to {STORE_NOW + 1}" in str(e.value) and "disk pulled out" in str(e.value)
    assert "left at version 1 with all its data" in str(e.value)
    assert user_version(path) == 1
    assert columns_of(path) == old_columns
    assert rows(path) == before


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(set(OPEN) - {"store-unversioned.db"}))
def test_a_file_from_a_newer_release_is_refused_and_left_byte_identical(name, tmp_path):
    path = copy(name, tmp_path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 7")
    con.commit()
    con.close()
    digest, listing = _sha(path), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SchemaError) as e:
        OPEN[name](path)
    assert e.value.reason == "schema_too_new"
    assert (f"newer Restobox release (schema version 7; this release knows up to {migrations.current(KIND[name])})"
            in str(e.value))
    assert _sha(path) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no WAL or journal left beside it
    if KIND[name] == "store":  # the sync service and the report read it: they refuse it too
        with pytest.raises(SchemaError):
            db.open_store_readonly(path)


SERVICES = {  # service -> (its file, its config's sections)
    "hub": ("store.db", '[hub]\ndatabase = "{path}"\n'),
    "printing": ("printing.db", '[printing]\ndatabase = "{path}"\n[[printing.printers]]\nid = "p1"\n'
                                'port = "virtual"\ndirectory = "{dir}/out"\n'),
    "sync": ("sync.db", '[sync]\ndatabase = "{path}"\nstore_database = "{dir}/store.db"\n'),
    "kiosk": ("kiosk.db", '[kiosk]\ndatabase = "{path}"\n'),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_stops_with_a_sentence_when_its_database_is_newer(service, tmp_path):
    name, sections = SERVICES[service]
    path = copy(name, tmp_path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 7")
    con.commit()
    con.close()
    if service == "sync":
        copy("store.db", tmp_path)
    digest = _sha(path)
    cfg = tmp_path / f"{service}.toml"
    cfg.write_text(f'[device]\nid = "{service}-1"\nrole = "{service}"\n[mqtt]\nport = 1\n'
                   + sections.format(path=path, dir=tmp_path), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "restobox.cli", service, "--config", str(cfg)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"restobox {service}: {path} was written by a newer Restobox release"), last
    assert last.endswith("[schema_too_new]")
    assert _sha(path) == digest
