"""The extender v1 wire format, with bodies shaped the way kube-scheduler's HTTPExtender marshals them
(Go field names, `Nodes: null` next to `NodeNames` when nodeCacheCapable, a Pod without TypeMeta)."""

from __future__ import annotations

import json

import pytest

from extender.protocol import (
    ExtenderBindingResult,
    HostPriority,
    HostPriorityList,
    ProtocolError,
    filter_error,
    filter_result,
    host_priorities,
    host_priority_json,
    parse_args,
    parse_binding,
)
from placement.catalog import default_gpu_catalog
from placement.node_topology import NodeTable, node_info_from_k8s
from tests.extender.objects import node, pod


def scheduler_body(names: list[str] | None, nodes: list[dict] | None = None) -> bytes:
    """What json.Marshal(ExtenderArgs{...}) writes: every field, nil pointers as null."""
    return json.dumps({
        "Pod": pod("p", 2),
        "Nodes": None if nodes is None else {"metadata": {}, "items": nodes},
        "NodeNames": names,
    }).encode()


def test_node_cache_capable_request_is_read_from_node_names() -> None:
    args = parse_args(scheduler_body(["gpu-a", "gpu-b"]))
    assert args.node_cache_capable
    assert args.candidate_names() == ["gpu-a", "gpu-b"]
    assert args.pod["metadata"]["name"] == "p"


def test_filter_answer_to_node_names_request_carries_node_names_and_both_failure_maps() -> None:
    args = parse_args(scheduler_body(["a", "b", "c"]))
    body = json.loads(filter_result(args, ["a"], {"b": "busy"}, {"c": "too small"}).to_json())
    assert body == {"NodeNames": ["a"], "FailedNodes": {"b": "busy"},
                    "FailedAndUnresolvableNodes": {"c": "too small"}, "Error": ""}


def test_filter_answer_keeps_empty_maps_and_empty_node_names() -> None:
    """An empty NodeNames list means 'no node passed'; a missing one would make the scheduler read Nodes."""
    args = parse_args(scheduler_body(["a"]))
    body = json.loads(filter_result(args, [], {}, {}).to_json())
    assert body == {"NodeNames": [], "FailedNodes": {}, "FailedAndUnresolvableNodes": {}, "Error": ""}


def test_without_node_cache_the_answer_returns_the_passing_node_objects() -> None:
    nodes = [node("a"), node("b")]
    args = parse_args(scheduler_body(None, nodes))
    assert not args.node_cache_capable
    assert args.candidate_names() == ["a", "b"]
    body = json.loads(filter_result(args, ["b"], {"a": "busy"}, {}).to_json())
    assert "NodeNames" not in body
    assert [n["metadata"]["name"] for n in body["Nodes"]["items"]] == ["b"]
    assert body["Nodes"]["items"][0] == nodes[1]  # the object comes back untouched


def test_filter_error_fails_the_attempt_in_the_field_the_scheduler_reads() -> None:
    assert json.loads(filter_error(None, "not ready").to_json()) == {
        "NodeNames": [], "FailedNodes": {}, "FailedAndUnresolvableNodes": {}, "Error": "not ready"}
    args = parse_args(scheduler_body(None, [node("a")]))
    assert json.loads(filter_error(args, "x").to_json())["Nodes"] == {"items": [], "metadata": {}}


def test_prioritize_answer_is_a_bare_list_with_go_field_names() -> None:
    table = NodeTable([node_info_from_k8s(node(n), default_gpu_catalog()) for n in ("a", "b", 'q"x')])
    fast = host_priority_json(table.host_json, [0, 2], [10, 3])
    model = HostPriorityList([HostPriority(Host="a", Score=10), HostPriority(Host='q"x', Score=3)]).to_json()
    assert fast == model
    assert json.loads(fast) == [{"Host": "a", "Score": 10}, {"Host": 'q"x', "Score": 3}]
    assert json.loads(host_priorities(["z"], [0])) == [{"Host": "z", "Score": 0}]


def test_scores_outside_0_to_10_are_not_valid_host_priorities() -> None:
    with pytest.raises(ValueError):
        HostPriority(Host="a", Score=11)


def test_binding_args_and_result_use_go_field_names() -> None:
    args = parse_binding(json.dumps({"PodName": "p", "PodNamespace": "ns", "PodUID": "u-1",
                                     "Node": "gpu-a"}).encode())
    assert (args.pod_name, args.pod_namespace, args.pod_uid, args.node) == ("p", "ns", "u-1", "gpu-a")
    assert json.loads(ExtenderBindingResult(Error="").to_json()) == {"Error": ""}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty request body"),
        (b"{not json", "Invalid JSON"),
        (b'{"NodeNames": ["a"]}', "Pod"),
        (b'{"Pod": null, "NodeNames": ["a"]}', "Pod"),
        (b'{"Pod": {"spec": {}}, "NodeNames": ["a"]}', "Pod.metadata"),
        (b'{"Pod": {"metadata": {}}}', "neither NodeNames"),
        (b'{"Pod": {"metadata": {}}, "NodeNames": [1]}', "NodeNames.0"),
    ],
)
def test_malformed_extender_args_are_refused_with_the_reason(body: bytes, says: str) -> None:
    with pytest.raises(ProtocolError, match=says):
        parse_args(body)


def test_binding_args_missing_the_node_are_refused() -> None:
    with pytest.raises(ProtocolError, match="Node"):
        parse_binding(b'{"PodName": "p", "PodNamespace": "ns"}')
