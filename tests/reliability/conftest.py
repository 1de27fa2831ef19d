"""The real webhook process on loopback, one per test module, with its log checked at the end: whatever a
module fired at it, the log holds no stack trace and no check skipped by gpuplace's own failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.reliability_kit import Webhook, log_problems


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    served = Webhook(Path(tmp_path_factory.mktemp("webhook")), config={"cert_reload_s": 0.1}).start()
    try:
        yield served
    finally:
        served.stop()
    assert log_problems(served.log()) == []
