#!/usr/bin/env bash
# `make test-chart`: helm lint --strict, strict schema validation of the rendered manifests
# (Kubernetes 1.28 and newer), install into the local apiserver, and the least-privilege run of the
# operator with the chart's ServiceAccount token. See hack/chart_test.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/tools-venv.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ensure_tools_venv
source "$FO_ENV_DIR/env.sh"
export FO_OPERATOR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/fargate-operator"
[[ -x "$FO_OPERATOR_BIN" ]] || die "$FO_OPERATOR_BIN is missing: run 'make build' (make test-chart does)"
export FO_MOTO_PYTHON="$FO_VENV/bin/python" FO_LOG_DIR
log "chart tests (Helm $("$FO_TOOLS_VENV/bin/python" -c 'import helm_python as h; print(h.helm_sdk_version())'))"
"$FO_TOOLS_VENV/bin/python" "$ROOT/hack/chart_test.py"
