"""The menu: categories, items, modifier groups, prices and stations.

Pure domain code: no I/O. Money is always an integer number of minor units
(fen for CNY), never a float. Names are bilingual (zh, en).

A menu is loaded from JSON (``Menu.from_json``) and checked for internal
consistency (``Menu.check``): every reference resolves, ids are unique, modifier
rules are satisfiable. A menu that fails the check is never used.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

ID_PATTERN = r"\A[a-z0-9][a-z0-9-]{0,47}\Z"  # whole string: see contract.UUID_PATTERN
Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
Fen = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Delta = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]

# The 14 allergens of EU/UK labelling law, plus none other: a closed list so a
# typo in the menu is caught when the menu is loaded, not on a ticket.
ALLERGENS = frozenset(
    {
        "celery", "gluten", "crustaceans", "egg", "fish", "lupin", "milk",
        "molluscs", "mustard", "peanut", "sesame", "soy", "sulphites", "tree-nut",
    }
)


class MenuError(ValueError):
    """The menu is inconsistent. ``str()`` says what to fix."""


class Name(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class Station(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    name: Name


class Category(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    name: Name
    color: str = "#607D8B"


class ModifierOption(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One choice in a modifier group, e.g. "extra spicy" or "iced lemon tea".

    ``station``: when set, the option is made at that station and appears as a
    line on that station's ticket (a combo's drink goes to the drinks station).
    """

    id: Id
    name: Name
    price_delta: Delta = 0
    station: Id | None = None
    allergens: tuple[str, ...] = ()
    default: bool = False


class ModifierGroup(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A group of options with a minimum and maximum number of choices.

    ``min_choices >= 1`` makes the group required.
    """

    id: Id
    name: Name
    options: tuple[ModifierOption, ...]
    min_choices: Annotated[int, msgspec.Meta(ge=0, le=20)] = 0
    max_choices: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1

    @property
    def required(self) -> bool:
        return self.min_choices >= 1


class Item(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: Id
    category: Id
    name: Name
    price: Fen
    station: Id
    description: Name | None = None
    allergens: tuple[str, ...] = ()
    modifier_groups: tuple[Id, ...] = ()
    color: str | None = None
    image: str | None = None
    # A combo is priced as one item; its parts arrive as modifier options that
    # carry their own station.
    combo: bool = False
    available: bool = True


class Menu(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    version: str
    currency: Annotated[str, msgspec.Meta(pattern=r"\A[A-Z]{3}\Z")]
    # Tax rate in basis points (600 = 6 %). Chinese menu prices include VAT.
    tax_rate_bp: Annotated[int, msgspec.Meta(ge=0, le=5000)]
    tax_inclusive: bool
    stations: tuple[Station, ...]
    categories: tuple[Category, ...]
    modifier_groups: tuple[ModifierGroup, ...]
    items: tuple[Item, ...]

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_json(cls, data: bytes | str) -> "Menu":
        try:
            menu = msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:
            raise MenuError(f"menu does not decode: {exc}") from None
        menu.check()
        return menu

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    def check(self) -> None:
        """Raise MenuError naming the first inconsistency found."""
        stations = {s.id for s in self.stations}
        _unique("station", [s.id for s in self.stations])
        _unique("category", [c.id for c in self.categories])
        _unique("modifier group", [g.id for g in self.modifier_groups])
        _unique("item", [i.id for i in self.items])
        _unique(
            "modifier option",
            [o.id for g in self.modifier_groups for o in g.options],
        )
        categories = {c.id for c in self.categories}
        groups = {g.id: g for g in self.modifier_groups}
        for c in self.categories:
            if not re.fullmatch(r"#[0-9A-Fa-f]{6}", c.color):
                raise MenuError(f"category {c.id}: colour {c.color!r} is not #RRGGBB")
        for g in self.modifier_groups:
            if not g.options:
                raise MenuError(f"modifier group {g.id} has no options")
            if g.min_choices > g.max_choices:
                raise MenuError(
                    f"modifier group {g.id}: min_choices {g.min_choices} > max_choices {g.max_choices}"
                )
            if g.min_choices > len(g.options):
                raise MenuError(
                    f"modifier group {g.id} requires {g.min_choices} choices but has {len(g.options)} options"
                )
            for o in g.options:
                if o.station is not None and o.station not in stations:
                    raise MenuError(f"modifier option {o.id}: unknown station {o.station!r}")
                _check_allergens(f"modifier option {o.id}", o.allergens)
        for item in self.items:
            where = f"item {item.id}"
            if item.category not in categories:
                raise MenuError(f"{where}: unknown category {item.category!r}")
            if item.station not in stations:
                raise MenuError(f"{where}: unknown station {item.station!r}")
            _check_allergens(where, item.allergens)
            _unique(f"{where} modifier group", list(item.modifier_groups))
            for gid in item.modifier_groups:
                if gid not in groups:
                    raise MenuError(f"{where}: unknown modifier group {gid!r}")
                if item.price + min(0, min(o.price_delta for o in groups[gid].options)) < 0:
                    raise MenuError(f"{where}: a modifier of {gid} makes the price negative")

    # ----------------------------------------------------------------- lookup
    @property
    def index(self) -> "MenuIndex":
        # frozen structs cannot hold a cache attribute; the index is cheap to
        # build and callers on hot paths keep their own (see MenuIndex).
        return MenuIndex(self)


class MenuIndex:
    """Dictionaries over a menu for O(1) lookups on the hub's hot path."""

    __slots__ = ("menu", "items", "groups", "options", "option_group", "stations", "categories")

    def __init__(self, menu: Menu) -> None:
        self.menu = menu
        self.items = {i.id: i for i in menu.items}
        self.groups = {g.id: g for g in menu.modifier_groups}
        self.options = {o.id: o for g in menu.modifier_groups for o in g.options}
        self.option_group = {o.id: g for g in menu.modifier_groups for o in g.options}
        self.stations = {s.id: s for s in menu.stations}
        self.categories = {c.id: c for c in menu.categories}


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise MenuError(f"duplicate {what} id {i!r}")
        seen.add(i)


def _check_allergens(where: str, allergens: tuple[str, ...]) -> None:
    for a in allergens:
        if a not in ALLERGENS:
            raise MenuError(
                f"{where}: unknown allergen {a!r} (known: {', '.join(sorted(ALLERGENS))})"
            )
