"""``restobox paygate-dev`` (the payment gateway, simulated) in its own
process, for tests: on a free port, with its merchant key in a file, started
when it answers and always stopped.

    with PaygateDev(tmp_path, key=b"k", mch_id="m-store-1") as pg:
        client = pg.client()
        trade, _ = client.create("RB1", 1234, description="...", notify_url=..., return_url=...)
        pg.pay("RB1")                       # the diner pays in the wallet
        pg.fault("notify_lost", count=1)    # docs/paygate.md: the fault modes
        pg.trades()["RB1"]["status"]        # "SUCCESS"
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import httpx

from restobox.paygate import PaygateClient
from tests.devproc import DevProcess, free_port


class PaygateDev(DevProcess):
    """The simulated gateway of one merchant. Its records are ``<name>.db`` in
    ``workdir`` (kept across ``restart()``), its log ``<name>.log``, its key
    ``<name>.key``. ``notify_retry``: the waits before each retry of a
    notification not acknowledged (default the command's 1,2,4,8,15,30)."""

    def __init__(self, workdir: Path, *, key: bytes = b"paygate-dev-key", mch_id: str = "m-store-1",
                 port: int | None = None, notify_delay: float = 0.2,
                 notify_retry: Sequence[float] | None = None, name: str = "paygate") -> None:
        self.workdir = Path(workdir)
        self.key = key
        self.mch_id = mch_id
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = self.workdir / f"{name}.db"
        self.log = self.workdir / f"{name}.log"
        self.key_file = self.workdir / f"{name}.key"
        self.notify_delay = notify_delay
        self.notify_retry = notify_retry

    def start(self, timeout: float = 15.0) -> "PaygateDev":
        """Start it and wait until it answers (RuntimeError with its log if it exits)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_file.write_bytes(self.key + b"\n")
        cmd = [sys.executable, "-m", "restobox.cli", "paygate-dev", "--port", str(self.port), "--db", str(self.db),
               "--mch-id", self.mch_id, "--key-file", str(self.key_file), "--notify-delay", str(self.notify_delay)]
        if self.notify_retry is not None:
            cmd += ["--notify-retry", ",".join(f"{s:g}" for s in self.notify_retry)]
        self.launch(cmd, self.log, f"{self.url}/_dev/stats", what="paygate-dev", timeout=timeout,
                    drop_env="RESTOBOX_PAYGATE_KEY")
        return self

    def client(self, timeout_s: float = 5.0) -> PaygateClient:
        """The store's client for this gateway (close it after use)."""
        return PaygateClient(self.url, self.mch_id, self.key, timeout_s=timeout_s)

    def fault(self, mode: str, count: int = 0, **kw) -> dict:
        """Set the fault mode (``slow_s``, ``rate``, ``seed`` as keywords); "ok" resets."""
        r = httpx.post(f"{self.url}/_dev/fault", json={"mode": mode, "count": count, **kw}, timeout=5)
        r.raise_for_status()
        return r.json()

    def pay(self, out_trade_no: str) -> dict:
        """The diner pays in the wallet: the trade as /_dev/trades shows it
        (status CLOSED, HTTP 409, when it could not be paid)."""
        r = httpx.post(f"{self.url}/_dev/pay", json={"out_trade_no": out_trade_no}, timeout=10)
        if r.status_code not in (200, 409):
            r.raise_for_status()
        return r.json()

    def trades(self) -> dict[str, dict]:
        """Every trade by merchant order number, with its refunds and notifications."""
        return {t["out_trade_no"]: t for t in httpx.get(f"{self.url}/_dev/trades", timeout=10).json()}

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/_dev/stats", timeout=5).json()
