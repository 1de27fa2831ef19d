"""The serving certificate is reloaded from its files when they change, over real HTTPS connections; a
half-rotated pair (new certificate, old key) is refused and the current one keeps serving."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from common.config import WebhookConfig
from tests.webhook.test_server import CTX
from webhook.certs import Issued, issue, write
from webhook.server import make_app
from webhook.tls import ReloadingTLS
from webhook.validate import Reviewer


class Served:
    def __init__(self, tls: ReloadingTLS, port: int) -> None:
        self.tls, self.port = tls, port

    async def served_by(self, trusted: Issued) -> bool:
        """Does a new connection that trusts only `trusted`'s CA get through the handshake?"""
        ctx = ssl.create_default_context(cadata=trusted.ca_pem.decode())
        connector = aiohttp.TCPConnector(ssl=ctx, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                async with session.get(
                    f"https://127.0.0.1:{self.port}/healthz", server_hostname="localhost"
                ) as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectorCertificateError:
                return False


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Served, Issued]]:
    first = issue("gpuplace-webhook", "gpuplace-system", extra_names=("localhost",))
    write(first, tmp_path)
    tls = ReloadingTLS(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    runner = web.AppRunner(make_app(Reviewer(WebhookConfig(), CTX, None, "gpuplace-system")))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.context)
    await site.start()
    port = runner.addresses[0][1]
    yield Served(tls, port), first
    await runner.cleanup()


async def test_a_rotated_certificate_is_served_to_new_connections(served, tmp_path):
    server, first = served
    assert await server.served_by(first)
    second = issue("gpuplace-webhook", "gpuplace-system", extra_names=("localhost",))
    write(second, tmp_path)
    watcher = asyncio.create_task(server.tls.watch(interval_s=0.01))
    try:
        for _ in range(500):  # the watcher picks the change up on its next tick
            if await server.served_by(second):
                break
            await asyncio.sleep(0.01)
        assert await server.served_by(second) and not await server.served_by(first)
    finally:
        watcher.cancel()


async def test_a_half_rotated_pair_is_refused_and_the_current_certificate_keeps_serving(served, tmp_path):
    server, first = served
    second = issue("gpuplace-webhook", "gpuplace-system", extra_names=("localhost",))
    (tmp_path / "tls.crt").write_bytes(second.cert_pem)  # the certificate is new, the key not yet
    with pytest.raises(ssl.SSLError):
        server.tls.reload()
    assert await server.served_by(first)
    (tmp_path / "tls.key").write_bytes(second.key_pem)  # the rotation completes
    assert server.tls.reload()
    assert await server.served_by(second)


async def test_a_corrupt_pair_keeps_the_current_certificate_and_is_logged_once_per_version(
    served, tmp_path, caplog
):
    server, first = served
    (tmp_path / "tls.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    with caplog.at_level("ERROR", logger="gpuplace.webhook.tls"):
        for _ in range(5):  # the watcher looks again and again at the same bad version
            server.tls.poll()
        assert len(caplog.records) == 1 and "keeping the current one" in caplog.records[0].getMessage()
        (tmp_path / "tls.crt").write_bytes(b"still not a certificate")  # another bad version: said once more
        server.tls.poll()
        server.tls.poll()
        assert len(caplog.records) == 2
    assert await server.served_by(first)
