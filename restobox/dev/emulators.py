"""Stand-in thermal printers on real ptys and sockets, for tests and benchmarks.

They speak enough ESC/POS to be honest about what a port does: they keep
every byte, split jobs at the cut command (GS V), and answer the real-time
status query DLE EOT n with the bytes a real printer sends in the current
mode. Standard library only.

``PtyPrinter`` is a serial printer on a pseudo-terminal: put ``.device`` in a
SerialPrinter config. ``TcpPrinter`` is a raw-TCP (port 9100) printer on
127.0.0.1 and ``.port``. Both run one daemon thread each, which ``close()``
joins; no thread or file descriptor outlives ``close()``.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from restobox.dev.ptydev import Modes, PtyDevice

# Answers to DLE EOT 1, 2, 3, 4 per mode (see ports.py for the bit meanings,
# ESC/POS "DLE EOT n  Transmit real-time status"). Fixed bits: 0x12.
STATUS_ANSWERS: dict[str, tuple[int, int, int, int]] = {
    "ok": (0x12, 0x12, 0x12, 0x12),
    "near_end": (0x12, 0x12, 0x12, 0x12 | 0x0C),
    # offline; "printing stopped by paper end"; paper near end + paper end
    "paper_out": (0x12 | 0x08, 0x12 | 0x20, 0x12, 0x12 | 0x0C | 0x60),
    "cover_open": (0x12 | 0x08, 0x12 | 0x04, 0x12, 0x12),
    # offline; "error occurred"; autocutter error
    "error": (0x12 | 0x08, 0x12 | 0x40, 0x12 | 0x08, 0x12),
    # not status bytes at all: wrong baud rate, or not an ESC/POS printer
    "garbage": (0xFF, 0xFF, 0xFF, 0xFF),
}
PTY_MODES = (*STATUS_ANSWERS, "unplugged", "stalled")
TCP_MODES = (*STATUS_ANSWERS, "stalled")

DLE, EOT, ESC, GS = 0x10, 0x04, 0x1B, 0x1D
_CUT_WITH_N = {65, 66, 97, 98, 103, 104}  # GS V m n; other m: GS V m


class EscPosStream:
    """Splits a byte stream the way a printer reads it.

    ``feed(chunk)`` returns events: ``("data", bytes)`` for bytes to print,
    ``("status", n)`` for a DLE EOT n query (not kept as data) and
    ``("cut", b"")`` after a GS V cut command (which is in the data before
    it). Length-prefixed payloads (raster images, GS ( k data, barcodes) are
    skipped as data, so a 0x10 0x04 inside a logo is not taken for a query.
    Commands split across chunks are held until complete.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._skip = 0

    def feed(self, chunk: bytes) -> list[tuple[str, object]]:
        buf = self._pending + chunk
        self._pending = b""
        events: list[tuple[str, object]] = []
        start = i = 0
        n = len(buf)

        def data_until(j: int) -> None:
            if j > start:
                events.append(("data", buf[start:j]))

        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                continue
            b = buf[i]
            if b == DLE:
                if i + 1 >= n:
                    break
                if buf[i + 1] == EOT:
                    if i + 2 >= n:
                        break
                    data_until(i)
                    events.append(("status", buf[i + 2]))
                    i += 3
                    start = i
                    continue
                i += 1
            elif b == GS:
                if i + 1 >= n:
                    break
                c = buf[i + 1]
                if c == ord("V"):
                    if i + 2 >= n:
                        break
                    end = i + 3 + (buf[i + 2] in _CUT_WITH_N)
                    if end > n:
                        break
                    data_until(end)
                    events.append(("cut", b""))
                    i = start = end
                    continue
                length = self._gs_length(buf, i)
                if length is None:
                    break
                i += length
            elif b == ESC:
                if i + 1 >= n:
                    break
                if buf[i + 1] == ord("*"):  # ESC * m nL nH d1..dk (bit image)
                    if i + 5 > n:
                        break
                    m, cols = buf[i + 2], buf[i + 3] | buf[i + 4] << 8
                    self._skip = cols * (3 if m in (32, 33) else 1)
                    i += 5
                else:
                    i += 2
            else:
                i += 1
        if i < n:
            data_until(i)
            self._pending = buf[i:]
        else:
            data_until(n)
        return events

    def _gs_length(self, buf: bytes, i: int) -> int | None:
        """Bytes to step over for GS <c> at ``i`` (payload via _skip); None: incomplete."""
        n, c = len(buf), buf[i + 1]
        if c == ord("("):  # GS ( X pL pH ...: 2-D codes, graphics
            if i + 5 > n:
                return None
            self._skip = buf[i + 3] | buf[i + 4] << 8
            return 5
        if c == ord("v"):  # GS v 0 m xL xH yL yH d...: raster bit image
            if i + 8 > n:
                return None
            self._skip = (buf[i + 4] | buf[i + 5] << 8) * (buf[i + 6] | buf[i + 7] << 8)
            return 8
        if c == ord("8"):  # GS 8 L p1 p2 p3 p4 ...: large graphics data
            if i + 7 > n:
                return None
            self._skip = struct.unpack_from("<I", buf, i + 3)[0]
            return 7
        if c == ord("k"):  # GS k m n d1..dn (m >= 65): barcode data
            if i + 3 > n:
                return None
            if buf[i + 2] >= 65:
                if i + 4 > n:
                    return None
                self._skip = buf[i + 3]
                return 4
            return 3
        return 2


class _Collector:
    """Received bytes and jobs, shared by the emulator thread and the test."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._received = bytearray()
        self._jobs: list[bytes] = []
        self.first_byte_times: list[float] = []
        """time.monotonic() of the first byte of each job."""
        self.status_queries = 0

    def _job_started(self) -> None:
        with self._cond:
            self.first_byte_times.append(time.monotonic())

    def _add(self, data: bytes, job: bytearray) -> None:
        if not job:
            self._job_started()
        job += data
        with self._cond:
            self._received += data
            self._cond.notify_all()

    def _cut(self, job: bytearray) -> None:
        with self._cond:
            self._jobs.append(bytes(job))
            self._cond.notify_all()
        job.clear()

    @property
    def received(self) -> bytes:
        """Every byte accepted for printing (DLE EOT queries excluded)."""
        with self._cond:
            return bytes(self._received)

    @property
    def jobs(self) -> list[bytes]:
        """Completed jobs: the bytes up to and including each cut command."""
        with self._cond:
            return list(self._jobs)

    def wait_for_jobs(self, n: int, timeout: float) -> list[bytes]:
        """Wait until ``n`` jobs were cut; return them all. Raise TimeoutError."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._jobs) >= n, timeout):
                raise TimeoutError(
                    f"{type(self).__name__} got {len(self._jobs)} of {n} jobs in {timeout:g} s "
                    f"({len(self._received)} bytes received)"
                )
            return list(self._jobs)


# =========================================================================
# Serial printer on a pty
# =========================================================================


class PtyPrinter(_Collector, PtyDevice):
    """A serial thermal printer on a pseudo-terminal.

    Modes (``.mode``, switchable at any time): ok, near_end, paper_out,
    cover_open, error, garbage (answers bytes that are not status bytes),
    unplugged (lost power: reads and discards everything, answers nothing),
    stalled (stops reading, like hardware flow control holding the host).
    In paper_out and cover_open the data is still kept: a real printer
    buffers it and prints once the paper is in.
    """

    MODES = PTY_MODES
    NAME = "PtyPrinter"

    def __init__(self, mode: str = "ok") -> None:
        super().__init__()
        self._open_pty(mode)
        self._stream = EscPosStream()
        self._job = bytearray()
        self._start()

    def send(self, data: bytes) -> None:
        """Send bytes to the computer unasked (noise, an automatic status)."""
        os.write(self._master, data)

    def _run(self) -> None:
        while not self._stop:
            watch = [self._wake_r] if self._mode == "stalled" else [self._wake_r, self._master]
            readable, _, _ = select.select(watch, [], [], 0.5)
            if self._wake_r in readable:
                os.read(self._wake_r, 512)
            if self._master not in readable:
                continue
            try:
                chunk = os.read(self._master, 65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    continue  # transient while the host side reopens
                raise
            if self._mode == "unplugged":
                continue
            for kind, value in self._stream.feed(chunk):
                if kind == "data":
                    self._add(value, self._job)
                elif kind == "cut":
                    self._cut(self._job)
                else:
                    self._answer(value)

    def _answer(self, n: int) -> None:
        with self._cond:
            self.status_queries += 1
        answers = STATUS_ANSWERS.get(self._mode)
        if answers is None or not 1 <= n <= 4:
            return
        try:
            os.write(self._master, bytes([answers[n - 1]]))
        except BlockingIOError:
            pass  # nobody reads the answers; a real printer would drop them too


# =========================================================================
# Network printer on TCP
# =========================================================================


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stream = EscPosStream()
        self.job = bytearray()
        self.received = bytearray()


class TcpPrinter(_Collector, Modes):
    """A raw-TCP network printer on 127.0.0.1:``.port``.

    Modes (``.mode``): ok, near_end, paper_out, cover_open, error, garbage,
    stalled (stops reading: the TCP window closes, writers block).
    ``drop_after(n)`` resets the connection after n more bytes (a printer
    power-cycled mid-job); ``refuse()`` / ``accept()`` stop and start
    listening; ``drop_connections()`` resets every open connection.
    A job cut short by a dropped connection is not a job: its bytes are in
    ``.fragments``.
    """

    MODES = TCP_MODES

    def __init__(self, mode: str = "ok") -> None:
        super().__init__()
        self._check_mode(mode)
        self._mode = mode
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._conns: dict[socket.socket, _Conn] = {}
        self._calls: list[tuple[Callable[[], object], threading.Event, list]] = []
        self._calls_lock = threading.Lock()
        self._drop_budget: int | None = None
        self.connection_bytes: list[bytes] = []
        """Bytes received on each finished connection, in order."""
        self.fragments: list[bytes] = []
        """Unfinished jobs of connections that ended."""
        self.connections = 0
        self._stop = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"TcpPrinter :{self.port}", daemon=True)
        self._thread.start()

    def _wake_for_mode(self) -> None:
        self._wake_w.send(b"m")

    @staticmethod
    def _listen(port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(8)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        return s

    # -- control, run on the emulator thread so sockets are never closed
    #    under a select() of another thread
    def _call(self, fn: Callable[[], object]) -> object:
        if self._closed:
            raise RuntimeError("TcpPrinter is closed")
        done = threading.Event()
        result: list = []
        with self._calls_lock:
            self._calls.append((fn, done, result))
        self._wake_w.send(b"c")
        if not done.wait(5):
            raise RuntimeError("TcpPrinter thread did not answer")
        if result and isinstance(result[0], BaseException):
            raise result[0]
        return result[0] if result else None

    def refuse(self) -> None:
        """Stop listening: new connections are refused. Open ones stay."""

        def stop() -> None:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

        self._call(stop)

    def accept(self) -> None:
        """Listen again on the same port."""

        def start() -> None:
            if self._listener is None:
                self._listener = self._listen(self.port)

        self._call(start)

    def drop_after(self, n_bytes: int) -> None:
        """Reset the connection that receives the next ``n_bytes`` bytes, right after them."""

        def arm() -> None:
            self._drop_budget = n_bytes

        self._call(arm)

    def drop_connections(self) -> None:
        """Reset every open connection (the printer was switched off and on)."""

        def drop() -> None:
            for conn in list(self._conns.values()):
                self._drop(conn)

        self._call(drop)

    @property
    def open_connections(self) -> int:
        return self._call(lambda: len(self._conns))

    # -- the emulator thread
    def _run(self) -> None:
        while not self._stop:
            watch: list[socket.socket] = [self._wake_r]
            if self._mode != "stalled":
                watch += self._conns
            if self._listener is not None:
                watch.append(self._listener)
            readable, _, _ = select.select(watch, [], [], 0.5)
            for s in readable:
                if s is self._wake_r:
                    self._wake_r.recv(512)
                    self._run_calls()
                elif s is self._listener:
                    self._accept_one()
                elif s in self._conns:
                    self._receive(self._conns[s])
        self._run_calls()

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, done, result in calls:
            try:
                result.append(fn())
            except BaseException as exc:  # handed to the caller, raised there
                result.append(exc)
            done.set()

    def _accept_one(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        sock.setblocking(False)
        self._conns[sock] = _Conn(sock)
        self.connections += 1

    def _receive(self, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._end(conn)
            return
        drop = False
        if self._drop_budget is not None:
            if len(chunk) >= self._drop_budget:
                chunk, drop = chunk[: self._drop_budget], True
                self._drop_budget = None
            else:
                self._drop_budget -= len(chunk)
        conn.received += chunk
        for kind, value in conn.stream.feed(chunk):
            if kind == "data":
                self._add(value, conn.job)
            elif kind == "cut":
                self._cut(conn.job)
            else:
                self._answer(conn, value)
        if drop:
            self._drop(conn)

    def _answer(self, conn: _Conn, n: int) -> None:
        with self._cond:
            self.status_queries += 1
        answers = STATUS_ANSWERS.get(self._mode)
        if answers is not None and 1 <= n <= 4:
            try:
                conn.sock.send(bytes([answers[n - 1]]))
            except OSError:
                pass

    def _drop(self, conn: _Conn) -> None:
        # SO_LINGER 0: close with RST, like a printer that lost power and
        # came back knowing nothing of the connection.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._end(conn)

    def _end(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock, None)
        conn.sock.close()
        with self._cond:
            self.connection_bytes.append(bytes(conn.received))
            if conn.job:
                self.fragments.append(bytes(conn.job))
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread and close every socket."""
        if self._closed:
            return
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(5)
        if self._thread.is_alive():
            raise RuntimeError(f"TcpPrinter :{self.port}: the thread did not stop")
        self._closed = True
        for conn in list(self._conns.values()):
            self._end(conn)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> "TcpPrinter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
