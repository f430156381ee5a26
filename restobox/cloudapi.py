"""The chain's cloud API, as messages (docs/cloud-api.md). Pure: no I/O.

The store's sync service posts its outbox to the cloud in batches; the cloud
answers which events it has stored. Every event's ``event_id`` is its
idempotency key: the cloud stores an event id once, however often it comes.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

API_VERSION = 1

EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=160)]


class CloudEvent(msgspec.Struct, kw_only=True):
    """One change the cloud must know, as written in the store's outbox."""

    event_id: EventId
    seq: int
    """The store's order of events: strictly increasing, gaps allowed."""
    kind: Annotated[str, msgspec.Meta(max_length=32)]
    order_id: str | None = None
    at: str
    """When the change happened in the store (UTC, ISO 8601)."""
    payload: dict[str, Any]


class EventBatch(msgspec.Struct, kw_only=True):
    """``POST /v1/stores/<store>/events``."""

    v: int = API_VERSION
    store_id: str
    events: tuple[CloudEvent, ...]


class EventAck(msgspec.Struct, kw_only=True):
    """The cloud's answer: the event ids it has stored (new or already
    there). It stores a batch in order and stops at the first event it
    cannot store, so ``acked`` is a prefix of the batch; the store sends the
    rest again."""

    v: int = API_VERSION
    acked: tuple[EventId, ...]


def acked_prefix(batch: list[CloudEvent] | tuple[CloudEvent, ...], ack: EventAck) -> int:
    """How many events from the start of ``batch`` the cloud acknowledged.
    An id acknowledged after a gap does not count: it is sent again and the
    cloud answers it as a duplicate (events reach the cloud in order)."""
    acked = set(ack.acked)
    n = 0
    for e in batch:
        if e.event_id not in acked:
            break
        n += 1
    return n


# ------------------------------------------------------------- pre-orders
from restobox.contract import OrderSubmit  # noqa: E402  (pure: messages only)


class Preorder(msgspec.Struct, kw_only=True):
    """An order placed in the cloud (an app, a website) for pickup at a time.
    ``order.order_id`` is its idempotency key in the store, as for any order;
    ``order.channel`` is ``preorder``."""

    order: OrderSubmit
    pickup_at: str
    """When the diner comes (ISO 8601 with its UTC offset)."""


class PreorderList(msgspec.Struct, kw_only=True):
    """``GET /v1/stores/<store>/preorders?after=<cursor>``."""

    v: int = API_VERSION
    preorders: tuple[Preorder, ...]
    cursor: str = ""
    """Pass it back as ``after`` to get only the pre-orders that came since."""


# ---------------------------------------------------- payment notifications
NOTIFY_MAX_BYTES = 64 * 1024
"""A gateway notification larger than this is refused (413) unread."""


def notification_fault(body: bytes) -> str | None:
    """Why a gateway's notification cannot be kept (None: a JSON object,
    kept as it came; the store checks its signature, the cloud only its
    shape)."""
    try:
        fields = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return f"not JSON: {exc}"
    return None if isinstance(fields, dict) else "not a JSON object"

