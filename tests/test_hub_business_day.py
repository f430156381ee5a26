"""Order numbers start again from 1 each business day, which begins at the
configured local time (04:00 by default), not at midnight."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.support import SPRING_ROLLS, Kiosk, in_process_hub, new_order

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def test_business_date_turns_at_four_in_the_morning_local_time(broker, tmp_path):
    hub = in_process_hub(broker, tmp_path, Clock(datetime.now(timezone.utc)))
    # 03:59 in Shanghai on the 23rd still belongs to the 22nd
    assert hub.business_date(datetime(2026, 11, 22, 19, 59, tzinfo=timezone.utc)) == "2026-11-22"
    assert hub.business_date(datetime(2026, 11, 22, 20, 0, tzinfo=timezone.utc)) == "2026-11-23"
    # a late-night order at 01:30 is still "yesterday"
    assert hub.business_date(datetime(2026, 11, 22, 17, 30, tzinfo=timezone.utc)) == "2026-11-22"


def test_numbers_restart_on_a_new_business_day_and_survive_a_restart(broker, tmp_path):
    clock = Clock(datetime(2026, 11, 22, 19, 58, tzinfo=timezone.utc))  # 03:58 local
    hub = in_process_hub(broker, tmp_path, clock)
    hub.start()
    kiosk = Kiosk(broker, "kiosk-1")
    try:
        first = [kiosk.submit(new_order(SPRING_ROLLS)) for _ in range(3)]
        assert [(r.business_date, r.number) for r in first] == [("2026-11-22", n) for n in (1, 2, 3)]
        clock.t = datetime(2026, 11, 22, 20, 1, tzinfo=timezone.utc)  # 04:01 local
        r = kiosk.submit(new_order(SPRING_ROLLS))
        assert (r.business_date, r.number) == ("2026-11-23", 1)
        hub.stop()
        hub = in_process_hub(broker, tmp_path, clock)
        hub.start()
        r = kiosk.submit(new_order(SPRING_ROLLS))
        assert (r.business_date, r.number) == ("2026-11-23", 2)
    finally:
        kiosk.close()
        hub.stop()
