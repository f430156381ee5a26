"""The member screen: the phone number, the points balance from the hub, a
redemption, and the discount it makes.
"""

from __future__ import annotations

from restobox import loyalty
from restobox.contract import LoyaltyBalance, REASONS, Words
from kiosk.viewmodel.model import ActionRefused, QueryBalance
from kiosk.viewmodel.texts import T


class MemberSteps:
    """The member part of :class:`kiosk.viewmodel.KioskViewModel` (its state lives there)."""

    @property
    def discount(self) -> int:
        """What the points chosen take off, by the hub's rules from its balance answer."""
        return self.redeem * self.member.point_value_fen if self.member is not None and self.redeem else 0

    def _gross(self) -> int:
        p = self.priced()
        return sum(ln.line_total for ln in p.lines) if p else 0

    def redeemable(self) -> int:
        """The points this order could use: all the diner has, up to the order's share."""
        m = self.member
        if m is None or self.member_phase != "found":
            return 0
        return loyalty.max_redeemable(self._gross(), m.balance, m.point_value_fen, m.max_share_pct)

    def phone_key(self, key: str) -> None:
        self._need("member")
        if self.member_phase != "entry" or len(key) != 1 or not key.isdigit():
            self._unknown()
        if len(self.phone_typed) >= 15:
            raise ActionRefused("bad_phone", T["member.bad_phone"])
        self.phone_typed += key
        self._notice = None

    def phone_delete(self) -> None:
        self._need("member")
        if self.member_phase == "entry":
            self.phone_typed = self.phone_typed[:-1]

    def phone_ok(self) -> None:
        """Check the number; ask the hub its balance (or say why not)."""
        self._need("member")
        if self.member_phase != "entry":
            self._unknown()
        if not loyalty.valid_phone(self.phone_typed, self.phone_patterns):
            raise ActionRefused("bad_phone", T["member.bad_phone"])
        self.phone = loyalty.normalise(self.phone_typed)
        self.redeem = 0
        self.member = None
        self._notice = None
        if not self.hub_reachable:
            self.balance_unavailable(None)
            return
        self._query_id = self._new_id()
        self.member_phase = "checking"
        self._commands.append(QueryBalance(self._query_id, self.phone))

    def on_balance(self, reply: LoyaltyBalance) -> bool:
        """The hub's answer to the balance query being waited for."""
        if self.screen != "member" or self.member_phase != "checking" or reply.query_id != self._query_id:
            return False
        self._last_activity = self.clock()
        if reply.ok:
            self.member, self.member_phase = reply, "found"
        elif reply.reason == "phone_invalid":
            self.phone, self.member_phase = None, "entry"
            self._notice = T["member.bad_phone"]
        else:  # loyalty_disabled: no points here; go on without them
            self.phone, self.member_phase = None, "unavailable"
            self._member_words = REASONS.get(reply.reason or "") or reply.message or REASONS["loyalty_disabled"]
        return True

    def balance_unavailable(self, query_id: str | None) -> None:
        """The hub cannot be asked (or did not answer in time): the order
        earns its points when it reaches the hub; none can be used now."""
        if self.screen != "member" or (query_id is not None and query_id != self._query_id):
            return
        if query_id is not None and self.member_phase != "checking":
            return
        self.member_phase = "unavailable"
        self.member = None
        self.redeem = 0
        self._member_words = T["member.offline"]

    def toggle_redeem(self) -> None:
        self._need("member")
        m = self.member
        if self.member_phase != "found" or m is None:
            self._unknown()
        if self.redeem:
            self.redeem = 0
            return
        n = self.redeemable()
        if n < max(1, m.min_redeem_points):
            raise ActionRefused("few_points", Words(T["member.too_few"].zh.format(min=m.min_redeem_points),
                                                    T["member.too_few"].en.format(min=m.min_redeem_points)))
        self.redeem = n

    def change_phone(self) -> None:
        self._need("member")
        self.phone, self.member, self.redeem, self.member_phase = None, None, 0, "entry"
        self._member_words = None

    def skip_member(self) -> None:
        self._need("member")
        self.phone_typed, self.phone, self.member, self.redeem, self.member_phase = "", None, None, 0, "entry"
        self._to_pay()

    def member_continue(self) -> None:
        self._need("member")
        if self.member_phase not in ("found", "unavailable"):
            self._unknown()
        self._to_pay()
