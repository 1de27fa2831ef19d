"""kube-scheduler extender v1 wire types (k8s.io/kube-scheduler/extender/v1), as pydantic models.

The Go structs carry no json tags, so the JSON keys are the Go field names (PascalCase); Go's decoder
matches them case-insensitively, its encoder writes them exactly, and so do we. With
`nodeCacheCapable: true` the scheduler sends `NodeNames` and reads `NodeNames` back; otherwise it sends a
whole `v1.NodeList` in `Nodes` and reads `Nodes` back. A filter result that answers in the other field is
read as "no node passed", which is why `filter_result` picks the field from the request.

Prioritize answers a bare JSON list (`HostPriorityList`); hosts left out score 0. Scores run 0..10
(`MaxExtenderPriority`); the scheduler multiplies them by the extender's weight and by 10.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator

MIN_EXTENDER_PRIORITY = 0
MAX_EXTENDER_PRIORITY = 10


class ProtocolError(ValueError):
    """A request body that is not what kube-scheduler sends; the message says what is wrong."""


class _Go(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class NodeList(_Go):
    """v1.NodeList; nodes stay plain JSON objects."""

    items: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("items", mode="before")
    @classmethod
    def _null_items(cls, v: Any) -> Any:
        return [] if v is None else v

    def names(self) -> list[str]:
        return [str((n.get("metadata") or {}).get("name", "")) for n in self.items]


class ExtenderArgs(_Go):
    """Body of /filter and /prioritize."""

    pod: dict[str, Any] = Field(alias="Pod")
    nodes: NodeList | None = Field(None, alias="Nodes")
    node_names: list[str] | None = Field(None, alias="NodeNames")

    @property
    def node_cache_capable(self) -> bool:
        return self.node_names is not None

    def candidate_names(self) -> list[str]:
        if self.node_names is not None:
            return self.node_names
        return self.nodes.names() if self.nodes is not None else []


class ExtenderFilterResult(_Go):
    nodes: NodeList | None = Field(None, alias="Nodes")
    node_names: list[str] | None = Field(None, alias="NodeNames")
    failed_nodes: dict[str, str] = Field(default_factory=dict, alias="FailedNodes")
    failed_and_unresolvable_nodes: dict[str, str] = Field(default_factory=dict,
                                                          alias="FailedAndUnresolvableNodes")
    error: str = Field("", alias="Error")

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class HostPriority(_Go):
    host: str = Field(alias="Host")
    score: int = Field(alias="Score", ge=MIN_EXTENDER_PRIORITY, le=MAX_EXTENDER_PRIORITY)


class HostPriorityList(RootModel[list[HostPriority]]):
    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class ExtenderBindingArgs(_Go):
    pod_name: str = Field(alias="PodName", min_length=1)
    pod_namespace: str = Field(alias="PodNamespace", min_length=1)
    pod_uid: str = Field("", alias="PodUID")
    node: str = Field(alias="Node", min_length=1)


class ExtenderBindingResult(_Go):
    error: str = Field("", alias="Error")

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def parse_args(body: bytes) -> ExtenderArgs:
    """ExtenderArgs from a request body, or ProtocolError naming the problem."""
    args = _parse(ExtenderArgs, body)
    if not isinstance(args.pod.get("metadata"), dict):
        raise ProtocolError("Pod.metadata: missing or not an object")
    if args.node_names is None and args.nodes is None:
        raise ProtocolError("neither NodeNames (nodeCacheCapable) nor Nodes given")
    return args


def parse_binding(body: bytes) -> ExtenderBindingArgs:
    return _parse(ExtenderBindingArgs, body)


def _parse(model: type[Any], body: bytes) -> Any:
    if not body:
        raise ProtocolError("empty request body")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ProtocolError(f"{where}: {first['msg']}{more}") from None


def filter_result(args: ExtenderArgs, passed: Sequence[str], failed: dict[str, str],
                  unresolvable: dict[str, str], error: str = "") -> ExtenderFilterResult:
    """The filter answer in the field the scheduler reads: NodeNames for a nodeCacheCapable request,
    the passing Node objects otherwise."""
    if args.node_cache_capable:
        return ExtenderFilterResult(NodeNames=list(passed), FailedNodes=failed,
                                    FailedAndUnresolvableNodes=unresolvable, Error=error)
    keep = set(passed)
    items = [n for n in (args.nodes.items if args.nodes else [])
             if (n.get("metadata") or {}).get("name") in keep]
    return ExtenderFilterResult(Nodes=NodeList(items=items), FailedNodes=failed,
                                FailedAndUnresolvableNodes=unresolvable, Error=error)


def filter_error(args: ExtenderArgs | None, error: str) -> ExtenderFilterResult:
    """A filter answer that fails the scheduling attempt with `error` (the scheduler retries the pod)."""
    if args is not None and not args.node_cache_capable:
        return ExtenderFilterResult(Nodes=NodeList(), Error=error)
    return ExtenderFilterResult(NodeNames=[], Error=error)


_SCORE_TAIL = tuple(f"{s}}}" for s in range(MAX_EXTENDER_PRIORITY + 1))


def host_priority_json(host_json: Sequence[str], rows: Sequence[int], scores: Sequence[int]) -> bytes:
    """A HostPriorityList written from precomputed `{"Host":"name","Score":` prefixes (one per node):
    the same bytes as HostPriorityList.to_json, without a model object per node."""
    if len(rows) != len(scores):
        raise ValueError("one score per host")
    if not rows:
        return b"[]"
    if len(rows) == 1:
        return ("[" + host_json[rows[0]] + _SCORE_TAIL[scores[0]] + "]").encode()
    heads = operator.itemgetter(*rows)(host_json)
    tails = operator.itemgetter(*scores)(_SCORE_TAIL)
    return ("[" + ",".join(map(str.__add__, heads, tails)) + "]").encode()


def host_priorities(hosts: Sequence[str], scores: Sequence[int]) -> bytes:
    """A HostPriorityList for hosts the node table does not hold (escaped with json.dumps)."""
    return json.dumps([{"Host": h, "Score": int(s)} for h, s in zip(hosts, scores, strict=True)],
                      separators=(",", ":")).encode()
