"""The time budget of a review: past it, the review is cut short and answered allowed (design.md: the
webhook never stalls the apiserver).

One sweeper task watches every review in flight and cancels those past their deadline, in place of a loop
timer per review (`asyncio.timeout`): arming and disarming a timer costs more than a cached review, and
almost every review ends long before its budget. A review runs over by at most one sweep interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

# Sweeps per budget: with the default 1.5 s budget, a stalled review is cut after at most 1.65 s (the
# webhook configurations give the apiserver's call 3 s).
SWEEPS_PER_BUDGET = 10


class Budget:
    """Deadlines of the reviews in flight. A handler calls `enter()` before the work it bounds and
    `leave(task)` after it, whatever happened; a `CancelledError` in between is the budget's doing when
    `leave` returns True (the handler then answers allowed instead of re-raising)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.interval_s = seconds / SWEEPS_PER_BUDGET
        self._due: dict[asyncio.Task[Any], float] = {}
        self._cut: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def enter(self) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Budget.enter() outside a task")
        loop = asyncio.get_running_loop()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(), name="gpuplace-budget")
        self._due[task] = loop.time() + self.seconds
        return task

    def leave(self, task: asyncio.Task[Any]) -> bool:
        """Stop watching the task; True when the sweeper cancelled it (its cancellation is then taken
        back, so the handler can still answer)."""
        self._due.pop(task, None)
        if task not in self._cut:
            return False
        self._cut.discard(task)
        task.uncancel()
        return True

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval_s)
            now = loop.time()
            for task, due in list(self._due.items()):
                if due <= now and task not in self._cut:
                    self._cut.add(task)
                    task.cancel()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
