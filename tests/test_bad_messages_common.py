"""What the bad-message tests share: poison payloads, a UI thread that
stops on the first exception (as a Kivy app does), and waiting helpers.

No tests here; the tests are in tests/test_bad_messages_*.py, one file per
receiver, each on the real broker.
"""

from __future__ import annotations

from collections import Counter

from tests.support import Device

# Payloads every receiver must survive on every topic it takes, with the
# reason code each is refused for (contract.decode's).
POISON: list[tuple[bytes, str]] = [
    (b"[" * 1000 + b"]" * 1000, "too_deep"),
    (b'{"v":1,"x":"\xff\xfe\xfd"}', "bad_json"),  # not UTF-8
    (b"", "bad_json"),
    (b"[1,2,3]", "bad_schema"),  # JSON, but not an object
    (b'"a string"', "bad_schema"),
    (b"{}", "bad_schema"),  # no "v"
    (b'{"v":2}', "unsupported_version"),
    (b'{"v":1,"x":"' + b"a" * 200_000 + b'"}', "payload_too_large"),
    (b'{"v":1,"x":"' + b"a" * 9_000 + b'"}', "string_too_long"),
    (b'{"v":1,"x":1e400}', "number_out_of_range"),
    (b'{"v":1,"x":123456789012345678901234567890}', "number_out_of_range"),
    (b'{"v":1,"x":[' + b"0," * 10_000 + b"0]}", "too_many_items"),
    (b'{"v":1,"x":' + b'{"a":' * 20 + b"1" + b"}" * 20 + b"}", "too_deep"),
]
# An empty retained payload clears a retained topic: on the topics whose
# messages are kept by topic (presence, health, printer status) it is not bad.
POISON_NOT_EMPTY = [(p, r) for p, r in POISON if p]


def expected(poison=POISON, times: int = 1, *, large_ok: bool = False) -> Counter:
    """How many of each reason ``poison`` sent ``times`` makes. ``large_ok``:
    on a topic that takes payloads over 64 KiB (the menu), the large one is
    refused for its one long string instead."""
    c: Counter = Counter()
    for _, reason in poison:
        c["string_too_long" if large_ok and reason == "payload_too_large" else reason] += times
    return c


def flood(device: Device, topic: str, poison=POISON) -> None:
    for payload, _ in poison:
        device.publish(topic, payload)




def counted(counters: dict, want: Counter, fmt: str) -> bool:
    """Every reason of ``want`` counted at least as often in ``counters``
    under the name ``fmt.format(reason)``."""
    return all(counters.get(fmt.format(r), 0) >= n for r, n in want.items())
