from __future__ import annotations

import io
import logging

from common.logs import BatchedStreamHandler, batch_root_logging


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test-batched-{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def test_info_lines_wait_for_the_batch_and_keep_their_order() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=3600)
    log = _logger(handler)
    log.info("one")
    log.info("two")
    assert stream.getvalue() == ""
    handler.flush()
    assert stream.getvalue() == "one\ntwo\n"
    handler.close()


def test_a_warning_writes_at_once_with_every_line_before_it() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=3600)
    log = _logger(handler)
    log.info("before")
    log.warning("trouble")
    assert stream.getvalue() == "before\ntrouble\n"
    handler.close()


def test_a_full_batch_is_written_without_waiting() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=3600, max_lines=3)
    log = _logger(handler)
    for i in range(3):
        log.info("line %d", i)
    assert stream.getvalue() == "line 0\nline 1\nline 2\n"
    handler.close()


def test_the_flusher_thread_writes_a_quiet_batch() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=0.01)
    _logger(handler).info("late")
    handler._stopped.wait(0.5)
    assert stream.getvalue() == "late\n"
    handler.close()


def test_root_stream_handlers_are_swapped_keeping_stream_and_format() -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    stream = io.StringIO()
    plain = logging.StreamHandler(stream)
    plain.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.handlers = [plain]
    try:
        batch_root_logging()
        (batched,) = root.handlers
        assert isinstance(batched, BatchedStreamHandler)
        assert batched.stream is stream
        root.error("boom")
        assert stream.getvalue() == "ERROR boom\n"
        batched.close()
    finally:
        root.handlers = saved


def test_an_info_record_is_formatted_when_its_batch_is_written_with_the_time_it_was_logged() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=3600)
    handler.setFormatter(logging.Formatter("%(created)f %(message)s"))
    log = _logger(handler)
    log.info("review %s", "uid-1")
    (record,) = handler._pending
    assert isinstance(record, logging.LogRecord)  # not formatted yet
    handler.flush()
    assert stream.getvalue() == f"{record.created:f} review uid-1\n"
    handler.close()


def test_a_record_that_cannot_be_formatted_is_reported_and_the_rest_of_the_batch_is_written() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=3600)
    reported: list[logging.LogRecord] = []
    handler.handleError = reported.append  # type: ignore[method-assign]
    log = _logger(handler)
    log.info("one")
    log.info("bad %d", "not a number")
    log.info("three")
    handler.flush()
    assert stream.getvalue() == "one\nthree\n"
    assert [r.msg for r in reported] == ["bad %d"]
    handler.close()
