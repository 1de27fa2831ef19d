#!/usr/bin/env bash
# Quickstart on a laptop: a kind cluster with fake GPU nodes, gpuplace installed from this checkout, and the
# demo. Needs docker (or podman as kind's provider), kind and kubectl.
#
#   hack/kind-up.sh            # create (or reuse) the cluster, build + load the image, install, run the demo
#   kind delete cluster --name gpuplace
#
# CI runs the same hack/demo.sh against the local control plane of tests/harness (tests/e2e/test_demo.py);
# creating the kind cluster and installing the image are the only steps that differ.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER="${CLUSTER:-gpuplace}"
IMAGE="${IMAGE:-gpuplace:dev}"
ENGINE="${CONTAINER_ENGINE:-docker}"
say() { printf '\n>>> %s\n' "$*"; }
for tool in kind kubectl "$ENGINE"; do
  command -v "$tool" >/dev/null || { echo "kind-up: $tool is not on PATH" >&2; exit 2; }
done

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config hack/kind-quickstart.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

say "building $IMAGE and loading it into the cluster"
"$ENGINE" build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

say "turning the workers into GPU nodes: 2 x 8 H100 (NVLink switch), 1 x 4 L4"
mapfile -t workers < <(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o name | sort)
gpu_node() {  # node product gpus memory_mib
  local node="$1" product="$2" gpus="$3" mem="$4"
  kubectl label --overwrite "$node" nvidia.com/gpu.present=true "nvidia.com/gpu.product=$product" \
    "nvidia.com/gpu.count=$gpus" "nvidia.com/gpu.memory=$mem" >/dev/null
  # Extended resources advertised through the status subresource, as the Kubernetes docs describe; the
  # kubelet keeps them. They are capacity only: no device plugin hands out real GPUs.
  kubectl patch "$node" --subresource=status --type=json -p \
    "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$gpus\"}]" >/dev/null
}
gpu_node "${workers[0]}" NVIDIA-H100-80GB-HBM3 8 81559
gpu_node "${workers[1]}" NVIDIA-H100-80GB-HBM3 8 81559
gpu_node "${workers[2]}" NVIDIA-L4 4 23034

say "installing gpuplace (built-in certificate bootstrap) and gpuplace-scheduler"
# kustomize takes only relative bases: the image override lives in .tmp/ (ignored by git) inside the repo.
for part in overlays/bootstrap scheduler; do
  dir=".tmp/kind/$part"
  mkdir -p "$dir"
  rel=$(python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "manifests/$part" "$dir")
  cat > "$dir/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$rel]
images:
  - {name: ghcr.io/gpuplace/gpuplace, newName: ${IMAGE%%:*}, newTag: ${IMAGE##*:}}
YAML
  kubectl apply -k "$dir"
done
kubectl -n gpuplace-system rollout status deploy/gpuplace-webhook --timeout=180s
kubectl -n gpuplace-system rollout status deploy/gpuplace-scheduler --timeout=180s

say "running the demo"
hack/demo.sh
