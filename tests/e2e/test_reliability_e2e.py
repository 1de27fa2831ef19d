"""gpuplace never blocks the cluster, on the real kube-apiserver and kube-scheduler of the harness:

* the webhook stopped (SIGSTOP) under a stream of `kubectl apply`: the shipped configurations
  (failurePolicy Ignore, timeoutSeconds 3) let every apply through within the apiserver's budget; SIGCONT
  and it judges again; killed, applies still go through at once;
* the extender killed in the middle of a burst of binds and started again: once it has resynced from the
  API, no node holds more GPUs than it has, and no GPU index is given to two pods.

With $GPUPLACE_RELIABILITY_FIGURES set, the figures (apply times, double-booked GPUs) are written there as
JSON for bench/reliability_bench.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.local_gpuplace import LocalExtender, LocalWebhook
from tests.harness import ControlPlane, SchedulerFactory, gpu_pod, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
FIGURES_ENV = "GPUPLACE_RELIABILITY_FIGURES"
SCHEDULER_NAME = "gpuplace-scheduler"
GPUS_ANNOTATION = "gpuplace.io/gpus"


def record(**figures: Any) -> None:
    """Add figures to the JSON file the bench reads (when it asked for them)."""
    path = os.environ.get(FIGURES_ENV)
    if not path:
        return
    out = Path(path)
    known = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**known, **figures}, indent=2))


# --- the webhook, paused and killed ---------------------------------------------------------------------


@pytest.fixture
def webhook(control_plane: ControlPlane, tmp_path: Path) -> Iterator[LocalWebhook]:
    if control_plane.external:
        pytest.skip("the API server of an external cluster cannot reach a webhook on this host's loopback")
    hook = LocalWebhook(control_plane, tmp_path)
    hook.start()
    control_plane.apply(*hook.configurations())
    time.sleep(1)  # the apiserver picks up new webhook configurations asynchronously
    try:
        yield hook
    finally:
        if hook.proc is not None and hook.proc.poll() is None:
            hook.proc.send_signal(signal.SIGCONT)
        hook.stop()
        hook.remove_configurations()


def deployment_budget_s(hook: LocalWebhook) -> float:
    """What the apiserver may spend on gpuplace for one Deployment: timeoutSeconds of every gpuplace
    webhook whose rules match deployments (each one times out in turn), plus 5 s for kubectl itself."""
    total = 0.0
    for doc in hook.configurations():
        for w in doc["webhooks"]:
            if any("deployments" in r.get("resources", []) for r in w.get("rules", [])):
                assert w["failurePolicy"] == "Ignore", w["name"]
                total += float(w["timeoutSeconds"])
    return total + 5.0


def misplaced(ns: str, name: str) -> str:
    doc = yaml.safe_load((EXAMPLES / "vllm-llama8b-on-h100-misplaced.yaml").read_text())
    doc["metadata"].update(name=name, namespace=ns)
    return yaml.safe_dump(doc)


def oom(ns: str) -> str:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "vllm-llama70b-on-l40s-oom.yaml").read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = ns
    return yaml.safe_dump_all(docs)


def timed_apply(cp: ControlPlane, text: str) -> tuple[int, float, str]:
    started = time.monotonic()
    proc = cp.kubectl("apply", "-f", "-", input=text, check=False, timeout=60)
    return proc.returncode, time.monotonic() - started, proc.stderr


def test_a_stopped_webhook_never_holds_an_apply_past_the_apiservers_budget(control_plane, webhook):
    ns = control_plane.create_namespace("paused")
    budget = deployment_budget_s(webhook)
    rc, _, err = timed_apply(control_plane, oom(ns))
    assert rc != 0 and "gpuplace[oom-risk]" in err  # judging, before the pause

    assert webhook.proc is not None
    webhook.proc.send_signal(signal.SIGSTOP)
    paused = [timed_apply(control_plane, misplaced(ns, f"paused-{k}")) for k in range(4)]
    webhook.proc.send_signal(signal.SIGCONT)
    assert [rc for rc, _, _ in paused] == [0, 0, 0, 0], [err for _, _, err in paused]
    slowest = max(seconds for _, seconds, _ in paused)
    assert slowest < budget, f"an apply took {slowest:.1f}s with the webhook stopped (budget {budget:g}s)"

    rc, _, err = timed_apply(control_plane, oom(ns).replace("llama-70b", "llama-70b-again"))
    assert rc != 0 and "gpuplace[oom-risk]" in err  # SIGCONT: judging again

    webhook.proc.send_signal(signal.SIGKILL)
    webhook.proc.wait(timeout=10)
    killed = [timed_apply(control_plane, misplaced(ns, f"killed-{k}")) for k in range(3)]
    assert [rc for rc, _, _ in killed] == [0, 0, 0], [err for _, _, err in killed]
    assert max(seconds for _, seconds, _ in killed) < budget
    record(
        apply_budget_s=budget,
        apply_paused_max_s=round(slowest, 2),
        apply_killed_max_s=round(max(seconds for _, seconds, _ in killed), 2),
        applies_paused=len(paused),
        applies_killed=len(killed),
    )


# --- the extender, restarted in a burst of binds ----------------------------------------------------------

NODES = {f"rel-h100-{k}": 8 for k in range(4)}  # 32 GPUs
BURST = [1] * 24 + [2] * 8  # 40 GPUs asked: more than there are, so the nodes fill up


def bound_pods(cp: ControlPlane, ns: str) -> list[dict[str, Any]]:
    return [p for p in cp.kubectl_json("get", "pods", "-n", ns)["items"] if p["spec"].get("nodeName")]


def gpus_asked(p: dict[str, Any]) -> int:
    return sum(
        int((c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0))
        for c in p["spec"]["containers"]
    )


def double_booked(cp: ControlPlane, ns: str) -> tuple[int, dict[str, int]]:
    """GPUs given twice: per node, bound GPUs past allocatable plus GPU indices in two pods' annotations.
    Also the bound GPUs per node."""
    bound: dict[str, int] = defaultdict(int)
    holders: dict[tuple[str, int], int] = defaultdict(int)
    for p in bound_pods(cp, ns):
        node = p["spec"]["nodeName"]
        bound[node] += gpus_asked(p)
        text = (p["metadata"].get("annotations") or {}).get(GPUS_ANNOTATION, "")
        for index in filter(None, text.split(",")):
            holders[(node, int(index))] += 1
    over = sum(max(0, n - NODES[node]) for node, n in bound.items())
    shared = sum(n - 1 for n in holders.values() if n > 1)
    return over + shared, dict(bound)


def test_an_extender_restarted_in_a_burst_of_binds_double_books_no_gpu(
    control_plane: ControlPlane, scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    for name, gpus in NODES.items():
        control_plane.add_gpu_node(name, gpus=gpus)
    extender = LocalExtender(control_plane, tmp_path)
    extender.start()
    try:
        scheduler(extender.scheduler_config(SCHEDULER_NAME), name="kube-scheduler-reliability")
        ns = control_plane.create_namespace("burst")
        pods = [gpu_pod(f"b{k}", g, namespace=ns, scheduler_name=SCHEDULER_NAME) for k, g in enumerate(BURST)]
        batches = [pods[k : k + 4] for k in range(0, len(pods), 4)]
        restarted_at = None
        for k, batch in enumerate(batches):
            control_plane.create(*batch)
            if k == 2:  # binds under way: kill it mid-burst, keep the pods coming, start it again
                wait_until(lambda: len(bound_pods(control_plane, ns)) >= 4, timeout=60, what="first binds")
                assert extender.proc is not None
                extender.proc.send_signal(signal.SIGKILL)
                extender.proc.wait(timeout=10)
                bound_before = len(bound_pods(control_plane, ns))
            if k == 5:
                started = time.monotonic()
                extender.start()  # same port: the scheduler's configuration still points at it
                restarted_at = time.monotonic() - started
            time.sleep(0.3)
        assert restarted_at is not None

        def settled() -> bool:
            booked = sum(gpus_asked(p) for p in bound_pods(control_plane, ns))
            return booked >= sum(NODES.values()) - 1  # full, but for a hole no pending pod fits

        wait_until(settled, timeout=120, interval=1.0, what="the burst to fill the nodes")
        time.sleep(2)  # anything still in flight lands
        booked, per_node = double_booked(control_plane, ns)
        bound_after = len(bound_pods(control_plane, ns))
    finally:
        extender.stop()
    assert booked == 0, per_node
    assert all(per_node.get(n, 0) <= cap for n, cap in NODES.items()), per_node
    assert bound_after > bound_before  # binds went on after the restart
    record(
        double_booked_gpus=booked,
        burst_pods=len(BURST),
        burst_gpus=sum(BURST),
        capacity_gpus=sum(NODES.values()),
        bound_before_kill=bound_before,
        bound_after_restart=bound_after,
        extender_ready_after_restart_s=round(restarted_at, 2),
    )
