"""The certificate bootstrap: kept while valid, renewed from the same CA (the trusted bundle does not
change), a new CA only when the old one cannot cover a full certificate, and then both CAs trusted.
Checked with real TLS handshakes, not only by reading the certificates."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from gpuplace.cli import main
from webhook.certs import Issued, dns_names, ensure

SERVICE, NAMESPACE = "gpuplace-webhook", "gpuplace-system"
HOST = f"{SERVICE}.{NAMESPACE}.svc"
NOW = dt.datetime.now(dt.UTC)


def handshake(server: Issued, trusted_bundle: bytes, tmp: Path, host: str = HOST) -> None:
    """A TLS handshake in memory: `server` serves its certificate, the client trusts `trusted_bundle` and
    checks `host` (what the apiserver does with a webhook's caBundle). Raises ssl.SSLError on failure."""
    (tmp / "tls.crt").write_bytes(server.cert_pem)
    (tmp / "tls.key").write_bytes(server.key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    client_ctx = ssl.create_default_context(cadata=trusted_bundle.decode())
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
    srv = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", srv)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_a_fresh_bootstrap_serves_the_service_names_under_its_ca(tmp_path):
    issued, what = ensure(None, SERVICE, NAMESPACE)
    assert what == "new CA" and issued.ca_key_pem
    handshake(issued, issued.ca_pem, tmp_path)
    san = x509.load_pem_x509_certificate(issued.cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert set(dns_names(SERVICE, NAMESPACE)) <= set(san.value.get_values_for_type(x509.DNSName))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(issued, issued.ca_pem, tmp_path, host="other.gpuplace-system.svc")


def test_a_valid_certificate_is_kept_as_it_is():
    issued, _ = ensure(None, SERVICE, NAMESPACE)
    again, what = ensure(issued, SERVICE, NAMESPACE, now=NOW + dt.timedelta(days=300))
    assert what == "kept" and again is issued


def test_a_certificate_near_expiry_is_renewed_from_the_same_ca_so_the_bundle_does_not_change(tmp_path):
    issued, _ = ensure(None, SERVICE, NAMESPACE, now=NOW - dt.timedelta(days=340))  # 25 days left
    renewed, what = ensure(issued, SERVICE, NAMESPACE)
    assert what == "renewed" and renewed.ca_pem == issued.ca_pem and renewed.cert_pem != issued.cert_pem
    handshake(renewed, issued.ca_pem, tmp_path)  # the apiserver's caBundle still verifies the new cert


def test_a_certificate_for_another_service_is_reissued_from_the_same_ca():
    issued, _ = ensure(None, "old-name", NAMESPACE)
    renewed, what = ensure(issued, SERVICE, NAMESPACE)
    assert what == "renewed" and renewed.ca_pem == issued.ca_pem


def test_a_new_ca_keeps_the_old_one_trusted_so_replicas_on_the_old_certificate_still_verify(tmp_path):
    first, _ = ensure(None, SERVICE, NAMESPACE, now=NOW - dt.timedelta(days=670))  # CA: 60 days left now
    second, what = ensure(first, SERVICE, NAMESPACE, now=NOW - dt.timedelta(days=335))
    assert what == "renewed"  # the CA could still cover a full year then; the certificate ends with the CA
    third, what = ensure(
        second, SERVICE, NAMESPACE
    )  # now: under 30 days left, and the CA cannot cover a year
    assert what == "new CA" and third.ca_key_pem != second.ca_key_pem
    assert len(x509.load_pem_x509_certificates(third.ca_pem)) == 2
    handshake(third, third.ca_pem, tmp_path)  # the new certificate
    handshake(second, third.ca_pem, tmp_path)  # a replica still serving the old one


def test_a_ca_key_that_does_not_match_the_ca_gets_a_new_ca():
    issued, _ = ensure(None, SERVICE, NAMESPACE)
    other, _ = ensure(None, SERVICE, NAMESPACE)
    broken = Issued(issued.ca_pem, b"not a certificate", issued.key_pem, other.ca_key_pem)
    _, what = ensure(broken, SERVICE, NAMESPACE)
    assert what == "new CA"


def test_certs_command_writes_files_once_and_keeps_them(tmp_path, capsys):
    args = ["certs", "--out-dir", str(tmp_path), "--no-patch", "--service", SERVICE]
    assert main(args) == 0
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(first) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0
    assert main(args) == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first


def test_certs_command_needs_a_secret_or_a_directory(capsys):
    assert main(["certs", "--no-patch"]) == 2
    assert "give --secret NAME" in capsys.readouterr().err
