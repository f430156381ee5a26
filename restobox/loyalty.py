"""Loyalty points: phone numbers, members, and the arithmetic of earning and
redeeming. Pure: no I/O (the hub keeps the ledger in store.db, db.PointsEntry).

A member is known by a phone number. The number itself travels only from an
ordering device to the hub (in an order's ``loyalty`` or a balance query);
everywhere else the member is ``member_id(phone)`` (a keyed hash, for the
ledger and the chain's cloud) and ``mask(phone)`` (``138****5678``, for
people: screens, receipts, replies).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

# Mainland China mobile numbers: 11 digits, 1 then 3-9.
CN_MOBILE = r"1[3-9]\d{9}"
_CN_RE = re.compile(CN_MOBILE)
_DIGITS = re.compile(r"\d{5,20}")
DEFAULT_MEMBER_KEY = b"restobox-member-v1"


def normalise(phone: str) -> str:
    """What a diner typed, without spaces, dashes and a leading +86."""
    p = re.sub(r"[\s-]", "", phone or "")
    if p.startswith("+86") and _CN_RE.fullmatch(p[3:]):
        p = p[3:]
    return p


def valid_phone(phone: str, extra_patterns: Iterable[str] = ()) -> bool:
    """A mainland mobile number, or one matching a configured pattern
    (full match; e.g. ``"852[569]\\d{7}"`` for Hong Kong mobiles)."""
    p = normalise(phone)
    if _CN_RE.fullmatch(p):
        return True
    return any(re.fullmatch(pat, p) for pat in extra_patterns)


def check_patterns(patterns: Iterable[str]) -> None:
    """Raise ValueError naming a pattern that is not a regular expression."""
    for pat in patterns:
        try:
            re.compile(pat)
        except re.error as exc:
            raise ValueError(f"phone pattern {pat!r} is not a regular expression: {exc}") from None


def mask(phone: str) -> str:
    """``13812345678`` -> ``138****5678``: the first 3 and the last 4 digits
    (shorter numbers keep less: at least half is hidden)."""
    p = normalise(phone)
    n = len(p)
    if n >= 11:
        return f"{p[:3]}{'*' * (n - 7)}{p[-4:]}"
    keep = max(1, n // 4)
    return f"{p[:keep]}{'*' * (n - 2 * keep)}{p[-keep:]}" if n > 2 else "*" * n


def member_id(phone: str, key: bytes = DEFAULT_MEMBER_KEY) -> str:
    """The member's id in the ledger and the cloud: HMAC-SHA256 of the
    normalised number with the chain's member key, 32 hex digits. The same
    number gives the same id in every store that has the same key."""
    return hmac.new(key, normalise(phone).encode(), hashlib.sha256).hexdigest()[:32]


def points_earned(paid_fen: int, points_per_yuan: float) -> int:
    """Points for an order of ``paid_fen`` (after any points discount),
    rounded down: ``points_per_yuan`` points per whole yuan."""
    per_100_yuan = round(points_per_yuan * 100)
    return max(0, paid_fen) * per_100_yuan // 10_000


def max_redeemable(gross_fen: int, balance: int, point_value_fen: int, max_share_pct: int) -> int:
    """The most points an order of ``gross_fen`` may redeem: no more than the
    balance, and worth no more than ``max_share_pct`` % of the order."""
    if point_value_fen <= 0 or balance <= 0:
        return 0
    cap = gross_fen * max_share_pct // 100 // point_value_fen
    return max(0, min(balance, cap))
