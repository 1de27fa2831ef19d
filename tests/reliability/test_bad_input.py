"""The bad-input corpus against the real webhook over HTTPS: every malformed AdmissionReview, and every
malformed object in a well-formed one, gets a 4xx with a reason or an AdmissionReview answer with one-line
warnings; never a 5xx, never "internal error", never a stack trace in the log. Bytes that are not TLS or
not HTTP are dropped at the door and the server keeps answering."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from bench.reliability_kit import (
    CUT_SHORT,
    RAW,
    Probe,
    Webhook,
    corpus,
    huge_probe,
    log_problems,
    raw_exchange,
    uid_of,
    verdict,
)

PROBES = [*corpus(), huge_probe(50)]


async def _fire(webhook: Webhook, path: str, probe: Probe) -> tuple[int, str]:
    headers = {"Content-Type": probe.content_type} if probe.content_type else {}
    connector = aiohttp.TCPConnector(ssl=webhook.client_ssl())
    url = f"https://localhost:{webhook.port}{path}"
    async with (
        aiohttp.ClientSession(connector=connector, skip_auto_headers=("Content-Type",)) as session,
        session.post(url, data=probe.body, headers=headers) as resp,
    ):
        return resp.status, await resp.text()


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
@pytest.mark.parametrize("path", ["/validate", "/mutate"])
async def test_a_bad_input_gets_a_reason_or_an_answer_never_a_server_error(webhook, path, probe):
    logged = len(webhook.log())
    status, text = await _fire(webhook, path, probe)
    assert verdict(status, text, uid_of(probe.body)) is None, (status, text[:300])
    assert log_problems(webhook.log()[logged:]) == []


async def test_the_expected_refusals_carry_their_reason(webhook):
    """A few probes whose answer is fixed: the reason names what is wrong."""
    by_name = {p.name: p for p in PROBES}

    async def answer(name: str) -> tuple[int, str]:
        return await _fire(webhook, "/validate", by_name[name])

    v1beta1 = await answer("v1beta1 review")
    assert v1beta1[0] == 400 and "apiVersion admission.k8s.io/v1" in v1beta1[1]
    only_old = await answer("UPDATE with only oldObject")
    assert only_old[0] == 400 and "request.object is missing for UPDATE" in only_old[1]
    huge = await answer("50 MB body")
    assert huge[0] == 413 and "Maximum request body size" in huge[1]
    assert (await answer("3 MB body"))[0] == 200


@pytest.mark.parametrize("name", list(RAW))
def test_bytes_that_are_not_a_review_are_dropped_and_the_server_keeps_answering(webhook, name):
    data, over_tls = RAW[name]
    logged = len(webhook.log())
    tls = webhook.client_ssl() if over_tls else None
    try:
        answer = raw_exchange(webhook.port, data, tls, timeout_s=2)
    except ssl.SSLError:
        answer = b""  # refused in the handshake
    except TimeoutError:
        # Only bytes that stop halfway may leave the server waiting for the rest (the handshake is cut off
        # by asyncio's 60 s TLS handshake timeout); every other input is answered or refused at once.
        assert name in CUT_SHORT
        answer = b""
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    assert status is None or 400 <= status < 500, answer[:200]
    assert webhook.ready()
    assert log_problems(webhook.log()[logged:]) == []
