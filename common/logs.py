"""Logging for the long-running servers: lines written in batches.

The webhook logs one line per review. Written one by one, each line costs a write system call on the
thread that answers the apiserver, more than the rest of a cached review. `BatchedStreamHandler` keeps the
records and writes them together: when `max_lines` are waiting, at once for a warning or an error (with
every line before it, in order), and otherwise at most `interval_s` late from a daemon thread.
`logging.shutdown` (at exit) flushes what is left.

Info and debug records are formatted when the batch is written, not when they are logged: formatting
(the timestamp above all) is most of a record's cost, and done a batch at a time it stays off the thread
that answers, between two reviews. The servers log plain values (strings, numbers), so a record formatted
a fraction of a second later reads the same.
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
        self._pending: list[logging.LogRecord | str] = []  # records to format, or lines formatted at once
        self._stopped = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="log-flush", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        urgent = record.levelno >= logging.WARNING
        item: logging.LogRecord | str = record
        if urgent:  # formatted now: it may carry a traceback, and it is written at once anyway
            try:
                item = self.format(record)
            except Exception:
                self.handleError(record)
                return
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(item)
            urgent = urgent or len(self._pending) >= self.max_lines
        if urgent:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if not self._pending:
                return
            lines = [item if isinstance(item, str) else self._format(item) for item in self._pending]
            self._pending.clear()
            text = "".join(line + "\n" for line in lines if line is not None)
            try:
                if text:
                    self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # stream closed or gone (a pipe whose reader left)
                pass

    def close(self) -> None:
        self._stopped.set()
        self.flush()
        super().close()

    def _format(self, record: logging.LogRecord) -> str | None:
        try:
            return self.format(record)
        except Exception:
            self.handleError(record)
            return None

    def _flush_periodically(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.flush()


def batch_root_logging() -> None:
    """Swap the root logger's stream handlers (from `logging.basicConfig`) for batched ones with the same
    stream, format and level, and stop gathering what the servers' log format never shows."""
    lean_records()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:
            batched = BatchedStreamHandler(handler.stream)
            batched.setFormatter(handler.formatter)
            batched.setLevel(handler.level)
            root.removeHandler(handler)
            root.addHandler(batched)


def lean_records() -> None:
    """The logging HOWTO's "Optimization" switches: no caller lookup (a walk up the stack for the file and
    line of every record), no thread, process or multiprocessing names. The servers' format
    (`gpuplace.cli`) shows time, level, logger and message only."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class ClientErrorsOnOneLine(logging.Filter):
    """aiohttp logs a request it cannot parse (a header past 8 KiB, a broken chunked body, bytes that are
    not HTTP) as an ERROR with its stack trace, though the client is at fault and got its 400. Such a
    record becomes one WARNING line naming the client's mistake; errors of the server's own stay as they
    are."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            said = record.getMessage()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "%s: %d %s", (said, exc.code, " ".join(str(exc.message).split())[:200])
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    logging.getLogger("aiohttp.server").addFilter(ClientErrorsOnOneLine())
