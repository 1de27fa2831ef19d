"""Reading cluster traces: the Alibaba openb CSVs and gpuplace's own trace format (the same CSV columns).

gpuplace trace format (CSV, comma-separated, one header line, UTF-8; extra columns are ignored):

Node list, one row per node:
    name         node name (openb calls it `sn`; either header works)
    cpu_milli    allocatable CPU in millicores (integer >= 0)
    memory_mib   allocatable memory in MiB (integer >= 0)
    gpu          number of GPUs (integer >= 0)
    model        GPU model name, free text (e.g. `A100-80GB`, `T4`); pods' gpu_spec refers to it
    nvlink       optional: `switch`, `pairs` or `none` (empty: none)
    nvlink_domain optional: GPUs per NVLink domain (empty or 0: all of the node for switch, 2 for pairs)

Pod list, one row per pod, replayed in file order unless shuffled:
    name         pod name
    cpu_milli    CPU request in millicores
    memory_mib   memory request in MiB
    num_gpu      GPUs requested (0 for a CPU-only pod)
    gpu_milli    per-GPU share 1..1000 (1000 = whole GPU; below 1000 only when num_gpu is 1); 0 if no GPU
    gpu_spec     optional: allowed GPU models separated by `|` (empty: any model)
    nvlink       optional: `required` when a multi-GPU pod must sit in one NVLink domain (empty: none)

The openb files (alibaba/clusterdata, cluster-trace-gpu-v2023) are this format already: nodes with
`sn,cpu_milli,memory_mib,gpu,model`, pods with `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,...`
(the `multigpu*` files without gpu_spec). Errors name the file, line and column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path

from placement.topology import NVLINK_KINDS, GpuNode, NvlinkLayout, PodRequest, TopologyError

NODE_COLUMNS = ("name", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
COLUMN_ALIASES = {"sn": "name"}
OPENB_NODE_FILE = "openb_node_list_gpu_node.csv"
OPENB_POD_PREFIX = "openb_pod_list_"

# NVLink layout assumed for the openb GPU models (the trace has none): V100 SXM2 8-GPU nodes are a
# hybrid cube-mesh, fully connected only within each quad, so two domains of 4; 4-GPU V100 nodes are one
# fully connected quad; the undisclosed G2/G3 8-GPU nodes are taken as NVSwitch (one domain of 8);
# T4, P100 (PCIe), A10 and single-GPU nodes have no NVLink.
OPENB_NVLINK: Mapping[str, NvlinkLayout] = {
    "G2": NvlinkLayout("switch"),
    "G3": NvlinkLayout("switch"),
    "V100M16": NvlinkLayout("switch", 4),
    "V100M32": NvlinkLayout("switch", 4),
}


# Unallocated GPU % at 100 % arrived demand, mean and sd over 10 seeds, as published for these files by
# Weng et al., "Beware of Fragmentation" (USENIX ATC'23); gpushare20 and gpuspec05 were not published.
OPENB_PUBLISHED: Mapping[str, Mapping[str, tuple[float, float]]] = {
    "default": {"fgd": (4.77, 0.11), "best-fit": (7.14, 0.14), "random": (13.70, 0.33)},
    "gpushare60": {"fgd": (8.75, 0.13), "best-fit": (10.94, 0.18), "random": (17.19, 0.35)},
    "gpushare100": {"fgd": (13.36, 0.16), "best-fit": (15.38, 0.22), "random": (21.10, 0.15)},
    "gpuspec10": {"fgd": (5.34, 0.19), "best-fit": (6.90, 0.21), "random": (13.74, 0.25)},
    "gpuspec20": {"fgd": (5.34, 0.13), "best-fit": (11.54, 0.12), "random": (14.10, 0.35)},
    "gpuspec25": {"fgd": (6.09, 0.11), "best-fit": (14.33, 0.20), "random": (14.58, 0.34)},
    "gpuspec33": {"fgd": (12.16, 0.18), "best-fit": (19.61, 0.27), "random": (16.13, 0.26)},
    "multigpu20": {"fgd": (4.47, 0.16), "best-fit": (6.27, 0.25), "random": (13.08, 0.52)},
    "multigpu30": {"fgd": (3.64, 0.10), "best-fit": (5.43, 0.24), "random": (13.37, 0.47)},
    "multigpu40": {"fgd": (3.09, 0.10), "best-fit": (4.90, 0.23), "random": (14.62, 0.76)},
    "multigpu50": {"fgd": (2.91, 0.11), "best-fit": (4.38, 0.18), "random": (18.72, 0.83)},
}


class TraceError(ValueError):
    """Bad trace input; the message starts with `file:line: column:`."""

    def __init__(self, path: Path | str, line: int, column: str | None, message: str) -> None:
        where = f"{path}:{line}:" + (f" column {column}:" if column else "")
        super().__init__(f"{where} {message}")


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with aliased headers) for every data row; checks the header first."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceError(path, 0, None, f"cannot read: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise TraceError(path, 1, None, "empty file, expected a header line")
        names = [COLUMN_ALIASES.get(h.strip(), h.strip()) for h in header]
        missing = [c for c in required if c not in names]
        if missing:
            raise TraceError(path, 1, None, f"header lacks column(s) {', '.join(missing)}")
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) > len(names):
                raise TraceError(path, line, None, f"{len(row)} fields, header has {len(names)}")
            yield line, {n: (row[i].strip() if i < len(row) else "") for i, n in enumerate(names)}


def _int(path: Path, line: int, row: dict[str, str], column: str, default: int | None = None) -> int:
    text = row.get(column, "")
    if text == "" and default is not None:
        return default
    try:
        value = int(float(text)) if "." in text else int(text)
    except ValueError:
        raise TraceError(path, line, column, f"expected an integer, got {text!r}") from None
    if value < 0:
        raise TraceError(path, line, column, f"must be >= 0, got {value}")
    return value


def _layout(path: Path, line: int, row: dict[str, str]) -> NvlinkLayout | None:
    kind = row.get("nvlink", "")
    if not kind:
        return None
    if kind not in NVLINK_KINDS:
        raise TraceError(path, line, "nvlink", f"expected one of {', '.join(NVLINK_KINDS)}, got {kind!r}")
    return NvlinkLayout(kind, _int(path, line, row, "nvlink_domain", 0))


def read_nodes(path: Path | str, default_nvlink: Mapping[str, NvlinkLayout] | None = None) -> list[GpuNode]:
    """Nodes of a node-list CSV. Rows without an nvlink column take `default_nvlink[model]`, else none."""
    path = Path(path)
    nodes: list[GpuNode] = []
    seen: set[str] = set()
    for line, row in _rows(path, NODE_COLUMNS):
        name, model = row["name"], row["model"]
        if not name:
            raise TraceError(path, line, "name", "empty node name")
        if name in seen:
            raise TraceError(path, line, "name", f"node {name!r} listed twice")
        seen.add(name)
        gpus = _int(path, line, row, "gpu")
        layout = _layout(path, line, row) or (default_nvlink or {}).get(model, NvlinkLayout())
        nodes.append(GpuNode.empty(name, model, gpus, _int(path, line, row, "cpu_milli"),
                                   _int(path, line, row, "memory_mib"), layout))
    if not nodes:
        raise TraceError(path, 2, None, "no nodes listed")
    return nodes


def _pod(path: Path, line: int, row: dict[str, str]) -> PodRequest:
    num_gpu = _int(path, line, row, "num_gpu")
    milli = _int(path, line, row, "gpu_milli")
    if num_gpu and not 1 <= milli <= 1000:
        raise TraceError(path, line, "gpu_milli", f"must be 1..1000 when num_gpu > 0, got {milli}")
    if num_gpu > 1 and milli != 1000:
        raise TraceError(path, line, "gpu_milli", f"a share ({milli}) is only allowed with num_gpu 1")
    nvlink = row.get("nvlink", "")
    if nvlink not in ("", "required", "none"):
        raise TraceError(path, line, "nvlink", f"expected required or none, got {nvlink!r}")
    spec = frozenset(m.strip() for m in row.get("gpu_spec", "").split("|") if m.strip()) if num_gpu else None
    try:
        cpu, memory = _int(path, line, row, "cpu_milli"), _int(path, line, row, "memory_mib")
        return PodRequest(row["name"], cpu, memory, num_gpu, milli if num_gpu else 0, spec or frozenset(),
                          nvlink == "required")
    except TopologyError as exc:
        raise TraceError(path, line, None, str(exc)) from exc


def read_pods(path: Path | str) -> list[PodRequest]:
    """Pods of a pod-list CSV, in file order."""
    path = Path(path)
    pods = [_pod(path, line, row) for line, row in _rows(path, POD_COLUMNS)]
    if not pods:
        raise TraceError(path, 2, None, "no pods listed")
    return pods


def _trace_order(name: str) -> tuple[bool, str, int]:
    """`default` first, then by family and number (gpushare20 before gpushare100)."""
    family = name.rstrip("0123456789")
    number = name[len(family):]
    return name != "default", family, int(number) if number else -1


def openb_traces(directory: Path | str) -> dict[str, Path]:
    """The openb pod lists in a directory by short name (`default`, `gpushare60`, ...), in report order."""
    directory = Path(directory)
    found = {p.stem[len(OPENB_POD_PREFIX):]: p for p in directory.glob(f"{OPENB_POD_PREFIX}*.csv")}
    return dict(sorted(found.items(), key=lambda kv: _trace_order(kv[0])))


def with_nvlink_required(pods: list[PodRequest]) -> list[PodRequest]:
    """The same pods with every whole multi-GPU pod marked as needing one NVLink domain."""
    return [PodRequest(p.name, p.cpu_milli, p.memory_mib, p.num_gpu, p.gpu_milli, p.gpu_models,
                       p.nvlink_required or p.num_gpu > 1) for p in pods]
