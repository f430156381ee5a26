"""Printer ports: where the bytes of a print job go.

Every port implements one method that writes bytes (``write``); all command
building lives above it in the ticket layouts. A port also reads the
printer's real-time status (DLE EOT) where the transport can read, and checks
its configuration at start so a wrong device path stops the service with a
sentence rather than failing on the first ticket.

Ports are not thread-safe: the spooler drives each port from one thread.

Delivery: ``write()`` returning means the bytes left this computer, not that
they were printed. A status query sent after a job travels the same line or
connection and is answered only after the printer has received everything
before it, so ``status()`` right after ``write()`` confirms delivery. A
:class:`NetworkPort` whose connection dies before that confirmation says so
once (``PortError`` on the next write, or "offline" from ``status()``) rather
than quietly reconnecting over a half-printed ticket.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from restobox.config import (
    ConfigError,
    FilePrinter,
    NetworkPrinter,
    PrinterConfig,
    SerialPrinter,
    UsbPrinter,
    VirtualPrinter,
)
from restobox.contract import REASONS

log = logging.getLogger(__name__)

State = Literal["ready", "paper_out", "cover_open", "offline", "error", "unknown"]

DLE_EOT = b"\x10\x04"
# Queried by status(): printer status, offline cause, roll paper sensor.
# Error cause (n=3) is asked only when n=2 says "error occurred": one round
# trip fewer keeps a status poll short on a 9600 baud line.
STATUS_QUERIES = (1, 2, 4)


# =========================================================================
# Printer state from DLE EOT answers
# =========================================================================

# ESC/POS "DLE EOT n  Transmit real-time status" (Epson ESC/POS Command
# Reference, real-time commands). Every answer byte has the fixed pattern
# bit0 = 0, bit1 = 1, bit4 = 1, bit7 = 0; a byte without it is not a status
# answer (line noise, wrong baud rate, an ASB block, a printer that echoes).
_FIXED_MASK = 0b1001_0011
_FIXED_BITS = 0b0001_0010
# n=1 printer status: bit3 1 = offline (bit2 is the drawer pin, bit5 "waiting
# for online recovery" on some models: neither changes our state).
_S1_OFFLINE = 0x08
# n=2 offline cause: bit2 cover open, bit3 paper being fed by the FEED
# button, bit5 printing stopped because the paper ended, bit6 an error.
_S2_COVER_OPEN = 0x04
_S2_FEED_BUTTON = 0x08
_S2_PAPER_END_STOP = 0x20
_S2_ERROR = 0x40
# n=3 error cause: bit3 autocutter error, bit5 unrecoverable error, bit6
# auto-recoverable error (e.g. print head too hot; clears by itself).
_S3_AUTOCUTTER = 0x08
_S3_UNRECOVERABLE = 0x20
_S3_AUTO_RECOVERABLE = 0x40
# n=4 roll paper sensor: bits 2+3 near-end sensor (both set = paper near
# end), bits 5+6 end sensor (both set = no paper). The spec sets both bits of
# a pair together; some clones set only one, so either bit counts.
_S4_NEAR_END = 0x0C
_S4_PAPER_END = 0x60


def is_status_byte(b: int) -> bool:
    """True if ``b`` has the fixed bits of every DLE EOT answer."""
    return 0 <= b <= 0xFF and (b & _FIXED_MASK) == _FIXED_BITS


@dataclass(frozen=True)
class PrinterState:
    """What a printer says about itself, or what we could find out."""

    state: State
    paper_near_end: bool = False
    reason: str | None = None
    """A key of contract.REASONS when the printer cannot print, else None."""
    detail: str = ""
    """For logs and staff screens: what exactly was seen."""

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @classmethod
    def unknown(cls, detail: str = "", reason: str | None = None) -> "PrinterState":
        return cls("unknown", reason=reason, detail=detail)

    @classmethod
    def offline(cls, detail: str) -> "PrinterState":
        return cls("offline", reason="printer_offline", detail=detail)

    @classmethod
    def from_dle_eot(
        cls,
        status1: int | None,
        status2: int | None = None,
        status3: int | None = None,
        status4: int | None = None,
    ) -> "PrinterState":
        """Interpret the answers to DLE EOT 1, 2, 3 and 4 (None: not asked).

        Never raises: an answer that is not a status byte gives "unknown"
        with reason printer_error and the byte in ``detail``.
        """
        answers = {1: status1, 2: status2, 3: status3, 4: status4}
        for n, b in answers.items():
            if b is not None and not (isinstance(b, int) and is_status_byte(b)):
                shown = f"0x{b:02x}" if isinstance(b, int) and 0 <= b <= 0xFF else repr(b)
                return cls.unknown(
                    f"the answer to DLE EOT {n} was {shown}, which is not a status byte "
                    "(wrong baud rate or not an ESC/POS printer?)",
                    reason="printer_error",
                )
        if status1 is None:
            return cls.offline("no answer to DLE EOT 1")
        near_end = status4 is not None and bool(status4 & _S4_NEAR_END)
        paper_end = status4 is not None and bool(status4 & _S4_PAPER_END)
        s2 = status2 or 0
        if s2 & _S2_COVER_OPEN:
            return cls("cover_open", near_end, "cover_open", "DLE EOT 2: cover open")
        if s2 & _S2_PAPER_END_STOP or paper_end:
            return cls("paper_out", True, "paper_out", "roll paper end")
        if s2 & _S2_ERROR:
            causes = []
            s3 = status3 or 0
            if s3 & _S3_AUTOCUTTER:
                causes.append("autocutter error")
            if s3 & _S3_UNRECOVERABLE:
                causes.append("unrecoverable error")
            if s3 & _S3_AUTO_RECOVERABLE:
                causes.append("auto-recoverable error (e.g. head too hot)")
            what = ", ".join(causes) or "error occurred"
            return cls("error", near_end, "printer_error", f"DLE EOT 2/3: {what}")
        if status1 & _S1_OFFLINE:
            why = "paper being fed by the FEED button" if s2 & _S2_FEED_BUTTON else "printer says offline"
            return cls("offline", near_end, "printer_offline", f"DLE EOT 1: {why}")
        return cls("ready", near_end, None, "paper near end" if near_end else "")


# =========================================================================
# Errors
# =========================================================================


class PortError(Exception):
    """A port could not do its job; ``str()`` is a sentence for a person.

    ``reason`` is a key of contract.REASONS (printer_offline, printer_busy,
    printer_error, paper_out, ...).

    ``nothing_sent`` (from ``write``): the failure came before any byte of
    the job was handed to the printer (it could not be reached or opened),
    so nothing of it can be on paper. False: some of it may be.
    """

    def __init__(self, reason: str, printer_id: str, where: str, detail: str, *,
                 nothing_sent: bool = False) -> None:
        if reason not in REASONS:
            raise KeyError(f"unknown reason code {reason!r}")
        self.nothing_sent = nothing_sent
        self.reason = reason
        self.printer_id = printer_id
        self.where = where
        self.detail = detail
        super().__init__(f"printer {printer_id} on {where}: {detail}")


def _config_error(cfg: PrinterConfig, key: str, value: object, problem: str) -> ConfigError:
    return ConfigError(f"printer {cfg.id}: {key} = {value!r} {problem}")


# =========================================================================
# Ports
# =========================================================================


class Port:
    """Base class: where the bytes of one printer go.

    ``write`` and ``status`` open the port when needed, so calling ``open``
    first is optional (it surfaces a problem early).
    """

    kind = "port"

    def __init__(self, cfg: PrinterConfig) -> None:
        self.cfg = cfg

    @property
    def where(self) -> str:
        """The device, address or path, for sentences."""
        return self.kind

    def _error(self, reason: str, detail: str) -> PortError:
        return PortError(reason, self.cfg.id, self.where, detail)

    @staticmethod
    def _unsent(exc: PortError) -> PortError:
        """``exc``, marked as raised before any byte of the job was sent."""
        exc.nothing_sent = True
        return exc

    def check_config(self) -> None:
        """Raise ConfigError if the configuration cannot work on this machine."""

    def open(self) -> None:
        """Open now (raises PortError); a no-op if already open."""

    def write(self, data: bytes, job_id: str = "") -> None:
        """Send ``data`` to the printer, within write_timeout_s, or raise PortError."""
        raise NotImplementedError

    def status(self) -> PrinterState:
        """Ask the printer (DLE EOT 1, 2, 4) within status_timeout_s. Never raises."""
        return PrinterState.unknown(f"a {self.kind} port cannot read the printer's status")

    def close(self) -> None:
        """Release the device or connection; the port may be used again later."""

    def __enter__(self) -> "Port":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_status(
    query: Callable[[int, float], int | None], timeout_s: float
) -> PrinterState:
    """Send DLE EOT 1, 2, 4 through ``query(n, seconds_left)`` within ``timeout_s``.

    ``query`` returns the first answer byte or None if none came in time.
    """
    deadline = time.monotonic() + timeout_s
    answers: dict[int, int] = {}
    todo = list(STATUS_QUERIES)
    while todo:
        n = todo.pop(0)
        left = deadline - time.monotonic()
        b = query(n, left) if left > 0 else None
        if b is None:
            return PrinterState.offline(f"no answer to DLE EOT {n} within {timeout_s:g} s")
        answers[n] = b
        if not is_status_byte(b):
            break  # garbage: asking more would only add more garbage
        if n == 2 and b & _S2_ERROR:
            todo.insert(0, 3)  # which error: DLE EOT 3
    return PrinterState.from_dle_eot(answers.get(1), answers.get(2), answers.get(3), answers.get(4))


def _state_from_error(exc: PortError) -> PrinterState:
    """The state to report when the port could not even be opened."""
    state = {"printer_offline": "offline", "printer_busy": "unknown"}.get(exc.reason, "error")
    return PrinterState(state, reason=exc.reason, detail=str(exc))


# ------------------------------------------------------------------ serial


class SerialPort(Port):
    """A printer on a serial line (RS-232, USB-serial adapter, a pty in tests)."""

    kind = "serial"

    def __init__(self, cfg: SerialPrinter) -> None:
        super().__init__(cfg)
        self.cfg: SerialPrinter = cfg
        self._serial = None

    @property
    def where(self) -> str:
        return self.cfg.device

    def check_config(self) -> None:
        dev = self.cfg.device
        try:
            st = os.stat(dev)
        except FileNotFoundError:
            raise _config_error(
                self.cfg, "device", dev,
                "does not exist (no such device): check the cable, the adapter and the udev rule that names it",
            ) from None
        except OSError as exc:
            raise _config_error(self.cfg, "device", dev, f"cannot be checked: {exc.strerror}") from None
        if not stat.S_ISCHR(st.st_mode):
            raise _config_error(self.cfg, "device", dev, "is not a serial device (not a character device)")
        if not os.access(dev, os.R_OK | os.W_OK):
            raise _config_error(
                self.cfg, "device", dev,
                "is not readable and writable by this user (add the service user to the group dialout)",
            )

    def open(self) -> None:
        if self._serial is not None:
            return
        import serial  # pyserial; only printing/ imports it

        try:
            # exclusive: flock the device so a second program (or a second
            # spooler) gets "busy" instead of interleaving bytes on paper.
            self._serial = serial.Serial(
                self.cfg.device,
                self.cfg.baudrate,
                timeout=self.cfg.status_timeout_s,
                write_timeout=self.cfg.write_timeout_s,
                exclusive=True,
            )
        except serial.SerialException as exc:
            raise self._open_error(exc) from None

    def _open_error(self, exc: Exception) -> PortError:
        code = getattr(exc, "errno", None)
        text = str(exc)
        if "exclusively lock" in text or code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
            return self._error("printer_busy", "the serial device is in use by another program")
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO):
            return self._error("printer_offline", f"the serial device is not there (unplugged?): {text}")
        if code in (errno.EACCES, errno.EPERM):
            return self._error(
                "printer_error", "no permission to open the serial device (add the user to the group dialout)"
            )
        return self._error("printer_error", f"cannot open the serial device: {text}")

    def write(self, data: bytes, job_id: str = "") -> None:
        import serial

        try:
            self.open()
        except PortError as exc:
            raise self._unsent(exc) from None
        try:
            self._serial.write(data)
        except serial.SerialTimeoutException:
            self.close()
            raise self._error(
                "printer_offline",
                f"the printer did not take {len(data)} bytes within {self.cfg.write_timeout_s:g} s "
                "(off, flow control holding, or buffer full)",
            ) from None
        except (serial.SerialException, OSError) as exc:
            # EIO and friends: the adapter was unplugged. Close, so the next
            # write opens the device afresh once it is back.
            self.close()
            raise self._error("printer_offline", f"writing failed, the device is gone: {exc}") from None

    def status(self) -> PrinterState:
        import serial

        try:
            self.open()
        except PortError as exc:
            return _state_from_error(exc)
        ser = self._serial

        def query(n: int, left: float) -> int | None:
            # A late answer to an earlier query, or noise, must not be taken
            # for this query's answer.
            ser.reset_input_buffer()
            ser.write(DLE_EOT + bytes([n]))
            ser.timeout = left
            got = ser.read(1)
            return got[0] if got else None

        try:
            return _read_status(query, self.cfg.status_timeout_s)
        except serial.SerialTimeoutException:
            return PrinterState.offline("the status query could not be sent (write timed out)")
        except (serial.SerialException, OSError) as exc:
            self.close()
            return PrinterState.offline(f"the serial device failed: {exc}")

    def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # closing a vanished device may fail; it is closed either way
                log.debug("closing %s failed", self.where, exc_info=True)


# ------------------------------------------------------------------ network


class NetworkPort(Port):
    """A printer on raw TCP (port 9100, "JetDirect").

    Connects lazily; after a failure the connection is dropped and the next
    write connects again. Status queries travel the same connection.
    """

    kind = "network"

    def __init__(self, cfg: NetworkPrinter) -> None:
        super().__init__(cfg)
        self.cfg: NetworkPrinter = cfg
        self._sock: socket.socket | None = None
        self.unconfirmed_job_id: str | None = None
        """The last job written on this connection and not yet followed by a
        status answer; None once confirmed."""
        self.connections = 0
        """Connections made so far (for logs and tests)."""

    @property
    def where(self) -> str:
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"{host}:{self.cfg.tcp_port}"

    def check_config(self) -> None:
        host = self.cfg.host
        if not host or host != host.strip() or any(c.isspace() for c in host):
            raise _config_error(self.cfg, "host", host, "is not a host name or IP address")
        if "://" in host or "/" in host:
            raise _config_error(
                self.cfg, "host", host, "must be a bare host name or IP address (no scheme, no path)"
            )

    def open(self) -> None:
        self._connect(self.cfg.connect_timeout_s)

    def _connect(self, timeout_s: float) -> None:
        if self._sock is not None and not self._connection_lost():
            return
        try:
            sock = socket.create_connection((self.cfg.host, self.cfg.tcp_port), timeout=timeout_s)
        except socket.timeout:
            raise self._error(
                "printer_offline", f"no answer to a connection within {timeout_s:g} s (off or unreachable?)"
            ) from None
        except ConnectionRefusedError:
            raise self._error(
                "printer_offline", "the connection was refused (printer starting up, or wrong port?)"
            ) from None
        except socket.gaierror as exc:
            raise self._error("printer_offline", f"cannot resolve the host name: {exc.strerror}") from None
        except OSError as exc:
            raise self._error("printer_offline", f"cannot connect: {exc.strerror or exc}") from None
        # Tickets are small; send each at once instead of waiting for an ACK
        # (Nagle), which adds up to 40 ms to first byte on paper.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Notice a printer that vanished while the connection sat idle.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
        self._sock = sock
        self.connections += 1
        log.info("printer %s: connected to %s", self.cfg.id, self.where)

    def _drain(self) -> bool:
        """Read whatever the printer sent unasked; False if the peer closed."""
        sock = self._sock
        for _ in range(64):
            try:
                readable, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):
                return False
            if not readable:
                return True
            try:
                chunk = sock.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
        return True

    def _connection_lost(self) -> bool:
        """True (and the socket closed) if the printer closed or reset it.

        Raises PortError if it died while a written job was unconfirmed:
        that job may be half on paper and the spooler must know.
        """
        if self._drain():
            return False
        self._close_socket()
        lost_job = self.unconfirmed_job_id
        if lost_job is not None:
            self.unconfirmed_job_id = None
            raise self._error(
                "printer_offline",
                f"the connection was lost after job {lost_job or '(no id)'} was sent; "
                "it may not have printed completely",
            )
        log.info("printer %s: %s closed the idle connection; reconnecting", self.cfg.id, self.where)
        return True

    def write(self, data: bytes, job_id: str = "") -> None:
        deadline = time.monotonic() + self.cfg.write_timeout_s
        try:
            self._connect(min(self.cfg.connect_timeout_s, self.cfg.write_timeout_s))
        except PortError as exc:
            raise self._unsent(exc) from None
        sock = self._sock
        # Python >= 3.5: the timeout bounds the whole sendall, not each send.
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            sock.sendall(data)
        except socket.timeout:
            self._close_socket()
            raise self._error(
                "printer_offline",
                f"the printer did not take {len(data)} bytes within {self.cfg.write_timeout_s:g} s",
            ) from None
        except OSError as exc:  # ECONNRESET, EPIPE, ECONNABORTED, ETIMEDOUT...
            self._close_socket()
            raise self._error(
                "printer_offline", f"the connection was lost while sending: {exc.strerror or exc}"
            ) from None
        self.unconfirmed_job_id = job_id

    def status(self) -> PrinterState:
        timeout = self.cfg.status_timeout_s
        deadline = time.monotonic() + timeout
        try:
            self._connect(min(self.cfg.connect_timeout_s, timeout))
        except PortError as exc:
            return _state_from_error(exc)
        sock = self._sock

        def query(n: int, left: float) -> int | None:
            sock.settimeout(left)
            sock.sendall(DLE_EOT + bytes([n]))
            got = sock.recv(64)
            if not got:
                raise ConnectionResetError(errno.ECONNRESET, "closed by the printer")
            return got[0]

        try:
            state = _read_status(query, max(0.001, deadline - time.monotonic()))
        except socket.timeout:
            state = PrinterState.offline(f"no status answer within {timeout:g} s")
        except OSError as exc:
            self._close_socket()
            lost = self.unconfirmed_job_id
            self.unconfirmed_job_id = None
            after = f" after job {lost or '(no id)'} was sent" if lost is not None else ""
            return PrinterState.offline(f"the connection was lost{after}: {exc.strerror or exc}")
        if state.state != "offline":
            # The printer answered in order after the last job's bytes.
            self.unconfirmed_job_id = None
        return state

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self._close_socket()
        self.unconfirmed_job_id = None


# ------------------------------------------------------------------ usb


_PYUSB_MISSING = (
    "needs the Python package pyusb (pip install pyusb) and the Debian package libusb-1.0-0"
)


def _import_pyusb():
    """Import pyusb lazily: most stores never plug a printer in by USB."""
    try:
        import usb.core
        import usb.util
    except ImportError:
        return None
    return usb


def usb_error_reason(exc: BaseException) -> tuple[str, str]:
    """Map a pyusb/libusb error to (REASONS code, sentence part).

    Looks at ``errno`` first and then at the text: libusb reports some
    errors only as text ("Resource busy", "No such device").
    """
    code = getattr(exc, "errno", None)
    text = str(getattr(exc, "strerror", None) or exc)
    low = text.lower()
    if code == errno.EBUSY or "resource busy" in low:
        return "printer_busy", "the USB printer is claimed by another program or kernel driver"
    if code in (errno.ENODEV, errno.ENOENT, errno.EIO, errno.EPIPE) or "no such device" in low \
            or "entity not found" in low:
        return "printer_offline", "the USB printer is gone (unplugged or switched off)"
    if code in (errno.ETIMEDOUT,) or "timed out" in low or "timeout" in low:
        return "printer_offline", "the USB printer did not take the data in time"
    if code in (errno.EACCES, errno.EPERM) or "access denied" in low or "permission" in low:
        return "printer_error", "no permission for the USB device (a udev rule must give it to the service user)"
    return "printer_error", f"USB error: {text}"


class UsbPort(Port):
    """A printer on USB, through pyusb (libusb)."""

    kind = "usb"

    def __init__(self, cfg: UsbPrinter) -> None:
        super().__init__(cfg)
        self.cfg: UsbPrinter = cfg
        self._dev = None
        self._out = None
        self._in = None

    @property
    def where(self) -> str:
        return f"USB {self.cfg.vendor_id:04x}:{self.cfg.product_id:04x}"

    def check_config(self) -> None:
        for key in ("vendor_id", "product_id"):
            if getattr(self.cfg, key) == 0:
                raise _config_error(self.cfg, key, 0, "is not a USB id (see lsusb: ID vvvv:pppp)")
        usb = _import_pyusb()
        if usb is None:
            raise ConfigError(f"printer {self.cfg.id}: port = 'usb' {_PYUSB_MISSING}")
        import usb.backend.libusb1

        if usb.backend.libusb1.get_backend() is None:
            raise ConfigError(
                f"printer {self.cfg.id}: port = 'usb' needs libusb (Debian package libusb-1.0-0), not found"
            )

    def _fail(self, exc: BaseException) -> PortError:
        reason, detail = usb_error_reason(exc)
        self.close()
        return self._error(reason, detail)

    def open(self) -> None:
        if self._dev is not None:
            return
        usb = _import_pyusb()
        if usb is None:
            raise self._error("printer_error", f"USB printing {_PYUSB_MISSING}")
        try:
            dev = usb.core.find(idVendor=self.cfg.vendor_id, idProduct=self.cfg.product_id)
        except usb.core.NoBackendError:
            raise self._error("printer_error", "libusb is missing (Debian package libusb-1.0-0)") from None
        except usb.core.USBError as exc:
            raise self._fail(exc) from None
        if dev is None:
            raise self._error("printer_offline", "no such USB device (unplugged or switched off)")
        try:
            try:
                if dev.is_kernel_driver_active(0):
                    # usblp holds printers; use FilePrinter /dev/usb/lp0 to keep it.
                    dev.detach_kernel_driver(0)
            except NotImplementedError:
                pass
            try:
                dev.set_configuration()
            except usb.core.USBError as exc:
                if getattr(exc, "errno", None) != errno.EBUSY:
                    raise
                # already configured by someone: claiming tells if it is busy
            usb.util.claim_interface(dev, 0)
            intf = dev.get_active_configuration()[(0, 0)]

            def ep(direction):
                return usb.util.find_descriptor(
                    intf,
                    custom_match=lambda e: usb.util.endpoint_direction(e.bEndpointAddress) == direction,
                )

            out_ep, in_ep = ep(usb.util.ENDPOINT_OUT), ep(usb.util.ENDPOINT_IN)
        except usb.core.USBError as exc:
            usb.util.dispose_resources(dev)
            raise self._fail(exc) from None
        if out_ep is None:
            usb.util.dispose_resources(dev)
            raise self._error("printer_error", "the USB device has no OUT endpoint: is it a printer?")
        self._dev, self._out, self._in = dev, out_ep, in_ep

    def write(self, data: bytes, job_id: str = "") -> None:
        try:
            self.open()
        except PortError as exc:
            raise self._unsent(exc) from None
        usb = _import_pyusb()
        try:
            self._out.write(data, timeout=int(self.cfg.write_timeout_s * 1000))
        except usb.core.USBError as exc:
            raise self._fail(exc) from None

    def status(self) -> PrinterState:
        try:
            self.open()
        except PortError as exc:
            return _state_from_error(exc)
        if self._in is None:
            return PrinterState.unknown("the USB printer has no IN endpoint to answer status")
        usb = _import_pyusb()

        def query(n: int, left: float) -> int | None:
            ms = max(1, int(left * 1000))
            self._out.write(DLE_EOT + bytes([n]), timeout=ms)
            try:
                got = self._in.read(64, timeout=ms)
            except usb.core.USBTimeoutError:
                return None
            return got[0] if len(got) else None

        try:
            return _read_status(query, self.cfg.status_timeout_s)
        except usb.core.USBError as exc:
            return _state_from_error(self._fail(exc))

    def close(self) -> None:
        dev, self._dev, self._out, self._in = self._dev, None, None, None
        if dev is not None:
            usb = _import_pyusb()
            try:
                usb.util.dispose_resources(dev)
            except Exception:
                log.debug("releasing %s failed", self.where, exc_info=True)


# ------------------------------------------------------------------ file


class FilePort(Port):
    """Bytes appended to a file or written to a device node (/dev/usb/lp0).

    Opened for each job. Cannot read status.
    """

    kind = "file"

    def __init__(self, cfg: FilePrinter) -> None:
        super().__init__(cfg)
        self.cfg: FilePrinter = cfg

    @property
    def where(self) -> str:
        return self.cfg.path

    def _is_device_path(self) -> bool:
        # Never create a regular file where a device node belongs: it would
        # swallow tickets and block the node when the printer comes back.
        return self.cfg.path.startswith("/dev/")

    def check_config(self) -> None:
        p = Path(self.cfg.path)
        if p.is_dir():
            raise _config_error(self.cfg, "path", self.cfg.path, "is a directory, not a file or device")
        if p.exists():
            if not os.access(p, os.W_OK):
                raise _config_error(self.cfg, "path", self.cfg.path, "is not writable by this user")
            return
        if self._is_device_path():
            raise _config_error(
                self.cfg, "path", self.cfg.path, "does not exist (no such device): is the printer plugged in?"
            )
        if not p.parent.is_dir():
            raise _config_error(self.cfg, "path", self.cfg.path, f"is in a directory that does not exist ({p.parent})")
        if not os.access(p.parent, os.W_OK):
            raise _config_error(self.cfg, "path", self.cfg.path, f"cannot be created: {p.parent} is not writable")

    def write(self, data: bytes, job_id: str = "") -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        if not self._is_device_path():
            flags |= os.O_CREAT
        try:
            fd = os.open(self.cfg.path, flags, 0o644)
        except OSError as exc:
            raise self._unsent(self._os_error(exc, "cannot open")) from None
        try:
            # Non-blocking with a deadline: a device node of a printer that is
            # off may otherwise block forever.
            deadline = time.monotonic() + self.cfg.write_timeout_s
            view = memoryview(data)
            while view:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._error(
                        "printer_offline",
                        f"the printer did not take {len(data)} bytes within {self.cfg.write_timeout_s:g} s",
                    )
                _, writable, _ = select.select([], [fd], [], left)
                if not writable:
                    continue
                try:
                    n = os.write(fd, view)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise self._os_error(exc, "writing failed") from None
                view = view[n:]
        finally:
            os.close(fd)

    def _os_error(self, exc: OSError, what: str) -> PortError:
        code = exc.errno
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO):
            return self._error("printer_offline", f"{what}: {exc.strerror} (unplugged?)")
        if code == errno.EBUSY:
            return self._error("printer_busy", f"{what}: the device is in use by another program")
        return self._error("printer_error", f"{what}: {exc.strerror}")


# ------------------------------------------------------------------ virtual


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class VirtualPort(Port):
    """A printer that keeps every job: ``<n>-<job_id>.bin`` and a ``.png``
    picture of the paper in ``directory``, and the last bytes in memory.

    Create ``<directory>/PAPER_OUT`` to simulate a printer out of paper: the
    status says paper_out and writes fail with reason paper_out.
    """

    kind = "virtual"
    PAPER_OUT = "PAPER_OUT"

    def __init__(self, cfg: VirtualPrinter) -> None:
        super().__init__(cfg)
        self.cfg: VirtualPrinter = cfg
        self.directory = Path(cfg.directory)
        self.last: bytes = b""
        self.last_path: Path | None = None
        self._next: int | None = None

    @property
    def where(self) -> str:
        return f"virtual printer {self.cfg.directory}"

    def check_config(self) -> None:
        d = self.cfg.directory
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _config_error(self.cfg, "directory", d, f"cannot be created: {exc.strerror}") from None
        if not self.directory.is_dir():
            raise _config_error(self.cfg, "directory", d, "is not a directory")
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise _config_error(self.cfg, "directory", d, "is not writable by this user")
        from restobox.printing import preview

        try:
            preview.find_cjk_font()
        except preview.FontNotFound as exc:
            raise ConfigError(f"printer {self.cfg.id} (virtual) draws its paper with a Chinese font: {exc}") from None

    def open(self) -> None:
        if self._next is not None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            numbers = [int(m.group(1)) for p in self.directory.iterdir()
                       if (m := re.match(r"(\d+)-", p.name))]
        except OSError as exc:
            raise self._error("printer_error", f"cannot use the directory: {exc.strerror}") from None
        self._next = max(numbers, default=0) + 1

    def _paper_out(self) -> bool:
        return (self.directory / self.PAPER_OUT).exists()

    def write(self, data: bytes, job_id: str = "") -> None:
        # A job is saved whole or not at all: every failure here sent nothing.
        try:
            self.open()
        except PortError as exc:
            raise self._unsent(exc) from None
        if self._paper_out():
            raise self._unsent(self._error("paper_out", f"out of paper ({self.directory / self.PAPER_OUT} exists)"))
        name = f"{self._next:06d}-{_SAFE_NAME.sub('_', job_id) or 'job'}"
        bin_path = self.directory / f"{name}.bin"
        try:
            tmp = bin_path.with_suffix(".bin.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, bin_path)
        except OSError as exc:
            raise self._unsent(self._error("printer_error", f"cannot save {bin_path}: {exc.strerror}")) from None
        self._next += 1
        self.last, self.last_path = bytes(data), bin_path
        from restobox.printing import preview

        try:
            preview.render_png(data, self.cfg.width_mm, bin_path.with_suffix(".png"))
        except Exception:
            # The job is kept as .bin; a missing picture must not fail printing.
            log.exception("printer %s: could not draw %s", self.cfg.id, bin_path.with_suffix(".png"))

    def status(self) -> PrinterState:
        if self._paper_out():
            return PrinterState("paper_out", True, "paper_out", f"{self.directory / self.PAPER_OUT} exists")
        return PrinterState("ready")


# =========================================================================


_PORTS: dict[type, type[Port]] = {
    SerialPrinter: SerialPort,
    NetworkPrinter: NetworkPort,
    UsbPrinter: UsbPort,
    FilePrinter: FilePort,
    VirtualPrinter: VirtualPort,
}


def open_port(cfg: PrinterConfig) -> Port:
    """The port for a printer's config (not yet opened: ports open lazily)."""
    try:
        cls = _PORTS[type(cfg)]
    except KeyError:
        raise TypeError(f"no port for {type(cfg).__name__}") from None
    return cls(cfg)
