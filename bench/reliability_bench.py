"""What gpuplace survives, measured: the figures behind docs/reliability.md.

    .venv/bin/python bench/reliability_bench.py                 # print the table
    .venv/bin/python bench/reliability_bench.py --e2e           # also run the harness e2e (paused webhook,
                                                                # extender killed in a burst of binds)
    .venv/bin/python bench/reliability_bench.py --e2e --write-docs   # and regenerate docs/reliability.md

Every part talks to 127.0.0.1 only and every loop is bounded. The webhook is the real process
(`python -m gpuplace webhook`, HTTPS, a throwaway certificate) from bench/reliability_kit.py, the same kit
tests/reliability asserts with; this script measures instead of asserting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.reliability_kit import (
    BAD_CONFIGS,
    CUT_SHORT,
    RAW,
    REPO,
    Probe,
    SlowLoad,
    Webhook,
    corpus,
    distinct_reviews,
    extender_corpus,
    extender_verdict,
    gpu_node,
    huge_probe,
    install,
    log_problems,
    new_pair,
    normal_reviews,
    p99,
    raw_exchange,
    rotate_under_load,
    synced_extender,
    uid_of,
    under_slow_clients,
    verdict,
)

DOCS = REPO / "docs" / "reliability.md"
RESULTS = REPO / "bench" / "results" / "reliability_bench.txt"
E2E_TEST = "tests/e2e/test_reliability_e2e.py"


@dataclass
class Row:
    """One line of the table: what was tried, how many, and what came of it."""

    area: str
    tried: str
    count: int
    outcome: str
    bad: int  # answers that break the rule (5xx, traceback, no reason, wrong exit): must be 0


@dataclass
class Figures:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, area: str, tried: str, count: int, outcome: str, bad: int) -> None:
        self.rows.append(Row(area, tried, count, outcome, bad))
        print(f"  {area}: {tried}: {count} tried, {outcome}, bad {bad}", file=sys.stderr, flush=True)


# --- the webhook ----------------------------------------------------------------------------------------


async def _post(webhook: Webhook, path: str, probe: Probe) -> tuple[int, str]:
    headers = {"Content-Type": probe.content_type} if probe.content_type else {}
    connector = aiohttp.TCPConnector(ssl=webhook.client_ssl())
    async with (
        aiohttp.ClientSession(connector=connector, skip_auto_headers=("Content-Type",)) as session,
        session.post(f"https://localhost:{webhook.port}{path}", data=probe.body, headers=headers) as resp,
    ):
        return resp.status, await resp.text()


async def bad_input(webhook: Webhook, out: Figures) -> None:
    probes = [*corpus(), huge_probe(50)]
    statuses: dict[str, int] = {"4xx": 0, "200": 0, "5xx": 0}
    wrong = 0
    for path in ("/validate", "/mutate"):
        for probe in probes:
            status, text = await _post(webhook, path, probe)
            statuses["5xx" if status >= 500 else "4xx" if status >= 400 else "200"] += 1
            wrong += verdict(status, text, uid_of(probe.body)) is not None
    outcome = f"{statuses['4xx']} x 4xx with a reason, {statuses['200']} answered, {statuses['5xx']} x 5xx"
    out.add("webhook", "malformed reviews and objects (/validate, /mutate)", 2 * len(probes), outcome, wrong)

    dropped = refused = waited = wrong = 0
    for name, (data, over_tls) in RAW.items():
        try:
            answer = raw_exchange(webhook.port, data, webhook.client_ssl() if over_tls else None, 2)
        except ssl.SSLError:
            answer = b""
        except TimeoutError:
            waited += 1
            wrong += name not in CUT_SHORT
            continue
        if answer.startswith(b"HTTP/1.1 "):
            refused += 1
            wrong += not 400 <= int(answer.split(b" ", 2)[1]) < 500
        else:
            dropped += 1
    wrong += not webhook.ready()
    outcome = f"{refused} x 4xx, {dropped} dropped at the door, {waited} left waiting (cut off mid-handshake)"
    out.add("webhook", "bytes that are not a review (plain HTTP, TLS garbage)", len(RAW), outcome, wrong)


async def slow_clients(webhook: Webhook, out: Figures, slow: int) -> None:
    bodies = list(distinct_reviews(200, start=10_000_000))
    await normal_reviews(webhook, list(distinct_reviews(200, start=15_000_000)), SlowLoad())  # warm-up
    alone = SlowLoad()
    await normal_reviews(webhook, list(distinct_reviews(200, start=20_000_000)), alone)
    load = await under_slow_clients(webhook, bodies, slow=slow, pace_s=0.05)
    failed = sum(s != 200 for s in load.normal_status) + (slow - load.slow_answered)
    outcome = (
        f"p99 {p99(load.latencies_s) * 1000:.1f} ms (alone {p99(alone.latencies_s) * 1000:.1f} ms), "
        f"{load.slow_open_while_normal} slow still sending at the end, {load.slow_answered} answered"
    )
    out.add(
        "webhook",
        f"{len(bodies)} reviews while {slow} clients send headers byte by byte",
        len(bodies),
        outcome,
        failed,
    )


async def rotation(webhook: Webhook, out: Figures) -> None:
    ca, cert, key = new_pair()
    result = await rotate_under_load(webhook, cert, key, trust=webhook.ca_pem + ca, seconds=6)
    webhook.ca_pem = ca
    outcome = (
        f"new cert served {result.to_new_cert_s:.2f} s after the swap, longest gap between answers "
        f"{result.longest_gap_s * 1000:.0f} ms, no restart"
    )
    out.add(
        "webhook", "certificate rotated under load (Secret-volume swap)", result.tried, outcome, result.failed
    )
    before = webhook.log().count("serving certificate not reloaded")
    install(
        webhook.cert_dir, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", b"junk"
    )
    await asyncio.sleep(2.0)
    logged = webhook.log().count("serving certificate not reloaded") - before
    still = await _post(webhook, "/validate", Probe("ok", next(distinct_reviews(1))))
    out.add(
        "webhook",
        "a corrupt certificate pair installed",
        1,
        f"old certificate kept (review {still[0]}), {logged} error line(s) logged",
        int(still[0] != 200) + int(logged != 1),
    )


async def memory(webhook: Webhook, out: Figures, objects: int) -> None:
    """RSS of the webhook process over `objects` distinct objects (each a findings-cache miss)."""
    warm = SlowLoad()
    await normal_reviews(webhook, list(distinct_reviews(2_000, start=30_000_000)), warm)
    start_kib = peak_kib = webhook.rss_kib()
    failed = 0
    sent = 0
    connector = aiohttp.TCPConnector(ssl=webhook.client_ssl(), limit=4)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(data: bytes) -> None:
            nonlocal failed
            async with session.post(
                f"https://localhost:{webhook.port}/validate",
                data=data,
                headers={"Content-Type": "application/json"},
            ) as resp:
                await resp.read()
                failed += resp.status != 200

        started = time.perf_counter()
        batch: list[bytes] = []
        for data in distinct_reviews(objects, start=40_000_000):
            batch.append(data)
            if len(batch) == 64:
                await asyncio.gather(*(one(d) for d in batch))
                sent += len(batch)
                batch = []
                if sent % 6_400 == 0:
                    peak_kib = max(peak_kib, webhook.rss_kib())
        await asyncio.gather(*(one(d) for d in batch))
        elapsed = time.perf_counter() - started
    end_kib = webhook.rss_kib()
    peak_kib = max(peak_kib, end_kib)
    outcome = (
        f"RSS {start_kib / 1024:.0f} MiB after warm-up, peak {peak_kib / 1024:.0f} MiB, "
        f"end {end_kib / 1024:.0f} MiB ({objects / elapsed:.0f} reviews/s)"
    )
    out.add("webhook", "distinct objects reviewed (memory bound)", objects, outcome, failed)


def bad_configs(out: Figures) -> None:
    wrong = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.yaml"
        for command, text, named in BAD_CONFIGS.values():
            path.write_text(text)
            done = subprocess.run(
                [sys.executable, "-m", "gpuplace", command, "--config", str(path)],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=60,
            )
            lines = done.stderr.strip().splitlines()
            wrong += not (done.returncode == 2 and len(lines) == 1 and named in lines[0])
    out.add(
        "config",
        "bad config files (webhook, extender)",
        len(BAD_CONFIGS),
        "exit 2, one line naming the field",
        wrong,
    )


async def extender(out: Figures) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from extender.server import build_app

    logging.getLogger().setLevel(logging.ERROR)  # each refusal logs a line; the table counts them
    core = synced_extender([gpu_node("node-a"), gpu_node("node-b", 4)])
    cases = extender_corpus()
    client = TestClient(TestServer(build_app(core)))
    await client.start_server()
    wrong = fourxx = 0
    try:
        for _, verb, data in cases:
            resp = await client.post(f"/{verb}", data=data, headers={"Content-Type": "application/json"})
            text = await resp.text()
            fourxx += 400 <= resp.status < 500
            wrong += extender_verdict(verb, resp.status, text) is not None
        wrong += (await client.get("/healthz")).status != 200
    finally:
        await client.close()
    outcome = f"{fourxx} x 4xx with a reason, {len(cases) - fourxx} answered with an Error field or scores"
    out.add(
        "extender", "malformed ExtenderArgs/BindingArgs (incl. 10k node names)", len(cases), outcome, wrong
    )


# --- the harness e2e --------------------------------------------------------------------------------------


def e2e(out: Figures, figures_file: Path | None, run: bool) -> None:
    if run:
        figures_file = Path(tempfile.mkstemp(suffix=".json")[1])
        figures_file.unlink()
        env = {**os.environ, "GPUPLACE_RELIABILITY_FIGURES": str(figures_file)}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", E2E_TEST], cwd=REPO, env=env
        )
        if done.returncode != 0:
            out.notes.append(f"{E2E_TEST} failed (exit {done.returncode}); its figures may be incomplete")
    if figures_file is None or not figures_file.exists():
        out.notes.append(f"harness e2e not run (--e2e runs {E2E_TEST} on the real kube-apiserver/scheduler)")
        return
    fig: dict[str, Any] = json.loads(figures_file.read_text())
    if "apply_paused_max_s" in fig:
        out.add(
            "e2e",
            "kubectl apply with the webhook SIGSTOPped, then SIGKILLed",
            int(fig["applies_paused"]) + int(fig["applies_killed"]),
            f"slowest {fig['apply_paused_max_s']} s paused, {fig['apply_killed_max_s']} s killed "
            f"(budget {fig['apply_budget_s']:g} s)",
            int(max(fig["apply_paused_max_s"], fig["apply_killed_max_s"]) >= fig["apply_budget_s"]),
        )
    if "double_booked_gpus" in fig:
        out.add(
            "e2e",
            f"extender SIGKILLed mid-burst of binds ({fig['burst_pods']} pods, "
            f"{fig['burst_gpus']} GPUs asked, {fig['capacity_gpus']} exist)",
            int(fig["burst_pods"]),
            f"double-booked GPUs: {fig['double_booked_gpus']}; ready "
            f"{fig['extender_ready_after_restart_s']} s after restart; "
            f"bound {fig['bound_before_kill']} before, {fig['bound_after_restart']} after",
            int(fig["double_booked_gpus"]),
        )


# --- output -----------------------------------------------------------------------------------------------


def table(fig: Figures) -> str:
    head = "| area | what was tried | count | outcome | bad |\n|---|---|---:|---|---:|\n"
    body = "".join(f"| {r.area} | {r.tried} | {r.count:,} | {r.outcome} | {r.bad} |\n" for r in fig.rows)
    total = sum(r.bad for r in fig.rows)
    notes = "".join(f"\n- {n}" for n in fig.notes)
    return (
        head
        + body
        + f"\nAnswers that broke the rule (5xx, traceback, no reason, wrong exit): **{total}**\n"
        + notes
    )


DOC_HEAD = """# Reliability: what gpuplace survives

gpuplace sits in the admission path of every GPU workload and in the scheduling path of every GPU pod, so
it must never be what blocks a cluster. This page is regenerated by `bench/reliability_bench.py
--e2e --write-docs`; the same inputs are asserted (bounded, loopback only, none skipped) by
`tests/reliability/` and `tests/e2e/test_reliability_e2e.py`, which CI runs.

The rule every answer is judged by: a 4xx with a reason, or an AdmissionReview (allowed, or denied with
a message) whose warnings are one line each; never a 5xx, never "internal error", never a stack trace in
the log. For the extender: a 4xx with a reason, or a 200 in the verb's shape with the refusal in its
`Error` field. A bad config file: exit 2 and one line that names the field.

What protects the cluster when gpuplace itself is down: the shipped webhook configurations fail open
(`failurePolicy: Ignore`) with `timeoutSeconds: 3`, so a paused or dead webhook costs an apply at most
that budget; the extender keeps what it bound (the API's bindings are the truth it resyncs from).

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=100_000, help="distinct objects for the memory figure")
    parser.add_argument("--slow", type=int, default=300, help="slow clients sending headers byte by byte")
    parser.add_argument(
        "--e2e", action="store_true", help=f"also run {E2E_TEST} (needs the harness binaries)"
    )
    parser.add_argument("--figures", type=Path, help="read e2e figures from this JSON file instead")
    parser.add_argument("--write-docs", action="store_true", help=f"regenerate {DOCS.relative_to(REPO)}")
    args = parser.parse_args(argv)

    fig = Figures()
    with tempfile.TemporaryDirectory() as tmp:
        webhook = Webhook(Path(tmp), config={"cert_reload_s": 0.1}).start()
        try:
            asyncio.run(_webhook_parts(webhook, fig, args))
        finally:
            webhook.stop()
        problems = len(log_problems(webhook.log()))  # the whole run's log, read after a clean stop
        fig.add(
            "webhook",
            "its log over the whole run: stack traces, 'internal error'",
            1,
            f"{problems} lines",
            problems,
        )
    bad_configs(fig)
    asyncio.run(extender(fig))
    e2e(fig, args.figures, args.e2e)

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    text = table(fig) + f"\nMachine: {machine}; {time.strftime('%Y-%m-%d', time.gmtime())}.\n"
    print(text)
    RESULTS.write_text(text)
    if args.write_docs:
        DOCS.write_text(DOC_HEAD + text)
        print(f"wrote {DOCS.relative_to(REPO)}", file=sys.stderr)
    return 1 if any(r.bad for r in fig.rows) else 0


async def _webhook_parts(webhook: Webhook, fig: Figures, args: argparse.Namespace) -> None:
    steps: list[Callable[[], Any]] = [
        lambda: bad_input(webhook, fig),
        lambda: slow_clients(webhook, fig, args.slow),
        lambda: rotation(webhook, fig),
        lambda: memory(webhook, fig, args.objects),
    ]
    for step in steps:
        await step()


if __name__ == "__main__":
    sys.exit(main())
