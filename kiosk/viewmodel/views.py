"""What each screen draws, already in the current language: plain frozen
dataclasses the app binds its widgets to.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.viewmodel.model import MemberPhase, PayPhase

# =========================================================================
# Views: what each screen draws, already in the current language
# =========================================================================


@dataclass(frozen=True, slots=True)


class Button:
    id: str  # pass to tap()
    label: str
    enabled: bool = True
    selected: bool = False


@dataclass(frozen=True, slots=True)


class Chrome:
    """On every screen: language switch, accessibility, cancel."""

    lang: str
    language: Button  # switches to the other language
    large_text: Button
    high_contrast: Button
    reach: Button
    cancel: Button | None
    notice: str | None


@dataclass(frozen=True, slots=True)


class AttractView:
    title: str
    touch: str
    start: Button
    languages: tuple[Button, ...]


@dataclass(frozen=True, slots=True)


class LanguageView:
    title: str
    languages: tuple[Button, ...]
    back: Button


@dataclass(frozen=True, slots=True)


class ServiceView:
    title: str
    options: tuple[Button, ...]
    table_prompt: str | None  # None: no table needed
    table: str
    table_note: str | None
    keys: tuple[Button, ...]  # "table:key:0".."9", "table:del"
    next: Button
    back: Button


@dataclass(frozen=True, slots=True)


class CategoryTile:
    id: str
    tap: str
    name: str
    color: str
    selected: bool


@dataclass(frozen=True, slots=True)


class ItemTile:
    id: str
    tap: str
    name: str
    price: str
    color: str
    image: str | None
    sold_out: bool
    badge: str | None  # "已售罄" / "Sold out"
    allergens: str
    photo: str = ""  # a tile-sized image file on disk (set_photos), "" when none is ready


@dataclass(frozen=True, slots=True)


class MenuView:
    title: str
    categories: tuple[CategoryTile, ...]
    items: tuple[ItemTile, ...]
    cart: Button  # "Cart (3) · ¥96.00"
    back: Button


@dataclass(frozen=True, slots=True)


class OptionView:
    id: str
    tap: str
    name: str
    delta: str
    selected: bool
    sold_out: bool
    enabled: bool


@dataclass(frozen=True, slots=True)


class GroupView:
    id: str
    name: str
    rule: str  # "必选 1 项" / "Required: choose 1"
    required: bool
    chosen: int
    options: tuple[OptionView, ...]
    error: str | None  # set after "add" with too few choices


@dataclass(frozen=True, slots=True)


class EditorView:
    item_id: str
    name: str
    description: str
    allergens: str
    base_price: str
    groups: tuple[GroupView, ...]
    qty: int
    unit_price: int
    unit_price_text: str
    line_total_text: str
    minus: Button
    plus: Button
    add: Button
    back: Button
    photo: str = ""  # as ItemTile.photo


@dataclass(frozen=True, slots=True)


class CartLineView:
    line_id: int
    name: str
    modifiers: tuple[str, ...]
    qty: int
    unit_price: str
    line_total: str
    problem: str | None
    minus: Button
    plus: Button
    actions: tuple[Button, ...]  # remove, plus replace or edit


@dataclass(frozen=True, slots=True)


class CartView:
    title: str
    lines: tuple[CartLineView, ...]
    empty: str | None
    subtotal: str
    tax: str
    total: str
    total_fen: int
    blocked: str | None
    upsell: Button | None
    checkout: Button
    more: Button


@dataclass(frozen=True, slots=True)


class MemberView:
    """The phone number screen: a number pad, then the balance and a redemption.
    The number is shown masked as it is typed (138****5678)."""

    title: str
    prompt: str
    phase: MemberPhase
    phone: str
    keys: tuple[Button, ...]  # "phone:key:0".."9", "phone:del"
    ok: Button
    skip: Button
    balance: str | None
    redeem: Button | None
    message: str | None
    total: str
    go: Button  # "phone:continue"
    change: Button | None
    back: Button


@dataclass(frozen=True, slots=True)


class PayView:
    title: str
    phase: PayPhase
    total: str
    prompt: str
    methods: tuple[Button, ...]
    message: str | None
    actions: tuple[Button, ...]
    busy: bool  # show progress; no input but the actions
    back: Button | None


@dataclass(frozen=True, slots=True)


class ConfirmView:
    title: str
    label: str  # "取餐号" / "Provisional number"
    number: str
    provisional: bool
    note: str
    payment: str
    total: str
    done: Button
    points: str | None = None


@dataclass(frozen=True, slots=True)


class HelpView:
    title: str
    message: str
    reference: str
    done: Button


@dataclass(frozen=True, slots=True)


class StillThereView:
    title: str
    text: str
    seconds_left: int
    yes: Button
    no: Button


View = (AttractView | LanguageView | ServiceView | MenuView | EditorView | CartView | MemberView | PayView
        | ConfirmView | HelpView)
