#!/usr/bin/env bash
# The gpuplace demo: what a platform engineer sees in the first minutes. It assumes gpuplace is already
# serving the cluster in $KUBECONFIG (webhook configurations installed, gpuplace-scheduler running) and
# fake or real GPU nodes labelled by GPU Feature Discovery. Set up by:
#   - hack/kind-up.sh            on a laptop (kind, the image loaded, manifests applied), or
#   - tests/e2e/test_demo.py     in CI (the local control plane of tests/harness; only setup differs).
#
#   KUBECONFIG=... hack/demo.sh [NAMESPACE]
set -euo pipefail
cd "$(dirname "$0")/.."
NS="${1:-gpuplace-demo}"
KUBECTL="${KUBECTL:-kubectl}"
SCHEDULER="${GPUPLACE_SCHEDULER:-gpuplace-scheduler}"
k() { "$KUBECTL" "$@"; }
step() { printf '\n=== %s\n' "$*"; }
# Apply an example into the demo namespace; print kubectl's own output (warnings and denials included).
apply_example() {
  local file="$1"; shift
  sed "s/namespace: inference/namespace: $NS/; s/namespace: batch/namespace: $NS/" "examples/$file" \
    | k apply "$@" -f - 2>&1 || true
}

step "GPU nodes (GPU Feature Discovery labels)"
k get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count -L nvidia.com/gpu.clique

k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$NS" create serviceaccount default --dry-run=client -o yaml | k apply -f - >/dev/null 2>&1 || true

step "1. Llama-3.1-70B in bf16 pinned to one L40S: denied before it can crash-loop"
apply_example vllm-llama70b-on-l40s-oom.yaml

step "2. Llama-3.1-8B on an H100: allowed, with the cheaper tier and the money"
apply_example vllm-llama8b-on-h100-misplaced.yaml

step "3. An HPA that scales a 405B server down after 60 s: the webhook reads the target, finds minutes of cold start"
apply_example hpa-llama405b-thrashing.yaml

step "4. kubectl apply --dry-run=server previews the same findings and stores nothing"
apply_example vllm-small-model-a100-overprovisioned.yaml --dry-run=server
k -n "$NS" get deploy qwen-1-5b 2>&1 || true

step "5. What /mutate stamped on the 8B pod template"
k -n "$NS" get deploy llama-8b -o jsonpath='{.spec.template.metadata.annotations}' 2>&1 || true
echo

step "6. Placement by $SCHEDULER: 4, 2, 1 and 1-GPU pods, then an 8-GPU tensor-parallel pod"
for spec in "tp4:4" "tp2:2" "one-a:1" "one-b:1" "tp8:8"; do
  name="${spec%%:*}"; gpus="${spec##*:}"
  cat <<YAML | k apply -f - >/dev/null 2>&1
apiVersion: v1
kind: Pod
metadata:
  name: demo-$name
  namespace: $NS
  annotations: {gpuplace.io/nvlink: "$([ "$gpus" -gt 1 ] && echo required || echo none)", gpuplace.io/gpu-memory-min: "20000"}
spec:
  schedulerName: $SCHEDULER
  automountServiceAccountToken: false
  containers:
    - name: c
      image: registry.k8s.io/pause:3.10
      resources: {limits: {nvidia.com/gpu: "$gpus"}}
YAML
  # Arrive one at a time, like a real burst through a single scheduler queue.
  for _ in $(seq 1 60); do
    node=$(k -n "$NS" get pod "demo-$name" -o jsonpath='{.spec.nodeName}')
    [ -n "$node" ] && break
    sleep 0.5
  done
done
k -n "$NS" get pods -o wide --sort-by=.metadata.creationTimestamp
