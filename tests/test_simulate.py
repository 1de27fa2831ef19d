"""The replay engine on tiny synthetic traces with known outcomes, and the `simulate` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gpuplace.cli import main
from placement.simulate import ReplayConfig, ReplayResult, Summary, build_workload, replay
from placement.topology import GpuNode, NvlinkLayout, PodRequest

NODES = [GpuNode.empty("n0", "T4", 2, 32_000, 64_000), GpuNode.empty("n1", "T4", 2, 32_000, 64_000)]
AS_IS = ReplayConfig(seed=0, inflate_to=0, shuffle=False)


def one_gpu(i: int) -> PodRequest:
    return PodRequest(f"p{i}", 1000, 1000, 1, 1000)


def test_a_trace_that_fits_is_allocated_entirely() -> None:
    result = replay(NODES, [one_gpu(i) for i in range(4)], "best-fit", AS_IS)
    assert result.failed == 0
    assert result.arrived_milli.tolist() == [1000, 2000, 3000, 4000]
    assert result.allocated_milli.tolist() == [1000, 2000, 3000, 4000]
    assert result.unallocated_at(100) == pytest.approx(0.0)


def test_a_pod_that_fits_nowhere_fails_and_stays_failed() -> None:
    pods = [PodRequest("big", 1000, 1000, 4, 1000)] + [one_gpu(i) for i in range(4)]
    result = replay(NODES, pods, "best-fit", AS_IS)
    assert result.placed_on.tolist()[0] == -1 and result.failed == 1
    # arrived 100% after the big pod alone; nothing was allocated then
    assert result.unallocated_at(100) == pytest.approx(100.0)
    assert result.allocated_milli[-1] == 4000


def test_share_pods_pack_onto_gpus() -> None:
    pods = [PodRequest(f"s{i}", 1000, 1000, 1, 500) for i in range(8)]
    result = replay(NODES, pods, "best-fit", AS_IS)
    assert result.failed == 0 and result.allocated_milli[-1] == 4000


def test_curve_averages_the_pods_whose_arrived_share_rounds_to_the_point() -> None:
    result = ReplayResult("x", 0, 1000, np.array([996, 1000, 1004, 1100]), np.array([900, 900, 950, 950]),
                          np.zeros(4, dtype=np.int64))
    assert result.curve(130)[100] == pytest.approx((90.0 + 90.0 + 95.0) / 3)
    assert result.unallocated_at(100) == pytest.approx(100 - 275 / 3)


def test_workload_is_inflated_to_the_target_by_resampling() -> None:
    pods = [one_gpu(i) for i in range(3)]
    work = build_workload(pods, 10_000, np.random.default_rng(0), ReplayConfig(inflate_to=1.3))
    assert sum(p.total_gpu_milli for p in work) == 13_000
    assert {p.name for p in work[:3]} == {"p0", "p1", "p2"}  # the originals first, shuffled


def test_larger_traces_are_cut_down_to_the_target() -> None:
    pods = [one_gpu(i) for i in range(30)]
    work = build_workload(pods, 10_000, np.random.default_rng(0), ReplayConfig(inflate_to=1.3))
    assert sum(p.total_gpu_milli for p in work) == 13_000 and len({p.name for p in work}) == 13


def test_same_seed_same_replay() -> None:
    pods = [PodRequest(f"s{i}", 1000 * (i % 3 + 1), 1000, 1, 100 * (i % 9 + 1)) for i in range(40)]
    a, b = (replay(NODES, pods, "fgd", ReplayConfig(seed=3)) for _ in range(2))
    assert a.placed_on.tolist() == b.placed_on.tolist()


def test_nvlink_variant_counts_pods_outside_one_domain_and_refused_8_gpu_pods() -> None:
    pcie = [GpuNode.empty(f"p{i}", "T4", 4, 64_000, 64_000) for i in range(2)]
    pods = [PodRequest("tp2", 1000, 1000, 2, 1000), PodRequest("tp8", 1000, 1000, 8, 1000)]
    cfg = ReplayConfig(seed=0, inflate_to=0, shuffle=False, nvlink=True)
    base = replay(pcie, pods, "best-fit", cfg).nvlink
    assert (base.multi_gpu_placed, base.multi_gpu_in_domain) == (1, 0)
    assert (base.big_refused, base.big_refused_with_free) == (1, 0)  # 6 GPUs were free: not 8
    ours = replay(pcie, pods, "gpuplace", cfg)
    assert ours.nvlink.multi_gpu_placed == 0 and ours.failed == 2  # no NVLink anywhere: refused


def test_gpuplace_places_multi_gpu_pods_inside_one_domain() -> None:
    quads = [GpuNode.empty(f"v{i}", "V100", 8, 96_000, 393_216, NvlinkLayout("switch", 4)) for i in range(2)]
    pods = [PodRequest(f"p{i}", 1000, 1000, 1 + i % 2, 1000) for i in range(10)]
    result = replay(quads, pods, "gpuplace", ReplayConfig(seed=1, inflate_to=0, nvlink=True))
    assert result.nvlink.in_domain_share == 1.0 and result.nvlink.multi_gpu_placed == 5


def test_summary_mean_and_sample_sd() -> None:
    s = Summary.of([1.0, 2.0, 3.0])
    assert (s.mean, s.sd, str(s)) == (2.0, 1.0, "2.00±1.00")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_simulate_command_reports_every_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = write(tmp_path / "nodes.csv", "name,cpu_milli,memory_mib,gpu,model\nn0,32000,64000,2,T4\n"
                  "n1,32000,64000,4,A10\n")
    pods = write(tmp_path / "mine.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
                 "a,1000,1000,1,1000,\nb,2000,1000,1,500,T4\nc,1000,1000,2,1000,A10|T4\nd,500,100,0,0,\n")
    md, png = tmp_path / "out.md", tmp_path / "out.png"
    code = main(["simulate", "--nodes", str(nodes), "--pods", str(pods), "--seeds", "2", "-o", "json",
                 "--results-md", str(md), "--plot", str(png), "--cache", str(tmp_path / "c.jsonl")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["unallocated_at_100"]["mine"]) == {"least-allocated", "most-allocated", "random",
                                                         "best-fit", "fgd", "gpuplace"}
    assert "| mine |" in md.read_text() and png.stat().st_size > 0
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 12
    # a second run takes everything from the cache
    assert main(["simulate", "--nodes", str(nodes), "--pods", str(pods), "--seeds", "2",
                 "--cache", str(tmp_path / "c.jsonl")]) == 0
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 12


def test_simulate_command_names_the_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = write(tmp_path / "nodes.csv", "name,cpu_milli,memory_mib,gpu,model\nn0,32000,64000,two,T4\n")
    pods = write(tmp_path / "pods.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1,1,1,1000\n")
    assert main(["simulate", "--nodes", str(nodes), "--pods", str(pods), "--seeds", "1"]) == 2
    assert "nodes.csv:2: column gpu:" in capsys.readouterr().err


def test_simulate_command_without_input_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GPUPLACE_TRACE_DIR", raising=False)
    assert main(["simulate"]) == 2
    assert "--trace-dir" in capsys.readouterr().err


def test_simulate_help_renders(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--help"])
    assert exit_info.value.code == 0
    assert "--trace-dir" in capsys.readouterr().out
