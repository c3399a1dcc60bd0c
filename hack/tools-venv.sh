# shellcheck shell=bash
# Source it (after lib.sh), then call `ensure_tools_venv`: a virtualenv at $FO_TOOLS_VENV with the
# pinned tools of hack/tools-requirements.txt. Idempotent: a stamp (hash of the requirements file
# and the interpreter) makes a warm call cost one `cat`; a changed pin rebuilds the venv whole.
# Kept apart from $FO_VENV (moto), which hack/setup.sh owns.

FO_TOOLS_VENV="$FO_CACHE/tools-venv"
FO_TOOLS_REQUIREMENTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tools-requirements.txt"

tools_venv_fingerprint() {
  {
    cat "$FO_TOOLS_REQUIREMENTS"
    python3 -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

ensure_tools_venv() {
  local stamp="$FO_TOOLS_VENV/.fo-requirements.sha256" want
  command -v python3 >/dev/null 2>&1 || die "python3 not found (needed for $FO_TOOLS_VENV)"
  want="$(tools_venv_fingerprint)"
  if [[ -x "$FO_TOOLS_VENV/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  mkdir -p "$FO_CACHE" "$FO_LOG_DIR"
  # Two scripts may ask at once (make -j): one builds, the other waits and re-checks.
  exec 8>"$FO_CACHE/.tools-venv.lock"
  flock 8
  if [[ -x "$FO_TOOLS_VENV/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    exec 8>&-
    return 0
  fi
  local logf="$FO_LOG_DIR/tools-venv.log"
  log "creating $FO_TOOLS_VENV from hack/tools-requirements.txt (log: $logf)"
  python3 -m venv --clear "$FO_TOOLS_VENV" >"$logf" 2>&1 ||
    { dump_log "$logf"; die "python3 -m venv $FO_TOOLS_VENV failed"; }
  "$FO_TOOLS_VENV/bin/pip" install --disable-pip-version-check -q -r "$FO_TOOLS_REQUIREMENTS" >>"$logf" 2>&1 ||
    { dump_log "$logf"; die "pip install -r hack/tools-requirements.txt failed; see $logf"; }
  printf '%s\n' "$want" >"$stamp"
  exec 8>&-
  log "tools venv ready: $("$FO_TOOLS_VENV/bin/pip" freeze 2>/dev/null | paste -sd' ')"
}
