"""Built-in certificate bootstrap for clusters without cert-manager: a CA and a serving certificate for
the webhook Service, and the CA bundle patched into the webhook configurations.

The CA outlives the serving certificates it signs (twice their lifetime), so renewing a serving certificate
keeps the CA bundle the apiserver trusts: replicas still on the old certificate stay verifiable. When the CA
itself is replaced, the bundle carries the new and the old CA until the old one expires.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RENEW_BEFORE = dt.timedelta(days=30)
# Keys of the Secret (type kubernetes.io/tls) and of the files written for the webhook.
CA_CRT, CA_KEY, TLS_CRT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"


@dataclass(frozen=True)
class Issued:
    ca_pem: bytes  # the bundle to trust: the current CA first, then older CAs still valid
    cert_pem: bytes
    key_pem: bytes
    ca_key_pem: bytes = b""  # the current CA's key (kept in the Secret to renew from the same CA)

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_pem).decode()

    def data(self) -> dict[str, bytes]:
        out = {CA_CRT: self.ca_pem, TLS_CRT: self.cert_pem, TLS_KEY: self.key_pem}
        if self.ca_key_pem:
            out[CA_KEY] = self.ca_key_pem
        return out

    @classmethod
    def from_data(cls, data: Mapping[str, bytes]) -> Issued | None:
        if not all(data.get(k) for k in (CA_CRT, TLS_CRT, TLS_KEY)):
            return None
        return cls(data[CA_CRT], data[TLS_CRT], data[TLS_KEY], data.get(CA_KEY) or b"")

    @classmethod
    def from_dir(cls, out_dir: Path) -> Issued | None:
        keys = (CA_CRT, CA_KEY, TLS_CRT, TLS_KEY)
        return cls.from_data({k: (out_dir / k).read_bytes() for k in keys if (out_dir / k).is_file()})


def dns_names(service: str, namespace: str) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_ca(namespace: str, days: int, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a CA valid for `days`."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"gpuplace-ca {namespace}"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, str(x509.random_serial_number())),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def serving_cert(
    ca_pem: bytes,
    ca_key_pem: bytes,
    names: Sequence[str],
    days: int,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `names`, signed by the CA, never valid past the CA."""
    now = now or _now()
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + dt.timedelta(days=days), ca.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[min(2, len(names) - 1)])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue(service: str, namespace: str, days: int = 365, extra_names: tuple[str, ...] = ()) -> Issued:
    """A fresh CA (valid 2 x days) and a serving certificate for the Service (valid `days`)."""
    ca_pem, ca_key_pem = new_ca(namespace, days * 2)
    cert_pem, key_pem = serving_cert(ca_pem, ca_key_pem, [*dns_names(service, namespace), *extra_names], days)
    return Issued(ca_pem, cert_pem, key_pem, ca_key_pem)


def cert_needs_renewal(cert_pem: bytes, names: Sequence[str], now: dt.datetime | None = None) -> bool:
    """True when the certificate is unreadable, expires within 30 days, or lacks one of the names."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return True
    if cert.not_valid_after_utc - (now or _now()) < RENEW_BEFORE:
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    return not set(names) <= set(san.get_values_for_type(x509.DNSName))


def needs_renewal(cert_file: Path, names: list[str]) -> bool:
    try:
        return cert_needs_renewal(cert_file.read_bytes(), names)
    except OSError:
        return True


def _signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ensure(
    current: Issued | None,
    service: str,
    namespace: str,
    days: int = 365,
    now: dt.datetime | None = None,
    extra_names: tuple[str, ...] = (),
) -> tuple[Issued, str]:
    """What the certificate store should hold, and what was done: "kept" (current is valid for 30 days
    more and names the Service), "renewed" (a new serving certificate from the same CA: the bundle does not
    change), or "new CA" (none yet, or the CA cannot cover a full-length serving certificate any more; the
    bundle keeps the previous CA until it expires so replicas on the old certificate stay verifiable)."""
    now = now or _now()
    names = [*dns_names(service, namespace), *extra_names]
    cas = _bundle(current.ca_pem, now) if current else []
    ca_pem = cas[0].public_bytes(serialization.Encoding.PEM) if cas else b""
    if (
        current is not None
        and ca_pem
        and not cert_needs_renewal(current.cert_pem, names, now)
        and _signed_by(current.cert_pem, ca_pem)
    ):
        return current, "kept"
    if (
        current is not None
        and ca_pem
        and _key_matches(current.ca_key_pem, cas[0])
        and cas[0].not_valid_after_utc - now >= dt.timedelta(days=days)
    ):
        cert_pem, key_pem = serving_cert(ca_pem, current.ca_key_pem, names, days, now)
        return Issued(_pem(cas), cert_pem, key_pem, current.ca_key_pem), "renewed"
    new_ca_pem, new_ca_key = new_ca(namespace, days * 2, now)
    cert_pem, key_pem = serving_cert(new_ca_pem, new_ca_key, names, days, now)
    # Older CAs stay in the bundle while they are valid: replicas on their certificates stay verifiable.
    return Issued(new_ca_pem + _pem(cas), cert_pem, key_pem, new_ca_key), "new CA"


def _key_matches(key_pem: bytes, ca: x509.Certificate) -> bool:
    if not key_pem:
        return False
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        key.public_key().public_bytes(serialization.Encoding.DER, spki)
        == ca.public_key().public_bytes(serialization.Encoding.DER, spki)
    )


def _bundle(pem: bytes, now: dt.datetime) -> list[x509.Certificate]:
    """The CA certificates of a bundle that are still valid, in order."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []
    return [c for c in certs if c.not_valid_after_utc > now]


def _pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def write(issued: Issued, out_dir: Path) -> None:
    """ca.crt, tls.crt, tls.key and, when known, ca.key (both keys 0600) into out_dir: a later run renews
    from the same CA. Each file is replaced atomically, the key before the certificate; a webhook reading in
    between sees a mismatched pair, refuses it and keeps its current one until the next check."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [
        (CA_CRT, issued.ca_pem, 0o644),
        (TLS_KEY, issued.key_pem, 0o600),
        (TLS_CRT, issued.cert_pem, 0o644),
    ]
    if issued.ca_key_pem:
        files.insert(0, (CA_KEY, issued.ca_key_pem, 0o600))
    for name, data, mode in files:
        tmp = out_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, out_dir / name)
