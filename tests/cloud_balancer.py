"""A load balancer for the tests: one address in front of several
``restobox cloud`` processes, each request to the next one in turn (and on
to the one after when a process does not take the connection, as a real
balancer's health check would). It can also be told to misbehave the way a
network, a proxy or a broken cloud does, for the store's sync tests:

    python -m tests.cloud_balancer --port 8800 --upstream http://127.0.0.1:8701 --upstream http://127.0.0.1:8702
    POST /_lb/mode {"mode": "fail", "count": 3}

modes (applied to a store's event batches and its fetches of payment
notifications; ``count`` requests, 0: until changed): ``ok``; ``fail``
(500, not passed on); ``hang`` (never answers); ``slow`` (passed on after
``slow_s``); ``close`` (passed on, the answer cut in the middle);
``partial`` (only the first half of a batch passed on: the cloud stores and
acknowledges that half); ``bad_json`` (an HTML error page as the answer, not
passed on); ``bad_schema`` (passed on, answered with valid JSON of the wrong
shape); ``unauthorized`` (401, not passed on) — cloud-dev's modes, with its
answers (restobox.dev.cloud_dev). ``GET /_lb/stats``: requests per upstream
and per mode.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import Counter

import httpx
import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from restobox.dev.cloud_dev import MODES, Mode, ModeDial, Truncated, misbehave

FAULTY = re.compile(r"^/v1/stores/[^/]+/(events|paygate/notifications)$")
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


def make_app(upstreams: list[str]) -> Starlette:
    turn = itertools.cycle(range(len(upstreams)))
    dial = ModeDial()
    stats: Counter = Counter()
    client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=2.0), limits=httpx.Limits(max_connections=2000))

    async def forward(request: Request, body: bytes) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        last: Exception | None = None
        for _ in range(len(upstreams)):
            i = next(turn)
            try:
                r = await client.request(request.method, upstreams[i] + path, content=body, headers=headers)
                stats[f"upstream.{i}"] += 1
                return r
            except httpx.ConnectError as exc:  # that process is down: the next one
                stats[f"upstream.{i}.down"] += 1
                last = exc
        raise last or RuntimeError("no upstream")

    async def proxy(request: Request):
        body = await request.body()
        m = dial.take() if FAULTY.match(request.url.path) else Mode()
        stats[f"mode.{m.mode}"] += 1
        bad = await misbehave(m)  # the answers of cloud-dev's fault modes, not passed on
        if bad is not None:
            return bad
        if m.mode == "partial" and request.method == "POST":
            batch = msgspec.json.decode(body)
            batch["events"] = batch["events"][: len(batch["events"]) // 2]
            body = msgspec.json.encode(batch)
        try:
            r = await forward(request, body)
        except httpx.HTTPError:
            return JSONResponse({"error": "bad_gateway"}, status_code=502)
        if m.mode == "bad_schema":
            return JSONResponse({"ok": True})
        headers = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
        if m.mode == "close":
            return Truncated(r.content, r.status_code)
        return Response(r.content, status_code=r.status_code, headers=headers)

    async def set_mode(request: Request):
        m = msgspec.json.decode(await request.body(), type=Mode)
        if m.mode not in MODES:
            return JSONResponse({"error": f"mode is one of {', '.join(MODES)}"}, status_code=400)
        dial.mode = m
        return JSONResponse(msgspec.to_builtins(m))

    async def get_stats(request: Request):
        return JSONResponse(dict(stats))

    return Starlette(routes=[
        Route("/_lb/mode", set_mode, methods=["POST"]),
        Route("/_lb/stats", get_stats, methods=["GET"]),
        Route("/{path:path}", proxy, methods=["GET", "POST", "PUT", "DELETE"]),
    ])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", action="append", required=True)
    a = ap.parse_args()
    uvicorn.run(make_app(a.upstream), host="127.0.0.1", port=a.port, log_level="warning",
                timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
