"""The owner's dashboard (docs/cloud.md)."""

from __future__ import annotations


def routes(chain, cfg, guarded) -> list:
    return []
