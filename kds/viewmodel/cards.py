"""Rows of given heights cut into pages that fit (the all-day panel's
pages); plain arithmetic, the screen measures the rows with its fonts."""

from __future__ import annotations

from collections.abc import Sequence


def pack(heights: Sequence[float], capacity: float) -> list[tuple[int, int]]:
    """Consecutive blocks in parts of at most ``capacity`` tall, in order:
    ``[(start, end), ...]`` (``end`` exclusive). A block taller than
    ``capacity`` has a part of its own. No blocks: one empty part."""
    parts: list[tuple[int, int]] = []
    start, used = 0, 0.0
    for k, h in enumerate(heights):
        if k > start and used + h > capacity:
            parts.append((start, k))
            start, used = k, 0.0
        used += h
    parts.append((start, len(heights)))
    return parts
