# syntax=docker/dockerfile:1
# One image for the admission webhook, the scheduler extender and the CLI:
#   gpuplace webhook --config ...    gpuplace extender --config ...    gpuplace check /app/examples
#
# Build:  docker build -t gpuplace:dev .          (or: podman build -t gpuplace:dev .)
# Any Debian-like base with python3 >= 3.11 and its venv module works: the venv is made in the builder
# with the base's own python3 and copied to a final stage of the same base, so its interpreter symlink
# (/usr/local/bin/python3 on python:*-slim, /usr/bin/python3 on Debian's python3) exists there too.
# hack/build-image.sh builds it without Docker Hub: a debootstrapped Debian bookworm as BASE_IMAGE.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder
# A package index other than PyPI, if the build machine uses one (read from pip's config at build time
# by hack/build-image.sh; nothing is hard-coded here). Empty: pip's default.
ARG PIP_INDEX_URL=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120
WORKDIR /src

# The pinned dependency set first, so that this layer is reused until requirements.lock changes.
# Binary wheels only: no compiler is needed here, and none ends up in the image.
# An optional build secret `pip_cert` (a CA bundle) is used for TLS to the index, for build machines
# behind an intercepting proxy: `--secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt`.
# It is mounted for this step only and is not in any layer.
COPY requirements.lock ./
RUN --mount=type=secret,id=pip_cert \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -n "${PIP_INDEX_URL:-}" ]; then export PIP_INDEX_URL; else unset PIP_INDEX_URL; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/python -m pip install --quiet --constraint requirements.lock pip setuptools; \
    /opt/venv/bin/python -m pip install --quiet --only-binary=:all: --no-deps --requirement requirements.lock

# The project: built into a wheel (package data placement/data/*.yaml included) with the pinned
# setuptools, then installed offline. --no-index makes a stale lock fail here instead of pulling an
# unpinned dependency; `pip check` verifies the installed set is consistent. pip installs compiled
# bytecode (the root filesystem is read-only in the manifests, so it could not be written later);
# pip, setuptools and the numpy/pandas test suites (~60 MB) do not go into the image.
COPY pyproject.toml README.md ./
COPY placement ./placement
COPY common ./common
COPY webhook ./webhook
COPY extender ./extender
COPY scan ./scan
COPY gpuplace ./gpuplace
RUN set -eu; \
    /opt/venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /tmp/dist .; \
    /opt/venv/bin/python -m pip install --quiet --no-index --constraint requirements.lock /tmp/dist/gpuplace-*.whl; \
    /opt/venv/bin/python -m pip check; \
    /opt/venv/bin/gpuplace --help >/dev/null; \
    /opt/venv/bin/python -m pip uninstall --quiet --yes setuptools pip; \
    find /opt/venv/lib/python3*/site-packages/numpy /opt/venv/lib/python3*/site-packages/pandas \
      -depth -type d -name tests -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
# uid/gid 65532, as the manifests' securityContext (runAsUser/runAsGroup) expects. --no-log-init: no
# sparse lastlog/faillog entries sized by the uid (they would bloat the layer).
RUN groupadd --gid 65532 nonroot \
 && useradd --no-log-init --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
      --shell /usr/sbin/nologin nonroot

COPY --from=builder /opt/venv /opt/venv
COPY examples /app/examples

ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# Numeric, so that the kubelet can verify runAsNonRoot.
USER 65532:65532
EXPOSE 8443 8888
ENTRYPOINT ["/opt/venv/bin/gpuplace"]
CMD ["--help"]

# Last, so that a new revision or date only rebuilds this metadata step.
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
ARG SOURCE=https://github.com/gpuplace/gpuplace
LABEL org.opencontainers.image.title="gpuplace" \
      org.opencontainers.image.description="Stop GPU placement mistakes in Kubernetes: admission webhook, kube-scheduler extender and CLI (gpuplace check)." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
