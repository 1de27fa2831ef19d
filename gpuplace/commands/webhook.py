"""`gpuplace webhook`: the validating + mutating admission webhook (HTTPS)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import AsyncIterator

from common.config import ConfigError, load_config
from common.logs import batch_root_logging, quiet_client_errors
from gpuplace.cli import UsageError

log = logging.getLogger("gpuplace.webhook")

HELP = """Serve /validate and /mutate (AdmissionReview v1) over HTTPS, plus /healthz, /readyz and /metrics.

The serving certificate is read from files and reloaded when they change (cert-manager or `gpuplace certs`).
Configuration: one YAML file (--config or $GPUPLACE_CONFIG), the `webhook:` section; flags override it.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("webhook", help="run the admission webhook", description=HELP)
    p.add_argument("-c", "--config", help="gpuplace config file (default: $GPUPLACE_CONFIG)")
    p.add_argument("--port", type=int, help="HTTPS port (default: webhook.port, 8443)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--cert-file", help="default: webhook.cert_file")
    p.add_argument("--key-file", help="default: webhook.key_file")
    p.add_argument("--kubeconfig", help="for namespace labels and autoscaler targets (default: in-cluster)")
    p.add_argument("--no-api", action="store_true", help="never read the API (modes from config only)")
    p.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", "gpuplace-system"),
        help="the webhook's own namespace, always exempt (default: $POD_NAMESPACE)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from webhook.cluster import ClusterReader, kubernetes_reader
    from webhook.server import make_app
    from webhook.tls import ReloadingTLS
    from webhook.validate import Reviewer

    batch_root_logging()  # a line per review: one write per batch, not per line
    quiet_client_errors()  # a client's malformed HTTP: one warning line, no stack trace

    try:
        config = load_config(args.config)
        ctx = config.check_context()
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    cfg = config.webhook
    try:
        tls = ReloadingTLS(args.cert_file or cfg.cert_file, args.key_file or cfg.key_file)
    except (OSError, ValueError) as exc:
        raise UsageError(f"serving certificate: {exc}; run `gpuplace certs` or mount cert-manager's") from exc
    reader: ClusterReader | None = None
    if not args.no_api:
        try:
            reader = kubernetes_reader(args.kubeconfig, cfg.target_lookup_timeout_s, cfg.target_cache_ttl_s)
        except Exception as exc:  # no kubeconfig, no service account: run on config defaults
            log.warning("no API access (%s): namespace modes come from the config only", exc)
    app = make_app(Reviewer(cfg, ctx, reader, args.namespace))

    async def watch_certs(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(tls.watch(cfg.cert_reload_s))
        yield
        task.cancel()

    app.cleanup_ctx.append(watch_certs)
    port = args.port or cfg.port
    log.info(
        "gpuplace webhook on https://%s:%d (mode %s, exempt %s)",
        args.host,
        port,
        cfg.mode,
        ", ".join(["kube-system", args.namespace, *cfg.exempt_namespaces]),
    )
    web.run_app(app, host=args.host, port=port, ssl_context=tls.context, print=None, access_log=None)
    return 0
