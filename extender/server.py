"""The extender's HTTP server (aiohttp): the three verbs kube-scheduler calls, health and metrics.

| route | method | answers |
|---|---|---|
| `/filter` | POST | ExtenderFilterResult (`NodeNames` or `Nodes`, as the request came) |
| `/prioritize` | POST | HostPriorityList, a bare list, scores 0..10 |
| `/bind` | POST | ExtenderBindingResult |
| `/healthz` | GET | 200 `ok` while the process and its watches run |
| `/readyz` | GET | 200 `ok` once Nodes and Pods are listed, else 503 with the reason |
| `/metrics` | GET | Prometheus text format |

Bad input never crashes the server: a body that is not what kube-scheduler sends gets HTTP 400 with
the reason; a well-formed request that cannot be served gets HTTP 200 with the protocol's `Error` field
(the scheduler fails that attempt and retries the pod). A pod in the request that cannot be read is a bad
request (400) on every verb. /prioritize answers 500 only while the extender is not synced (the scheduler
then scores without the extender; there is no Error field in a HostPriorityList).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from extender.bind import run_bind
from extender.core import Extender
from extender.filter import run_filter
from extender.prioritize import PrioritizeError, run_prioritize
from extender.protocol import ProtocolError, filter_error, parse_args, parse_binding

log = logging.getLogger("gpuplace.extender.server")

JSON = "application/json"
DEFAULT_MAX_BODY_BYTES = 128 * 2**20  # a NodeList of 20,000 nodes (nodeCacheCapable: false) fits
EXTENDER_KEY: web.AppKey[Extender] = web.AppKey("extender", Extender)
EXECUTOR_KEY: web.AppKey[ThreadPoolExecutor] = web.AppKey("executor", ThreadPoolExecutor)


def _timed(verb: str, handler: Callable[[web.Request], Awaitable[tuple[web.Response, str]]]
           ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        ext = request.app[EXTENDER_KEY]
        start = time.perf_counter()
        try:
            response, outcome = await handler(request)
        except ProtocolError as exc:
            log.warning("/%s: bad request from %s: %s", verb, request.remote, exc)
            response, outcome = web.Response(status=400, text=f"bad {verb} request: {exc}\n"), "bad-request"
        ext.metrics.requests.labels(verb, outcome).inc()
        ext.metrics.latency.labels(verb).observe(time.perf_counter() - start)
        return response

    return wrapped


async def _filter(request: web.Request) -> tuple[web.Response, str]:
    ext = request.app[EXTENDER_KEY]
    args = parse_args(await request.read())
    try:
        result = run_filter(ext, args)
    except Exception as exc:  # a bug must fail one scheduling attempt, not the server
        log.exception("/filter failed")
        result = filter_error(args, f"gpuplace extender internal error: {type(exc).__name__}: {exc}")
    outcome = "error" if result.error else "ok"
    return web.Response(body=result.to_json(), content_type=JSON), outcome


async def _prioritize(request: web.Request) -> tuple[web.Response, str]:
    ext = request.app[EXTENDER_KEY]
    args = parse_args(await request.read())
    try:
        body = run_prioritize(ext, args)
    except PrioritizeError as exc:
        log.warning("/prioritize: %s", exc)
        return web.Response(status=500, text=f"gpuplace: {exc}\n"), "error"
    except ProtocolError:
        raise  # a 400 with the reason (_timed)
    except Exception as exc:
        log.exception("/prioritize failed")
        return web.Response(status=500, text=f"gpuplace extender internal error: {exc}\n"), "error"
    return web.Response(body=body, content_type=JSON), "ok"


async def _bind(request: web.Request) -> tuple[web.Response, str]:
    ext = request.app[EXTENDER_KEY]
    args = parse_binding(await request.read())
    try:
        result = await run_bind(ext, args)
    except Exception as exc:
        log.exception("/bind failed")
        from extender.protocol import ExtenderBindingResult

        result = ExtenderBindingResult(Error=f"gpuplace extender internal error: {type(exc).__name__}: {exc}")
    return web.Response(body=result.to_json(), content_type=JSON), "error" if result.error else "ok"


async def _healthz(request: web.Request) -> web.Response:
    problems = request.app[EXTENDER_KEY].problems()
    if problems:
        return web.Response(status=500, text="; ".join(problems) + "\n")
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    ext = request.app[EXTENDER_KEY]
    why = ext.readiness() or "; ".join(ext.problems())
    if why:
        return web.Response(status=503, text=f"not ready: {why}\n")
    return web.Response(text="ok\n")


async def _metrics(request: web.Request) -> web.Response:
    ext = request.app[EXTENDER_KEY]
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(request.app[EXECUTOR_KEY], generate_latest, ext.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(ext: Extender, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
              executor: ThreadPoolExecutor | None = None) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes)
    app[EXTENDER_KEY] = ext
    pool = executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="gpuplace-metrics")
    app[EXECUTOR_KEY] = pool
    app.router.add_post("/filter", _timed("filter", _filter))
    app.router.add_post("/prioritize", _timed("prioritize", _prioritize))
    app.router.add_post("/bind", _timed("bind", _bind))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)

    async def _shutdown(app: web.Application) -> None:
        if ext.binder is not None:
            await ext.binder.close()
        if executor is None:
            pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(_shutdown)
    return app


def ssl_context(cert_file: str | None, key_file: str | None) -> ssl.SSLContext | None:
    """TLS for the extender's port when both files are given (kube-scheduler: `enableHTTPS: true`)."""
    if not cert_file and not key_file:
        return None
    if not (cert_file and key_file):
        raise ValueError("TLS needs both a certificate and a key file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def serve(app: web.Application, host: str, port: int, tls: ssl.SSLContext | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or forever)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls, backlog=1024)
    await site.start()
    log.info("gpuplace extender listening on %s://%s:%d", "https" if tls else "http", host, port)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
