"""AdmissionReview admission.k8s.io/v1 in and out: parsing with reasons, and the response shapes.

Pure functions over dicts; no I/O. The apiserver sends `request` with uid, kind, resource, operation,
namespace, object, oldObject, dryRun, userInfo; the response must echo `uid`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

API_VERSION = "admission.k8s.io/v1"
OPERATIONS = {"CREATE", "UPDATE", "DELETE", "CONNECT"}


class ReviewError(ValueError):
    """A malformed AdmissionReview: answered with HTTP 400 and this reason."""


# Not frozen: built once per review and only read after, and a frozen dataclass pays a guarded
# `object.__setattr__` for each of its fields on every review.
@dataclass(slots=True)
class Request:
    uid: str
    kind: str
    group: str
    operation: str
    namespace: str | None
    name: str | None
    obj: Mapping[str, Any] | None
    old_obj: Mapping[str, Any] | None
    dry_run: bool
    user: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def object_namespace(self) -> str | None:
        meta = (self.obj or {}).get("metadata") or {}
        return self.namespace or meta.get("namespace")

    @property
    def object_name(self) -> str:
        meta = (self.obj or self.old_obj or {}).get("metadata") or {}
        return str(self.name or meta.get("name") or meta.get("generateName") or "")


def parse_review(body: bytes) -> Request:
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # also raised for invalid UTF-8
        raise ReviewError(f"body is not JSON: {exc}") from exc
    if not isinstance(review, dict):
        raise ReviewError("body must be a JSON object (an AdmissionReview)")
    if review.get("kind") != "AdmissionReview" or review.get("apiVersion") != API_VERSION:
        raise ReviewError(f"expected kind AdmissionReview, apiVersion {API_VERSION}")
    req = review.get("request")
    if not isinstance(req, dict):
        raise ReviewError("request is missing")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing")
    kind = req.get("kind")
    if not isinstance(kind, dict) or not kind.get("kind"):
        raise ReviewError("request.kind.kind is missing")
    operation = req.get("operation")
    if operation not in OPERATIONS:
        raise ReviewError(f"request.operation must be one of {sorted(OPERATIONS)}, got {operation!r}")
    obj, old = req.get("object"), req.get("oldObject")
    for name, value in (("object", obj), ("oldObject", old)):
        if value is not None and not isinstance(value, dict):
            raise ReviewError(f"request.{name} must be an object")
    if operation in {"CREATE", "UPDATE"} and obj is None:
        raise ReviewError(f"request.object is missing for {operation}")
    user = req.get("userInfo")
    return Request(
        uid=uid,
        kind=str(kind["kind"]),
        group=str(kind.get("group") or ""),
        operation=operation,
        namespace=_text(req.get("namespace")),
        name=_text(req.get("name")),
        obj=obj,
        old_obj=old,
        dry_run=req.get("dryRun") is True,
        user=str(user.get("username", "")) if isinstance(user, dict) else "",
        raw=req,
    )


def _text(value: Any) -> str | None:
    """namespace and name as the apiserver sends them (strings, "" for cluster-scoped); anything else is
    taken as absent rather than failing the review."""
    return value if isinstance(value, str) and value else None


def review(uid: str, response: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": {"uid": uid, **response}}


def allow(
    uid: str,
    warnings: Sequence[str] = (),
    audit: Mapping[str, str] | None = None,
    patch: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {"allowed": True}
    if warnings:
        response["warnings"] = list(warnings)
    if audit:
        response["auditAnnotations"] = dict(audit)
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(list(patch))).decode()
    return review(uid, response)


def deny(
    uid: str, message: str, warnings: Sequence[str] = (), audit: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """design.md: HTTP 200, allowed false, status.code 403, the finding text in status.message."""
    response: dict[str, Any] = {
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": message},
    }
    if warnings:
        response["warnings"] = list(warnings)
    if audit:
        response["auditAnnotations"] = dict(audit)
    return review(uid, response)
