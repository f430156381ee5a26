"""The diner's kiosk, as a view model: plain Python, no Kivy, no MQTT, no
database, no threads, no clock of its own.

:class:`KioskViewModel` takes the menu, the 86 list (``on_menu``,
``on_soldout``), the hub's replies (``on_reply``), payment progress
(``on_payment``) and taps (``tap``), and says what to do through commands the
app takes with :meth:`KioskViewModel.take_commands`:

- :class:`StartPayment` / :class:`CancelPayment` / :class:`CheckPaymentAgain`:
  drive a :class:`kiosk.payment.PaymentFlow` on a worker thread and hand each
  :class:`~kiosk.payment.PaymentUpdate` back to ``on_payment``;
- :class:`SubmitOrder`: publish ``order`` on ``topics.order_submit(device)``
  (the app answers with ``on_reply``, or, when the hub or broker cannot be
  reached, calls ``submit_offline`` and stores ``outbox_entry``).

Flow: attract -> language -> service (dine-in + table / takeaway; a QR deep
link prefills it) -> menu -> item (modifier groups) -> cart -> pay -> confirm
-> attract; ``help`` when money was taken but the hub refused the order. The
language (zh/en) switches in any state; every text a screen shows comes from
:meth:`KioskViewModel.view` in the current language.

One thread: every call comes from the UI thread (the app hands results of
its workers over with ``Clock.schedule_once``).

Money is never the kiosk's own arithmetic (invariant 4): the cart is priced by
``restobox.orders.price_order``, the hub's own function, and the total shown is
sent as ``expected_total``. The order id is made at the first tap and kept
until the order is confirmed or abandoned (invariant 1): resubmitting after a
lost reply sends the very same order, which the hub answers as a duplicate.

The package, one module per concern: ``navigator`` (:class:`KioskViewModel`
and the way through the screens), ``cart``, ``member``, ``payment``,
``render`` (the views made from the state), ``views`` (their dataclasses),
``texts`` and ``model`` (state types and commands). Every name is imported
from here as before.
"""

from __future__ import annotations

from kiosk.viewmodel.model import (
    ActionRefused,
    CancelPayment,
    CartLine,
    CheckPaymentAgain,
    Clock,
    Command,
    DeepLink,
    Lang,
    LineProblem,
    MemberPhase,
    Method,
    OutboxEntry,
    PayPhase,
    QueryBalance,
    Screen,
    StartPayment,
    SubmitOrder,
    TABLE_RE,
    parse_deep_link,
)
from kiosk.viewmodel.navigator import KioskViewModel
from kiosk.viewmodel.texts import (
    ALLERGEN_NAMES,
    CART_REASONS,
    FORWARD,
    LOYALTY_REASONS,
    T,
    delta_text,
    money,
    provisional_number,
)
from kiosk.viewmodel.views import (
    AttractView,
    Button,
    CartLineView,
    CartView,
    CategoryTile,
    Chrome,
    ConfirmView,
    EditorView,
    GroupView,
    HelpView,
    ItemTile,
    LanguageView,
    MemberView,
    MenuView,
    OptionView,
    PayView,
    ServiceView,
    StillThereView,
    View,
)

__all__ = [
    "ALLERGEN_NAMES",
    "ActionRefused",
    "AttractView",
    "Button",
    "CART_REASONS",
    "CancelPayment",
    "CartLine",
    "CartLineView",
    "CartView",
    "CategoryTile",
    "CheckPaymentAgain",
    "Chrome",
    "Clock",
    "Command",
    "ConfirmView",
    "DeepLink",
    "EditorView",
    "FORWARD",
    "GroupView",
    "HelpView",
    "ItemTile",
    "KioskViewModel",
    "LOYALTY_REASONS",
    "Lang",
    "LanguageView",
    "LineProblem",
    "MemberPhase",
    "MemberView",
    "MenuView",
    "Method",
    "OptionView",
    "OutboxEntry",
    "PayPhase",
    "PayView",
    "QueryBalance",
    "Screen",
    "ServiceView",
    "StartPayment",
    "StillThereView",
    "SubmitOrder",
    "T",
    "TABLE_RE",
    "View",
    "delta_text",
    "money",
    "parse_deep_link",
    "provisional_number",
]
