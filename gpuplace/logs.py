"""Logging for the long-running servers: lines written in batches.

The webhook logs one line per review. Written one by one, each line costs a write system call on the
thread that answers the apiserver, more than the rest of a cached review. `BatchedStreamHandler` keeps the
formatted lines and writes them together: when `max_lines` are waiting, at once for a warning or an
error (with every line before it, in order), and otherwise at most `interval_s` late from a daemon thread.
`logging.shutdown` (at exit) flushes what is left.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    def __init__(self, stream: TextIO | None = None, interval_s: float = 0.2, max_lines: int = 512) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.interval_s, self.max_lines = interval_s, max_lines
        self._lines: list[str] = []
        self._stopped = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="log-flush", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            urgent = record.levelno >= logging.WARNING or len(self._lines) >= self.max_lines
        if urgent:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if not self._lines:
                return
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # stream closed or gone (a pipe whose reader left)
                pass

    def close(self) -> None:
        self._stopped.set()
        self.flush()
        super().close()

    def _flush_periodically(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.flush()


def batch_root_logging() -> None:
    """Swap the root logger's stream handlers (from `logging.basicConfig`) for batched ones with the same
    stream, format and level."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:
            batched = BatchedStreamHandler(handler.stream)
            batched.setFormatter(handler.formatter)
            batched.setLevel(handler.level)
            root.removeHandler(handler)
            root.addHandler(batched)
