#!/usr/bin/env bash
# Build (once) and cache the helm CLI that the chart tests and the chart e2e run (helm lint,
# helm template, helm install into the harness's kube-apiserver), compiled from its Go module
# with the local Go toolchain (no prebuilt downloads), the same way hack/control-plane.sh builds
# the control plane.
#
#   bash hack/helm.sh [install]   build helm when it is missing, reuse it when cached
#   bash hack/helm.sh path        print the path of the helm binary (whether or not it is installed)
#   bash hack/helm.sh check       exit 0 when helm is installed and runs, 1 otherwise
#   bash hack/helm.sh version     print the pinned version
#
# Environment:
#   GPUPLACE_CACHE      cache root (default: $HOME/.cache/gpuplace); the binary goes to
#                       $GPUPLACE_CACHE/helm-<version>/bin/helm
#   GPUPLACE_BUILD_JOBS parallel compile jobs (default: nproc)
#
# Version: helm v4.3.2 is the newest v4 release the Go module proxy serves here; its go.mod says
# `go 1.26.0`, so it builds with the local Go 1.26 toolchain without fetching another one.
set -euo pipefail

HELM_VERSION="v4.3.2"
HELM_PACKAGE="helm.sh/helm/v4/cmd/helm"

CACHE_ROOT="${GPUPLACE_CACHE:-$HOME/.cache/gpuplace}"
PREFIX="$CACHE_ROOT/helm-$HELM_VERSION"
BIN_DIR="$PREFIX/bin"
HELM="$BIN_DIR/helm"
STAMP="$BIN_DIR/.version"

log() { printf '[helm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installed means: the stamp names this version and the binary answers `helm version`
# (a half-written binary from an interrupted build does not count).
installed() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HELM_VERSION" && -x "$HELM" ]] || return 1
  "$HELM" version --short >/dev/null 2>&1
}

build() {
  local jobs start=$SECONDS tmp
  jobs="${GPUPLACE_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
  # go install writes into GOBIN; a private GOBIN then a rename keeps a failed build from
  # leaving a binary that `check` would trust.
  tmp="$(mktemp -d "$PREFIX/.build.XXXXXX")"
  log "building helm $HELM_VERSION with $(go version | cut -d' ' -f3) ($jobs jobs) into $BIN_DIR"
  log "(first build takes several minutes; later runs reuse it)"
  # The version helm prints comes from its internal/version package; -X sets it the way helm's
  # own Makefile does, since `go install` of a module carries no git metadata.
  if ! CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
    go install -trimpath -p "$jobs" \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "$HELM_PACKAGE@$HELM_VERSION"; then
    rm -rf "$tmp"
    die "go install $HELM_PACKAGE@$HELM_VERSION failed after $((SECONDS - start))s"
  fi
  mv -f "$tmp/helm" "$HELM"
  rm -rf "$tmp"
  "$HELM" version --short >/dev/null 2>&1 || die "the built $HELM does not run"
  echo "$HELM_VERSION" >"$STAMP"
  log "built in $((SECONDS - start))s: $HELM ($("$HELM" version --short))"
}

install() {
  if installed; then
    log "helm $HELM_VERSION is installed: $HELM"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "go is not installed (Go >= 1.26 is needed to build helm)"
  mkdir -p "$BIN_DIR"
  # Concurrent installs (two `make test` at once) wait for each other instead of racing.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$PREFIX/.lock"
    if ! flock -n 9; then
      log "another install is building into $PREFIX; waiting for it"
      flock 9
    fi
    if installed; then
      log "helm $HELM_VERSION is installed: $HELM"
      return 0
    fi
  fi
  # Leftovers of a build that was killed mid-way.
  rm -rf "$PREFIX"/.build.*
  build
}

main() {
  local cmd="${1:-install}"
  case "$cmd" in
    install) install ;;
    path) echo "$HELM" ;;
    check) installed ;;
    version) echo "$HELM_VERSION" ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' ;;
    *) die "unknown subcommand: $cmd (use install, path, check or version)" ;;
  esac
}

# One line, so that bash has read all of it before running (safe against edits during a long build).
main "$@"; exit $?
