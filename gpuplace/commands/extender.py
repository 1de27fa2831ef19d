"""`gpuplace extender`: serve placement as a kube-scheduler extender (filter, prioritize, bind)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal

from pydantic import ValidationError

from common.config import ConfigError, ExtenderConfig, load_config
from common.logs import batch_root_logging, quiet_client_errors
from gpuplace.cli import EXIT_OK, UsageError

HELP = """Serve GPU placement as a kube-scheduler extender: /filter, /prioritize and /bind (extender v1,
nodeCacheCapable), plus /healthz, /readyz and /metrics.

It lists and watches Nodes and Pods with the credentials it finds (--kubeconfig, $KUBECONFIG, the
in-cluster service account, ~/.kube/config), needs get/list/watch on nodes and pods and create on
pods/binding, and is ready once both are listed. kube-scheduler calls it per GPU pod; see
extender/README.md for the scheduler configuration (manifests/scheduler/ ships one).

flags override the config file's `extender:` section.
examples:
  gpuplace extender --kubeconfig ~/.kube/config --port 8888
  gpuplace extender -c /etc/gpuplace/config.yaml --tls-cert-file tls.crt --tls-key-file tls.key
"""

LOG_LEVELS = ("debug", "info", "warning", "error")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extender",
        help="serve the kube-scheduler extender",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", help="gpuplace config file (default: $GPUPLACE_CONFIG)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--address", help="listen address (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="listen port (default 8888)")
    p.add_argument("--tls-cert-file", help="serve HTTPS with this certificate (kube-scheduler: enableHTTPS)")
    p.add_argument("--tls-key-file", help="private key of --tls-cert-file")
    p.add_argument("--policy", help="packing policy: gpuplace (default), best-fit, fgd, most-allocated, ...")
    p.add_argument("--shortlist", type=int, metavar="N",
                   help="/filter offers only the best N fitting nodes (default 1; 0: every fitting node, "
                        "for an extender that is one opinion among the scheduler's plugins)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                   help="info logs one line per bind and per refused pod; debug adds every filter and score")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> ExtenderConfig:
    try:
        base = load_config(args.config).extender
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    names = ("address", "port", "tls_cert_file", "tls_key_file", "policy", "shortlist")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    try:
        return ExtenderConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"--{where.replace('_', '-')}: {message}") from exc


def run(args: argparse.Namespace) -> int:
    from extender.cache.cluster_cache import ClusterCache
    from extender.cache.informer import (
        Informer,
        NodeHandler,
        PodHandler,
        claim_handler,
        dra_sources,
        kube_sources,
        slice_handler,
    )
    from extender.core import Extender, Settings
    from extender.kube import ApiBinder, KubeConfigError, client_factory, load_configuration
    from extender.metrics import ExtenderMetrics
    from extender.server import build_app, serve, ssl_context
    from placement.scheduling import PolicyHolder, ShapeWindow

    if args.log_level:
        logging.getLogger().setLevel(args.log_level.upper())
    log = logging.getLogger("gpuplace.extender")
    batch_root_logging()  # at debug level a line per pod: one write per batch, not per line
    quiet_client_errors()  # a client's malformed HTTP: one warning line, no stack trace
    cfg = _settings(args)
    ctx = load_config(args.config).check_context()
    try:
        configuration, where = load_configuration(args.kubeconfig, args.context)
        factory = client_factory(configuration)
        tls = ssl_context(cfg.tls_cert_file, cfg.tls_key_file)
    except (KubeConfigError, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc

    cache = ClusterCache(ctx.gpus, nomination_ttl_s=cfg.nomination_ttl_s, assumed_ttl_s=cfg.assumed_ttl_s)
    policy = PolicyHolder(cfg.policy, ShapeWindow(cfg.shape_window))
    metrics = ExtenderMetrics()
    ext = Extender(cache, ctx, policy, metrics, ApiBinder(configuration, cfg.bind_timeout_s),
                   Settings(cfg.nomination_ttl_s, cfg.assumed_ttl_s, cfg.bind_timeout_s, cfg.shortlist))
    metrics.register_cluster(cache, policy.distribution)

    def restarted(kind: str, reason: str) -> None:
        metrics.watch_restarts.labels(kind, reason).inc()

    node_source, pod_source = kube_sources(factory)
    slice_source, claim_source = dra_sources(factory)
    informers = [
        Informer(node_source, NodeHandler(cache), watch_timeout_s=cfg.watch_timeout_s, on_restart=restarted),
        Informer(pod_source, PodHandler(cache, ext.observe_bound), watch_timeout_s=cfg.watch_timeout_s,
                 on_restart=restarted),
        # DRA nodes: their GPUs come from ResourceSlices (readiness waits only for nodes and pods: a cluster
        # without DRA, or an extender without RBAC for it, keeps working with the informer retrying).
        Informer(slice_source, slice_handler(cache), watch_timeout_s=cfg.watch_timeout_s,
                 on_restart=restarted),
        Informer(claim_source, claim_handler(cache), watch_timeout_s=cfg.watch_timeout_s,
                 on_restart=restarted),
    ]
    def alive(informer: Informer) -> str | None:
        return None if informer.alive() else f"{informer.kind} informer thread stopped"

    for informer in informers:
        ext.health_checks.append(functools.partial(alive, informer))
    log.info("gpuplace extender: credentials from %s, policy %s, listing nodes and pods", where, cfg.policy)
    for informer in informers:
        informer.start()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        app = build_app(ext, max_body_bytes=cfg.max_body_bytes)
        await serve(app, cfg.address, cfg.port, tls, stop)

    try:
        asyncio.run(main())
    except OSError as exc:  # e.g. the port is taken
        raise UsageError(f"cannot serve on {cfg.address}:{cfg.port}: {exc.strerror or exc}") from exc
    finally:
        for informer in informers:
            informer.stop(timeout=2.0)
        log.info("gpuplace extender stopped")
    return EXIT_OK
