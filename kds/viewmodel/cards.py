"""How a ticket's blocks (its note, then one block per item line) are cut
into card parts so that none is hidden: a ticket taller than a card goes on
as many cards as it needs ("续 cont'd 1/2"). The screen measures the blocks
with its fonts; this is the plain arithmetic. Also used for the all-day
panel's pages."""

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


def split_ticket(heights: Sequence[float], card: float, strip: float) -> list[tuple[int, int]]:
    """The parts of one ticket: all on one card when they fit in ``card``;
    otherwise each card gives ``strip`` of its height to the "cont'd" strip."""
    if sum(heights) <= card:
        return [(0, len(heights))]
    return pack(heights, card - strip)
