"""The bump bar's keys: which key does which action, from config. Plain Python."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

BUMP_BAR_ACTIONS = ("select_next", "select_prev", "bump", "recall", "page_next", "page_prev", "undo")

DEFAULT_BUMP_BAR = {
    "select_next": "right", "select_prev": "left", "bump": "enter", "recall": "r",
    "page_next": "pagedown", "page_prev": "pageup", "undo": "u",
}


class BumpBarMap:
    """Keys of a keyboard-style bump bar -> actions, from config.

    ``{"bump": "enter", "recall": ["r", "numpad0"], ...}``; keys are matched
    without regard to case. An action may be left out; an unknown action, an
    empty key or a key given to two actions is a ValueError.
    """

    def __init__(self, mapping: Mapping[str, str | Sequence[str]]) -> None:
        self._by_key: dict[str, str] = {}
        self._by_action: dict[str, tuple[str, ...]] = {}
        for action, keys in mapping.items():
            if action not in BUMP_BAR_ACTIONS:
                raise ValueError(
                    f"unknown bump bar action {action!r}; the actions are: {', '.join(BUMP_BAR_ACTIONS)}")
            if isinstance(keys, str):
                keys = [keys]
            norm = []
            for k in keys:
                if not isinstance(k, str) or not k.strip():
                    raise ValueError(f"bump bar action {action!r} has an empty or non-text key {k!r}")
                k = k.strip().lower()
                other = self._by_key.get(k)
                if other is not None:
                    raise ValueError(f"bump bar key {k!r} is mapped to both {other!r} and {action!r}")
                self._by_key[k] = action
                norm.append(k)
            self._by_action[action] = tuple(norm)

    @classmethod
    def default(cls) -> BumpBarMap:
        return cls(DEFAULT_BUMP_BAR)

    def action_for(self, key: str) -> str | None:
        return self._by_key.get(key.strip().lower())

    def keys_for(self, action: str) -> tuple[str, ...]:
        return self._by_action.get(action, ())
