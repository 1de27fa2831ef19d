from __future__ import annotations

import asyncio

import pytest

from webhook.budget import Budget


async def _guarded(budget: Budget, work: float) -> str:
    task = budget.enter()
    try:
        await asyncio.sleep(work)
        return "done"
    except asyncio.CancelledError:
        if not budget.leave(task):
            raise
        return "cut"
    finally:
        budget.leave(task)


async def test_work_past_the_budget_is_cut_within_one_sweep_and_the_task_carries_on():
    budget = Budget(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _guarded(budget, 10) == "cut"
    assert loop.time() - started < 0.05 + 2 * budget.interval_s
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await budget.close()


async def test_work_within_the_budget_is_left_alone_and_nothing_is_kept():
    budget = Budget(0.2)
    assert await asyncio.gather(*(_guarded(budget, 0.01) for _ in range(20))) == ["done"] * 20
    assert not budget._due and not budget._cut
    await budget.close()


async def test_a_cancellation_that_is_not_the_budgets_propagates():
    budget = Budget(10)
    task = asyncio.create_task(_guarded(budget, 10))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not budget._due
    await budget.close()
