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
        self._stamp: tuple[int, ...] | None = None
        self._refused: tuple[int, ...] | None = None  # the last version that failed to load
        self.reload()

    def _stamps(self) -> tuple[int, ...]:
        # mtime, inode and size of both files (through the symlinks of a Secret volume): a rewrite in the same
        # mtime tick or a swapped-in file still counts as a change.
        # A missing file is a version of its own (-1s): refused once, like a corrupt one.
        return _stamp(self.cert_file) + _stamp(self.key_file)

    def reload(self) -> bool:
        """Load the files if they changed; raises (and keeps serving the current chain) when they do not
        make a pair. The pair is tried on a scratch context first: OpenSSL would otherwise keep the new
        certificate with the old key in the live context, and every handshake would fail."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return False
        scratch = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        scratch.load_cert_chain(self.cert_file, self.key_file)
        self.context.load_cert_chain(self.cert_file, self.key_file)
        self._stamp = stamp
        log.info("loaded serving certificate %s", self.cert_file)
        return True

    async def watch(self, interval_s: float = 10.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.poll()

    def poll(self) -> None:
        """One look at the files. A pair that does not load (half-written during rotation, corrupt) keeps
        the current chain and is logged once per version of the files, not once per look."""
        stamp = self._stamps()
        if stamp == self._refused:
            return
        try:
            self.reload()
        except (OSError, ssl.SSLError) as exc:
            self._refused = stamp
            log.error("serving certificate not reloaded, keeping the current one: %s", exc)


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1, -1
    return st.st_mtime_ns, st.st_ino, st.st_size
