"""Table QR ordering: the real page in headless Chromium (Debian's, driven
by Playwright; never a downloaded browser) against the real `restobox web`
process, broker and hub.

A phone-sized window (375 x 667). The kitchen is played by publishing the
StationEvents a kitchen screen would send (as the cooks of restobox/dev/sim.py
do), so each step of the order's life is seen on the page as it happens.
Screenshots of the page go to docs/screenshots/ (web-*.png).
"""

from __future__ import annotations

import uuid

import httpx
import msgspec
import pytest

from restobox import contract
from restobox.brokerconf import free_port
from restobox.contract import StaffCommand, StationEvent, topics
from tests.browser_support import browser  # noqa: F401  (the module's chromium)
from tests.support import REPO, Device, HubProcess, device_config, hub_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SHOTS = REPO / "docs" / "screenshots"
PHONE = {"width": 375, "height": 667}
WAIT_MS = 10_000


class Web:
    def __init__(self, proc: HubProcess, url: str) -> None:
        self.proc, self.url = proc, url

    def table(self, t: str, lang: str = "zh") -> str:
        return f"{self.url}/t/{t}?lang={lang}"


def start_web(broker, monitor, tmp_path, more: str = "") -> Web:
    port = free_port()
    cfg = device_config(tmp_path / "web.toml", broker, "web", "web", f"""
[web]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
table_count = 12
reply_timeout_s = 3
max_body_bytes = 4096
health_interval_s = 1
qr_dir = "{tmp_path / 'qr'}"
{more}
""")
    proc = HubProcess(cfg, tmp_path / "web.log", service="web", device="web")
    proc.start(monitor)
    return Web(proc, f"http://127.0.0.1:{port}")


@pytest.fixture
def web(broker, hub, monitor, tmp_path):
    w = start_web(broker, monitor, tmp_path)
    yield w
    w.proc.stop()


@pytest.fixture
def loyal_web(broker, monitor, tmp_path):
    """The page with the phone number field, and a hub that gives points
    (tests/test_loyalty.py's rules: 5 points a yuan)."""
    from tests.test_loyalty import LOYALTY

    hub_cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                         database=tmp_path / "store.db", extra=LOYALTY)
    hub = HubProcess(hub_cfg, tmp_path / "hub.log")
    hub.start(monitor)
    try:
        w = start_web(broker, monitor, tmp_path, "loyalty = true")
        yield w
        w.proc.stop()
    finally:
        hub.stop()


@pytest.fixture
def phone(browser):
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                              locale="zh-CN")
    page = ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    ctx.close()


@pytest.fixture
def kitchen(broker):
    """The wok and drinks screens and the expo screen, as devices that bump."""
    devs = {name: Device(broker, name, role=role) for name, role in
            (("kds-wok-1", "kds"), ("kds-drinks-1", "kds"), ("expo-1", "expo"), ("staff-1", "staff"))}
    yield devs
    for d in devs.values():
        d.close()


def bump(kitchen, station: str, order_id: str) -> None:
    dev = kitchen["expo-1" if station == "expo" else f"kds-{station}-1"]
    for kind in (("bump",) if station == "expo" else ("ack", "bump")):
        ev = StationEvent(event_id=str(uuid.uuid4()), kind=kind, order_id=order_id, device=dev.name)
        dev.publish(topics.station_event(station), contract.encode(ev))


def staff(kitchen, kind: str, item: str) -> None:
    cmd = StaffCommand(command_id=str(uuid.uuid4()), kind=kind, item_id=item)
    kitchen["staff-1"].publish(topics.staff_command("staff-1"), contract.encode(cmd))


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def add_item(page, item_id: str, options: tuple[str, ...] = (), qty: int = 1, screenshot: str = "") -> None:
    page.click(f'.item[data-item="{item_id}"] .add')
    page.wait_for_selector("#item-sheet:not([hidden])")
    for o in options:
        page.click(f'#item-sheet .opt[data-opt="{o}"]')
    for _ in range(qty - 1):
        page.click('#item-sheet .step[data-eq="1"]')
    if screenshot:
        shot(page, screenshot)
    page.click("#ed-add")
    page.wait_for_selector("#item-sheet", state="hidden")


def test_scan_to_order_with_modifiers_shows_the_hubs_number_and_follows_the_kitchen(web, hub, monitor, kitchen,
                                                                                    phone):
    page = phone
    page.goto(web.table("7", "en"))
    page.wait_for_selector('.item[data-item="kung-pao-chicken"]')
    assert page.inner_text("#table-chip") == "Table 7"
    assert page.inner_text("#store-name") == "Sichuan Kitchen"
    shot(page, "web-menu")

    # Kung Pao Chicken: required spice and rice (defaults Mild, white rice),
    # brown rice instead (+¥1.00), Extra hot, at most 3 add-ons
    page.click('.item[data-item="kung-pao-chicken"] .add')
    for o in ("spice-hot", "rice-brown", "addon-egg", "addon-greens", "addon-rice", "addon-meat"):
        page.click(f'#item-sheet .opt[data-opt="{o}"]')
    chosen = page.eval_on_selector_all("#item-sheet .opt.on", "els => els.map(e => e.dataset.opt)")
    assert chosen == ["spice-hot", "rice-brown", "addon-egg", "addon-greens", "addon-rice"]  # the 4th add-on refused
    page.click('#item-sheet .opt[data-opt="addon-rice"]')  # and off again
    page.click('#item-sheet .opt[data-opt="spice-hot"]')   # one of one: stays chosen
    assert "Required" in page.inner_text('#item-sheet .group[data-group="spice"] .rule')
    shot(page, "web-item")
    # 3200 + 100 brown rice + 200 egg + 300 greens = 3800
    assert page.inner_text("#ed-add") == "Add to order · ¥38.00"
    page.click("#ed-add")
    add_item(page, "bubble-milk-tea", ("sugar-half", "ice-less"), qty=2)
    assert page.inner_text("#cart-count") == "3"
    assert page.inner_text("#cart-total") == "¥66.00"

    page.click("#cartbar-btn")
    page.wait_for_selector("#cart-sheet:not([hidden])")
    assert "Pay at the counter" in page.inner_text("#pay-note")
    shot(page, "web-cart")
    page.click("#place-btn")

    ticket = page.wait_for_selector(".ticket")
    order_id = ticket.get_attribute("data-order")
    number = page.inner_text(".ticket .number")
    reply = monitor.wait_json(topics.order_reply("web"), lambda d: d["order_id"] == order_id)
    assert reply["status"] == "accepted" and str(reply["number"]) == number
    assert page.inner_text(".ticket .hub-total") == f"¥{reply['total'] / 100:.2f}" == "¥66.00"
    submitted = monitor.wait_json(topics.order_submit("web"), lambda d: d["order_id"] == order_id)
    assert (submitted["channel"], submitted["service"], submitted["table"]) == ("qr", "dine_in", "7")
    assert submitted["payment"]["method"] == "counter" and submitted["expected_total"] == 6600
    assert submitted["lines"][0]["modifiers"] == ["spice-hot", "rice-brown", "addon-egg", "addon-greens"]
    assert page.get_attribute(".ticket", "data-state") == "accepted"
    assert page.inner_text(".ticket .state-line") == "The kitchen has your order"
    shot(page, "web-status")

    bump(kitchen, "wok", order_id)
    page.wait_for_selector('.ticket[data-state="in_progress"]')
    bump(kitchen, "drinks", order_id)
    page.wait_for_selector('.ticket[data-state="ready"]')
    assert page.inner_text(".ticket .state-line") == "Ready! Listen for your number"
    shot(page, "web-ready")
    bump(kitchen, "expo", order_id)
    page.wait_for_selector('.ticket[data-state="completed"]')

    # Chinese, on the same page
    page.click("#lang-btn")
    assert page.inner_text(".ticket .state-line") == "已完成，祝您用餐愉快"
    assert page.inner_text(".ticket .where") == "7 号桌"

    # a reload keeps the diner's order and its state
    page.reload()
    page.click("#orders-btn")
    page.wait_for_selector(f'.ticket[data-order="{order_id}"][data-state="completed"]')


def test_an_item_86d_after_the_page_loaded_is_greyed_live_and_an_order_with_it_is_refused_with_the_hubs_reason(
        web, hub, monitor, kitchen, phone):
    page = phone
    page.goto(web.table("3", "zh"))
    page.wait_for_selector('.item[data-item="spring-rolls"]')
    add_item(page, "spring-rolls")
    add_item(page, "fries")
    assert "soldout" not in page.get_attribute('.item[data-item="spring-rolls"]', "class")

    staff(kitchen, "eighty_six", "spring-rolls")
    page.wait_for_selector('.item.soldout[data-item="spring-rolls"]')
    assert page.is_disabled('.item[data-item="spring-rolls"] .add')
    assert "售罄" in page.inner_text('.item[data-item="spring-rolls"] .item-name')
    shot(page, "web-soldout")

    page.click("#cartbar-btn")
    page.click("#place-btn")
    page.wait_for_selector("#refusal:not([hidden])")
    reply = monitor.wait_json(topics.order_reply("web"), lambda d: d["status"] == "rejected")
    assert reply["reason"] == "item_unavailable"
    assert reply["message"]["zh"] in page.inner_text("#refusal")
    assert "「春卷（4个）」已售罄" in page.inner_text("#refusal")
    shot(page, "web-refused")
    page.click("#cart-close")
    page.click("#lang-btn")
    page.click("#cartbar-btn")
    assert reply["message"]["en"] in page.inner_text("#refusal")

    # the diner takes it out and orders the rest: the same order id, now accepted
    page.click("#remove-gone")
    page.click("#place-btn")
    page.wait_for_selector('.ticket[data-state="accepted"]')
    accepted = monitor.wait_json(topics.order_reply("web"), lambda d: d["status"] == "accepted")
    assert accepted["order_id"] == reply["order_id"]
    assert [pl["item_id"] for pl in accepted["lines"]] == ["fries"]


def test_a_member_number_on_the_qr_page_earns_points_shown_masked_and_a_bad_number_is_refused_with_a_sentence(
        loyal_web, monitor, phone):
    page = phone
    page.goto(loyal_web.table("4", "en"))
    page.wait_for_selector('.item[data-item="fries"]')
    add_item(page, "fries")
    add_item(page, "fries")
    page.click("#cartbar-btn")
    page.wait_for_selector("#loyalty-slot:not([hidden])")
    assert page.inner_text("#phone-label") == "Member phone number (optional)"
    # a number pad on phones
    assert (page.get_attribute("#phone", "type"), page.get_attribute("#phone", "inputmode")) == ("tel", "numeric")

    # the page refuses a number the hub would refuse, and sends nothing
    page.fill("#phone", "1381234567")
    page.click("#place-btn")
    page.wait_for_selector("#phone-error:not([hidden])")
    assert page.inner_text("#phone-error") == \
        "That number is not valid: please enter your 11-digit mobile number (starting with 1)."
    shot(page, "web-phone-bad")
    assert monitor.all_json(topics.order_submit("web")) == []

    page.fill("#phone", "+86 138-1234-5678")
    assert page.is_hidden("#phone-error")
    page.click("#place-btn")
    page.wait_for_selector(".ticket .member")
    order_id = page.get_attribute(".ticket", "data-order")
    submitted = monitor.wait_json(topics.order_submit("web"), lambda d: d["order_id"] == order_id)
    assert submitted["loyalty"] == {"phone": "13812345678", "redeem_points": 0}  # to the hub only
    reply = monitor.wait_json(topics.order_reply("web"), lambda d: d["order_id"] == order_id)
    total = reply["total"]
    assert total == 2 * 1000 and reply["loyalty"]["earned"] == total * 5 // 100 == 100
    assert page.inner_text(".ticket .member") == "Member 138****5678: +100 points, balance 100"
    shot(page, "web-points")
    page.click("#lang-btn")
    assert page.inner_text(".ticket .member") == "会员 138****5678：本单积分 +100，余额 100"

    with httpx.Client(base_url=loyal_web.url, timeout=10) as c:
        # the hub checks the number again: a number the page would not send is refused with its sentence
        r = c.post("/api/orders", json=order_body(phone="12345678"))
        assert r.json()["status"] == "rejected" and r.json()["reason"] == "phone_invalid"
        assert r.json()["message"]["en"] == contract.REASONS["phone_invalid"].en
        seen = c.get(f"/api/orders/{order_id}").text
        assert "138****5678" in seen and "13812345678" not in seen
    page.close()
    log = loyal_web.proc.log.read_text(encoding="utf-8")
    assert "13812345678" not in log and "12345678" not in log


def order_body(table: str = "5", **kw) -> dict:
    return {"order_id": str(uuid.uuid4()), "table": table, "lang": "en",
            "lines": [{"item_id": "kung-pao-chicken", "qty": 1, "modifiers": ["spice-mild", "rice-white"]}],
            "expected_total": 3200, **kw}


def test_a_retried_order_is_one_order_and_bad_requests_are_refused_counted_and_never_sent(web, hub, monitor):
    with httpx.Client(base_url=web.url, timeout=10) as c:
        body = order_body()
        first = c.post("/api/orders", json=body).json()
        again = c.post("/api/orders", json=body).json()
        assert first["status"] == again["status"] == "accepted"
        assert first["order"]["number"] == again["order"]["number"] and again["duplicate"] is True
        assert c.get(f"/api/orders/{body['order_id']}").json()["order"]["state"] == "accepted"

        bad = [
            (c.post("/api/orders", content=b"x" * 5000), 413, "payload_too_large"),
            (c.post("/api/orders", content=b"{not json"), 400, "bad_json"),
            (c.post("/api/orders", json={**order_body(), "channel": "kiosk"}), 400, "bad_schema"),
            (c.post("/api/orders", json={**order_body(), "order_id": "42"}), 400, "bad_schema"),
            (c.post("/api/orders", json=order_body(table="99")), 400, "unknown_table"),
            # a phone number where [web] loyalty is off: not sent on
            (c.post("/api/orders", json=order_body(phone="13812345678")), 400, "loyalty_disabled"),
            (c.get("/api/events?orders=../../etc"), 400, "bad_schema"),
        ]
        for r, status, reason in bad:
            assert r.status_code == status, r.text
            j = r.json()
            assert j["reason"] == reason and j["message"]["zh"] and j["message"]["en"]
        assert c.get("/t/99").status_code == 404

    h = monitor.wait_json(topics.health("web"), lambda d: d["counters"].get("bad_requests") == len(bad))
    assert h["counters"]["bad_request_payload_too_large"] == 1
    assert h["last_errors"][-1]["reason"] == "bad_schema"
    # only the good order reached the hub, twice
    sent = monitor.all_json(topics.order_submit("web"))
    assert [s["order_id"] for s in sent] == [body["order_id"]] * 2


def test_table_qr_renders_a_card_per_table_and_a_printable_sheet(tmp_path):
    import qrcode
    from PIL import Image

    from restobox import config
    from restobox.tableqr import CARD_W, cmd_table_qr

    cfg = config.parse('[device]\nid = "web"\nrole = "web"\n[web]\npublic_url = "http://192.168.1.10:8080"\n'
                       'tables = ["1", "2", "A1"]\n')
    assert cmd_table_qr(cfg, out=str(tmp_path)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table-1.png", "table-2.png", "table-A1.png", "tables.pdf"]
    assert (tmp_path / "tables.pdf").read_bytes().startswith(b"%PDF")
    # the card's code holds the table's address: sample the middle of each module
    img = Image.open(tmp_path / "table-A1.png").convert("L")
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    qr.add_data("http://192.168.1.10:8080/t/A1")
    qr.make(fit=True)
    matrix = qr.get_matrix()
    n = len(matrix)
    box = 400 // n
    x0, y0 = (CARD_W - n * box) // 2, 360 - (n * box) // 2
    seen = [[img.getpixel((x0 + c * box + box // 2, y0 + r * box + box // 2)) < 128 for c in range(n)]
            for r in range(n)]
    assert seen == matrix
    assert cmd_table_qr(cfg, out=str(tmp_path), tables="9") == 2


@pytest.mark.parametrize("text, says", [
    ('[web]\ntables = ["1", "1"]', "tables lists a table twice"),
    ('[web]\npublic_url = "192.168.1.10"', "public_url must be like http://192.168.1.10:8080"),
    ('[web]\nport = 0', "in [web.port]"),
    ('[web]\ntables = ["table 1"]', "in [web.tables[0]]"),
    ('[web]\nlisten = "0.0.0.0"', "unknown key `listen` in [web]"),
])
def test_a_wrong_web_section_is_refused_with_a_sentence(text, says):
    from restobox import config

    with pytest.raises(config.ConfigError, match=None) as exc:
        config.parse('[device]\nid = "web"\nrole = "web"\n' + text, "web.toml")
    assert says in str(exc.value) and str(exc.value).startswith("web.toml")


def test_defaults_give_tables_one_to_twenty():
    from restobox import config

    cfg = config.parse('[device]\nid = "web"\nrole = "web"\n')
    assert cfg.web.table_ids() == [str(n) for n in range(1, 21)] and cfg.web.port == 8080
    assert msgspec.json.encode(cfg.web)  # plain data
