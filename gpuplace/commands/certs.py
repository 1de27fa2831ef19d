"""`gpuplace certs`: the built-in certificate bootstrap (an init step for clusters without cert-manager)."""

from __future__ import annotations

import argparse
import base64
import logging
from pathlib import Path

from gpuplace.cli import EXIT_OK, UsageError

log = logging.getLogger("gpuplace.certs")

HELP = """Create a CA and a serving certificate for the webhook Service (kept if still valid for 30 days and
naming the Service), write ca.crt, tls.crt and tls.key, and patch the CA bundle into the gpuplace webhook
configurations. Run as an init container (manifests/overlays/bootstrap) or once by hand.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "certs", help="bootstrap webhook certificates without cert-manager", description=HELP
    )
    p.add_argument("--service", default="gpuplace-webhook")
    p.add_argument("--namespace", default="gpuplace-system")
    p.add_argument("--out-dir", default="/certs", type=Path)
    p.add_argument("--days", type=int, default=365)
    p.add_argument(
        "--webhook-config",
        action="append",
        default=[],
        help="name of a Validating/MutatingWebhookConfiguration to patch (repeatable; default: gpuplace)",
    )
    p.add_argument("--no-patch", action="store_true", help="only write the files")
    p.add_argument("--kubeconfig", help="default: in-cluster, then $KUBECONFIG")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook.certs import dns_names, issue, needs_renewal, write

    out: Path = args.out_dir
    if needs_renewal(out / "tls.crt", dns_names(args.service, args.namespace)):
        try:
            write(issue(args.service, args.namespace, args.days), out)
        except OSError as exc:
            raise UsageError(f"--out-dir {out}: {exc.strerror}") from exc
        log.info("issued a serving certificate for %s.%s.svc in %s", args.service, args.namespace, out)
    else:
        log.info("serving certificate in %s is valid; kept", out)
    if not args.no_patch:
        bundle = base64.b64encode((out / "ca.crt").read_bytes()).decode()
        for name in args.webhook_config or ["gpuplace"]:
            patch_ca_bundle(name, bundle, args.kubeconfig)
    return EXIT_OK


def patch_ca_bundle(name: str, bundle: str, kubeconfig: str | None) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig)
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    api = client.AdmissionregistrationV1Api()
    for kind, read, patch in (
        (
            "ValidatingWebhookConfiguration",
            api.read_validating_webhook_configuration,
            api.patch_validating_webhook_configuration,
        ),
        (
            "MutatingWebhookConfiguration",
            api.read_mutating_webhook_configuration,
            api.patch_mutating_webhook_configuration,
        ),
    ):
        try:
            current = read(name)
        except ApiException as exc:
            if exc.status == 404:
                log.warning("%s %s not found; nothing to patch", kind, name)
                continue
            raise UsageError(f"cannot read {kind} {name}: HTTP {exc.status} {exc.reason}") from exc
        # A JSON patch (list body) per webhook index: explicit, and independent of merge strategies.
        ops = [
            {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle}
            for i in range(len(current.webhooks or []))
        ]
        if ops:
            patch(name, ops)
        log.info("patched caBundle into %s %s (%d webhooks)", kind, name, len(ops))
