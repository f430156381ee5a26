"""View models of the kitchen display, one module each: a station screen
(:mod:`.station`), the expo screen (:mod:`.expo`), the customer pickup board
(:mod:`.board`), the all-day panel (:mod:`.allday`), the card parts a ticket
takes on screen (:mod:`.cards`), the bump bar (:mod:`.bumpbar`) and what they
share (:mod:`.shared`).

Plain Python: no Kivy, no MQTT, no database, no threads. A view model takes
decoded contract messages (``restobox.contract``) and a clock, and returns
the :class:`~restobox.contract.StationEvent` messages the app must publish on
``vm.event_topic``. The app does every piece of I/O: it decodes at the
boundary, publishes what it is given, stores :meth:`StationViewModel.snapshot`
in its SQLite cache and redraws from :meth:`StationViewModel.tickets_on_page`
(timers need a redraw about once a second).

The rules the screens follow (docs/protocol.md 3.3-3.7):

- per ``ticket_id`` the copy with the highest ``revision`` wins; a lower or
  equal one is a repeat and is ignored; ``"voided"`` takes the ticket off;
- a cook's action is shown at once (optimistically) and kept as *pending*
  until the hub's re-published ticket shows its effect, so the hub's copy
  never makes a bumped ticket flicker back. A pending action the hub does not
  confirm within ``confirm_s`` of connected time is dropped and the hub's copy
  shows again: the hub, not the screen, is the truth;
- a cook's refused action raises :class:`ActionRefused`, whose ``words`` are
  meant for the screen.

Everything is importable from ``kds.viewmodel`` as before.
"""

from kds.viewmodel.allday import AllDayCount, AllDayPage, AllDayPager, all_day_counts
from kds.viewmodel.board import BoardViewModel
from kds.viewmodel.bumpbar import BUMP_BAR_ACTIONS, DEFAULT_BUMP_BAR, BumpBarMap
from kds.viewmodel.expo import ExpoRow, ExpoViewModel, HeldRow, StationProgress
from kds.viewmodel.shared import (
    BANNER_CONNECTING,
    BANNER_HUB_LOST,
    BANNER_LINK_LOST,
    CLOCK_SLACK_S,
    MAX_REVISION,
    ActionRefused,
    Clock,
    ItemView,
    LinkState,
    TicketColour,
    Thresholds,
    TicketView,
    channel_text,
    elapsed_text,
    service_text,
    ticket_problem,
)
from kds.viewmodel.station import PendingKind, StationViewModel

__all__ = [
    "BANNER_CONNECTING", "BANNER_HUB_LOST", "BANNER_LINK_LOST", "BUMP_BAR_ACTIONS", "CLOCK_SLACK_S",
    "DEFAULT_BUMP_BAR", "MAX_REVISION", "ActionRefused", "AllDayCount", "AllDayPage", "AllDayPager",
    "BoardViewModel", "BumpBarMap", "Clock", "ExpoRow", "ExpoViewModel", "HeldRow", "ItemView", "LinkState",
    "PendingKind", "StationProgress", "StationViewModel", "Thresholds", "TicketColour", "TicketView",
    "all_day_counts", "channel_text", "elapsed_text", "service_text", "ticket_problem",
]
