"""``restobox delivery-dev`` (a delivery platform, simulated) in its own
process, for tests: on a free port, with the app's secret in a file, started
when it answers and always stopped.

    with DeliveryDev(tmp_path, secret=b"s", webhook_url=rx.url) as dd:
        o = dd.order("sh-1", [{"sku": "mt-rice", "name": "米饭", "qty": 1, "unit_price": 200}])
        with dd.client() as client:          # the chain's PlatformClient
            client.accept(o["platform_order_id"])
        dd.fault("webhook_lost", count=1)    # docs/delivery.md: the fault modes
        dd.orders()[pid]["state"]            # "accepted"
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import httpx

from restobox.delivery import PlatformClient
from tests.devproc import DevProcess, free_port


class DeliveryDev(DevProcess):
    """The simulated platform of one chain app. Its records are ``<name>.db``
    in ``workdir`` (kept across ``restart()``), its log ``<name>.log``, its
    secret ``<name>.secret``. ``webhook_retry``: the waits before each retry
    of a webhook not acknowledged (default the command's 1,2,4,8,15,30)."""

    def __init__(self, workdir: Path, *, secret: bytes = b"delivery-dev-secret", app_id: str = "chain-1",
                 webhook_url: str = "http://127.0.0.1:9/webhook", accept_timeout: float = 120.0,
                 port: int | None = None, platform: str = "mt", webhook_retry: Sequence[float] | None = None,
                 name: str = "delivery") -> None:
        self.workdir = Path(workdir)
        self.secret = secret
        self.app_id = app_id
        self.webhook_url = webhook_url
        self.accept_timeout = accept_timeout
        self.platform = platform
        self.webhook_retry = webhook_retry
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = self.workdir / f"{name}.db"
        self.log = self.workdir / f"{name}.log"
        self.secret_file = self.workdir / f"{name}.secret"

    def start(self, timeout: float = 15.0) -> "DeliveryDev":
        """Start it and wait until it answers (RuntimeError with its log if it exits)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.secret_file.write_bytes(self.secret + b"\n")
        cmd = [sys.executable, "-m", "restobox.cli", "delivery-dev", "--port", str(self.port), "--db", str(self.db),
               "--app-id", self.app_id, "--secret-file", str(self.secret_file), "--webhook-url", self.webhook_url,
               "--accept-timeout", f"{self.accept_timeout:g}", "--platform", self.platform]
        if self.webhook_retry is not None:
            cmd += ["--webhook-retry", ",".join(f"{s:g}" for s in self.webhook_retry)]
        self.launch(cmd, self.log, f"{self.url}/_dev/stats", what="delivery-dev", timeout=timeout,
                    drop_env="RESTOBOX_DELIVERY_SECRET")
        return self

    def client(self, timeout: float = 5.0, secret: bytes | None = None) -> PlatformClient:
        """The chain's client for this platform (close it after use; a
        context manager). ``secret``: sign with another one."""
        return PlatformClient(self.url, self.app_id, self.secret if secret is None else secret, timeout=timeout)

    # ---- the dev endpoints
    def order(self, shop_id: str, items: list[dict], *, note: str = "", pickup_in_s: int | None = None,
              delivery_fee: int | None = None, expect: int = 200) -> dict:
        """A diner orders in the app: the order as /_dev/orders shows it, or
        the refusal (``{"code": "shop_closed"}``...) when ``expect`` is 409."""
        body: dict = {"shop_id": shop_id, "items": items, "note": note}
        if pickup_in_s is not None:
            body["pickup_in_s"] = pickup_in_s
        if delivery_fee is not None:
            body["delivery_fee"] = delivery_fee
        r = httpx.post(f"{self.url}/_dev/orders", json=body, timeout=10)
        assert r.status_code == expect, (r.status_code, r.text)
        return r.json()

    def cancel(self, pid: str, reason: str = "diner_cancelled", expect: int = 200) -> dict:
        """The diner (or, ``rider_unavailable``, the rider) cancels."""
        r = httpx.post(f"{self.url}/_dev/orders/{pid}/cancel", json={"reason": reason}, timeout=10)
        assert r.status_code == expect, (r.status_code, r.text)
        return r.json()

    def orders(self) -> dict[str, dict]:
        """Every order by platform order id, with its state, times and webhooks."""
        return {o["platform_order_id"]: o for o in httpx.get(f"{self.url}/_dev/orders", timeout=10).json()}

    def get(self, pid: str) -> dict:
        r = httpx.get(f"{self.url}/_dev/orders/{pid}", timeout=10)
        r.raise_for_status()
        return r.json()

    def shops(self) -> dict[str, dict]:
        return httpx.get(f"{self.url}/_dev/shops", timeout=10).json()

    def calls(self) -> list[dict]:
        """Every API call received: method, path, body, status, code, at."""
        return httpx.get(f"{self.url}/_dev/calls", timeout=10).json()

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/_dev/stats", timeout=5).json()

    def fault(self, mode: str, count: int = 0, **kw) -> dict:
        """Set the fault mode (``slow_s`` as a keyword); "ok" resets."""
        r = httpx.post(f"{self.url}/_dev/fault", json={"mode": mode, "count": count, **kw}, timeout=5)
        r.raise_for_status()
        return r.json()
