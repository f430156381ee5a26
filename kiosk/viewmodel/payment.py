"""Paying and placing the order: the payment terminal's progress, the
submission to the hub (or the kiosk's outbox when the hub cannot be
reached), the hub's reply, the number, help when money was taken but the
order refused, cancelling.
"""

from __future__ import annotations

import uuid

from restobox import contract
from restobox.contract import OrderReply, OrderSubmit, REASONS, SubmitPayment, Words
from kiosk.payment import PaymentUpdate
from kiosk.viewmodel.model import (
    ActionRefused,
    CancelPayment,
    CheckPaymentAgain,
    Method,
    OutboxEntry,
    StartPayment,
    SubmitOrder,
    _iso,
)
from kiosk.viewmodel.texts import CART_REASONS, FORWARD, LOYALTY_REASONS, _UNKNOWN_ONLY_COUNTER, money


class PaymentSteps:
    """The payment part of :class:`kiosk.viewmodel.KioskViewModel` (its state lives there)."""

    def _leave_pay(self) -> None:
        if self.busy:
            raise ActionRefused("busy", Words("正在付款，请稍候。", "Payment in progress; please wait."))
        self._quote = None
        self.pay_phase = "choose"
        self.payment_update = None
        self.intent_id = None
        self.method = None

    @property
    def pay_total(self) -> int:
        """The amount asked on the pay screen (``price_order``'s total at checkout)."""
        return self._quote.total if self._quote else self.total

    def choose_payment(self, method: Method) -> None:
        """Start paying with ``method``: a new payment intent (a new
        idempotency key) and a StartPayment command."""
        self._need("pay")
        if method not in self.payment_methods:
            raise ActionRefused("bad_method", Words("这种付款方式现在不能用。", "That way to pay is not available."))
        if self.pay_phase not in ("choose", "problem"):
            raise ActionRefused("busy", Words("正在付款，请稍候。", "Payment in progress; please wait."))
        if self.payment_update is not None and self.payment_update.state == "unknown":
            # a second charge could take the money twice: only the counter
            raise ActionRefused("busy", _UNKNOWN_ONLY_COUNTER)
        self.method = method
        self.intent_id = f"pi-{uuid.uuid4().hex}"
        self.payment_update = None
        self.pay_phase = "paying"
        self._notice = None
        self._commands.append(StartPayment(self.intent_id, self.order_id, method, self.pay_total))

    def on_payment(self, update: PaymentUpdate) -> bool:
        """Progress of the payment the VM asked for; others are ignored."""
        if update.intent_id != self.intent_id or self.screen != "pay" or self.pay_phase != "paying":
            return False
        self.payment_update = update
        self._last_activity = self.clock()
        if not update.final:
            return True
        if update.payment is not None:
            self.payment = update.payment
            self.pay_phase = "submitting"
            self._commands.append(SubmitOrder(self.submit()))
        else:
            self.pay_phase = "problem"
        return True

    def payment_action(self, action: str) -> None:
        """A way forward on the pay screen (keys of kiosk.payment.ACTION_WORDS,
        plus ``retry_submit``)."""
        self._need("pay")
        u = self.payment_update
        if action == "cancel" and self.pay_phase == "paying" and self.intent_id:
            self._commands.append(CancelPayment(self.intent_id))
        elif action == "retry" and self.pay_phase == "problem" and u and "retry" in u.actions:
            self.choose_payment(self.method)  # a new intent: the old one is final, not charged
        elif action == "pay_at_counter" and self.pay_phase == "problem" and u and u.state == "unknown":
            # Placed unpaid, with the intent for staff to check at the counter.
            self.payment = SubmitPayment(method=u.method, status="unpaid", intent_id=u.intent_id)  # type: ignore[arg-type]
            self.pay_phase = "submitting"
            self._commands.append(SubmitOrder(self.submit()))
        elif action == "pay_at_counter" and self.pay_phase in ("choose", "problem"):
            self.choose_payment("counter")
        elif action == "check_again" and self.pay_phase == "problem" and u and u.state == "unknown":
            self.pay_phase = "paying"
            self._commands.append(CheckPaymentAgain(u.intent_id))
        elif action == "retry_submit" and self.pay_phase == "refused" and self.submitted is not None:
            self.pay_phase = "submitting"
            self._notice = None
            self._commands.append(SubmitOrder(self.submitted))
        elif action == "cancel_order" and self.pay_phase in ("choose", "problem", "refused"):
            self.cancel_order()
        else:
            raise ActionRefused("not_now", Words("现在不能这样操作。", "That is not possible right now."))

    def submit(self) -> OrderSubmit:
        """The OrderSubmit to publish for the cart and the payment decided.

        Called again (a retry after a lost reply or a hub error), it returns
        the very same order, which the hub answers as a duplicate."""
        self._need("pay")
        if self.payment is None:
            raise ActionRefused("not_now", Words("还没有付款。", "The payment is not done yet."))
        if self.submitted is not None and self.submitted.payment == self.payment and not self.submitted.offline:
            return self.submitted
        if not self._placed_at:
            self._placed_at = _iso(self.clock())
        lines = [self._submit_line(ln) for ln in self.cart]
        order = self._order(lines, payment=self.payment, placed_at=self._placed_at,
                            expected_total=self.pay_total)
        self.submitted = order
        self.pay_phase = "submitting"
        return order

    def submit_offline(self, provisional_number: str) -> OrderSubmit:
        """The hub or the broker cannot be reached: the same order (same id,
        same time) marked ``offline`` with the number shown to the diner.
        Returns it; ``outbox_entry`` is what the app commits to its outbox.

        The outbox sender must take a ``duplicate_conflict`` answer for this
        order id as delivered: if the online copy did reach the hub, the hub
        has it under its own number.
        """
        self._need("pay")
        if self.payment is None:
            raise ActionRefused("not_now", Words("还没有付款。", "The payment is not done yet."))
        if not provisional_number or len(provisional_number) > 16:
            raise ValueError(f"bad provisional number {provisional_number!r}")
        if not self._placed_at:
            self._placed_at = _iso(self.clock())
        lines = [self._submit_line(ln) for ln in self.cart]
        order = self._order(lines, payment=self.payment, placed_at=self._placed_at,
                            expected_total=self.pay_total, offline=True, provisional_number=provisional_number)
        self.confirm_offline(order)
        return order

    def confirm_offline(self, order: OrderSubmit) -> None:
        """The app committed ``order`` (this order, marked ``offline`` with its
        provisional number) to the kiosk's outbox: show the diner that number."""
        self._need("pay")
        if self.submitted is None or order.order_id != self.submitted.order_id or not order.offline \
                or not order.provisional_number:
            raise ValueError("confirm_offline takes the order being placed, marked offline with its number")
        self.submitted = order
        self.provisional = order.provisional_number
        self.number = None
        self.outbox_entry = OutboxEntry(order.order_id, order.provisional_number, order, contract.encode(order),
                                        self.clock())
        self._confirm()

    def on_reply(self, reply: OrderReply) -> bool:
        """The hub's answer. Only the answer to the order being placed counts."""
        if self.submitted is None or reply.order_id != self.submitted.order_id or self.screen != "pay":
            return False
        self.reply = reply
        self._last_activity = self.clock()
        if reply.status == "accepted":
            self.number = reply.number
            self._confirm()
            return True
        reason = reply.reason or "internal_error"
        said = REASONS.get(reason) or reply.message or REASONS["internal_error"]
        if reason in ("item_unavailable", "modifier_unavailable"):
            gone = reply.detail.get("item_id") if reason == "item_unavailable" else reply.detail.get("modifier")
            if gone:  # the hub knows better than our copy of the 86 list
                self._sold_out = self._sold_out | {gone}
        if self.payment is not None and self.payment.status == "approved":
            self._help(said)
            return True
        if reason in LOYALTY_REASONS and self.loyalty:
            # the points were spent elsewhere (or are not allowed): choose again
            self._drop_submission()
            self.redeem, self.member, self.phone = 0, None, None
            self.member_phase = "entry"
            self._go("member")
            self._notice = said
            return True
        if reason in CART_REASONS:
            forward = FORWARD["price_changed"] if reason == "price_mismatch" else (
                FORWARD["unavailable"] if reason in ("item_unavailable", "modifier_unavailable") else FORWARD["fix_cart"])
            self._drop_submission()
            self._go("cart")
            self._notice = Words(f"{said.zh}{forward.zh}", f"{said.en} {forward.en}")
            return True
        # the hub could not take it now: the same order may be sent again
        self.pay_phase = "refused"
        self._notice = Words(f"{said.zh}{FORWARD['retry'].zh}", f"{said.en} {FORWARD['retry'].en}")
        return True

    def _drop_submission(self) -> None:
        self.submitted = None
        self.payment = None
        self.payment_update = None
        self.intent_id = None
        self.method = None
        self._quote = None
        self._placed_at = ""
        self.pay_phase = "choose"

    def _help(self, said: Words) -> None:
        p = self.payment
        amount = money(p.amount)
        self.help_words = Words(
            f"{said.zh}你已付款 {amount}，但订单没有下成功。请把这个画面给店员看，店员会为你处理（退款或补单）。",
            f"{said.en} You paid {amount}, but the order could not be placed. Please show this screen to a "
            "member of staff: they will refund you or place the order for you.",
        )
        self._go("help")

    def _confirm(self) -> None:
        self._confirm_at = self.clock()
        self._go("confirm")

    def done(self) -> None:
        self._need("confirm", "help")
        self.reset("done")

    @property
    def _payment_unknown(self) -> bool:
        return self.screen == "pay" and self.payment_update is not None and self.payment_update.state == "unknown"

    def cancel_order(self) -> None:
        if self.busy:
            raise ActionRefused("busy", Words("正在付款，请稍候。", "Payment in progress; please wait."))
        if self._payment_unknown:
            raise ActionRefused("busy", _UNKNOWN_ONLY_COUNTER)
        self.reset("cancelled by the diner")

    # ------------------------------------------------------- accessibility
