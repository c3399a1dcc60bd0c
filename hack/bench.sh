#!/usr/bin/env bash
# `make bench`: hack/bench.py against the local environment (not part of make test). Knobs:
# BENCH_SIZES (100,1000), BENCH_IDLE_SECONDS (600), BENCH_SCENARIOS, BENCH_BINARY, BENCH_OUT.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$FO_ENV_DIR/env.sh"
install_crds
export FO_LOG_DIR
exec "$FO_VENV/bin/python" "$ROOT/hack/bench.py"
