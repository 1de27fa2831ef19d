"""Serving certificates: loaded from files and reloaded when they change (cert-manager rotates them)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger("gpuplace.webhook.tls")


class ReloadingTLS:
    """An SSLContext whose certificate chain is re-read when the files' mtimes change. New connections
    use the new chain; open keep-alive connections finish on the old one."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file, self.key_file = Path(cert_file), Path(key_file)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp: tuple[float, float] | None = None
        self.reload()

    def _mtimes(self) -> tuple[float, float]:
        return os.stat(self.cert_file).st_mtime, os.stat(self.key_file).st_mtime

    def reload(self) -> bool:
        stamp = self._mtimes()
        if stamp == self._stamp:
            return False
        self.context.load_cert_chain(self.cert_file, self.key_file)
        self._stamp = stamp
        log.info("loaded serving certificate %s", self.cert_file)
        return True

    async def watch(self, interval_s: float = 10.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.reload()
            except (OSError, ssl.SSLError) as exc:  # half-written during rotation: keep the old chain
                log.warning("certificate reload failed, keeping the current one: %s", exc)
