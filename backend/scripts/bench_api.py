"""API benchmark: ``python -m backend.scripts.bench_api --engines 15 --clients 200 --seconds 10``.

Starts Redis (project launcher) and the real manager with N engines and its API process,
then drives ``GET /engines/status`` from C concurrent keep-alive HTTP/1.1 connections
(a small asyncio client, so the load generator costs little CPU on this 2-core machine).

Two modes, both printed:
* closed loop: every client sends its next request as soon as the last answer arrived
  (maximum throughput; latency then is mostly queueing: clients / throughput);
* paced: every client polls once per ``--interval`` seconds (dashboards, ``watch -n``),
  the clients' phases spread evenly over the interval.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from backend.scripts.bench_fleet import fleet

NS = "benchapi:"
REQUEST = b"GET /engines/status HTTP/1.1\r\nHost: bench\r\n\r\n"


async def one_client(port: int, until: float, interval: float | None, out: list[float], phase: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    next_at = time.perf_counter() + phase  # paced clients are spread over the interval, not in lockstep
    try:
        while time.perf_counter() < until:
            if interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            t0 = time.perf_counter()
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            out.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
    finally:
        writer.close()
    return errors


async def drive(port: int, clients: int, seconds: float, interval: float | None) -> tuple[list[float], int, float]:
    lat: list[float] = []
    t0 = time.perf_counter()
    until = t0 + seconds
    phases = [(interval or 0.0) * i / clients for i in range(clients)]
    errors = await asyncio.gather(*(one_client(port, until, interval, lat, ph) for ph in phases))
    return lat, sum(errors), time.perf_counter() - t0


def report(label: str, lat: list[float], errors: int, took: float) -> None:
    lat.sort()

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    print(f"{label}: {len(lat)} requests in {took:.1f}s = {len(lat) / took:.0f} req/s, errors {errors}; "
          f"latency min {lat[0] * 1000:.2f} ms, p50 {statistics.median(lat) * 1000:.2f} ms, "
          f"p95 {q(0.95):.2f} ms, p99 {q(0.99):.2f} ms, max {lat[-1] * 1000:.2f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", type=int, default=15)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=1.0, help="paced mode: seconds between a client's polls")
    args = ap.parse_args(argv)
    if args.engines < 1 or args.clients < 1 or args.seconds <= 0 or args.interval <= 0:
        print("bench_api: error: --engines/--clients/--seconds/--interval must be positive", file=sys.stderr)
        return 2
    symbols = [f"A{i:02d}USDT" for i in range(args.engines)]
    with fleet("bench_api", NS, symbols) as f:
        asyncio.run(drive(f.api_port, 4, 1.0, None))  # warm-up
        print(f"{args.engines} engines running; {args.clients} concurrent clients on /engines/status")
        report("closed loop", *asyncio.run(drive(f.api_port, args.clients, args.seconds, None)))
        report(f"paced, each client every {args.interval:g}s",
               *asyncio.run(drive(f.api_port, args.clients, args.seconds, args.interval)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
