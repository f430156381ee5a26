"""``restobox cloud`` for tests: on PostgreSQL (a database of the test's own,
made and dropped here, on the server at 127.0.0.1:5432 that ``./run``
makes sure of) or SQLite, one process or several behind a load balancer
(tests/cloud_balancer.py), on free ports, started when they answer and
always stopped.

    with ChainCloud(tmp_path, "postgres", processes=2) as cloud:
        cloud.url            # the balancer's address: what a store is given
        cloud.mode("fail", count=3)
        cloud.events()       # every event stored, in arrival order
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import httpx

from tests.devproc import DevProcess, free_port

PG = {"host": os.environ.get("RESTOBOX_TEST_PGHOST", "127.0.0.1"),
      "port": int(os.environ.get("RESTOBOX_TEST_PGPORT", "5432")),
      "user": os.environ.get("RESTOBOX_TEST_PGUSER", "postgres")}
STORE_TOKEN = "t0ken"
ADMIN_TOKEN = "admin-t0ken"
OWNER_TOKEN = "owner-t0ken"


def _admin_connection():
    import psycopg2

    con = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    con.autocommit = True
    return con


def create_pg_database(prefix: str = "restobox_test") -> str:
    """A new, empty database; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    con = _admin_connection()
    try:
        con.cursor().execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    con = _admin_connection()
    try:
        con.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        con.close()


def new_database(backend: str, workdir: Path) -> str:
    if backend == "postgres":
        return create_pg_database()
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'cloud-{uuid.uuid4().hex[:6]}.db'}"
    raise ValueError(backend)


class CloudProcess(DevProcess):
    """One ``restobox cloud serve``."""

    def __init__(self, database: str, log: Path, port: int | None = None, config: Path | None = None) -> None:
        self.database = database
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.config = config

    def start(self) -> "CloudProcess":
        cmd = [sys.executable, "-m", "restobox.cli", "cloud", "--database", self.database]
        if self.config:
            cmd += ["--config", str(self.config)]
        cmd += ["serve", "--port", str(self.port)]
        self.launch(cmd, self.log, f"{self.url}/healthz", what="restobox cloud", timeout=30,
                    drop_env="RESTOBOX_CLOUD_DATABASE", statuses=(200, 404))
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class Balancer(DevProcess):
    def __init__(self, upstreams: list[str], log: Path, port: int | None = None) -> None:
        self.upstreams = upstreams
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log

    def start(self) -> "Balancer":
        cmd = [sys.executable, "-m", "tests.cloud_balancer", "--port", str(self.port)]
        for u in self.upstreams:
            cmd += ["--upstream", u]
        self.launch(cmd, self.log, f"{self.url}/_lb/stats", what="the balancer", timeout=30,
                    statuses=(200, 404))
        return self


class ChainCloud:
    """The chain's cloud as a store sees it: ``processes`` of ``restobox
    cloud`` on one database, behind one address. ``store-1`` is enrolled
    with the token ``t0ken``; ``admin()`` and ``owner()`` headers carry the
    office's and the owner's tokens."""

    def __init__(self, workdir: Path, backend: str = "sqlite", *, processes: int = 1, port: int | None = None,
                 stores: tuple[str, ...] = ("store-1",), config: str = "", database: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.n = processes
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stores = stores
        self.config_text = config
        self.database = database
        self._own_database = database is None
        self.procs: list[CloudProcess] = []
        self.balancer: Balancer | None = None
        self.prepared = False

    # ------------------------------------------------------------ lifecycle
    def prepare(self) -> None:
        """The database, its schema, the stores and the tokens (once)."""
        if self.prepared:
            return
        from restobox.cloud import db
        from restobox.cloud.chain import Chain

        self.database = self.database or new_database(self.backend, self.workdir)
        database = db.connect(self.database, pool=2)
        db.migrate(database)
        chain = Chain(database)
        for s in self.stores:
            chain.enroll(s, s, STORE_TOKEN if s == self.stores[0] else f"{STORE_TOKEN}-{s}")
        chain.issue("admin", "office", ADMIN_TOKEN)
        chain.issue("owner", "owner", OWNER_TOKEN)
        database.close()
        self.prepared = True

    def start(self) -> "ChainCloud":
        self.prepare()
        cfg = None
        if self.config_text:
            cfg = self.workdir / "cloud.toml"
            cfg.write_text(self.config_text, encoding="utf-8")
        self.procs = [CloudProcess(self.database, self.workdir / f"cloud-{i}.log", config=cfg)
                      for i in range(self.n)]
        try:
            for p in self.procs:
                p.start()
            self.balancer = Balancer([p.url for p in self.procs], self.workdir / "balancer.log", self.port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
            self.balancer = None
        for p in self.procs:
            p.stop()

    def close(self) -> None:
        self.stop()
        if self._own_database and self.prepared and self.backend == "postgres":
            drop_pg_database(self.database)
            self.prepared = False

    def __enter__(self) -> "ChainCloud":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ for tests
    @staticmethod
    def admin() -> dict:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    @staticmethod
    def owner() -> dict:
        return {"Authorization": f"Bearer {OWNER_TOKEN}"}

    def token_of(self, store: str) -> str:
        return STORE_TOKEN if store == self.stores[0] else f"{STORE_TOKEN}-{store}"

    def mode(self, mode: str, count: int = 0, slow_s: float = 2.0) -> None:
        r = httpx.post(f"{self.url}/_lb/mode", json={"mode": mode, "count": count, "slow_s": slow_s}, timeout=5)
        r.raise_for_status()

    def get(self, path: str, **kw):
        r = httpx.get(f"{self.url}{path}", headers=self.admin(), timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    def put(self, path: str, body: bytes | dict | list):
        content = body if isinstance(body, bytes) else None
        r = httpx.put(f"{self.url}{path}", headers=self.admin(), timeout=30, content=content,
                      json=None if content is not None else body)
        return r

    def events(self, store: str | None = None) -> list[dict]:
        return self.get("/v1/admin/events", params={"store": store} if store else None)

    def stats(self) -> dict:
        """Every process's counters, summed."""
        from collections import Counter

        total: Counter = Counter()
        for p in self.procs:
            if p.proc is not None:
                total.update(httpx.get(f"{p.url}/v1/admin/stats", headers=self.admin(), timeout=5).json())
        return dict(total)
