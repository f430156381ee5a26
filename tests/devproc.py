"""A server of ours (``restobox <command>``, a test balancer) in its own
process, for tests: started when it answers over HTTP, always stopped. And
``PostReceiver``, the address a simulator posts its callbacks to.

    class PaygateDev(DevProcess):
        def start(self):
            self.launch([sys.executable, "-m", "restobox.cli", "paygate-dev", ...], self.log,
                        f"{self.url}/_dev/stats", what="paygate-dev", drop_env="RESTOBOX_PAYGATE_KEY")
            return self
"""

from __future__ import annotations

import os
import subprocess
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Collection, Sequence

import httpx

from restobox.brokerconf import free_port, terminate
from tests.support import REPO, wait

__all__ = ["DevProcess", "PostReceiver", "free_port"]

LOG_TAIL = 3000
"""How much of the log's end a RuntimeError shows when the process exits before it answers."""


class DevProcess:
    """One process at a time; ``proc`` while it runs. A subclass's
    ``start()`` calls ``launch()`` and returns itself; ``with`` starts and
    stops it. A process forgotten by its test is still stopped, when this
    object goes (weakref.finalize)."""

    proc: subprocess.Popen | None = None
    _finalizer: weakref.finalize | None = None

    def launch(self, cmd: Sequence[str], log: Path, url: str, *, what: str, timeout: float = 15.0,
               drop_env: str | None = None, statuses: Collection[int] | None = None) -> None:
        """Start ``cmd`` (in the repository, its output appended to ``log``)
        and wait until GET ``url`` is answered (with one of ``statuses``;
        None: any). RuntimeError with the log's end if it exits first;
        TimeoutError, the process stopped, if it does not answer within
        ``timeout`` s. ``drop_env``: a variable it must not inherit (a
        secret the test gives it another way)."""
        env = None if drop_env is None else {k: v for k, v in os.environ.items() if k != drop_env}
        with open(log, "ab") as out:
            self.proc = proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        self._finalizer = weakref.finalize(self, terminate, proc)

        def answers() -> bool:
            try:
                status = httpx.get(url, timeout=1).status_code
            except httpx.TransportError:
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{what} exited:\n{Path(log).read_text()[-LOG_TAIL:]}") from None
                return False
            return statuses is None or status in statuses

        try:
            wait(answers, timeout, what=f"answer from {what}")
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s if it is still there."""
        if self.proc is not None:
            terminate(self.proc, 5)
            self.proc = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def start(self):
        raise NotImplementedError

    def restart(self):
        """Stop and start again (the same port, the same records)."""
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class PostReceiver:
    """An HTTP address on 127.0.0.1 (a free port, a thread of its own) that
    answers each POST with ``self.answer(path, headers, body)``: a status
    and a JSON body (an empty one is sent without a Content-Type). ``url``
    is its address with ``path``. ``stop()`` when done."""

    def __init__(self, path: str = "/") -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = outer.answer(self.path, self.headers, body)
                self.send_response(status)
                if answer:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        # polled every 0.05 s (not 0.5 s): stop() answers that soon
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def answer(self, path: str, headers, body: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
