"""Printer ports against stand-in printers on real ptys and sockets.

SerialPort talks to a PtyPrinter through a real pseudo-terminal, NetworkPort
to a TcpPrinter through real TCP on 127.0.0.1; status is read with real
DLE EOT queries. USB hardware is not available: only its error mapping and
config checks are tested.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import sys
import threading
import time
import uuid

import pytest
from PIL import Image

from restobox.config import (
    ConfigError,
    FilePrinter,
    NetworkPrinter,
    SerialPrinter,
    UsbPrinter,
    VirtualPrinter,
)
from restobox.contract import REASONS
from restobox.dev import emulators
from restobox.printing import ports
from restobox.dev.emulators import STATUS_ANSWERS, PtyPrinter, TcpPrinter
from restobox.printing.ports import (
    FilePort,
    NetworkPort,
    PortError,
    PrinterState,
    SerialPort,
    UsbPort,
    VirtualPort,
    open_port,
)

CUT = b"\x1dV\x00"


def job(text: str) -> bytes:
    """A small ticket: init, Chinese mode, text, feed, cut."""
    return b"\x1b@\x1c&" + text.encode("gb18030") + b"\n\x1bd\x03" + CUT


def open_fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:  # the directory listing's own fd, closed by now
            pass
    # FreeType keeps the preview's cached font files open, by design.
    return {fd: t for fd, t in fds.items() if not t.endswith((".ttc", ".otf", ".ttf"))}


@pytest.fixture(autouse=True)
def no_leaks():
    """Every test ends with no thread and no file descriptor more than it
    started with. (Earlier tests' objects may be collected meanwhile and
    close theirs: an fd that went away is not this test's doing.)"""
    gc.collect()
    threads, fds = threading.active_count(), open_fds()
    yield
    assert threading.active_count() <= threads, f"threads left: {threading.enumerate()}"
    left = {fd: t for fd, t in open_fds().items() if fds.get(fd) != t}
    assert left == {}, f"file descriptors left open: {left}"


@pytest.fixture
def pty_printer():
    p = PtyPrinter()
    yield p
    p.close()


@pytest.fixture
def tcp_printer():
    p = TcpPrinter()
    yield p
    p.close()


def serial_port(printer: PtyPrinter, **kw) -> SerialPort:
    kw.setdefault("status_timeout_s", 0.5)
    return SerialPort(SerialPrinter(id="kitchen", device=printer.device, **kw))


def network_port(printer: TcpPrinter, **kw) -> NetworkPort:
    kw.setdefault("status_timeout_s", 0.5)
    return NetworkPort(NetworkPrinter(id="counter", host="127.0.0.1", tcp_port=printer.port, **kw))


# =========================================================================
# DLE EOT answers
# =========================================================================

OK = 0x12  # the fixed bits alone: nothing to report


@pytest.mark.parametrize(
    "answers, state, reason, near_end",
    [
        ((OK, OK, OK, OK), "ready", None, False),
        ((OK, None, None, None), "ready", None, False),
        ((OK, OK, None, OK | 0x0C), "ready", None, True),  # n=4 bits 2+3: near end
        ((OK, OK, None, OK | 0x04), "ready", None, True),  # one bit of the pair is enough
        ((OK | 0x08, OK | 0x04, None, OK), "cover_open", "cover_open", False),  # n=2 bit 2
        ((OK | 0x08, OK | 0x20, None, OK), "paper_out", "paper_out", True),  # n=2 bit 5
        ((OK, OK, None, OK | 0x60), "paper_out", "paper_out", True),  # n=4 bits 5+6
        ((OK, OK, None, OK | 0x20), "paper_out", "paper_out", True),  # one bit of the pair
        ((OK | 0x08, OK | 0x20, None, OK | 0x6C), "paper_out", "paper_out", True),
        ((OK | 0x08, OK | 0x24, None, OK | 0x60), "cover_open", "cover_open", False),  # cover first
        ((OK | 0x08, OK | 0x40, OK | 0x08, OK), "error", "printer_error", False),  # n=2 bit 6
        ((OK | 0x08, OK | 0x40, None, OK | 0x0C), "error", "printer_error", True),
        ((OK | 0x08, OK, None, OK), "offline", "printer_offline", False),  # n=1 bit 3 alone
        ((OK | 0x08, OK | 0x08, None, OK), "offline", "printer_offline", False),  # FEED button
        ((OK | 0x04 | 0x20, OK, OK, OK), "ready", None, False),  # drawer pin, recovery wait
        ((None, None, None, None), "offline", "printer_offline", False),  # no answer
        ((0xFF, OK, OK, OK), "unknown", "printer_error", False),  # bit 0 and 7 set
        ((0x00, None, None, None), "unknown", "printer_error", False),  # bits 1 and 4 clear
        ((OK, 0x13, None, OK), "unknown", "printer_error", False),  # bit 0 set
        ((OK, OK, None, 0x92), "unknown", "printer_error", False),  # bit 7 set
        ((OK, OK, None, 0x10), "unknown", "printer_error", False),  # bit 1 clear
        ((OK, OK, None, 0x02), "unknown", "printer_error", False),  # bit 4 clear
        ((300, None, None, None), "unknown", "printer_error", False),  # not a byte
        ((-1, None, None, None), "unknown", "printer_error", False),
    ],
)
def test_dle_eot_answers_give_the_printer_state(answers, state, reason, near_end):
    st = PrinterState.from_dle_eot(*answers)
    assert (st.state, st.reason, st.paper_near_end) == (state, reason, near_end)
    assert st.reason is None or st.reason in REASONS


def test_error_cause_from_dle_eot_3_is_named():
    st = PrinterState.from_dle_eot(OK | 0x08, OK | 0x40, OK | 0x08, OK)
    assert "autocutter" in st.detail
    st = PrinterState.from_dle_eot(OK | 0x08, OK | 0x40, OK | 0x40, OK)
    assert "auto-recoverable" in st.detail


def test_every_byte_that_is_not_a_status_answer_gives_unknown():
    for b in range(256):
        st = PrinterState.from_dle_eot(b, OK, None, OK)
        fixed = (b & 0x93) == 0x12
        assert (st.state != "unknown") == fixed, hex(b)


# =========================================================================
# Serial port on a real pty
# =========================================================================


def test_serial_bytes_arrive_exactly(pty_printer):
    first = job("1号 红烧牛肉面 x2\n")
    # a logo whose raster data holds 0x10 0x04 0x01, which must not be taken
    # for a status query
    logo = b"\x1dv0\x00\x02\x00\x02\x00" + b"\x10\x04\x01\xff"
    second = b"\x1b@" + logo + b"ticket 2\n" + CUT
    port = serial_port(pty_printer)
    try:
        port.write(first, job_id="a")
        port.write(second, job_id="b")
        assert pty_printer.wait_for_jobs(2, 5) == [first, second]
        assert pty_printer.received == first + second
    finally:
        port.close()


@pytest.mark.parametrize(
    "mode, state, reason, near_end",
    [
        ("ok", "ready", None, False),
        ("near_end", "ready", None, True),
        ("paper_out", "paper_out", "paper_out", True),
        ("cover_open", "cover_open", "cover_open", False),
        ("error", "error", "printer_error", False),
    ],
)
def test_serial_status_is_read_with_dle_eot(pty_printer, mode, state, reason, near_end):
    port = serial_port(pty_printer)
    try:
        pty_printer.mode = mode
        st = port.status()
        assert (st.state, st.reason, st.paper_near_end) == (state, reason, near_end)
        assert pty_printer.status_queries >= 3  # 1, 2, 4 (and 3 on error)
        assert pty_printer.received == b""  # queries are not printed
    finally:
        port.close()


def test_serial_error_status_asks_dle_eot_3_for_the_cause(pty_printer):
    port = serial_port(pty_printer)
    try:
        pty_printer.mode = "error"
        assert "autocutter" in port.status().detail
        assert pty_printer.status_queries == 4
    finally:
        port.close()


def test_serial_status_changes_with_the_printer(pty_printer):
    port = serial_port(pty_printer)
    try:
        assert port.status().state == "ready"
        pty_printer.mode = "paper_out"
        assert port.status().state == "paper_out"
        pty_printer.mode = "ok"
        assert port.status().state == "ready"
    finally:
        port.close()


def test_serial_unplugged_printer_is_offline_within_the_status_timeout(pty_printer):
    port = serial_port(pty_printer, status_timeout_s=0.3)
    try:
        pty_printer.mode = "unplugged"
        port.write(job("lost"))  # nothing on the line says no
        t = time.monotonic()
        st = port.status()
        elapsed = time.monotonic() - t
        assert (st.state, st.reason) == ("offline", "printer_offline")
        assert 0.25 <= elapsed < 0.3 + 0.5
        assert pty_printer.received == b""
    finally:
        port.close()


def test_serial_garbage_status_answer_is_unknown(pty_printer):
    port = serial_port(pty_printer)
    try:
        pty_printer.mode = "garbage"
        st = port.status()
        assert (st.state, st.reason) == ("unknown", "printer_error")
        assert "0xff" in st.detail
        pty_printer.mode = "ok"
        assert port.status().state == "ready"  # the port still works
    finally:
        port.close()


def test_serial_status_ignores_bytes_that_came_before_the_query(pty_printer):
    port = serial_port(pty_printer)
    try:
        port.open()
        pty_printer.send(b"\xff\xff\xff")  # noise, or a late answer
        time.sleep(0.2)
        assert port.status().state == "ready"
    finally:
        port.close()


def test_serial_write_gives_up_after_write_timeout_when_printer_stops_reading(pty_printer):
    port = serial_port(pty_printer, write_timeout_s=0.5)
    try:
        pty_printer.mode = "stalled"
        t = time.monotonic()
        with pytest.raises(PortError) as err:
            port.write(b"x" * (4 << 20))
        assert time.monotonic() - t < 0.5 + 0.75
        assert err.value.reason == "printer_offline"
        assert "kitchen" in str(err.value) and pty_printer.device in str(err.value)
    finally:
        pty_printer.mode = "ok"
        port.close()


def test_serial_second_program_on_the_same_device_gets_busy(pty_printer):
    first, second = serial_port(pty_printer), serial_port(pty_printer)
    try:
        first.open()
        with pytest.raises(PortError) as err:
            second.write(job("x"))
        assert err.value.reason == "printer_busy"
        assert second.status().reason == "printer_busy"
    finally:
        first.close()
        second.close()


def test_serial_device_that_vanished_is_offline_and_named():
    printer = PtyPrinter()
    port = serial_port(printer)
    try:
        port.write(job("before"))
        printer.wait_for_jobs(1, 5)
        printer.close()  # the USB-serial adapter was pulled out
        with pytest.raises(PortError) as err:
            port.write(job("after"))
        assert err.value.reason == "printer_offline"
        assert str(err.value).startswith(f"printer kitchen on {printer.device}:")
        st = port.status()
        assert (st.state, st.reason) == ("offline", "printer_offline")
    finally:
        port.close()
        printer.close()


# =========================================================================
# Network port on real TCP
# =========================================================================


def test_network_bytes_arrive_exactly_on_one_connection(tcp_printer):
    # an ESC * column image whose data holds 0x10 0x04 0x02: not a status query
    column_image = b"\x1b*\x21\x02\x00" + b"\x10\x04\x02\xff\xff\xff" + b"\n"
    first, second = job("取餐号 A042"), b"\x00\xff\x10\x05" + column_image + job("ticket 2")
    port = network_port(tcp_printer)
    try:
        port.write(first, job_id="a")
        port.write(second, job_id="b")
        assert tcp_printer.wait_for_jobs(2, 5) == [first, second]
        assert tcp_printer.received == first + second
        assert tcp_printer.connections == 1
        assert port._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        port.close()


@pytest.mark.parametrize(
    "mode, state, reason",
    [
        ("ok", "ready", None),
        ("paper_out", "paper_out", "paper_out"),
        ("cover_open", "cover_open", "cover_open"),
        ("garbage", "unknown", "printer_error"),
    ],
)
def test_network_status_is_read_over_the_connection(tcp_printer, mode, state, reason):
    port = network_port(tcp_printer)
    try:
        tcp_printer.mode = mode
        st = port.status()
        assert (st.state, st.reason) == (state, reason)
        assert tcp_printer.status_queries >= 1
    finally:
        port.close()


@pytest.mark.timeout(30)
def test_network_write_gives_up_after_write_timeout_when_printer_stops_reading(tcp_printer):
    port = network_port(tcp_printer, write_timeout_s=0.5)
    try:
        tcp_printer.mode = "stalled"
        t = time.monotonic()
        with pytest.raises(PortError) as err:
            port.write(b"x" * (64 << 20), job_id="long")
        assert time.monotonic() - t < 0.5 + 0.75
        assert err.value.reason == "printer_offline"
        assert "0.5 s" in str(err.value)
    finally:
        port.close()


def test_network_refused_connection_is_offline_at_once(tcp_printer):
    tcp_printer.refuse()
    port = network_port(tcp_printer)
    try:
        t = time.monotonic()
        with pytest.raises(PortError) as err:
            port.write(job("x"))
        assert time.monotonic() - t < 1.0  # no connect timeout waited out
        assert err.value.reason == "printer_offline"
        assert f"printer counter on 127.0.0.1:{tcp_printer.port}" in str(err.value)
        assert "refused" in str(err.value)
        assert port.status().state == "offline"
        tcp_printer.accept()
        port.write(job("back"))
        assert tcp_printer.wait_for_jobs(1, 5) == [job("back")]
    finally:
        port.close()


def test_network_connect_timeout_is_offline_within_connect_timeout():
    # A listener whose accept queue is full drops new SYNs: connect hangs,
    # like a printer that is switched off behind a switch.
    srv = socket.socket()
    fillers: list[socket.socket] = []
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        addr = srv.getsockname()
        for _ in range(8):
            f = socket.socket()
            fillers.append(f)
            f.settimeout(0.2)
            try:
                f.connect(addr)
            except (socket.timeout, OSError):
                break
        else:
            pytest.fail("could not fill the accept queue")
        port = NetworkPort(NetworkPrinter(id="bar", host="127.0.0.1", tcp_port=addr[1], connect_timeout_s=0.3))
        t = time.monotonic()
        with pytest.raises(PortError) as err:
            port.write(job("x"))
        assert 0.25 <= time.monotonic() - t < 0.3 + 0.6
        assert err.value.reason == "printer_offline"
        assert "0.3 s" in str(err.value)
        port.close()
    finally:
        for f in fillers:
            f.close()
        srv.close()


def test_network_drop_mid_job_fails_the_write_and_the_next_write_reconnects(tcp_printer):
    port = network_port(tcp_printer)
    try:
        tcp_printer.drop_after(1000)  # power-cycled while printing
        big = b"\x1b@" + b"x" * (16 << 20) + CUT  # more than the socket buffers hold
        with pytest.raises(PortError) as err:
            port.write(big, job_id="big")
        assert err.value.reason == "printer_offline"
        assert tcp_printer.jobs == []
        deadline = time.monotonic() + 5  # the emulator files what it got on its own thread
        while not tcp_printer.fragments and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(tcp_printer.fragments[0]) == 1000
        port.write(job("again"), job_id="again")
        assert tcp_printer.wait_for_jobs(1, 5) == [job("again")]
        assert tcp_printer.connections == 2
    finally:
        port.close()


def test_network_drop_after_a_small_job_is_reported_once_then_reconnects(tcp_printer):
    port = network_port(tcp_printer)
    try:
        tcp_printer.drop_after(5)
        port.write(job("half printed"), job_id="order-7")  # fits in the socket buffer: no error yet
        deadline = time.monotonic() + 5
        while not tcp_printer.fragments and time.monotonic() < deadline:
            time.sleep(0.01)
        st = port.status()  # the confirmation that this job arrived fails
        assert (st.state, st.reason) == ("offline", "printer_offline")
        assert "order-7" in st.detail
        port.write(job("next"), job_id="order-8")
        assert tcp_printer.wait_for_jobs(1, 5) == [job("next")]
        assert port.status().state == "ready"
    finally:
        port.close()


def test_network_drop_of_an_unconfirmed_job_fails_the_next_write_once(tcp_printer):
    port = network_port(tcp_printer)
    try:
        tcp_printer.drop_after(5)
        port.write(job("half printed"), job_id="order-7")
        deadline = time.monotonic() + 5
        while not tcp_printer.fragments and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(PortError) as err:
            port.write(job("next"), job_id="order-8")
        assert "order-7" in str(err.value)
        port.write(job("next"), job_id="order-8")
        assert tcp_printer.wait_for_jobs(1, 5) == [job("next")]
    finally:
        port.close()


def test_network_idle_connection_closed_by_the_printer_reconnects_quietly(tcp_printer):
    port = network_port(tcp_printer)
    try:
        port.write(job("one"), job_id="1")
        assert port.status().state == "ready"  # job 1 confirmed
        tcp_printer.drop_connections()  # printers close idle connections
        deadline = time.monotonic() + 5
        while tcp_printer.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        port.write(job("two"), job_id="2")
        assert tcp_printer.wait_for_jobs(2, 5) == [job("one"), job("two")]
        assert tcp_printer.connections == 2
    finally:
        port.close()


# =========================================================================
# File and virtual ports
# =========================================================================


def test_file_port_appends_each_job(tmp_path):
    path = tmp_path / "lp0"
    port = FilePort(FilePrinter(id="file", path=str(path)))
    port.check_config()
    port.write(job("one"))
    port.write(job("two"))
    assert path.read_bytes() == job("one") + job("two")
    assert port.status().state == "unknown"


def test_file_port_never_creates_a_missing_device_node():
    path = f"/dev/restobox-test-no-printer-{uuid.uuid4().hex[:8]}"
    port = FilePort(FilePrinter(id="usb-lp", path=path))
    try:
        with pytest.raises(ConfigError, match=f"usb-lp: path = '{path}' does not exist"):
            port.check_config()
        with pytest.raises(PortError) as err:
            port.write(job("x"))
        assert err.value.reason == "printer_offline"
        assert not os.path.exists(path)
    finally:
        if os.path.isfile(path):  # only if the port wrongly made one
            os.unlink(path)


def test_virtual_port_keeps_every_job_with_a_picture(tmp_path):
    d = tmp_path / "paper"
    cfg = VirtualPrinter(id="virtual-1", directory=str(d), width_mm=58)
    port = open_port(cfg)
    assert isinstance(port, VirtualPort)
    port.check_config()
    port.write(job("红烧牛肉面"), job_id="order-1")
    port.write(job("two"), job_id="a/b c")
    assert sorted(p.name for p in d.iterdir()) == [
        "000001-order-1.bin", "000001-order-1.png", "000002-a_b_c.bin", "000002-a_b_c.png",
    ]
    assert (d / "000001-order-1.bin").read_bytes() == job("红烧牛肉面")
    with Image.open(d / "000001-order-1.png") as img:
        assert img.width == 384 and img.height > 50
    assert port.last == job("two")
    # numbering goes on after a restart
    again = VirtualPort(cfg)
    again.write(job("three"), job_id="3")
    assert (d / "000003-3.bin").exists()


def test_virtual_port_paper_out_file_simulates_an_empty_printer(tmp_path):
    port = VirtualPort(VirtualPrinter(id="virtual-1", directory=str(tmp_path)))
    assert port.status().state == "ready"
    (tmp_path / "PAPER_OUT").touch()
    st = port.status()
    assert (st.state, st.reason) == ("paper_out", "paper_out")
    with pytest.raises(PortError) as err:
        port.write(job("x"), job_id="held")
    assert err.value.reason == "paper_out"
    assert not list(tmp_path.glob("*.bin"))
    (tmp_path / "PAPER_OUT").unlink()
    assert port.status().state == "ready"
    port.write(job("x"), job_id="held")
    assert (tmp_path / "000001-held.bin").exists()


# =========================================================================
# Configuration checks at start
# =========================================================================


def test_serial_device_that_does_not_exist_is_a_config_error():
    port = SerialPort(SerialPrinter(id="kitchen", device="/dev/ttyUSB-restobox-none"))
    with pytest.raises(ConfigError) as err:
        port.check_config()
    msg = str(err.value)
    assert "kitchen" in msg and "device" in msg and "/dev/ttyUSB-restobox-none" in msg
    assert "no such device" in msg


def test_serial_device_that_is_a_plain_file_is_a_config_error(tmp_path):
    f = tmp_path / "ttyS0"
    f.touch()
    with pytest.raises(ConfigError, match="kitchen: device = .*ttyS0.* not a serial device"):
        SerialPort(SerialPrinter(id="kitchen", device=str(f))).check_config()


def test_serial_pty_device_passes_the_config_check(pty_printer):
    serial_port(pty_printer).check_config()


def test_virtual_directory_that_cannot_be_created_is_a_config_error(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    bad = tmp_path / "a-file" / "paper"
    with pytest.raises(ConfigError) as err:
        VirtualPort(VirtualPrinter(id="virtual-1", directory=str(bad))).check_config()
    msg = str(err.value)
    assert "virtual-1" in msg and "directory" in msg and str(bad) in msg


def test_virtual_directory_is_created_by_the_config_check(tmp_path):
    d = tmp_path / "new" / "paper"
    VirtualPort(VirtualPrinter(id="virtual-1", directory=str(d))).check_config()
    assert d.is_dir()


def test_file_path_in_a_missing_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="printer file: path = .*does not exist"):
        FilePort(FilePrinter(id="file", path=str(tmp_path / "no" / "out.bin"))).check_config()


def test_network_host_with_a_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="counter: host = 'http://10.0.0.5'"):
        NetworkPort(NetworkPrinter(id="counter", host="http://10.0.0.5")).check_config()
    NetworkPort(NetworkPrinter(id="counter", host="10.0.0.5")).check_config()


def test_usb_zero_id_is_a_config_error():
    with pytest.raises(ConfigError, match="receipt: vendor_id = 0"):
        UsbPort(UsbPrinter(id="receipt", vendor_id=0, product_id=0x5743)).check_config()


def test_usb_without_pyusb_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "usb", None)  # import usb -> ImportError
    monkeypatch.setitem(sys.modules, "usb.core", None)
    port = UsbPort(UsbPrinter(id="receipt", vendor_id=0x0483, product_id=0x5743))
    with pytest.raises(ConfigError, match="receipt.*pyusb.*libusb-1.0-0"):
        port.check_config()
    with pytest.raises(PortError) as err:
        port.write(job("x"))
    assert err.value.reason == "printer_error"
    assert "USB 0483:5743" in str(err.value)
    assert port.status().state == "error"


@pytest.mark.parametrize(
    "exc, reason",
    [
        (OSError(errno.EBUSY, "Resource busy"), "printer_busy"),
        (OSError(None, "Resource busy"), "printer_busy"),  # libusb text, no errno
        (OSError(errno.ENODEV, "No such device (it may have been disconnected)"), "printer_offline"),
        (Exception("No such device (it may have been disconnected)"), "printer_offline"),
        (OSError(errno.EIO, "Input/Output Error"), "printer_offline"),
        (OSError(errno.ETIMEDOUT, "Operation timed out"), "printer_offline"),
        (OSError(errno.EACCES, "Access denied (insufficient permissions)"), "printer_error"),
        (OSError(errno.EOVERFLOW, "Overflow"), "printer_error"),
    ],
)
def test_usb_errors_map_to_reasons(exc, reason):
    got, sentence = ports.usb_error_reason(exc)
    assert got == reason and sentence


def test_open_port_chooses_the_port_by_config_type(tmp_path):
    cases = [
        (SerialPrinter(id="a", device="/dev/ttyUSB0"), SerialPort),
        (UsbPrinter(id="b", vendor_id=1, product_id=2), UsbPort),
        (NetworkPrinter(id="c", host="10.0.0.9"), NetworkPort),
        (FilePrinter(id="d", path=str(tmp_path / "x")), FilePort),
        (VirtualPrinter(id="e", directory=str(tmp_path)), VirtualPort),
    ]
    for cfg, cls in cases:
        port = open_port(cfg)
        assert type(port) is cls and port.cfg is cfg


def test_emulators_leave_nothing_behind():
    threads, fds = threading.active_count(), open_fds()
    pty, tcp = PtyPrinter(), TcpPrinter()
    assert threading.active_count() == threads + 2
    pty.close()
    tcp.close()
    pty.close()  # twice is harmless
    assert threading.active_count() == threads
    assert open_fds() == fds
    assert not os.path.exists(pty.device) or pty.device not in open_fds().values()
    assert set(STATUS_ANSWERS) <= set(emulators.PTY_MODES)
