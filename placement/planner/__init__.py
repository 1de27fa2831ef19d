"""`gpuplace plan`: CP-SAT planners over a cluster snapshot.

- `snapshot`: the planner's model of a cluster (nodes, pods on their GPUs, PodDisruptionBudgets) and the
  reader that builds it from Kubernetes Node/Pod/PodDisruptionBudget objects;
- `defrag`: the cheapest set of pod moves that opens k GPUs in one NVLink domain for a pending pod;
- `batch`: the placement of a set of pending pods that places the most GPU demand, then keeps the most
  free blocks whole (the offline reference greedy policies are measured against).

Every solve runs under a time limit and says whether its answer is proven optimal or the best found.
"""
