"""The cashier's counter, as a view model: plain Python, no Kivy, no MQTT, no
database, no threads, no clock of its own (one thread: the UI's).

It takes what the hub says (``on_order_update``, ``on_payment_update``,
``on_till_reply``, ``on_order_reply``, ``on_menu``...), card payment progress
(``on_card``), taps (``tap``) and the keyboard-wedge scanner's keys
(``key``, ``enter``), and asks the app through commands
(:meth:`CounterViewModel.take_commands`):

- :class:`SendTill`: commit a TillRequest to counter.db and send it until the
  hub answers (``on_till_reply``);
- :class:`ChargeCard` / :class:`CancelPayment`: a card or QR payment through
  the terminal (kiosk.payment.PaymentFlow, intent committed first), its
  ``draft`` (the split payment's tenders so far) committed with it;
- :class:`OpenDrawer`: the receipt printer's drawer pulse (cash taken or
  given back);
- :class:`SubmitWalkin`: a walk-in order (channel ``counter``);
- :class:`Reprint`: a StaffCommand reprint; :class:`QueryBalance`: a
  member's points (the kiosk's);
- :class:`AskVoucher`: a group-buy voucher verified, then (confirmed by the
  cashier) redeemed at its platform through the sync service
  (``on_voucher_reply``, ``voucher_unavailable``).

Screens: ``shift`` (no shift: open one with a float; no payments without
one), ``orders`` (unpaid orders newest first, found by number, table or a
scan), ``pay`` (due, tenders: cash with change, card, QR, points, a
group-buy voucher; split until nothing is due), ``done`` (the change, big), ``refund`` (lines, reason,
manager PIN, void), ``walkin`` (the kiosk's menu, item, cart and member
steps, reused: kiosk.viewmodel.cart and member), ``close`` (the counted
drawer; over/short from the hub's ShiftSummary).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timezone

from counter.model import (
    AskVoucher,
    Btn,
    CancelPayment,
    ChargeCard,
    Clock,
    Command,
    CounterView,
    OpenDrawer,
    OrderInfo,
    Reprint,
    Row,
    SendTill,
    SubmitWalkin,
    VoucherWork,
)
from counter.texts import T, words
from counter.walkin import WalkIn, walkin_tap, walkin_view
from kiosk.payment import PaymentUpdate
from kiosk.viewmodel.model import ActionRefused, QueryBalance
from kiosk.viewmodel.texts import money
from restobox.contract import (
    REASONS,
    VOUCHER_CODE_PATTERN,
    LoyaltyBalance,
    MenuMessage,
    OrderReply,
    OrderSubmit,
    OrderUpdate,
    PayIntent,
    PaymentUpdate as LedgerUpdate,
    RefundLine,
    SoldOut,
    Tender,
    TillReply,
    TillRequest,
    UnpaidOrders,
    VoucherReply,
    Words,
)
from restobox.loyalty import valid_phone
from restobox.menu import Menu, MenuIndex
from restobox.ordercode import parse_order_code

REASON_KEYS = ("wrong_item", "quality", "changed_mind", "overcharged")
KEY_GUARD_S = 0.06
_VOUCHER_CODE = re.compile(VOUCHER_CODE_PATTERN)


PHONE_PAY_S = 300.0  # a phone payment's life when its message says none ([paygate] expire_s's default)
PHONE_PAY_MAX_S = 3600.0
PHONE_PAYS_KEPT = 500  # open phone payments remembered (a day's tables hold far fewer at once)


class CounterViewModel:
    """One counter: its shift, the orders it can take money for, the one
    being paid or refunded."""

    def __init__(self, *, clock: Clock, device: str, menu: Menu | None = None, loyalty: bool = False,
                 phone_patterns: tuple[str, ...] = (), card_methods: tuple[str, ...] = (),
                 business_date: Callable[[], str] = lambda: "", staff: str = "",
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4()), tap_guard_s: float = 0.3,
                 lang: str = "zh", vouchers: bool = False) -> None:
        self.clock = clock
        self.device = device
        self.loyalty = loyalty
        self.vouchers = vouchers
        self.phone_patterns = tuple(phone_patterns)
        self.card_methods = tuple(card_methods)
        self.business_date = business_date
        self.staff = staff or device
        self._new_id = new_id
        self.tap_guard_s = tap_guard_s
        self.lang = lang
        self.menu = menu or Menu(version="none", currency="CNY", tax_rate_bp=0, tax_inclusive=True, stations=(),
                                 categories=(), modifier_groups=(), items=())
        self.idx = MenuIndex(self.menu)
        self.sold_out: frozenset[str] = frozenset()
        self.hub_reachable = True
        self.waiting = 0  # requests the hub has not answered yet (the app says)
        self.refused = 0  # requests the hub refused in the last day (money to give back or to check)
        self.orders: dict[str, OrderInfo] = {}
        # the hub's unpaid orders (till/unpaid): their ids, with those heard
        # of on order/update since; None until the first list
        self.hub_unpaid: set[str] | None = None
        self.unpaid_floor = 0  # the lowest number listed when the list left older ones out
        self.shift: dict | None = None  # {"shift_id", "float", "opened_at"}
        self.screen = "shift"
        self.find = ""
        self.entry = ""
        self._notice: Words | None = None
        self._commands: list[Command] = []
        self._last_tap: tuple[str, float] | None = None
        self.duplicate_taps = 0
        # the phone payments open at the tables (pay/intent): order id ->
        # (its intent, when it expires on this clock)
        self.phone_pays: dict[str, tuple[PayIntent, float]] = {}
        self._clear_work()

    def _clear_work(self) -> None:
        self.selected: str | None = None
        self.request_id: str | None = None
        self.tenders: list[Tender] = []
        self.charging: PaymentUpdate | None = None  # the card payment at the terminal
        self.card_amount = 0
        self.change = 0
        self.result: Words | None = None  # what the done screen says under the big figure
        self.result_state = ""  # recording | recorded | offline | refused
        self.refund_lines: dict[int, int] = {}
        self.refund_reason = ""
        self.refund_void = False
        self.pin = ""
        self.closing: dict | None = None  # {"request_id", "counted"}
        self.summary = None
        self.walkin: WalkIn | None = None
        self.placing: OrderSubmit | None = None
        # a member's points as a tender: the phone typed on the keypad
        # (None: not typing one), the balance asked, the member who pays
        self.points_phone: str | None = None
        self.points_query: str | None = None
        self.member_phone = ""
        # a group-buy voucher: its code being typed or scanned (None: not
        # typing one), then the one asked of the platform
        self.voucher_code: str | None = None
        self.voucher: VoucherWork | None = None
        # the order whose open phone payment the cashier was told of: the
        # next tender taken for it goes ahead
        self.phone_warned: str | None = None

    # ================================================================ state
    def text(self, w: Words) -> str:
        return w.zh if self.lang == "zh" else w.en

    @property
    def notice(self) -> str:
        return self.text(self._notice) if self._notice else ""

    def take_commands(self) -> list[Command]:
        out, self._commands[:] = list(self._commands), []
        return out

    def _home(self) -> str:
        return "orders" if self.shift else "shift"

    def _go(self, screen: str) -> None:
        self.screen = screen
        self._notice = None

    def _now_iso(self) -> str:
        return datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="milliseconds")

    def unpaid(self) -> list[OrderInfo]:
        """Orders with money due, newest first: the hub's list (and the
        orders it announced since), and this counter's own orders not yet
        at the hub (no number yet)."""
        return sorted((o for o in self.orders.values() if o.open and o.total > 0 and self._listed(o)),
                      key=lambda o: (o.seen, o.number), reverse=True)

    def _listed(self, o: OrderInfo) -> bool:
        if self.hub_unpaid is None or not o.number or o.order_id in self.hub_unpaid:
            return True
        return 0 < o.number < self.unpaid_floor  # older than the list shows: as this counter knows it

    def order(self) -> OrderInfo | None:
        return self.orders.get(self.selected) if self.selected else None

    @property
    def due(self) -> int:
        o = self.order()
        if o is None:
            return 0
        return max(0, o.due - sum(t.amount for t in self.tenders))

    # ================================================================ input
    def tap(self, target: str) -> bool:
        now = self.clock()
        if self._last_tap is not None:
            last, at = self._last_tap
            guard = KEY_GUARD_S if target.startswith("key:") else self.tap_guard_s
            if last == target and now - at < guard:
                self.duplicate_taps += 1
                return False
        self._last_tap = (target, now)
        try:
            self._dispatch(target)
        except ActionRefused as exc:
            self._notice = exc.words
            if self.walkin is not None:
                self.walkin._notice = None
        return True

    def key(self, ch: str) -> None:
        """A character typed (a keyboard-wedge scanner, or a keyboard):
        it goes to the find box, wherever the cashier is; to the voucher's
        code while one is being typed on the pay screen."""
        if self._typing_voucher():
            if len(ch) == 1 and (ch.isalnum() and ch.isascii() or ch == "-") and len(self.voucher_code) < 32:
                self.voucher_code += ch.upper()
            return
        if len(ch) == 1 and ch.isprintable() and len(self.find) < 24:
            self.find += ch.upper()

    def backspace(self) -> None:
        if self._typing_voucher():
            self.voucher_code = self.voucher_code[:-1]
            return
        self.find = self.find[:-1]

    def _typing_voucher(self) -> bool:
        return self.screen == "pay" and self.voucher_code is not None

    def enter(self) -> None:
        """The scanner's Enter: find the order typed or scanned (or check
        the voucher whose code is being typed)."""
        if self._typing_voucher():
            try:
                self._voucher_check()
            except ActionRefused as exc:
                self._notice = exc.words
            return
        q, self.find = self.find.strip(), ""
        if not q:
            return
        if self.shift is None:
            self._notice = T["shift.need"]
            return
        if self.screen in ("pay", "refund") and self.charging is not None:
            return  # a card is at the terminal: finish it first
        try:
            self._find(q)
        except ActionRefused as exc:
            self._notice = exc.words

    def _find(self, q: str) -> None:
        code = parse_order_code(q)  # the receipt's barcode (restobox.ordercode)
        number: int | None = None
        if code is not None:
            today = self.business_date()
            if today and code.business_date != today:
                raise ActionRefused("other_day", words("find.other_day", date=code.business_date))
            if code.provisional:
                q = code.provisional_number
            else:
                number = code.number
        elif q.isdigit():
            number = int(q)
        found = None
        for o in sorted(self.orders.values(), key=lambda o: o.seen, reverse=True):
            if number is not None and o.number == number:
                found = o
                break
            if (o.table and o.table.upper() == q.upper() and o.open) or \
                    (o.provisional and o.provisional.upper() == q.upper()):
                found = o
                break
        if found is None:
            raise ActionRefused("not_found", words("find.none", q=q))
        self._clear_work()
        self._open(found)

    def _open(self, o: OrderInfo) -> None:
        self.selected = o.order_id
        self.entry = ""
        if o.open:
            self.request_id = self._new_id()
            self._go("pay")
        else:
            self._to_refund()

    def _dispatch(self, target: str) -> None:
        verb, _, arg = target.partition(":")
        if verb == "lang":
            self.lang = "en" if self.lang == "zh" else "zh"
            if self.walkin is not None:
                self.walkin.lang = self.lang
            return
        if verb == "key":
            return self._keypad(arg)
        if verb == "walk" and self.walkin is not None:
            return self._walkin_tap(arg)
        handler = {
            "shift_open": self._open_shift, "shift_close": self._start_close, "close": self._close_shift,
            "order": lambda: self._select(arg), "back": self._back, "cash": lambda: self._cash(arg),
            "card": lambda: self._card(arg or "card"), "cancel_card": self._cancel_card,
            "cancel_pay": self._cancel_pay, "done": self._done, "refund": self._to_refund,
            "rl": lambda: self._refund_line(arg), "reason": lambda: self._reason(arg),
            "void": self._toggle_void, "refund_go": self._refund_go, "reprint": self._reprint,
            "walkin": self._start_walkin, "find": self.enter, "points": self._points,
            "points_ok": self._points_ask, "voucher": self._voucher, "voucher_ok": self._voucher_check,
            "voucher_redeem": self._voucher_redeem, "voucher_cancel": self._voucher_cancel,
        }.get(verb)
        if handler is None:
            raise ActionRefused("unknown_target", Words("无法识别的操作。", "Unknown action."))
        handler()

    def _need(self, *screens: str) -> None:
        if self.screen not in screens:
            raise ActionRefused("not_now", Words("现在不能这样操作。", "That is not possible right now."))

    # -------------------------------------------------------------- keypad
    def _keypad(self, k: str) -> None:
        if self.screen == "orders":  # the find box, by touch
            if k == "del":
                self.backspace()
            elif k == "clear":
                self.find = ""
            elif k.isdigit():
                for ch in k:
                    self.key(ch)
            return
        if self._typing_voucher():
            if k == "del":
                self.voucher_code = self.voucher_code[:-1]
            elif k == "clear":
                self.voucher_code = ""
            elif k.isdigit() and len(self.voucher_code) + len(k) <= 32:
                self.voucher_code += k
            return
        if self.screen == "pay" and self.points_phone is not None:
            if k == "del":
                self.points_phone = self.points_phone[:-1]
            elif k == "clear":
                self.points_phone = ""
            elif k.isdigit() and len(self.points_phone) + len(k) <= 20:
                self.points_phone += k
            return
        if self.screen == "refund":
            if k == "del":
                self.pin = self.pin[:-1]
            elif k == "clear":
                self.pin = ""
            elif k.isdigit() and len(self.pin) + len(k) <= 12:
                self.pin += k
            return
        if k == "del":
            self.entry = self.entry[:-1]
        elif k == "clear":
            self.entry = ""
        elif k == "." and "." not in self.entry and len(self.entry) < 7:
            self.entry = (self.entry or "0") + "."
        elif k.isdigit() and len(self.entry.split(".")[0]) < 7:
            if "." in self.entry and len(self.entry.split(".")[1]) + len(k) > 2:
                return
            self.entry += k
        elif k.startswith("+") and k[1:].isdigit():  # a note: ¥50, ¥100
            self.entry = str(int(k[1:]))

    def entry_fen(self) -> int:
        if not self.entry or self.entry == ".":
            return 0
        yuan, _, jiao = self.entry.partition(".")
        return int(yuan or 0) * 100 + int((jiao + "00")[:2])

    # --------------------------------------------------------------- shift
    def _open_shift(self) -> None:
        self._need("shift")
        shift_id = self._new_id()
        float_fen = self.entry_fen()
        req = TillRequest(request_id=shift_id, kind="shift_open", shift_id=shift_id, float_fen=float_fen,
                          staff=self.staff, at=self._now_iso(), offline=not self.hub_reachable)
        self.shift = {"shift_id": shift_id, "float": float_fen, "opened_at": req.at}
        self._commands.append(SendTill(req))
        self.entry = ""
        self._go("orders")

    def _start_close(self) -> None:
        if self.shift is None:
            raise ActionRefused("no_shift", T["shift.need"])
        self._clear_work()
        self.entry = ""
        self._go("close")

    def _close_shift(self) -> None:
        self._need("close")
        if self.closing is not None:
            return
        rid = self._new_id()
        counted = self.entry_fen()
        req = TillRequest(request_id=rid, kind="shift_close", shift_id=self.shift["shift_id"], counted_fen=counted,
                          staff=self.staff, at=self._now_iso(), offline=not self.hub_reachable)
        self.closing = {"request_id": rid, "counted": counted}
        self._commands.append(SendTill(req))
        self._commands.append(OpenDrawer(rid))
        self.result, self.result_state = T["shift.closing"], "recording"

    # -------------------------------------------------------------- orders
    def _select(self, order_id: str) -> None:
        if self.shift is None:
            raise ActionRefused("no_shift", T["shift.need"])
        o = self.orders.get(order_id)
        if o is None:
            raise ActionRefused("not_found", words("find.none", q=order_id[:8]))
        self._clear_work()
        self._open(o)

    def _back(self) -> None:
        if self.charging is not None:
            raise ActionRefused("busy", words("pay.card_wait", amount=money(self.card_amount)))
        self._voucher_idle()
        if self.screen == "pay" and self.tenders:
            raise ActionRefused("busy", T["pay.cancel"])
        if self.screen == "close" and self.closing is not None and self.summary is None:
            self.closing = None
        self._clear_work()
        self._go(self._home())

    def _cancel_pay(self) -> None:
        """Drop the tenders not sent yet (cash handed back)."""
        self._need("pay")
        if self.charging is not None:
            raise ActionRefused("busy", words("pay.card_wait", amount=money(self.card_amount)))
        self._voucher_idle()
        kept = any(t.method == "voucher" for t in self.tenders)
        self._clear_work()
        self._go(self._home())
        if kept:  # redeemed at the platform; counter.db keeps its request: scanned again, the same redemption
            self._notice = T["pay.voucher_kept"]

    def _done(self) -> None:
        if self.screen == "close" and self.summary is None and self.closing is None:
            raise ActionRefused("not_now", T["shift.counted"])
        if self.screen == "close":
            self.shift = None
        self._clear_work()
        self.entry = ""  # the drawer's count is not the next shift's float
        self._go(self._home())

    # ----------------------------------------------------------------- pay
    def _check_payable(self) -> OrderInfo:
        self._need("pay")
        if self.shift is None:
            raise ActionRefused("no_shift", T["shift.need"])
        if self.charging is not None:
            raise ActionRefused("busy", words("pay.card_wait", amount=money(self.card_amount)))
        self._voucher_idle()
        o = self.order()
        if o is None or not o.open:
            raise ActionRefused("already_paid", self._already(o))
        if self.due <= 0:
            raise ActionRefused("nothing_due", T["pay.nothing_due"])
        return o

    def phone_paying(self, order_id: str | None) -> PayIntent | None:
        """The open phone payment of the order, while the diner may still pay it."""
        hit = self.phone_pays.get(order_id or "")
        if hit is None:
            return None
        if self.clock() >= hit[1]:
            del self.phone_pays[order_id]
            return None
        return hit[0]

    def _phone_left(self, order_id: str | None) -> str:
        hit = self.phone_pays.get(order_id or "")
        left = max(0, int(hit[1] - self.clock())) if hit else 0
        return f"{left // 60}:{left % 60:02d}"

    def _mind_the_phone(self, o: OrderInfo) -> None:
        """Money taken here while the diner pays the same order on their
        phone is charged twice (the phone's goes back, but the diner waits
        for it): the first tender for such an order only says so."""
        if self.phone_paying(o.order_id) is not None and self.phone_warned != o.order_id:
            self.phone_warned = o.order_id
            raise ActionRefused("phone_paying", words("pay.phone_paying", left=self._phone_left(o.order_id)))

    def on_pay_intent(self, i: PayIntent) -> bool:
        """A phone payment made or changed (pay/intent). True when the
        screen shows something else now."""
        before = self.phone_paying(i.order_id)
        if i.state == "open":
            now = self.clock()
            try:
                expires = datetime.fromisoformat(i.expires_at).timestamp()
            except (TypeError, ValueError):
                expires = now + PHONE_PAY_S
            # never longer than a phone payment lasts, whatever the message says
            self.phone_pays[i.order_id] = (i, min(expires, now + PHONE_PAY_MAX_S))
            for oid in [k for k, (_, t) in self.phone_pays.items() if t <= now]:
                del self.phone_pays[oid]
            if len(self.phone_pays) > PHONE_PAYS_KEPT:  # bounded: those ending soonest go
                for oid, _ in sorted(self.phone_pays.items(), key=lambda kv: kv[1][1])[:-PHONE_PAYS_KEPT]:
                    del self.phone_pays[oid]
        elif before is not None and before.merchant_no == i.merchant_no:
            del self.phone_pays[i.order_id]
        else:
            return False
        return True

    def _cash(self, arg: str) -> None:
        o = self._check_payable()
        due = self.due
        tendered = due if arg == "exact" else self.entry_fen()
        if tendered <= 0:
            raise ActionRefused("no_amount", T["pay.amount"])
        self._mind_the_phone(o)
        self.voucher = self.voucher_code = None
        amount = min(tendered, due)
        self.tenders.append(Tender(method="cash", amount=amount, tendered=tendered))
        self.entry = ""
        self.change = tendered - amount
        self._commands.append(OpenDrawer(self.request_id))
        if self.due == 0:
            self._finish_pay()
        else:
            self._notice = words("pay.short", due=money(self.due))

    def _card(self, method: str) -> None:
        o = self._check_payable()
        if method not in self.card_methods:
            raise ActionRefused("no_terminal", T["pay.no_terminal"])
        amount = self.entry_fen() or self.due
        if amount > self.due:
            raise ActionRefused("too_much", T["pay.too_much"])
        self._mind_the_phone(o)
        self.voucher = self.voucher_code = None
        intent_id = f"{self.request_id}-{len(self.tenders) + 1}"
        draft = self._pay_request(o)
        self.card_amount = amount
        self.entry = ""
        self.charging = PaymentUpdate(intent_id=intent_id, order_id=self.request_id, method=method, amount=amount,
                                      state="new", reason="", final=False,
                                      words=words("pay.card_wait", amount=money(amount)), actions=("cancel",))
        self._commands.append(ChargeCard(intent_id, method, amount, draft, o.due))
        self._notice = None

    def _points(self) -> None:
        """Pay with a member's points: the keypad takes the phone number
        (tapped again: back to amounts)."""
        self._check_payable()
        if not self.loyalty:
            raise ActionRefused("loyalty_disabled", REASONS["loyalty_disabled"])
        if self.points_query is not None:
            raise ActionRefused("busy", T["pay.points_wait"])
        self.points_phone = None if self.points_phone is not None else ""
        self.voucher = self.voucher_code = None
        self._notice = T["pay.points_phone"] if self.points_phone is not None else None

    def _points_ask(self) -> None:
        """The member's balance from the hub (points are the hub's to count)."""
        self._check_payable()
        phone = self.points_phone or ""
        if not valid_phone(phone, self.phone_patterns):
            raise ActionRefused("phone_invalid", REASONS["phone_invalid"])
        self.points_query = self._new_id()
        self._points_for = phone
        self._commands.append(QueryBalance(self.points_query, phone))
        self._notice = T["pay.points_wait"]

    def _points_balance(self, reply: LoyaltyBalance) -> None:
        self.points_query = None
        if not reply.ok:
            self._notice = reply.message or REASONS["phone_invalid"]
            return
        pv = max(1, reply.point_value_fen)
        points = min(reply.balance, self.due // pv)
        if points <= 0:
            self._notice = words("pay.points_none", balance=str(reply.balance))
            return
        self.tenders.append(Tender(method="points", amount=points * pv, reference=reply.member))
        self.member_phone, self.points_phone = self._points_for, None
        self.change = 0
        if self.due == 0:
            self._finish_pay()
        else:
            self._notice = words("pay.short", due=money(self.due))

    # ------------------------------------------------------------ vouchers
    def _voucher_idle(self) -> None:
        """Nothing else while the platform is asked about a voucher (a
        redemption may come, which pays part of the order)."""
        if self.voucher is not None and self.voucher.stage != "confirm":
            raise ActionRefused("busy", T["pay.voucher_wait" if self.voucher.stage == "verifying"
                                          else "pay.voucher_redeeming"])

    def _voucher(self) -> None:
        """A group-buy voucher: the keypad (or the scanner) types its code
        (tapped again: back to amounts)."""
        self._check_payable()
        if not self.vouchers:
            raise ActionRefused("vouchers_off", T["pay.voucher_off"])
        typing = self.voucher_code is None and self.voucher is None
        self.voucher = None
        self.voucher_code = "" if typing else None
        self.points_phone = None
        self._notice = T["pay.voucher_type"] if typing else None

    def _voucher_check(self) -> None:
        """Ask the platform what the voucher is (nothing is used up yet)."""
        o = self._check_payable()
        code = (self.voucher_code or "").strip()
        if not _VOUCHER_CODE.fullmatch(code):
            raise ActionRefused("voucher_code", T["pay.voucher_bad_code"])
        self.voucher = VoucherWork(code=code, stage="verifying", request_id=self._new_id())
        self.voucher_code = None
        self._commands.append(AskVoucher(self.voucher.request_id, "verify", code, o.order_id))
        self._notice = T["pay.voucher_wait"]

    def _voucher_redeem(self) -> None:
        """The cashier confirms: use the voucher up for this order."""
        o = self._check_payable()
        v = self.voucher
        if v is None or v.stage != "confirm":
            raise ActionRefused("not_now", Words("现在不能这样操作。", "That is not possible right now."))
        v.stage, v.request_id = "redeeming", self._new_id()
        self._commands.append(AskVoucher(v.request_id, "redeem", v.code, o.order_id))
        self._notice = T["pay.voucher_redeeming"]

    def _voucher_cancel(self) -> None:
        self._need("pay")
        if self.voucher is not None and self.voucher.stage == "confirm":
            self.voucher = None
        self.voucher_code = None
        self._notice = None

    def _voucher_pays(self, value: int) -> int:
        return min(value, self.due)

    def on_voucher_reply(self, r: VoucherReply) -> bool:
        """The platform's answer, through the sync service. A redemption is
        taken in either stage: a voucher this counter asked to redeem before
        (a lost answer, a restart) is redeemed again with its kept request
        id when it is checked, and that answer is its redemption."""
        v = self.voucher
        if v is None or r.code != v.code:
            return False
        if r.kind == "redeem" and v.stage in ("verifying", "redeeming"):
            self.voucher = None
            if not r.ok:
                self._notice = r.message or REASONS.get(r.reason or "") or REASONS["voucher_unreachable"]
                return True
            if self.screen != "pay" or self.due <= 0:
                self._notice = T["pay.voucher_kept"]
                return True
            amount = self._voucher_pays(r.value_fen)
            if amount <= 0 or not r.redemption_id:  # nothing a payment can carry
                self._notice = REASONS["voucher_bad_answer"]
                return True
            self.tenders.append(Tender(method="voucher", amount=amount, reference=v.code, intent_id=r.redemption_id))
            self.change = 0
            if self.due == 0:
                self._finish_pay()
            else:
                self._notice = words("pay.short", due=money(self.due))
            return True
        if r.request_id != v.request_id or v.stage != "verifying":
            return False  # a late answer to an earlier question
        if not r.ok:
            self.voucher = None
            self._notice = r.message or REASONS.get(r.reason or "") or REASONS["voucher_unreachable"]
            return True
        v.stage, v.title, v.value = "confirm", r.title, r.value_fen
        self._notice = None
        return True

    def voucher_unavailable(self, code: str | None = None) -> None:
        """No answer in time, or no broker: the cashier takes another tender."""
        v = self.voucher
        if v is None or v.stage == "confirm" or code not in (None, v.code):
            return
        self.voucher = None
        self._notice = T["pay.voucher_no_answer"]

    def _voucher_line(self) -> str:
        v = self.voucher
        tx = self.text
        title = tx(v.title) if v.title else v.code
        pays = self._voucher_pays(v.value)
        s = tx(words("pay.voucher_shows", title=title, value=money(v.value), pays=money(pays)))
        if v.value > pays:
            s += " " + tx(words("pay.voucher_no_change", rest=money(v.value - pays)))
        return s

    def _cancel_card(self) -> None:
        if self.charging is None:
            raise ActionRefused("not_now", Words("现在不能这样操作。", "That is not possible right now."))
        self._commands.append(CancelPayment(self.charging.intent_id))

    def on_card(self, u: PaymentUpdate) -> bool:
        """Progress of the card payment at the terminal."""
        if self.charging is None or u.intent_id != self.charging.intent_id:
            return False
        self.charging = u
        if not u.final:
            return True
        self.charging = None
        if u.state == "approved":
            self.tenders.append(Tender(method=u.method, amount=u.amount, intent_id=u.intent_id,  # type: ignore[arg-type]
                                       reference=u.auth_ref))
            self.change = 0
            if self.due == 0:
                self._finish_pay()
            else:
                self._notice = words("pay.short", due=money(self.due))
        else:
            self._notice = u.words
        return True

    def _pay_request(self, o: OrderInfo) -> TillRequest:
        return TillRequest(request_id=self.request_id, kind="pay", order_id=o.order_id,
                           tenders=tuple(self.tenders), member_phone=self.member_phone,
                           staff=self.staff, shift_id=self.shift["shift_id"],
                           offline=not self.hub_reachable, at=self._now_iso())

    def _finish_pay(self) -> None:
        o = self.order()
        req = self._pay_request(o)
        self._commands.append(SendTill(req, due=o.due))
        self.result = T["pay.recording"] if self.hub_reachable else T["pay.offline"]
        self.result_state = "recording" if self.hub_reachable else "offline"
        # shown paid at once: recorded here, sent until the hub has it
        o.payment, o.paid = "paid", o.paid + sum(t.amount for t in self.tenders)
        self._go("done")

    # -------------------------------------------------------------- refund
    def _to_refund(self) -> None:
        o = self.order()
        if o is None:
            raise ActionRefused("not_found", words("find.none", q=""))
        self.refund_lines, self.refund_reason, self.refund_void, self.pin = {}, "", False, ""
        self.request_id = self._new_id()
        self._go("refund")

    def _refund_line(self, arg: str) -> None:
        self._need("refund")
        line, _, d = arg.partition(":")
        o = self.order()
        ln = next((x for x in (o.lines if o else []) if str(x.get("line")) == line), None)
        if ln is None:
            raise ActionRefused("unknown_line", Words("没有这一项。", "No such line."))
        n = self.refund_lines.get(ln["line"], 0) + (1 if d == "+" else -1)
        if n > int(ln["qty"]):
            n = 0  # tapped past the line's quantity: none of it again
        n = max(0, n)
        if n:
            self.refund_lines[ln["line"]] = n
        else:
            self.refund_lines.pop(ln["line"], None)

    def _reason(self, key: str) -> None:
        self._need("refund")
        if key not in REASON_KEYS:
            raise ActionRefused("unknown_target", Words("无法识别的操作。", "Unknown action."))
        self.refund_reason = key

    def _toggle_void(self) -> None:
        self._need("refund")
        self.refund_void = not self.refund_void

    def _refund_go(self) -> None:
        self._need("refund")
        o = self.order()
        if self.shift is None:
            raise ActionRefused("no_shift", T["shift.need"])
        if o is None or o.paid <= 0:
            raise ActionRefused("not_paid", T["refund.nothing"])
        if not self.refund_reason:
            raise ActionRefused("refund_reason_required", T["refund.need_reason"])
        if not self.pin:
            raise ActionRefused("pin_wrong", T["refund.need_pin"])
        if not self.hub_reachable:
            raise ActionRefused("offline", T["refund.offline"])
        if self.result_state == "recording":
            return
        reason = T[f"reason.{self.refund_reason}"]
        req = TillRequest(request_id=self.request_id, kind="refund", order_id=o.order_id,
                          lines=tuple(RefundLine(line=ln, qty=q) for ln, q in sorted(self.refund_lines.items())),
                          void=self.refund_void, reason=f"{reason.en} / {reason.zh}", manager_pin=self.pin,
                          staff=self.staff, shift_id=self.shift["shift_id"], at=self._now_iso())
        self.pin = ""
        self._commands.append(SendTill(req))
        self.result, self.result_state = T["refund.sending"], "recording"
        self._notice = T["refund.sending"]

    def _reprint(self) -> None:
        o = self.order()
        if o is None:
            raise ActionRefused("not_found", words("find.none", q=""))
        self._commands.append(Reprint(o.order_id))
        self._notice = T["reprint.sent"]

    # ------------------------------------------------------------- walk-in
    def _start_walkin(self) -> None:
        if self.shift is None:
            raise ActionRefused("no_shift", T["shift.need"])
        self._clear_work()
        self.walkin = WalkIn(self)
        self._go("walkin")

    def _walkin_tap(self, arg: str) -> None:
        walkin_tap(self, arg)

    def _place(self, order: OrderSubmit, discount: int = 0) -> None:
        self.walkin = None
        self.placing = order
        o = OrderInfo(order_id=order.order_id, total=order.expected_total or 0, channel="counter",
                      seen=self.clock(), lines=[])
        self.orders[order.order_id] = o
        self._commands.append(SubmitWalkin(order, discount))
        self.selected, self.request_id = order.order_id, self._new_id()
        self._go("pay")
        self._notice = T["walkin.placing"]

    def on_balance(self, reply: LoyaltyBalance) -> bool:
        if self.points_query is not None and reply.query_id == self.points_query:
            self._points_balance(reply)
            return True
        if self.walkin is None:
            return False
        ok = self.walkin.on_balance(reply)
        self._notice = self.walkin._notice
        return ok

    def balance_unavailable(self, query_id: str | None) -> None:
        if self.points_query is not None and query_id in (None, self.points_query):
            self.points_query = None
            self._notice = T["pay.points_unavailable"]
            return
        if self.walkin is not None:
            self.walkin.balance_unavailable(query_id)

    # ====================================================== from the hub
    def on_menu(self, msg: MenuMessage) -> None:
        msg.menu.check()
        self.menu, self.idx = msg.menu, MenuIndex(msg.menu)

    def on_soldout(self, msg: SoldOut) -> None:
        self.sold_out = frozenset(msg.items)

    def on_known(self, o: OrderInfo) -> None:
        """An order from counter.db (at start)."""
        self.orders.setdefault(o.order_id, o)

    def on_order_update(self, u: OrderUpdate) -> OrderInfo:
        o = self.orders.get(u.order_id)
        if o is None:
            o = self.orders[u.order_id] = OrderInfo(order_id=u.order_id, seen=self.clock())
        o.number, o.state = u.number, u.state
        if u.total:
            o.total = u.total
        if u.channel:
            o.channel = u.channel
        if u.table:
            o.table = u.table
        if u.provisional_number:
            o.provisional = u.provisional_number
        pending_here = self.selected == u.order_id and self.screen == "done" and self.result_state != "refused"
        if not pending_here:
            o.payment, o.paid = u.payment, u.paid
        if self.hub_unpaid is not None and o.open:
            self.hub_unpaid.add(u.order_id)  # until the hub's next list
        return o

    def on_unpaid(self, msg: UnpaidOrders) -> list[OrderInfo]:
        """The hub's list of the day's unpaid orders (retained: the counter
        has it as soon as it connects, orders placed while it was off
        included). Returns the orders it did not know. An order this
        counter knows as paid (its payment maybe not at the hub yet) or
        voided stays so."""
        new = []
        for e in msg.orders:
            o = self.orders.get(e.order_id)
            if o is None:
                o = self.orders[e.order_id] = OrderInfo(order_id=e.order_id, seen=self.clock())
                new.append(o)
            elif not o.open:
                continue
            o.number, o.total, o.paid, o.payment, o.state = e.number, e.total, e.paid, "unpaid", e.state
            o.channel, o.table = e.channel, e.table or ""
            if e.provisional_number:
                o.provisional = e.provisional_number
        self.hub_unpaid = {e.order_id for e in msg.orders}
        self.unpaid_floor = min((e.number for e in msg.orders), default=0) if msg.more else 0
        return new

    def on_payment_update(self, u: LedgerUpdate) -> OrderInfo | None:
        o = self.orders.get(u.order_id)
        if o is None:
            o = self.orders[u.order_id] = OrderInfo(order_id=u.order_id, number=u.number, seen=self.clock())
        o.payment, o.paid, o.total = u.payment, u.paid, u.total or o.total
        pays = [e for e in u.entries if e.kind == "payment"]
        if pays:
            o.paid_by = self._who(pays)
        mine = self.request_id is not None and any(e.entry_id.startswith(self.request_id) for e in u.entries)
        if self.selected == u.order_id and self.screen == "pay" and not mine and not o.open:
            # another counter was quicker
            self._notice = self._already(o)
        return o

    def _already(self, o: OrderInfo | None) -> Words:
        """"Already paid", and by whom when the counter heard it."""
        a = T["pay.already"]
        if o is None or not o.paid_by:
            return a
        return Words(a.zh + o.paid_by, a.en + " " + o.paid_by)

    def _who(self, entries) -> str:
        e = entries[-1]
        who = " / ".join(dict.fromkeys(x for x in (e.staff, e.device) if x)) or "?"
        total = sum(x.amount for x in entries)
        at = e.at[11:16] if len(e.at) >= 16 else e.at
        w = words("pay.paid_by", who=who, amount=money(total), at=at)
        return self.text(w)

    def on_order_reply(self, r: OrderReply) -> None:
        """The hub's answer to a walk-in order."""
        o = self.orders.get(r.order_id)
        if o is None:
            return
        if r.status == "accepted":
            o.number, o.total = r.number or 0, r.total or o.total
            o.lines = [{"line": ln.line, "name_zh": ln.name_zh, "name_en": ln.name_en, "qty": ln.qty,
                        "line_total": ln.line_total} for ln in r.lines]
            if self.placing is not None and self.placing.order_id == r.order_id:
                self.placing = None
                if self.selected == r.order_id and self.screen == "pay":
                    self._notice = None
        else:
            said = r.message or REASONS.get(r.reason or "") or REASONS["internal_error"]
            o.state = "rejected"
            if self.selected == r.order_id and self.screen in ("pay", "done"):
                self._notice = Words(T["walkin.refused"].zh + said.zh, T["walkin.refused"].en + said.en)

    def on_offline_order(self, order_id: str, provisional: str) -> None:
        """A walk-in order kept at the counter with a provisional number."""
        o = self.orders.get(order_id)
        if o is None:
            return
        o.provisional = provisional
        if self.placing is not None and self.placing.order_id == order_id:
            self.placing = None
            if self.selected == order_id:
                self._notice = words("walkin.offline", p=provisional)

    def on_till_reply(self, r: TillReply) -> bool:
        """The hub's answer to one of this counter's requests."""
        if r.order_id:
            o = self.orders.get(r.order_id)
            if o is None and r.number:
                o = self.orders[r.order_id] = OrderInfo(order_id=r.order_id, number=r.number, seen=self.clock())
            if o is not None:
                o.payment, o.paid, o.total = r.payment, r.paid, r.total or o.total
                if r.number:
                    o.number = r.number
                pays = [e for e in r.entries if e.kind == "payment"]
                if pays:
                    o.paid_by = self._who(pays)
        if self.closing is not None and r.request_id == self.closing["request_id"]:
            if r.ok and r.shift is not None:
                self.summary = r.shift
                self.result, self.result_state = None, "recorded"
            else:
                said = r.message or REASONS.get(r.reason or "") or REASONS["internal_error"]
                self.result, self.result_state = said, "refused"
            return True
        if self.shift is not None and r.request_id == self.shift["shift_id"]:
            if not r.ok:  # e.g. the hub has another shift of this counter open
                self._notice = r.message or REASONS.get(r.reason or "") or REASONS["internal_error"]
            return True
        if r.request_id != self.request_id:
            return False
        if r.ok:
            self.result_state = "recorded"
            if self.screen == "refund":
                refunded = sum(e.amount for e in r.entries if e.kind == "refund")
                self.result = words("refund.done", amount=money(refunded))
                if any(e.kind == "refund" and e.method == "cash" for e in r.entries):
                    self._commands.append(OpenDrawer(r.request_id))
                self._go("done")
                self.change = 0
            else:
                self.result = T["pay.recorded"]
            return True
        said = r.message or REASONS.get(r.reason or "") or REASONS["internal_error"]
        self.result_state = "refused"
        if self.screen == "done" and any(t.method == "cash" for t in self.tenders):
            said = Words(said.zh + T["pay.give_back"].zh, said.en + " " + T["pay.give_back"].en)
        o = self.order()
        if r.reason == "already_paid" and o is not None and o.paid_by:
            said = Words(said.zh + o.paid_by, said.en + " " + o.paid_by)
        self.result = Words(T["pay.refused"].zh + said.zh, T["pay.refused"].en + said.en) \
            if self.screen == "done" else said
        self._notice = said if self.screen != "done" else None
        return True

    def on_offline(self) -> None:
        """The hub did not answer in time: the request is kept and sent later."""
        if self.result_state == "recording" and self.screen == "done":
            self.result, self.result_state = T["pay.offline"], "offline"
        elif self.closing is not None and self.summary is None:
            self.result, self.result_state = T["shift.closed_later"], "offline"

    # ================================================================ view
    def view(self) -> CounterView:
        tx = self.text
        hub = T["hub.up"] if self.hub_reachable else T["hub.down"]
        status = tx(hub) + (" · " + tx(words("hub.waiting", n=self.waiting)) if self.waiting else "") \
            + (" · " + tx(words("hub.refused", n=self.refused)) if self.refused else "")
        shift = tx(T["shift.none"]) if self.shift is None else tx(words(
            "shift.open_at", since=self.shift["opened_at"][11:16], float=money(self.shift["float"])))
        rows: list[Row] = []
        buttons: list[Btn] = []
        big = sub = ""
        keypad = False
        s = self.screen
        title = tx(T.get(f"title.{s}", T["title.orders"]))
        if s == "shift":
            sub = tx(T["shift.float"])
            big = money(self.entry_fen())
            keypad = True
            buttons.append(Btn("shift_open", tx(T["shift.open"]), "primary"))
        elif s == "orders":
            rows = [Row(tx(T["orders.unpaid"]), style="head")]
            rows += [Row(self._order_line(o), f"order:{o.order_id}", "order") for o in self.unpaid()]
            if len(rows) == 1:
                rows.append(Row(tx(T["orders.none"])))
            done = [o for o in sorted(self.orders.values(), key=lambda o: o.seen, reverse=True)
                    if not o.open and o.state != "rejected"][:8]
            if done:
                rows.append(Row(tx(T["orders.paid"]), style="head"))
                rows += [Row(self._order_line(o), f"order:{o.order_id}", "order") for o in done]
            keypad = True
            big = self.find or tx(words("orders.count", n=len(self.unpaid())))
            sub = tx(T["find"])
            buttons += [Btn("find", tx(T["find.go"]), "primary"), Btn("walkin", tx(T["orders.new"]), "primary"),
                        Btn("shift_close", tx(T["shift.close"]))]
        elif s == "pay":
            o = self.order()
            rows = self._order_rows(o)
            if o is not None and self.phone_paying(o.order_id) is not None:
                rows.insert(1, Row(tx(words("pay.phone_open", left=self._phone_left(o.order_id))), style="warn"))
            for t in self.tenders:
                rows.append(Row(self._tender_line(t), style="chosen"))
            big = tx(words("pay.due", due=money(self.due)))
            sub = tx(words("pay.entry", entry=money(self.entry_fen()))) if self.entry else ""
            if self.points_phone is not None:
                sub = tx(words("pay.points_typed", phone=self.points_phone or "—"))
            if self.voucher_code is not None:
                sub = tx(words("pay.voucher_typed", code=self.voucher_code or "—"))
            elif self.voucher is not None:
                sub = self._voucher_line() if self.voucher.stage == "confirm" else tx(
                    T["pay.voucher_wait" if self.voucher.stage == "verifying" else "pay.voucher_redeeming"])
            if self.charging is not None:
                sub = tx(self.charging.words)
                buttons.append(Btn("cancel_card", tx(T["pay.cancel"]), "warn"))
            else:
                keypad = True
                buttons += [Btn("cash", tx(T["pay.cash"]), "pay"), Btn("cash:exact", tx(T["pay.exact"]), "pay")]
                for m in self.card_methods:
                    buttons.append(Btn(f"card:{m}", tx(T[f"pay.{m}"]), "pay"))
                if self.loyalty:
                    buttons.append(Btn("points", tx(T["pay.points"]),
                                       "toggle_on" if self.points_phone is not None else "pay"))
                    if self.points_phone is not None:
                        buttons.append(Btn("points_ok", tx(T["pay.points_ok"]), "primary"))
                if self.vouchers:
                    buttons.append(Btn("voucher", tx(T["pay.voucher"]),
                                       "toggle_on" if self.voucher_code is not None or self.voucher else "pay"))
                    if self.voucher_code is not None:
                        buttons.append(Btn("voucher_ok", tx(T["pay.voucher_ok"]), "primary"))
                    elif self.voucher is not None and self.voucher.stage == "confirm":
                        buttons += [Btn("voucher_redeem", tx(T["pay.voucher_redeem"]), "primary"),
                                    Btn("voucher_cancel", tx(T["pay.voucher_cancel"]))]
                buttons.append(Btn("cancel_pay" if self.tenders else "back", tx(T["pay.cancel"] if self.tenders
                                                                                 else T["back"])))
        elif s == "done":
            o = self.order()
            rows = self._order_rows(o) + [Row(self._tender_line(t), style="chosen") for t in self.tenders]
            if self.tenders:
                big = tx(words("pay.change", change=money(self.change)))
                sub = tx(self.result) if self.result is not None else ""
            elif self.result is not None:  # a refund: what was given back, big
                big = tx(self.result)
            buttons.append(Btn("done", tx(T["done"]), "primary"))
            if o is not None:
                buttons.append(Btn("reprint", tx(T["reprint"])))
        elif s == "refund":
            o = self.order()
            rows = self._order_rows(o, refund=True)
            big = tx(words("refund.pin", pin="●" * len(self.pin)))
            sub = tx(self.result) if self.result is not None else tx(T["refund.reason"])
            keypad = True
            for k in REASON_KEYS:
                buttons.append(Btn(f"reason:{k}", tx(T[f"reason.{k}"]),
                                   "toggle_on" if k == self.refund_reason else "normal"))
            buttons += [Btn("void", tx(T["refund.void"]), "toggle_on" if self.refund_void else "normal"),
                        Btn("refund_go", tx(T["refund.go"]), "warn"), Btn("reprint", tx(T["reprint"])),
                        Btn("back", tx(T["back"]))]
        elif s == "close":
            if self.summary is not None:
                sm = self.summary
                rows = [Row(f"{tx(T['shift.expected'])}  {money(sm.expected)}"),
                        Row(f"{tx(T['shift.counted_is'])}  {money(sm.counted or 0)}")]
                d = sm.over_short or 0
                key = "shift.over" if d > 0 else "shift.short" if d < 0 else "shift.even"
                big = f"{tx(T[key])} {money(abs(d))}" if d else tx(T[key])
                buttons.append(Btn("done", tx(T["done"]), "primary"))
            elif self.closing is not None:
                big = money(self.closing["counted"])
                sub = tx(self.result) if self.result else ""
                if self.result_state == "offline":
                    buttons.append(Btn("done", tx(T["done"]), "primary"))
            else:
                sub = tx(T["shift.counted"])
                big = money(self.entry_fen())
                keypad = True
                buttons += [Btn("close", tx(T["shift.close"]), "warn"), Btn("back", tx(T["back"]))]
        elif s == "walkin":
            rows, buttons, big, sub, keypad = walkin_view(self)
        return CounterView(screen=s, title=title, status=status, shift=shift, notice=self.notice, big=big, sub=sub,
                           find=self.find, rows=tuple(rows), keypad=keypad, buttons=tuple(buttons),
                           hub_ok=self.hub_reachable)

    def _order_line(self, o: OrderInfo) -> str:
        tx = self.text
        parts = [tx(words("order.number", n=o.number)) if o.number else
                 tx(words("order.provisional", p=o.provisional)) if o.provisional else "…"]
        if o.table:
            parts.append(tx(words("order.table", t=o.table)))
        if o.channel in ("kiosk", "counter", "qr", "preorder", "delivery"):
            parts.append(tx(T[f"channel.{o.channel}"]))
        parts.append(money(o.total))
        if o.state == "held":
            parts.append(tx(T["state.held"]))
        if o.open and self.phone_paying(o.order_id) is not None:
            parts.append(tx(T["state.phone_paying"]))
        state = "voided" if o.state == "voided" else o.payment
        parts.append(tx(T.get(f"state.{state}", T["state.unpaid"])))
        return "  ·  ".join(parts)

    def _order_rows(self, o: OrderInfo | None, refund: bool = False) -> list[Row]:
        if o is None:
            return []
        tx = self.text
        rows = [Row(self._order_line(o), style="head")]
        for ln in o.lines:
            name = ln["name_zh"] if self.lang == "zh" else ln["name_en"]
            text = f"{ln['qty']} × {name}   {money(ln['line_total'])}"
            if refund:
                n = self.refund_lines.get(ln["line"], 0)
                rows.append(Row(f"{text}   · {tx(words('refund.qty', n=n))}" if n else text, f"rl:{ln['line']}:+",
                                "chosen" if n else "order"))
            else:
                rows.append(Row(text))
        if refund:
            if o.lines:
                rows.insert(1, Row(tx(T["refund.lines"])))
            else:
                rows.append(Row(tx(T["refund.whole"])))
        if o.paid_by:
            rows.append(Row(o.paid_by))
        if o.paid:
            rows.append(Row(tx(words("pay.paid", paid=money(o.paid)))))
        return rows

    def _tender_line(self, t: Tender) -> str:
        tx = self.text
        name = tx(T.get(f"pay.{t.method}", T["pay.cash"]))
        s = tx(words("pay.tender", method=name, amount=money(t.amount)))
        if t.method == "cash" and t.tendered and t.tendered != t.amount:
            s += tx(words("pay.tendered", tendered=money(t.tendered)))
        if t.method == "voucher":
            s += f"  ·  {t.reference}"
        return s


__all__ = ["AskVoucher", "Btn", "CancelPayment", "ChargeCard", "Command", "CounterView", "CounterViewModel", "OpenDrawer",
           "OrderInfo", "QueryBalance", "Reprint", "Row", "SendTill", "SubmitWalkin", "WalkIn"]
