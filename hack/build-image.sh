#!/usr/bin/env bash
# Build the gpuplace image from the Dockerfile and run it, with no Docker engine and no Docker Hub:
# Debian's podman, and a base image made here (debootstrap of Debian bookworm with its python3,
# imported into podman's storage) passed as BASE_IMAGE. Idempotent: the tools, the base rootfs and
# the base image are made once and reused; podman reuses the Dockerfile's cached layers.
#
#   hack/build-image.sh                  # tools, base, build, then `check /app/examples` and `--help`
#   IMAGE=ghcr.io/gpuplace/gpuplace:0.1.0 hack/build-image.sh
#
# Environment:
#   GPUPLACE_CACHE   cache root (default ~/.cache/gpuplace); the rootfs goes to $GPUPLACE_CACHE/image/
#   BASE_IMAGE       base image to build on (default localhost/gpuplace-base:bookworm, made here);
#                    set python:3.11-slim-bookworm to use Docker Hub's instead (then nothing is made)
#   IMAGE            tag of the built image (default localhost/gpuplace:dev)
#   DEBIAN_MIRROR    debootstrap mirror (default http://deb.debian.org/debian)
#   STORAGE_DRIVER   podman storage driver; default: overlay if `podman info` works with it, else vfs
#   RUN_MODE         auto (default): podman with the first runtime settings that start a container,
#                    else buildah --isolation chroot for the build and chroot(8) for the runs;
#                    set `chroot` to force that fallback
#
# Needs root (apt-get, debootstrap, podman's rootful storage). Prints every command it runs. Exit status
# 0 when the image is built and behaves: `check /app/examples` exits 1 (the examples contain errors
# on purpose) and `--help` exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${GPUPLACE_CACHE:-$HOME/.cache/gpuplace}/image"
DEFAULT_BASE=localhost/gpuplace-base:bookworm
BASE_IMAGE="${BASE_IMAGE:-$DEFAULT_BASE}"
IMAGE="${IMAGE:-localhost/gpuplace:dev}"
SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
RUN_MODE="${RUN_MODE:-auto}"
ROOTFS="$CACHE/rootfs-$SUITE"

say() { printf '\n>>> %s\n' "$*"; }
run() { printf '+ %s\n' "$*" >&2; "$@"; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 2; }

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, debootstrap and rootful podman storage)"

# --- 1. tools ----------------------------------------------------------------------------------------
say "1/6 tools: podman, buildah, debootstrap, runc"
missing=()
for pair in podman:podman buildah:buildah debootstrap:debootstrap runc:runc crun:crun \
            fuse-overlayfs:fuse-overlayfs newuidmap:uidmap; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  run timeout 600 apt-get update -q
  run timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "all present"
fi
run podman --version
run buildah --version

# --- 2. storage --------------------------------------------------------------------------------------
say "2/6 storage driver"
PODMAN=(podman)
BUILDAH=(buildah)
# podman's own choice (overlay on a kernel with overlayfs) unless it fails to start, or STORAGE_DRIVER
# asks for another; a driver other than the default store's gets a store of its own under $CACHE
# (podman refuses to open a store with another driver than the one it was made with).
default_driver=$(podman info --format '{{.Store.GraphDriverName}}' 2>/dev/null || true)
STORAGE_DRIVER="${STORAGE_DRIVER:-${default_driver:-vfs}}"
if [[ "$STORAGE_DRIVER" != "$default_driver" ]]; then
  store=(--storage-driver "$STORAGE_DRIVER" --root "$CACHE/storage-$STORAGE_DRIVER"
         --runroot "/run/gpuplace-storage-$STORAGE_DRIVER")
  PODMAN+=("${store[@]}")
  BUILDAH+=("${store[@]}")
fi
echo "storage driver: $STORAGE_DRIVER ($(${PODMAN[@]} info --format '{{.Store.GraphRoot}}'))"

# --- 3. base image -----------------------------------------------------------------------------------
say "3/6 base image $BASE_IMAGE"
if "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
  echo "present, reused"
elif [[ "$BASE_IMAGE" != "$DEFAULT_BASE" ]]; then
  run timeout 900 "${PODMAN[@]}" pull "$BASE_IMAGE"
else
  if [[ ! -x "$ROOTFS/usr/bin/python3" ]]; then
    rm -rf "$ROOTFS.tmp"
    mkdir -p "$CACHE"
    # minbase: dpkg, apt, coreutils, passwd (useradd) and the like; python3-venv brings ensurepip's
    # pip wheel; ca-certificates for TLS to the package index.
    printf '+ %s > %s\n' "timeout 1800 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates $SUITE $ROOTFS.tmp $DEBIAN_MIRROR" "$CACHE/debootstrap.log"
    if ! timeout 1800 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ROOTFS.tmp" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
      tail -20 "$CACHE/debootstrap.log" >&2
      die "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    tail -1 "$CACHE/debootstrap.log"
    rm -rf "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/*
    mv "$ROOTFS.tmp" "$ROOTFS"
  else
    echo "rootfs cached in $ROOTFS"
  fi
  run chroot "$ROOTFS" python3 --version
  printf '+ tar -C %s -c . | %s import - %s\n' "$ROOTFS" "${PODMAN[*]}" "$BASE_IMAGE"
  tar -C "$ROOTFS" --numeric-owner -c . | timeout 600 "${PODMAN[@]}" import \
    --change 'CMD ["/usr/bin/python3"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "debootstrap --variant=minbase $SUITE + python3 python3-venv ca-certificates" \
    - "$BASE_IMAGE"
fi
run "${PODMAN[@]}" images "$BASE_IMAGE"

# --- 4. how to run a container here ------------------------------------------------------------------
# Tried in order; the first that starts `true` in the base image is used for the build and the runs.
#  - podman's defaults;
#  - lower rlimits: podman asks for nofile=1048576 and the host's nproc, which crun/runc may not set
#    without CAP_SYS_RESOURCE ("setrlimit `RLIMIT_NOFILE`: Operation not permitted");
#  - runc instead of crun: crun refuses hybrid cgroup v1/v2 hosts whose v2 tree has controllers
#    ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"); runc accepts them.
say "4/6 container runtime settings"
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
candidates=("" "ulimits")
command -v runc >/dev/null && candidates+=("runc" "runc ulimits")
command -v crun >/dev/null && candidates+=("crun ulimits")
RUNTIME=()
RUN_OPTS=()
MODE=""
if [[ "$RUN_MODE" != chroot ]]; then
  for cand in "${candidates[@]}"; do
    rt=() opts=()
    for word in $cand; do
      case "$word" in
        ulimits) opts+=("${ULIMITS[@]}") ;;
        *) rt=(--runtime "$word") ;;
      esac
    done
    printf '+ %s\n' "${PODMAN[*]} ${rt[*]} run --rm ${opts[*]} $BASE_IMAGE true"
    if out=$(timeout 120 "${PODMAN[@]}" "${rt[@]}" run --rm "${opts[@]}" "$BASE_IMAGE" true 2>&1); then
      echo "  works"
      RUNTIME=("${rt[@]}") RUN_OPTS=("${opts[@]}") MODE=podman
      break
    fi
    echo "  fails: ${out//$'\n'/ }"
  done
fi
if [[ -z "$MODE" ]]; then
  MODE=chroot
  echo "no podman setting starts a container: building with buildah --isolation chroot, running with chroot(8)"
fi

# Network for the build's RUN steps: podman's default network, else the host's.
# The package index pip uses on this machine, if it is not PyPI's default (passed to the build below).
index_url="${PIP_INDEX_URL:-$(pip config get global.index-url 2>/dev/null || true)}"
NETWORK=()
if [[ "$MODE" == podman ]]; then
  probe="import socket, urllib.parse as u; h = u.urlsplit('${index_url:-https://pypi.org/simple}').hostname; socket.create_connection((h, 443), timeout=10)"
  if ! timeout 60 "${PODMAN[@]}" "${RUNTIME[@]}" run --rm "${RUN_OPTS[@]}" "$BASE_IMAGE" python3 -c "$probe" >/dev/null 2>&1; then
    echo "the index is not reachable from podman's default network: building with --network host"
    NETWORK=(--network host)
  fi
fi

# --- 5. build ----------------------------------------------------------------------------------------
say "5/6 build $IMAGE from the Dockerfile (BASE_IMAGE=$BASE_IMAGE)"
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)
revision=$(git rev-parse HEAD 2>/dev/null || true)
[[ -n "$revision" && -n "$(git status --porcelain 2>/dev/null)" ]] && revision="$revision-dirty"
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$version"
            --build-arg "REVISION=$revision" --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
[[ -n "$index_url" ]] && build_args+=(--build-arg "PIP_INDEX_URL=$index_url")
# The CA bundle this machine trusts (for a TLS-intercepting proxy), as a build secret: mounted for the
# pip step only, never in a layer.
cert="${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}"
[[ -f "$cert" ]] || cert=/etc/ssl/certs/ca-certificates.crt
secret=()
[[ -f "$cert" ]] && secret=(--secret "id=pip_cert,src=$cert")

start=$SECONDS
if [[ "$MODE" == podman ]]; then
  run timeout 1800 "${PODMAN[@]}" build "${RUNTIME[@]}" "${RUN_OPTS[@]}" "${NETWORK[@]}" "${secret[@]}" \
    "${build_args[@]}" --tag "$IMAGE" --file Dockerfile .
else
  run timeout 1800 "${BUILDAH[@]}" bud --isolation chroot --network host "${secret[@]}" \
    "${build_args[@]}" --tag "$IMAGE" --file Dockerfile .
fi
echo "build took $((SECONDS - start))s"
run "${PODMAN[@]}" images "$IMAGE"
"${PODMAN[@]}" image inspect "$IMAGE" --format \
  'user={{.Config.User}} entrypoint={{.Config.Entrypoint}} cmd={{.Config.Cmd}} workdir={{.Config.WorkingDir}}'
"${PODMAN[@]}" image inspect "$IMAGE" --format '{{range $k, $v := .Labels}}{{printf "label %s=%s\n" $k $v}}{{end}}'

# --- 6. run ------------------------------------------------------------------------------------------
say "6/6 run the image: check /app/examples (exit 1 expected: the examples include denials), --help"
img_run() {  # args after the entrypoint; prints output, returns the exit status
  if [[ "$MODE" == podman ]]; then
    # --read-only as in the manifests (readOnlyRootFilesystem: true).
    run timeout 300 "${PODMAN[@]}" "${RUNTIME[@]}" run --rm --read-only "${RUN_OPTS[@]}" "$IMAGE" "$@"
  else
    # The image's root filesystem, run as the image's user with its environment and working directory.
    local mnt
    mnt=$("${PODMAN[@]}" image mount "$IMAGE")
    local rc=0
    run timeout 300 chroot --userspec=65532:65532 "$mnt" /usr/bin/env -i HOME=/home/nonroot \
      PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 /bin/sh -c 'cd /app && exec /opt/venv/bin/gpuplace "$@"' \
      gpuplace "$@" || rc=$?
    "${PODMAN[@]}" image unmount "$IMAGE" >/dev/null
    return "$rc"
  fi
}
set +e
img_run check /app/examples
check_rc=$?
echo "exit status: $check_rc (expected 1)"
img_run --help
help_rc=$?
echo "exit status: $help_rc (expected 0)"
set -e

# The same image as the admission webhook: a throwaway self-signed certificate, read-only root, the
# host's network on a free port, then /readyz over HTTPS. podman mode only (chroot has no detach).
webhook_ok=skipped
if [[ "$MODE" == podman ]] && command -v openssl >/dev/null && command -v curl >/dev/null; then
  say "webhook smoke test: gpuplace webhook --no-api in the image, /readyz over HTTPS"
  certs=$(mktemp -d)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$certs/tls.key" -out "$certs/tls.crt" 2>/dev/null
  chmod 0755 "$certs" && chmod 0644 "$certs"/tls.*  # readable by uid 65532
  cid=$(run timeout 60 "${PODMAN[@]}" "${RUNTIME[@]}" run -d --rm --read-only "${RUN_OPTS[@]}" --network host \
    -v "$certs:/certs:ro" "$IMAGE" webhook --no-api --host 127.0.0.1 --port "$port" \
    --cert-file /certs/tls.crt --key-file /certs/tls.key | tail -1)
  webhook_ok=no
  for _ in $(seq 1 60); do
    if ready=$(curl -sf --cacert "$certs/tls.crt" "https://127.0.0.1:$port/readyz"); then
      echo "GET https://127.0.0.1:$port/readyz -> $ready"; webhook_ok=yes; break
    fi
    sleep 1
  done
  "${PODMAN[@]}" logs "$cid" 2>&1 | tail -5
  "${PODMAN[@]}" stop -t 5 "$cid" >/dev/null || true
  rm -rf "$certs"
fi

size=$("${PODMAN[@]}" image inspect "$IMAGE" --format '{{.Size}}')
say "summary"
if [[ "$MODE" == podman ]]; then
  how="podman build/run with: ${PODMAN[*]} ${RUNTIME[*]} ${RUN_OPTS[*]} ${NETWORK[*]}"
else
  how="buildah bud --isolation chroot, runs with chroot(8) into the mounted image"
fi
echo "image $IMAGE: $((size / 1000000)) MB, built on $BASE_IMAGE in $((SECONDS))s in all;" \
  "storage $STORAGE_DRIVER; $how"
if [[ $check_rc -eq 1 && $help_rc -eq 0 && $webhook_ok != no ]]; then
  echo "OK: the image builds and runs gpuplace (check: exit 1 as expected, --help: 0, webhook /readyz: $webhook_ok)"
else
  echo "FAILED: check exited $check_rc (want 1), --help exited $help_rc (want 0), webhook ready: $webhook_ok" >&2
  exit 1
fi
