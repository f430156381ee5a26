"""README's demo command runs a whole store and leaves nothing behind."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.integration


def processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


def test_demo_places_cooks_and_completes_orders_then_stops_cleanly(tmp_path):
    state = tmp_path / "demo"
    svg = tmp_path / "book.svg"
    env = {**os.environ, "RESTOBOX_DEMO_DIR": str(state)}
    errors = tmp_path / "stderr.txt"
    with open(errors, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "restobox.cli", "demo", "--duration", "14", "--plain", "--rate", "3",
             "--snapshot", str(svg)],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env,
        )
    try:
        # while it runs: the table QR ordering page answers at the address it prints
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if m := re.match(r"Table QR ordering page: (http://127\.0\.0\.1:\d+)/t/1 ", line):
                with httpx.Client(base_url=m.group(1), timeout=10) as c:
                    assert c.get("/t/1").status_code == 200
                    menu = c.get("/api/menu").json()
                    assert menu["store"]["en"] == "Sichuan Kitchen" and menu["loyalty"]["patterns"]
                    assert menu["phone_pay"] is True  # paying on the phone, through the simulated gateway
                break
        seen.append(proc.stdout.read())  # to the end: the demo stops after --duration
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    r = subprocess.CompletedProcess(proc.args, proc.returncode, "".join(seen), errors.read_text())
    assert r.returncode == 0, r.stderr[-2000:]
    assert m, r.stdout[-2000:]
    # it tells a person how to watch the raw messages
    assert "mosquitto_sub -V mqttv5" in r.stdout
    assert "Paying on the phone goes to a simulated payment gateway" in r.stdout
    # and where the tables' QR codes are
    assert f"The tables' QR codes: {state / 'table-qr'}/" in r.stdout
    assert (state / "table-qr" / "tables.pdf").exists() and (state / "table-qr" / "table-8.png").exists()
    m = re.search(r"(\d+) orders accepted, (\d+) completed, (\d+) refused", r.stdout)
    assert m, r.stdout[-2000:]
    accepted, completed, refused = map(int, m.groups())
    assert accepted >= 10 and completed >= 1 and refused == 0
    # the printing service printed receipts and kitchen tickets on the
    # virtual printers, each with a picture of the paper
    p = re.search(r"(\d+) receipts and (\d+) kitchen tickets printed", r.stdout)
    assert p and int(p.group(1)) >= 1 and int(p.group(2)) >= 1
    assert list((state / "printers" / "receipt-1").glob("*.png"))
    assert list((state / "printers" / "kitchen-1").glob("*.png"))
    con = sqlite3.connect(state / "store.db")
    try:
        assert con.execute('select count(*) from "order"').fetchone()[0] == accepted
        assert con.execute("select count(*) from \"order\" where state='completed'").fetchone()[0] >= completed
    finally:
        con.close()
    # the sync service sent the orders to the chain's cloud (the last
    # seconds' may still have been on their way when the demo stopped)
    con = sqlite3.connect(state / "cloud.db")
    try:
        sent = con.execute("select count(*) from event where kind = 'order.accepted'").fetchone()[0]
        assert accepted - 5 <= sent <= accepted
        assert con.execute("select count(*) - count(distinct event_id) from event").fetchone()[0] == 0
        # a diner's order on the delivery platform went through the cloud to the kitchen and was accepted
        states = [st for (st,) in con.execute("select state from delivery_order")]
        assert {"accepted", "ready"} & set(states), states
    finally:
        con.close()
    # the kitchen screens ran on virtual displays and left their pictures
    assert "Kitchen screens" in r.stdout
    for picture in ("kds-wok.png", "kds-expo.png", "board.png", "kiosk.png"):
        assert (state / "screens" / picture).stat().st_size > 20_000
    # the counter's window ran too, and no service wrote a log line per query
    assert "Start application main loop" in (state / "counter-2.log").read_text()
    for log in state.glob("*.log"):
        assert " DEBUG peewee:" not in log.read_text(errors="replace"), log.name
    picture = svg.read_text()
    assert picture.startswith("<svg") and "Order" in picture and "Wok" in picture
    assert processes_mentioning(str(state)) == []
