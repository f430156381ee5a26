"""What the simulated outside services (paygate-dev, delivery-dev,
voucher-dev, cloud-dev) share: their clock, their records' plumbing
(SQLite, counters, settings), their fault mode kept across a restart, their
background tasks, the decoding of a /_dev request, and how they are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import msgspec

CST = timezone(timedelta(hours=8))
"""The simulated platforms' clock (their times and days are UTC+8)."""


def iso_cst(ts: float) -> str:
    """``ts`` (seconds since the epoch) as an ISO time in UTC+8, to the second."""
    return datetime.fromtimestamp(ts, CST).isoformat(timespec="seconds")


def now_cst() -> str:
    return datetime.now(CST).isoformat(timespec="seconds")


@contextlib.contextmanager
def transaction(con: sqlite3.Connection):
    """One transaction on ``con`` (a connection in autocommit,
    ``isolation_level=None``): all of it is kept, or none."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# --------------------------------------------------------------- store
class SimStore:
    """A simulator's records: SQLite, WAL, in autocommit (each statement
    commits on its own; ``tx()`` for several), one connection used from the
    event loop. Its ``SCHEMA`` is its own tables; every store has ``stat``
    (the counters) and ``setting`` (the fault mode...)."""

    SCHEMA = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.con.row_factory = sqlite3.Row
        self.con.execute("PRAGMA journal_mode = wal")
        self.con.executescript(self.SCHEMA + """
            CREATE TABLE IF NOT EXISTS stat (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS setting (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """)

    def tx(self):
        """One transaction: all of it is kept, or none."""
        return transaction(self.con)

    def count(self, key: str, n: int = 1) -> None:
        self.con.execute("INSERT INTO stat (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value", (key, n))

    def stats(self) -> dict[str, int]:
        return dict(self.con.execute("SELECT key, value FROM stat ORDER BY key").fetchall())

    def setting(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM setting WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO setting (key, value) VALUES (?, ?)", (key, value))


# ----------------------------------------------------------- simulator
class Simulator:
    """A simulator's core over its ``store``: its fault mode (a msgspec
    struct of type ``fault_type`` with ``mode`` and ``count``, kept in the
    store's settings so a restart keeps it), its background tasks and, while
    it is served, its HTTP client (``http``)."""

    def __init__(self, store: SimStore, fault_type: type, log: logging.Logger) -> None:
        self.store = store
        self.fault_type = fault_type
        self.log = log
        saved = store.setting("fault")
        self.fault = msgspec.json.decode(saved, type=fault_type) if saved else fault_type()
        self.tasks: dict[str, asyncio.Task] = {}
        self.http = None  # httpx.AsyncClient while serving

    # ---- faults
    def set_fault(self, f) -> None:
        self.fault = f
        self.store.set_setting("fault", msgspec.json.encode(f).decode())

    def spend_fault(self, mode: str, kind: str) -> str:
        """``mode`` befalls an event of ``kind``: a counted fault mode is
        spent by one (``ok`` after its last); counted and logged."""
        f = self.fault
        if f.count:
            left = f.count - 1
            self.set_fault(msgspec.structs.replace(f, count=left) if left else self.fault_type())
        self.store.count(f"faults.{mode}")
        self.log.info("fault %s (%s)", mode, kind)
        return mode

    # ---- tasks
    def spawn(self, name: str, coro) -> None:
        """Run ``coro`` as the task ``name``, unless that task still runs."""
        old = self.tasks.get(name)
        if old is not None and not old.done():
            coro.close()
            return
        self.tasks[name] = asyncio.get_running_loop().create_task(coro, name=name)

    def resume(self) -> None:
        """After a start: the work the records say is still to do."""

    def lifespan(self, *, timeout_s: float, user_agent: str):
        """The app's lifespan: the HTTP client made and ``resume()`` at the
        start; at the end every task cancelled, the client closed."""

        @contextlib.asynccontextmanager
        async def lifespan(app):
            import httpx

            self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), headers={"User-Agent": user_agent})
            self.resume()
            try:
                yield
            finally:
                for task in self.tasks.values():
                    task.cancel()
                await asyncio.gather(*self.tasks.values(), return_exceptions=True)
                await self.http.aclose()
        return lifespan


# -------------------------------------------------------- /_dev bodies
async def dev_body(request, type_, refused: Callable[..., Exception]):
    """The request's JSON body as ``type_``; else ``refused("bad_request",
    why, 400)`` is raised (``refused``: the simulator's refusal)."""
    try:
        return msgspec.json.decode(await request.body(), type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise refused("bad_request", str(exc), 400) from None


async def fault_body(request, type_, modes: tuple[str, ...], refused: Callable[..., Exception]):
    """A POST /_dev/fault body: a fault of ``type_`` (``mode``, ``count``,
    ``slow_s``) with one of ``modes``; else ``refused`` as dev_body."""
    f = await dev_body(request, type_, refused)
    if f.mode not in modes or f.count < 0 or f.slow_s < 0:
        raise refused("bad_request", f"mode is one of {', '.join(modes)}; count and slow_s at least 0", 400)
    return f


# --------------------------------------------------------------- serve
def run(app, host: str, port: int) -> int:
    """Serve ``app`` until stopped (SIGINT, SIGTERM); 0."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)
    return 0
