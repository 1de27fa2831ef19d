"""Reading the cluster: paged raw lists, kinds stamped on items, 404 kinds absent (CRD not installed),
a 403 all-namespaces list retried per namespace with refused namespaces said once."""

from __future__ import annotations

from typing import Any

from scan.collect import ApiError, collect


class FakeApi:
    """Answers GET paths from a table; pods come in two pages; namespace `secret` refuses everything."""

    def __init__(self, deny_all_namespaces: bool = False) -> None:
        self.deny = deny_all_namespaces
        self.calls: list[str] = []

    def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        self.calls.append(path)
        q = dict(query)
        if "/apis/keda.sh/" in path or "/apis/serving.knative.dev/" in path:
            raise ApiError(404, "the server could not find the requested resource")
        if path == "/api/v1/namespaces":
            return {"items": [{"metadata": {"name": "ml"}}, {"metadata": {"name": "secret"}}]}
        if "/namespaces/secret/" in path:
            raise ApiError(403, "forbidden")
        if self.deny and "/namespaces/" not in path and path.endswith(("/pods", "/deployments")):
            raise ApiError(403, "forbidden")
        if path.endswith("/pods"):
            if q.get("continue") == "page2":
                return {"items": [{"metadata": {"name": "p2", "namespace": "ml"}}], "metadata": {}}
            return {"items": [{"metadata": {"name": "p1", "namespace": "ml"}}],
                    "metadata": {"continue": "page2"}}
        return {"items": []}


def test_lists_are_paged_and_items_get_their_kind() -> None:
    inv = collect(FakeApi().get)
    assert [p["metadata"]["name"] for p in inv.of("Pod")] == ["p1", "p2"]
    assert {(p["kind"], p["apiVersion"]) for p in inv.of("Pod")} == {("Pod", "v1")}
    assert inv.gaps == []


def test_kinds_the_cluster_does_not_serve_are_absent_not_errors() -> None:
    inv = collect(FakeApi().get)
    assert "ScaledObject" in inv.absent and "KnativeService" in inv.absent


def test_forbidden_cluster_wide_list_falls_back_per_namespace_and_says_each_refusal_once() -> None:
    api = FakeApi(deny_all_namespaces=True)
    inv = collect(api.get)
    assert [p["metadata"]["name"] for p in inv.of("Pod")] == ["p1", "p2"]  # from namespace ml
    assert inv.gaps == ["namespace secret: cannot list pods (403), deployments (403)"]
    assert api.calls.count("/api/v1/namespaces") == 1


def test_one_namespace_lists_its_kinds_there_but_nodes_and_pods_cluster_wide() -> None:
    api = FakeApi()
    inv = collect(api.get, namespace="ml")
    assert "/apis/apps/v1/namespaces/ml/deployments" in api.calls
    assert "/api/v1/nodes" in api.calls and "/api/v1/pods" in api.calls  # node occupancy needs every pod
    assert inv.namespace == "ml" and inv.pods_complete


def test_pods_refused_in_a_namespace_mark_the_pod_view_incomplete() -> None:
    inv = collect(FakeApi(deny_all_namespaces=True).get)
    assert not inv.pods_complete


def test_list_items_lose_their_managed_fields() -> None:
    class WithManaged(FakeApi):
        def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
            doc = super().get(path, query)
            for item in doc["items"]:
                item["metadata"]["managedFields"] = [{"manager": "kubectl"}]
            return doc

    inv = collect(WithManaged().get)
    assert all("managedFields" not in p["metadata"] for p in inv.of("Pod"))
