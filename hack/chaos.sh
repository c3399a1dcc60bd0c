#!/usr/bin/env bash
# `make chaos`: hack/chaos.py against the local environment with the debug binary. It kills and
# restarts the shared kube-apiserver, so it runs alone (make test runs it after the other tests).
# Knobs: CHAOS_OBJECTS (200), CHAOS_QUOTA_SCALE (1), CHAOS_TIMEOUT_SECONDS (900), CHAOS_BINARY.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$FO_ENV_DIR/env.sh"
install_crds
export FO_LOG_DIR FO_ENV_DIR
exec "$FO_VENV/bin/python" "$ROOT/hack/chaos.py"
