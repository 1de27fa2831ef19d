"""The extender's cluster cache: watched Nodes and Pods plus its own binds in flight."""

from extender.cache.cluster_cache import ClusterCache, PodRecord, RecordState, View

__all__ = ["ClusterCache", "PodRecord", "RecordState", "View"]
