"""The aiohttp application: /validate, /mutate, /healthz, /readyz, /metrics.

It never takes the cluster down: every review is answered within the configured budget; an internal
error or a timeout answers `allowed: true` with a warning that the check was skipped (and counts it);
a malformed review gets HTTP 400 with the reason; a body over the limit gets 413 (aiohttp's own limit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from placement.dra import CLAIM_KINDS
from placement.workload import CRD_KINDS, WORKLOAD_KINDS
from webhook.admission import Request, ReviewError, allow, deny, parse_review
from webhook.budget import Budget
from webhook.metrics import Metrics
from webhook.validate import Outcome, Reviewer

log = logging.getLogger("gpuplace.webhook")
SKIPPED = "gpuplace: check skipped ({why}); see the gpuplace webhook logs"

REVIEWER = web.AppKey("reviewer", Reviewer)
METRICS = web.AppKey("metrics", Metrics)
BUDGET = web.AppKey("budget", Budget)


def make_app(reviewer: Reviewer, metrics: Metrics | None = None) -> web.Application:
    app = web.Application(client_max_size=reviewer.cfg.max_body_bytes)
    app[REVIEWER] = reviewer
    app[METRICS] = metrics or Metrics()
    app[BUDGET] = Budget(reviewer.cfg.timeout_budget_s)
    app.on_cleanup.append(_close_budget)
    app.router.add_post("/validate", validate_handler)
    app.router.add_post("/mutate", mutate_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def _close_budget(app: web.Application) -> None:
    await app[BUDGET].close()


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def validate_handler(request: web.Request) -> web.Response:
    return await _review(request, "validate", _validate)


async def mutate_handler(request: web.Request) -> web.Response:
    return await _review(request, "mutate", _mutate)


Step = Callable[[web.Application, Request], Awaitable[dict[str, Any]]]


async def _review(request: web.Request, endpoint: str, step: Step) -> web.Response:
    app, metrics = request.app, request.app[METRICS]
    started = time.perf_counter()
    try:
        body = await request.read()
        req = parse_review(body)
    except web.HTTPRequestEntityTooLarge:
        metrics.requests.labels(endpoint, "", "too-large").inc()
        raise
    except (ConnectionError, HttpProcessingError) as exc:  # the client left or broke off the body
        metrics.requests.labels(endpoint, "", "malformed").inc()
        why = " ".join(str(exc).split())  # aiohttp's messages span lines
        log.warning("%s: body not received: %s", endpoint, why)
        return web.json_response({"error": f"body not received: {why}"}, status=400)
    except ReviewError as exc:
        metrics.requests.labels(endpoint, "", "malformed").inc()
        log.warning("%s: malformed review: %s", endpoint, exc)
        return web.json_response({"error": f"malformed AdmissionReview: {exc}"}, status=400)
    budget = app[BUDGET]
    # The checks are CPU-bound and quick; what the budget must cut short is an awaited API read.
    task = budget.enter()
    try:
        answer = await step(app, req)
        outcome = "ok"
    except asyncio.CancelledError:
        if not budget.leave(task):
            raise  # not the budget's doing (shutdown)
        answer = _skipped(req, f"timed out after {budget.seconds:g}s", endpoint)
        outcome = "timeout"
        metrics.skipped.labels(endpoint, "timeout").inc()
        log.error(
            "%s %s %s/%s uid=%s: timed out after %gs; allowed",
            endpoint,
            req.kind,
            req.object_namespace,
            req.object_name,
            req.uid,
            budget.seconds,
        )
    except RecursionError:
        # JSON nests up to 1024 levels; Python code that walks, compares or prints a value gives up near
        # 1000. No workload is nested that deep: a reason, not a stack trace, and the review is allowed.
        answer, outcome = _skipped(req, "object nested too deeply to read", endpoint), "too-deep"
        metrics.skipped.labels(endpoint, "too-deep").inc()
        log.warning(
            "%s %s %s/%s uid=%s: object nested too deeply to read; allowed",
            endpoint,
            req.kind,
            req.object_namespace,
            req.object_name,
            req.uid,
        )
    except Exception:
        answer, outcome = _skipped(req, "internal error", endpoint), "error"
        metrics.skipped.labels(endpoint, "error").inc()
        log.exception(
            "%s %s %s/%s uid=%s: internal error; allowed",
            endpoint,
            req.kind,
            req.object_namespace,
            req.object_name,
            req.uid,
        )
    finally:
        budget.leave(task)
    elapsed = time.perf_counter() - started
    after_answer(_count_request, metrics, endpoint, req.kind, outcome, elapsed)
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


def after_answer(callback: Callable[..., object], *args: Any) -> None:
    """Run bookkeeping (metrics, the decision log line) on the next turn of the loop: after a handler
    returns, aiohttp writes the answer to the socket without yielding, so this work is off the apiserver's
    wait. It still runs, in order, on the same thread, before the next review is read."""
    asyncio.get_running_loop().call_soon(callback, *args)


# The kinds the webhook configurations send; any other kind (a hand-made review) is counted as "other", so
# the metric's series stay bounded whatever a client posts.
COUNTED_KINDS = frozenset(
    {*WORKLOAD_KINDS, *CRD_KINDS, *CLAIM_KINDS, "HorizontalPodAutoscaler", "ScaledObject"}
)


def _count_request(metrics: Metrics, endpoint: str, kind: str, outcome: str, elapsed: float) -> None:
    kind = kind if kind in COUNTED_KINDS else "other"
    metrics.child(metrics.requests, endpoint, kind, outcome).inc()
    metrics.child(metrics.latency, endpoint).observe(elapsed)


def _skipped(req: Request, why: str, endpoint: str) -> dict[str, Any]:
    # A mutating response carries no warning about validation; both fail open.
    return allow(req.uid, warnings=[SKIPPED.format(why=why)] if endpoint == "validate" else ())


async def _validate(app: web.Application, req: Request) -> dict[str, Any]:
    outcome = await app[REVIEWER].validate(req)
    after_answer(_account_validate, app[METRICS], req, outcome)
    d = outcome.decision
    if not d.allowed:
        return deny(req.uid, d.message, d.warnings, d.audit)
    return allow(req.uid, d.warnings, d.audit)


def _account_validate(metrics: Metrics, req: Request, outcome: Outcome) -> None:
    d = outcome.decision
    for f in outcome.findings:
        metrics.child(metrics.findings, f.code, f.effective_severity, outcome.mode).inc()
    metrics.child(metrics.decisions, d.verdict, outcome.mode).inc()
    if outcome.coverage is not None:
        metrics.child(metrics.judged, outcome.coverage.level, outcome.coverage.reason).inc()
    if not log.isEnabledFor(logging.INFO):
        return
    codes = ",".join(sorted({f.code for f in outcome.findings})) or "-"
    log.info(
        "validate %s %s %s/%s uid=%s dryRun=%s mode=%s decision=%s codes=%s%s",
        req.operation,
        req.kind,
        req.object_namespace,
        req.object_name,
        req.uid,
        req.dry_run,
        outcome.mode,
        d.verdict,
        codes,
        f" ({outcome.note})" if outcome.note else "",
    )


async def _mutate(app: web.Application, req: Request) -> dict[str, Any]:
    reviewer = app[REVIEWER]
    mode, _ = await reviewer.mode_for(req.object_namespace)
    if mode == "exempt":
        return allow(req.uid)
    ops = await reviewer.claim_memory_floor(req) if req.kind == "ResourceClaim" else reviewer.mutate(req)
    if ops and log.isEnabledFor(logging.INFO):
        after_answer(
            log.info,
            "mutate %s %s %s/%s uid=%s: %d patch ops",
            req.operation,
            req.kind,
            req.object_namespace,
            req.object_name,
            req.uid,
            len(ops),
        )
    return allow(req.uid, patch=ops)
