"""`gpuplace scan`: the running fleet, read from a live cluster.

A third adapter beside `webhook/` and `extender/`: it reads what runs (`collect.py`, the only module that
talks to the API server), groups GPU pods to the workloads that own them (`discovery.py`), runs every
deploy-time check of `placement` on those live objects unchanged, adds what only a running cluster shows
(`observed.py`: OOM kills, scale events, dark nodes, pending pods; `metrics.py`: idle GPUs and throughput
from Prometheus), prices it (`cost.py`) and writes it out (`render.py`, `report.py` for PolicyReports).
"""
