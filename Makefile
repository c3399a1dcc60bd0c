# fargate-operator: every entry point a developer or CI needs.
#   make demo   the operator on a local apiserver + etcd + moto, with the examples applied
#   make test   fmt, clippy, CRD drift, unit and integration tests (sets up what it needs)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
CACHE ?= $(or $(FARGATE_OPERATOR_CACHE),$(HOME)/.cache/fargate-operator)
export FARGATE_OPERATOR_CACHE := $(CACHE)

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install test tools (Debian packages, moto venv, kube-apiserver build); idempotent
	@bash hack/setup.sh

.PHONY: env-up
env-up: setup ## start (or reuse) etcd + kube-apiserver + moto on loopback
	@bash hack/env-up.sh

.PHONY: env-down
env-down: ## stop the local environment
	@bash hack/env-down.sh

.PHONY: build
build: ## build the operator
	$(CARGO) build --locked

.PHONY: crds
crds: ## regenerate crds/ and the chart's crds/ from the Rust types
	$(CARGO) run --locked --quiet -- crd --out-dir crds
	$(CARGO) run --locked --quiet -- crd --out-dir charts/fargate-operator/crds

.PHONY: check-crds
check-crds: ## fail when crds/ differs from what the Rust types generate
	$(CARGO) test --locked --quiet --test crd_drift

.PHONY: fmt-check
fmt-check: ## cargo fmt --check
	$(CARGO) fmt --all -- --check

.PHONY: clippy
clippy: ## clippy on every target, warnings are errors
	$(CARGO) clippy --locked --all-targets --features sim -- -D warnings

.PHONY: lint-dockerfile
lint-dockerfile: ## hadolint the Dockerfile; its build command must equal hack/release.sh's
	@bash hack/lint-dockerfile.sh

.PHONY: checkov
checkov: ## checkov over the rendered chart variants and the Dockerfile; accepted findings are skipped inline
	@bash hack/checkov.sh

.PHONY: test-argocd
test-argocd: ## run the Argo CD health scripts under real Lua interpreters against sample objects
	@bash hack/test-argocd-health.sh

.PHONY: test-chart
test-chart: env-up build ## helm lint, schema validation (1.28+), install, and the operator under the chart's RBAC only
	@bash hack/test-chart.sh

.PHONY: bench
bench: env-up ## benchmarks at scale against the local environment; writes BENCHMARKS.md (not part of test)
	@bash hack/bench.sh

.PHONY: chaos
chaos: env-up build ## faults on every mutating AWS call, leader kill -9, apiserver restart (part of test)
	@bash hack/chaos.sh

.PHONY: sim
sim: ## replay the simulator: SEED=n [STEPS=n] [STEPS_FILE=shrunk.json]
	SIM_SEED=$(SEED) SIM_STEPS=$(STEPS) SIM_STEPS_FILE=$(STEPS_FILE) \
	  $(CARGO) test --locked --features sim --test simulation -- --ignored --exact replay --nocapture

.PHONY: sim-soak
sim-soak: ## the simulator on fresh seeds for SECONDS (default 600)
	SIM_SECONDS=$(or $(SECONDS),600) SIM_STEPS=$(STEPS) \
	  $(CARGO) test --locked --features sim --test simulation -- --ignored --exact soak --nocapture

.PHONY: sim-planted
sim-planted: ## plant each bug of hack/sim-planted/ into a copy of HEAD; the simulator must catch every one
	@bash hack/sim-planted.sh

.PHONY: fuzz
fuzz: ## the property tests of src/fuzz_tests/ with CASES cases per kind (default 20000); debug, so overflow panics
	PROPTEST_CASES=$(or $(CASES),20000) RUST_BACKTRACE=0 \
	  $(CARGO) test --locked --features sim --lib fuzz_tests -- --nocapture

.PHONY: release
release: ## build the release binary exactly as the Dockerfile does, and test it
	@bash hack/release.sh

.PHONY: test
test: fmt-check clippy lint-dockerfile checkov test-argocd env-up ## everything CI runs (the CRD drift check is one of the tests)
	@$(MAKE) --no-print-directory test-chart
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --locked --no-fail-fast --features sim; \
	else \
	  $(CARGO) test --locked --no-fail-fast --features sim; \
	fi
	@# Alone and last: it kills and restarts the shared kube-apiserver. 100 objects per kind and AWS's
	@# per-action quotas x5 (at x1 deregistering 100 apps' task definitions at 1/s took 4.5 of the
	@# run's 9 minutes) keep a warm run well under 15 minutes; `make chaos` alone runs the 200 of #7
	@# at AWS's quotas.
	@CHAOS_OBJECTS=$${CHAOS_OBJECTS:-100} CHAOS_QUOTA_SCALE=$${CHAOS_QUOTA_SCALE:-5} $(MAKE) --no-print-directory chaos

.PHONY: demo
demo: env-up build ## run the operator locally with the examples applied
	@bash hack/demo.sh

.PHONY: clean-env
clean-env: ## stop the environment and delete its etcd data
	@bash hack/env-down.sh --purge
