"""The customer pickup board: "preparing" and "ready" numbers. Plain Python."""

from __future__ import annotations

import math

from kds.viewmodel.shared import Clock, _newest_mark, _parse_ts
from restobox.contract import Board

class BoardViewModel:
    """"Preparing" and "Ready" numbers; numbers ready within the last
    ``just_ready_s`` seconds are highlighted."""

    def __init__(self, *, clock: Clock, just_ready_s: float = 10.0) -> None:
        self.clock = clock
        self.just_ready_s = just_ready_s
        self.preparing: tuple[int, ...] = ()
        self._ready_since: dict[int, float] = {}
        self._business_date: str | None = None
        self._at: float | None = None

    def on_board(self, b: Board) -> bool:
        """True when either list changed."""
        ts = _parse_ts(b.at)
        if self._at is not None and ts is not None and ts < self._at and b.business_date == self._business_date:
            return False  # an older board than the one shown
        now = self.clock()
        first = self._business_date is None
        if b.business_date != self._business_date:
            self._ready_since = {}  # numbers start again each business day
        before = (self.preparing, self.ready)
        self._business_date, self._at = b.business_date, _newest_mark(ts, now)
        since = {}
        for n in b.ready:
            # Numbers already ready when the board starts did not just become ready.
            since[n] = self._ready_since.get(n, -math.inf if first else now)
        self._ready_since = since
        self.preparing = tuple(sorted(b.preparing))
        return before != (self.preparing, self.ready)

    @property
    def ready(self) -> tuple[int, ...]:
        """Newest first."""
        return tuple(sorted(self._ready_since, key=lambda n: (self._ready_since[n], n), reverse=True))

    @property
    def just_ready(self) -> frozenset[int]:
        now = self.clock()
        return frozenset(n for n, t in self._ready_since.items() if now - t < self.just_ready_s)


