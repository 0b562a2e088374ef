"""A small asyncio HTTP/1.1 load client for the serving benchmark: keep-alive connections on loopback, bounded by a
request count and a time limit (it stops by itself), latency per request, statuses checked against expectations."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)   # valid requests answered 200
    unexpected: int = 0                                         # valid not 200, or invalid not 4xx
    refused_as_expected: int = 0                                # invalid requests answered 4xx
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, float]:
        lat = np.array(self.latencies_ms or [float("nan")])
        return {"ok": len(self.latencies_ms), "refused_4xx": self.refused_as_expected, "errors": self.unexpected,
                "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                "req_per_s": round((len(self.latencies_ms) + self.refused_as_expected) / self.elapsed_s, 1)}


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port, self.reader, self.writer = host, port, None, None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """One request; a kept-alive connection the server has closed meanwhile is reopened once (as clients do)."""
        reused = self.writer is not None
        if not reused:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d"
                          b"\r\n\r\n%s" % (path.encode(), self.host.encode(), len(body), body))
        await self.writer.drain()
        line = await self.reader.readline()
        if not line:
            self.close()
            if reused:
                return await self.post(path, body)
            raise ConnectionError("connection closed before a response")
        status = int(line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _run(url: str, bodies: list[tuple[bool, bytes]], concurrency: int, max_requests: int,
               max_seconds: float) -> Result:
    host, port = url.removeprefix("http://").split(":")
    result, cycle = Result(), itertools.cycle(bodies)
    budget = iter(range(max_requests))
    deadline = time.monotonic() + max_seconds

    async def worker():
        conn = Connection(host, int(port))
        try:
            for _ in budget:
                if time.monotonic() > deadline:
                    return
                valid, body = next(cycle)
                start = time.perf_counter()
                try:
                    status, payload = await conn.post("/invocations", body)
                except (ConnectionError, asyncio.IncompleteReadError):
                    conn.close()
                    result.unexpected += 1
                    continue
                ms = (time.perf_counter() - start) * 1000
                if valid and status == 200 and "predictions" in json.loads(payload):
                    result.latencies_ms.append(ms)
                elif not valid and 400 <= status < 500:
                    result.refused_as_expected += 1
                else:
                    result.unexpected += 1
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - start
    return result


def load(url: str, bodies: list[tuple[bool, bytes]], concurrency: int, max_requests: int = 400,
         max_seconds: float = 20.0) -> Result:
    """Send up to `max_requests` of `bodies` (cycled; each `(valid, body)`) from `concurrency` connections."""
    return asyncio.run(_run(url, bodies, concurrency, max_requests, max_seconds))
