#!/usr/bin/env python3
"""Drive /validate over HTTPS with keep-alive from a separate process on loopback, and compare with the
floor: a bare aiohttp endpoint on the same machine that answers `allowed: true`.

    python bench/webhook_bench.py [--rate 500] [--seconds 10] [--concurrency 16]

The review mix is every object in examples/ (denials, warnings, clean workloads, autoscalers) as
AdmissionReview CREATE requests. Each server runs in its own process; the load runs in this one. Printed:
p50/p99 latency and reviews/s at a fixed offered rate and at the maximum rate (closed loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def reviews() -> list[bytes]:
    out = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj:
                continue
            group, _, version = obj["apiVersion"].rpartition("/")
            req = {
                "uid": "",
                "kind": {"group": group, "version": version, "kind": obj["kind"]},
                "operation": "CREATE",
                "namespace": obj["metadata"].get("namespace", "default"),
                "name": obj["metadata"]["name"],
                "object": obj,
                "oldObject": None,
                "dryRun": False,
                "userInfo": {"username": "bench"},
            }
            out.append(
                json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
            )
    return [r.replace('"uid": ""', f'"uid": "{uuid.uuid4()}"').encode() for r in out]


def serve_floor(port: int, cert: str, key: str) -> None:
    from aiohttp import web

    async def allow(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": body["request"]["uid"], "allowed": True},
            }
        )

    app = web.Application()
    app.router.add_post("/validate", allow)
    app.router.add_get("/healthz", lambda _r: web.Response(text="ok"))  # type: ignore[arg-type,return-value]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=ctx, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str, ssl_ctx: ssl.SSLContext, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with session.get(url, ssl=ssl_ctx) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


async def run_load(
    url: str,
    bodies: list[bytes],
    ssl_ctx: ssl.SSLContext,
    seconds: float,
    rate: float | None,
    concurrency: int,
) -> tuple[list[float], float]:
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency, ssl=ssl_ctx, keepalive_timeout=60)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=conn) as session:

        async def one(i: int) -> None:
            t = time.perf_counter()
            async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as resp:
                await resp.read()
                assert resp.status == 200
            latencies.append(time.perf_counter() - t)

        for i in range(concurrency * 4):  # warm up connections and caches
            await one(i)
        latencies.clear()
        start = time.perf_counter()
        if rate:  # open loop at a fixed offered rate, bounded in-flight
            sem, tasks, i = asyncio.Semaphore(concurrency * 8), [], 0
            while time.perf_counter() - start < seconds:
                target = start + i / rate
                if target > time.perf_counter():
                    await asyncio.sleep(target - time.perf_counter())

                async def guarded(k: int) -> None:
                    async with sem:
                        await one(k)

                tasks.append(asyncio.create_task(guarded(i)))
                i += 1
            await asyncio.gather(*tasks)
        else:  # closed loop: as fast as `concurrency` workers go

            async def worker(w: int) -> None:
                k = w
                while time.perf_counter() - start < seconds:
                    await one(k)
                    k += concurrency

            await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, len(latencies) / elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve-floor", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), args.serve_floor[1], args.serve_floor[2])
        return 0
    from webhook.certs import issue, write

    tmp = Path(tempfile.mkdtemp(prefix="gpuplace-bench-"))
    write(issue("bench", "bench", extra_names=("localhost",)), tmp)
    client_ctx = ssl.create_default_context(cafile=str(tmp / "ca.crt"))
    client_ctx.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
    bodies = reviews()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results = []
    servers = {
        "gpuplace /validate": [
            sys.executable,
            "-m",
            "gpuplace",
            "webhook",
            "--no-api",
            "--host",
            "127.0.0.1",
            "--cert-file",
            str(tmp / "tls.crt"),
            "--key-file",
            str(tmp / "tls.key"),
            "--port",
        ],
        "floor (allowed: true)": [sys.executable, __file__, "--serve-floor"],
    }
    for name, argv in servers.items():
        port = free_port()
        cmd = (
            [*argv, str(port)]
            if name.startswith("gpuplace")
            else [*argv, str(port), str(tmp / "tls.crt"), str(tmp / "tls.key")]
        )
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        try:
            asyncio.run(wait_ready(f"https://127.0.0.1:{port}/healthz", client_ctx, proc))
            url = f"https://127.0.0.1:{port}/validate"
            for label, rate in ((f"{args.rate:g}/s offered", args.rate), ("max (closed loop)", None)):
                lat, rps = asyncio.run(
                    run_load(url, bodies, client_ctx, args.seconds, rate, args.concurrency)
                )
                results.append((name, label, pct(lat, 50) * 1000, pct(lat, 99) * 1000, rps, len(lat)))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(
        f"{len(bodies)} distinct reviews from examples/, HTTPS keep-alive, {args.concurrency} connections, "
        f"{args.seconds:g}s per run, {os.cpu_count()} cores shared by server and client"
    )
    print(f"{'endpoint':<24} {'load':<20} {'p50 ms':>8} {'p99 ms':>8} {'reviews/s':>10} {'n':>7}")
    for name, label, p50, p99, rps, n in results:
        print(f"{name:<24} {label:<20} {p50:8.2f} {p99:8.2f} {rps:10.0f} {n:7d}")
    gp = {r[1]: r for r in results if r[0].startswith("gpuplace")}
    fl = {r[1]: r for r in results if r[0].startswith("floor")}
    key = f"{args.rate:g}/s offered"
    print(
        f"\ntargets: p99 < 10 ms at {args.rate:g}/s: {gp[key][3]:.2f} ms; p50 within 1.5x of the floor: "
        f"{gp[key][2] / fl[key][2]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
