"""`gpuplace certs`: the built-in certificate bootstrap for clusters without cert-manager."""

from __future__ import annotations

import argparse
import base64
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.kube import configure
from gpuplace.cli import EXIT_OK, UsageError

log = logging.getLogger("gpuplace.certs")

HELP = """Create a CA and a serving certificate for the webhook Service, keep them in a Secret (or in files),
and patch the CA bundle into the gpuplace webhook configurations. Idempotent: a certificate valid for 30 more
days that names the Service is kept; one that is not is renewed from the same CA, so the bundle the apiserver
trusts does not change (a new CA is made only when the old one cannot cover a full certificate; the bundle
then carries both). Safe to run from several places at once: the Secret is written with optimistic
concurrency and the loser uses the winner's certificate.

  gpuplace certs --secret gpuplace-webhook-tls   # bootstrap Job and renewal CronJob (overlays/bootstrap)
  gpuplace certs --out-dir ./certs --no-patch    # files only, e.g. to run the webhook locally
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "certs",
        help="bootstrap webhook certificates without cert-manager",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--service", default="gpuplace-webhook", help="the webhook Service (default: %(default)s)")
    p.add_argument("--namespace", default="gpuplace-system", help="its namespace (default: %(default)s)")
    p.add_argument("--secret", help="keep the CA and certificate in this Secret (type kubernetes.io/tls)")
    p.add_argument("--out-dir", type=Path, help="also (or only) write ca.crt, tls.crt, tls.key here")
    p.add_argument(
        "--days", type=int, default=365, help="serving certificate lifetime (default: %(default)s)"
    )
    p.add_argument(
        "--extra-name", action="append", default=[], help="another DNS name for the certificate (repeatable)"
    )
    p.add_argument(
        "--webhook-config",
        action="append",
        default=[],
        help="Validating/MutatingWebhookConfiguration to patch (repeatable; default: gpuplace)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for the webhook configurations to exist (default: %(default)s)",
    )
    p.add_argument("--no-patch", action="store_true", help="do not patch the webhook configurations")
    p.add_argument("--kubeconfig", help="default: in-cluster, then $KUBECONFIG")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook.certs import Issued, ensure, write

    if not args.secret and not args.out_dir:
        raise UsageError("give --secret NAME (in-cluster) or --out-dir DIR (files), or both")
    if args.days < 2:
        raise UsageError("--days must be at least 2")
    extra = tuple(args.extra_name)
    api = None if args.no_patch and not args.secret else _api_client(args.kubeconfig)
    if args.secret:
        assert api is not None
        issued = _ensure_secret(api, args.secret, args.namespace, args.service, args.days, extra)
    else:
        current = Issued.from_dir(args.out_dir)
        issued, what = ensure(current, args.service, args.namespace, args.days, extra_names=extra)
        log.info(
            "serving certificate for %s.%s.svc in %s: %s", args.service, args.namespace, args.out_dir, what
        )
    if args.out_dir:
        try:
            write(issued, args.out_dir)
        except OSError as exc:
            raise UsageError(f"--out-dir {args.out_dir}: {exc.strerror}") from exc
    if not args.no_patch:
        assert api is not None
        for name in args.webhook_config or ["gpuplace"]:
            patch_ca_bundle(api, name, issued.ca_bundle, args.wait)
    return EXIT_OK


def _api_client(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    try:
        configure(kubeconfig)
    except (config.ConfigException, OSError) as exc:
        raise UsageError(f"no Kubernetes API access: {exc}") from exc
    return client.ApiClient()


def _ensure_secret(
    api: Any, name: str, namespace: str, service: str, days: int, extra: tuple[str, ...]
) -> Any:
    """Read the Secret, renew what needs it, write it back with optimistic concurrency; on a conflict
    (another replica or Job won the race) start over from what it wrote."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from webhook.certs import Issued, ensure

    core = client.CoreV1Api(api)
    for _attempt in range(5):
        try:
            secret = core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise UsageError(
                    f"cannot read Secret {namespace}/{name}: HTTP {exc.status} {exc.reason}"
                ) from exc
            secret = None
        data = {k: base64.b64decode(v) for k, v in ((secret.data or {}) if secret else {}).items()}
        current = Issued.from_data(data) if secret else None
        issued, what = ensure(current, service, namespace, days, extra_names=extra)
        if what == "kept":
            log.info("Secret %s/%s holds a valid certificate for %s; kept", namespace, name, service)
            return issued
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels={"app.kubernetes.io/part-of": "gpuplace"},
                resource_version=secret.metadata.resource_version if secret and secret.metadata else None,
            ),
            type="kubernetes.io/tls",
            data={k: base64.b64encode(v).decode() for k, v in issued.data().items()},
        )
        try:
            if secret is None:
                core.create_namespaced_secret(namespace, body)
            else:
                core.replace_namespaced_secret(name, namespace, body)
        except ApiException as exc:
            if exc.status == 409:  # created or updated meanwhile by another run: use theirs
                log.info("Secret %s/%s changed meanwhile; reading it again", namespace, name)
                continue
            raise UsageError(
                f"cannot write Secret {namespace}/{name}: HTTP {exc.status} {exc.reason}"
            ) from exc
        log.info(
            "Secret %s/%s: %s (serving certificate for %s.%s.svc)", namespace, name, what, service, namespace
        )
        return issued
    raise UsageError(f"Secret {namespace}/{name} kept changing under 5 attempts to write it")


def patch_ca_bundle(api: Any, name: str, bundle: str, wait_s: float = 0.0) -> None:
    """Set caBundle on every webhook of the Validating and Mutating configurations called `name`, waiting
    up to `wait_s` for them to exist (they may be applied in the same `kubectl apply -k` as this Job)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    adm = client.AdmissionregistrationV1Api(api)
    kinds: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
        (
            "ValidatingWebhookConfiguration",
            adm.read_validating_webhook_configuration,
            adm.patch_validating_webhook_configuration,
        ),
        (
            "MutatingWebhookConfiguration",
            adm.read_mutating_webhook_configuration,
            adm.patch_mutating_webhook_configuration,
        ),
    ]
    deadline = time.monotonic() + wait_s
    for kind, read, patch in kinds:
        while True:
            try:
                current = read(name)
                break
            except ApiException as exc:
                if exc.status != 404:
                    raise UsageError(f"cannot read {kind} {name}: HTTP {exc.status} {exc.reason}") from exc
                if time.monotonic() >= deadline:
                    raise UsageError(f"{kind} {name} not found (waited {wait_s:g}s)") from exc
                time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
        hooks = current.webhooks or []
        # A JSON patch per webhook index (`test` first: the list did not change since it was read).
        ops: list[dict[str, Any]] = []
        for i, hook in enumerate(hooks):
            if hook.client_config.ca_bundle == bundle:
                continue
            ops += [
                {"op": "test", "path": f"/webhooks/{i}/name", "value": hook.name},
                {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle},
            ]
        if ops:
            try:
                patch(name, ops)
            except ApiException as exc:
                raise UsageError(f"cannot patch {kind} {name}: HTTP {exc.status} {exc.reason}") from exc
            log.info("patched caBundle into %s %s (%d of %d webhooks)", kind, name, len(ops) // 2, len(hooks))
        else:
            log.info("%s %s already trusts this CA bundle", kind, name)
