"""Delivery platforms' orders, routed to the store's kitchen (docs/cloud.md)."""

from __future__ import annotations


class Hooks:
    def __init__(self, chain, cfg, local_wake) -> None:
        self.chain = chain
        self.cfg = cfg
        self.local_wake = local_wake

    def on_new_events(self, store_id: str):
        return None

    def start(self, loop) -> None:
        pass

    async def stop(self) -> None:
        pass


def routes(hooks, guarded, store_auth, wait_for, body_of, json_of) -> list:
    return []
