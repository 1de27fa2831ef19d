"""Certificate rotation on the real webhook (reload every 0.1 s here, webhook.cert_reload_s): a new pair
swapped in as the kubelet updates a Secret volume is served to new connections without a restart and
without a failed review under load; a corrupt pair keeps the current certificate and is logged once per
bad version."""

from __future__ import annotations

import asyncio

from bench.reliability_kit import der, distinct_reviews, install, new_pair, review_once, rotate_under_load

NOT_RELOADED = "serving certificate not reloaded"


async def test_a_new_pair_is_served_without_restart_and_without_a_failed_review(webhook):
    pid = webhook.proc.pid
    ca, cert, key = new_pair()
    result = await rotate_under_load(webhook, cert, key, trust=webhook.ca_pem + ca, seconds=3)
    assert result.failed == 0 and result.tried > 20
    assert result.served[0] != der(cert) and result.served[-1] == der(cert)
    assert result.to_new_cert_s == result.to_new_cert_s  # the new certificate was seen (not NaN)
    assert webhook.proc.pid == pid and webhook.proc.poll() is None
    webhook.ca_pem = ca  # later tests trust the pair now served


async def test_a_corrupt_pair_keeps_the_current_certificate_and_is_logged_once_per_version(webhook):
    tls = webhook.client_ssl()
    body = next(distinct_reviews(1))
    served_before = (await review_once(webhook.port, tls, body))[1]
    errors_before = webhook.log().count(NOT_RELOADED)
    install(
        webhook.cert_dir, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", b"junk"
    )
    await asyncio.sleep(1.0)  # ten looks at the same bad version
    assert await review_once(webhook.port, tls, body) == (200, served_before)
    assert webhook.log().count(NOT_RELOADED) == errors_before + 1
    _, cert, _ = new_pair()
    _, _, other_key = new_pair()
    install(webhook.cert_dir, cert, other_key)  # another bad version: a certificate with the wrong key
    await asyncio.sleep(1.0)
    assert await review_once(webhook.port, tls, body) == (200, served_before)
    assert webhook.log().count(NOT_RELOADED) == errors_before + 2
    lines = [line for line in webhook.log().splitlines() if NOT_RELOADED in line]
    assert all(" ERROR " in line for line in lines) and "Traceback" not in webhook.log()
