"""300 connections that send their headers one byte at a time do not stop the webhook answering: the
normal reviews sent meanwhile are all answered, and so are the slow clients in the end. (How fast is
bench/reliability_bench.py's business, not an assert.)"""

from __future__ import annotations

from bench.reliability_kit import distinct_reviews, log_problems, under_slow_clients


async def test_normal_reviews_are_answered_while_300_clients_send_headers_byte_by_byte(webhook):
    bodies = list(distinct_reviews(60))
    load = await under_slow_clients(webhook, bodies, slow=300, pace_s=0.05)
    assert load.normal_status == [200] * len(bodies)
    assert load.slow_open_while_normal > 0, "the slow clients were all done before the reviews: no overlap"
    assert load.slow_answered == 300
    assert log_problems(webhook.log()) == []
