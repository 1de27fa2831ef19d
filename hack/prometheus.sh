#!/usr/bin/env bash
# Get (once) and cache the Prometheus server that the scan tests start on a loopback port
# (tests/scan/test_scan_prometheus.py): Debian's `prometheus` package, fetched with
# `apt-get download` and unpacked with `dpkg -x` (no install, no root, no service started).
#
#   bash hack/prometheus.sh [install]   fetch and unpack when missing, reuse it when cached
#   bash hack/prometheus.sh path        print the path of the prometheus binary (installed or not)
#   bash hack/prometheus.sh check       exit 0 when prometheus is installed and runs, 1 otherwise
#   bash hack/prometheus.sh version     print the version it installs
#
# Environment:
#   GPUPLACE_CACHE       cache root (default: $HOME/.cache/gpuplace); the package is unpacked into
#                        $GPUPLACE_CACHE/prometheus-<version>/ (binary: usr/bin/prometheus)
#   PROMETHEUS_VERSION   Debian package version to fetch (default: the candidate apt-cache names;
#                        bookworm: 2.42.0+ds-5+deb12u1)
set -euo pipefail

CACHE_ROOT="${GPUPLACE_CACHE:-$HOME/.cache/gpuplace}"

log() { printf '[prometheus] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The version: pinned by the environment, else what apt would install (stable per Debian release).
version() {
  if [[ -n "${PROMETHEUS_VERSION:-}" ]]; then
    echo "$PROMETHEUS_VERSION"
    return
  fi
  command -v apt-cache >/dev/null 2>&1 || die "apt-cache not found (a Debian/Ubuntu machine is needed)"
  local v
  v="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
  [[ -n "$v" && "$v" != "(none)" ]] || die "apt knows no prometheus package (run apt-get update)"
  echo "$v"
}

prefix() { echo "$CACHE_ROOT/prometheus-$(version)"; }
binary() { echo "$(prefix)/usr/bin/prometheus"; }

# Installed means: the stamp names this version and the binary answers `--version` (a half-unpacked
# tree from an interrupted run does not count).
installed() {
  local p
  p="$(prefix)"
  [[ -f "$p/.version" && "$(cat "$p/.version")" == "$(version)" && -x "$(binary)" ]] || return 1
  "$(binary)" --version >/dev/null 2>&1
}

fetch() {
  local p v tmp start=$SECONDS
  p="$(prefix)"
  v="$(version)"
  tmp="$(mktemp -d "$p/.fetch.XXXXXX")"
  log "apt-get download prometheus=$v into $tmp"
  (cd "$tmp" && apt-get download -q "prometheus=$v" >&2) || { rm -rf "$tmp"; die "apt-get download failed"; }
  dpkg -x "$tmp"/prometheus_*.deb "$tmp/root" || { rm -rf "$tmp"; die "dpkg -x failed"; }
  rm -rf "$p/usr"
  mv "$tmp/root/usr" "$p/usr"
  rm -rf "$tmp"
  "$(binary)" --version >/dev/null 2>&1 || die "the unpacked $(binary) does not run"
  echo "$v" >"$p/.version"
  log "installed in $((SECONDS - start))s: $(binary) ($("$(binary)" --version 2>&1 | head -1))"
}

install() {
  if installed; then
    log "prometheus $(version) is installed: $(binary)"
    return 0
  fi
  command -v dpkg >/dev/null 2>&1 || die "dpkg not found"
  local p
  p="$(prefix)"
  mkdir -p "$p"
  # Concurrent installs (two `make test` at once) wait for each other instead of racing.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$p/.lock"
    if ! flock -n 9; then
      log "another install is unpacking into $p; waiting for it"
      flock 9
    fi
    if installed; then
      log "prometheus $(version) is installed: $(binary)"
      return 0
    fi
  fi
  rm -rf "$p"/.fetch.*
  fetch
}

main() {
  local cmd="${1:-install}"
  case "$cmd" in
    install) install ;;
    path) binary ;;
    check) installed ;;
    version) version ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' ;;
    *) die "unknown subcommand: $cmd (use install, path, check or version)" ;;
  esac
}

# One line, so that bash has read all of it before running.
main "$@"; exit $?
