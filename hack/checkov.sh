#!/usr/bin/env bash
# `make checkov` (part of `make test`): the third-party scanner checkov (PyPI) over the rendered
# chart and the Dockerfile. Any failed check fails; every accepted finding is skipped inline, next
# to what it is about, with its reason (checkov.io/skipN annotations in the chart's templates,
# `# checkov:skip=` comments in the Dockerfile; the README's Development section lists them).
#   - checkov lives in its own venv, $FARGATE_OPERATOR_CACHE/checkov-venv, apart from the tools
#     venv (its many pinned dependencies would fight helm-python-sdk's and kubernetes-validate's);
#     rebuilt only when the pin or the interpreter changes, so a warm run uses no network;
#   - the chart is rendered by hack/checkov_render.py (Helm v4 through the tools venv's
#     helm-python-sdk, as `make test-chart` does) for several value sets into a temporary dir.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/tools-venv.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Upgrade deliberately: a new checkov brings new checks, each to be fixed or skipped with a reason.
FO_CHECKOV_PIN="checkov==3.3.30"
FO_CHECKOV_VENV="$FO_CACHE/checkov-venv"

checkov_venv_fingerprint() {
  {
    printf '%s\n' "$FO_CHECKOV_PIN"
    python3 -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

# Same pattern as ensure_tools_venv (hack/tools-venv.sh): a stamp makes a warm call one `cat`, a
# changed pin rebuilds the venv whole, a lock keeps two concurrent callers from building it twice.
ensure_checkov_venv() {
  local stamp="$FO_CHECKOV_VENV/.fo-requirements.sha256" want
  command -v python3 >/dev/null 2>&1 || die "python3 not found (needed for $FO_CHECKOV_VENV)"
  want="$(checkov_venv_fingerprint)"
  if [[ -x "$FO_CHECKOV_VENV/bin/checkov" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  mkdir -p "$FO_CACHE" "$FO_LOG_DIR"
  exec 9>"$FO_CACHE/.checkov-venv.lock"
  flock 9
  if [[ -x "$FO_CHECKOV_VENV/bin/checkov" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    exec 9>&-
    return 0
  fi
  local logf="$FO_LOG_DIR/checkov-venv.log" t0=$SECONDS
  log "creating $FO_CHECKOV_VENV with $FO_CHECKOV_PIN (log: $logf)"
  python3 -m venv --clear "$FO_CHECKOV_VENV" >"$logf" 2>&1 ||
    { dump_log "$logf"; die "python3 -m venv $FO_CHECKOV_VENV failed"; }
  "$FO_CHECKOV_VENV/bin/pip" install --disable-pip-version-check -q "$FO_CHECKOV_PIN" >>"$logf" 2>&1 ||
    { dump_log "$logf"; die "pip install $FO_CHECKOV_PIN failed; see $logf"; }
  printf '%s\n' "$want" >"$stamp"
  exec 9>&-
  log "checkov venv ready in $(fmt_secs $((SECONDS - t0)))"
}

ensure_tools_venv
ensure_checkov_venv

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fo-checkov.XXXXXX")"
keep=""
trap '[[ -n "$keep" ]] || rm -rf "$tmp"' EXIT

"$FO_TOOLS_VENV/bin/python" hack/checkov_render.py render "$tmp/chart" >"$tmp/render.log" 2>&1 ||
  { cat "$tmp/render.log" >&2; die "rendering the chart failed"; }
log "rendered: $(cat "$tmp/render.log")"

# --skip-download: nothing from Prisma Cloud (check metadata only; without it every run tries the
# network and logs a traceback when it is unreachable). The result is JSON, which
# checkov_render.py reports: counts, each failure, each skip with its reason.
CHECKOV=("$FO_CHECKOV_VENV/bin/checkov" --skip-download -o json)
failures=0
scan() {
  local name="$1" rc=0
  shift
  log "checkov $(sed 's/^checkov==//' <<<"$FO_CHECKOV_PIN") --framework $name $*"
  "${CHECKOV[@]}" --framework "$name" "$@" --output-file-path "$tmp/$name" >/dev/null 2>"$tmp/$name.log" || rc=$?
  if [[ ! -s "$tmp/$name/results_json.json" ]]; then
    dump_log "$tmp/$name.log"
    warn "checkov --framework $name wrote no result (exit $rc)"
    failures=$((failures + 1))
  elif ! python3 hack/checkov_render.py report "$name" "$tmp/$name/results_json.json"; then
    failures=$((failures + 1))
  elif ((rc)); then
    # A clean report, yet checkov failed (1 means a failed check): say so rather than pass.
    dump_log "$tmp/$name.log"
    warn "checkov --framework $name exited $rc"
    failures=$((failures + 1))
  fi
}
scan kubernetes -d "$tmp/chart"
scan dockerfile -f Dockerfile

if ((failures)); then
  keep=1
  die "checkov: $failures of 2 scans not clean (above); the rendered chart is kept in $tmp/chart" \
    "(rerun: $FO_CHECKOV_VENV/bin/checkov --skip-download --framework kubernetes -d $tmp/chart)"
fi
log "checkov: clean (every finding fixed or skipped inline with its reason)"
