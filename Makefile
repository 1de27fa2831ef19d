# Two entry points (README): `make examples` runs the main job, `make test` runs the whole suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv examples test lint e2e-binaries helm prometheus

$(BIN)/gpuplace: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/gpuplace

examples: venv
	$(BIN)/gpuplace check examples/; test $$? -le 1

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

e2e-binaries:
	bash hack/control-plane.sh install

# helm for the chart tests (helm lint/template, helm install in the e2e), built from its Go module.
helm:
	bash hack/helm.sh install

# Prometheus for the scan tests that read DCGM and vLLM metrics (Debian's package, unpacked, cached).
prometheus:
	bash hack/prometheus.sh install

test: venv e2e-binaries helm prometheus lint
	$(BIN)/pytest -q
