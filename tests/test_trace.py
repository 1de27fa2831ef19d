"""Reading openb CSVs and gpuplace's trace format; errors name file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from placement.topology import NvlinkLayout
from placement.trace import (
    OPENB_NVLINK,
    TraceError,
    openb_traces,
    read_nodes,
    read_pods,
    with_nvlink_required,
)

OPENB_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openb"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_openb_node_list_with_sn_header(tmp_path: Path) -> None:
    path = write(tmp_path, "n.csv",
                 "sn,cpu_milli,memory_mib,gpu,model\nopenb-node-0000,64000,262144,2,P100\n")
    (node,) = read_nodes(path)
    assert (node.name, node.model, node.gpu_free_milli, node.cpu_milli_total) == (
        "openb-node-0000", "P100", [1000, 1000], 64000)
    assert node.nvlink == NvlinkLayout()


def test_node_nvlink_from_columns_or_model_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "n.csv", "name,cpu_milli,memory_mib,gpu,model,nvlink,nvlink_domain\n"
                 "a,1,1,8,H100,switch,\nb,1,1,4,A100-PCIE,pairs,2\nc,1,1,8,V100M32,,\n")
    a, b, c = read_nodes(path, OPENB_NVLINK)
    assert a.domain_size == 8 and b.domain_size == 2 and c.domain_size == 4


def test_openb_pod_list_with_all_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
                 "creation_time,deletion_time,scheduled_time\n"
                 "p0,12000,16384,1,460,,LS,Running,0,12537496,0\n"
                 "p1,6000,12288,2,1000,V100M16|V100M32,BE,Failed,1,2,3\n"
                 "p2,4000,8192,0,0,,LS,Running,0,1,0\n")
    p0, p1, p2 = read_pods(path)
    assert (p0.num_gpu, p0.gpu_milli, p0.is_shared, p0.gpu_models) == (1, 460, True, frozenset())
    assert p1.gpu_models == frozenset({"V100M16", "V100M32"}) and p1.total_gpu_milli == 2000
    assert p2.num_gpu == 0 and p2.total_gpu_milli == 0


def test_multigpu_files_have_only_five_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,32000,65536,8,1000\n")
    (pod,) = read_pods(path)
    assert pod.num_gpu == 8 and not pod.nvlink_required
    assert with_nvlink_required([pod])[0].needs_domain


def test_nvlink_column_marks_pods(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv",
                 "name,cpu_milli,memory_mib,num_gpu,gpu_milli,nvlink\np,1,1,4,1000,required\n")
    assert read_pods(path)[0].needs_domain


@pytest.mark.parametrize(("row", "where"), [
    ("p,12x,1,1,1000", "p.csv:2: column cpu_milli: expected an integer"),
    ("p,1,1,2,500", "p.csv:2: column gpu_milli: a share (500) is only allowed with num_gpu 1"),
    ("p,1,1,1,0", "p.csv:2: column gpu_milli: must be 1..1000"),
    ("p,1,-4,1,1000", "p.csv:2: column memory_mib: must be >= 0"),
    ("p,1,1,1,1000,extra", "p.csv:2: 6 fields, header has 5"),
])
def test_bad_pod_rows_name_file_line_and_column(tmp_path: Path, row: str, where: str) -> None:
    path = write(tmp_path, "p.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n" + row + "\n")
    with pytest.raises(TraceError, match=where.replace("(", r"\(").replace(")", r"\)")):
        read_pods(path)


def test_missing_columns_and_empty_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"n.csv:1: header lacks column\(s\) model"):
        read_nodes(write(tmp_path, "n.csv", "name,cpu_milli,memory_mib,gpu\n"))
    with pytest.raises(TraceError, match="empty file"):
        read_pods(write(tmp_path, "e.csv", ""))
    with pytest.raises(TraceError, match="no pods"):
        read_pods(write(tmp_path, "h.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"))
    with pytest.raises(TraceError, match="cannot read"):
        read_pods(tmp_path / "absent.csv")


def test_duplicate_nodes_and_bad_layouts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="listed twice"):
        read_nodes(write(tmp_path, "n.csv", "name,cpu_milli,memory_mib,gpu,model\na,1,1,1,T4\na,1,1,1,T4\n"))
    with pytest.raises(TraceError, match="column nvlink"):
        read_nodes(write(tmp_path, "m.csv", "name,cpu_milli,memory_mib,gpu,model,nvlink\na,1,1,1,T4,mesh\n"))


def test_openb_traces_are_found_default_first(tmp_path: Path) -> None:
    for name in ("multigpu20", "default", "gpushare100", "gpushare60"):
        write(tmp_path, f"openb_pod_list_{name}.csv", "")
    assert list(openb_traces(tmp_path)) == ["default", "gpushare60", "gpushare100", "multigpu20"]


@pytest.mark.skipif(not OPENB_DIR.is_dir(), reason="openb trace not checked out beside the repo")
def test_the_shared_openb_node_list_has_1213_nodes_and_6212_gpus() -> None:
    nodes = read_nodes(OPENB_DIR / "openb_node_list_gpu_node.csv")
    assert len(nodes) == 1213 and sum(n.gpu_count for n in nodes) == 6212
