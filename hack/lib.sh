# shellcheck shell=bash disable=SC2034 # FO_* settings are used by the sourcing scripts
# Shared helpers for the hack/ scripts. Source it, do not run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Everything the test environment downloads, builds or runs lives OUTSIDE the
# checkout, under $FO_CACHE, so a fresh clone (CI) reuses a machine's warm
# cache and `git status` stays clean.

if [[ -n "${FO_LIB_SOURCED:-}" ]]; then
  return 0
fi
FO_LIB_SOURCED=1

FO_CACHE="${FARGATE_OPERATOR_CACHE:-$HOME/.cache/fargate-operator}"
FO_BIN="$FO_CACHE/bin"
FO_VENV="$FO_CACHE/venv"
FO_ENV_DIR="$FO_CACHE/env"
FO_LOG_DIR="$FO_CACHE/logs"

# Fixed, unusual loopback ports so the env never collides with a developer's
# real etcd (2379/2380), a kind/k3d cluster (6443) or a stray moto (5000).
FO_HOST=127.0.0.1
FO_ETCD_PORT="${FARGATE_OPERATOR_ETCD_PORT:-23790}"
FO_ETCD_PEER_PORT="${FARGATE_OPERATOR_ETCD_PEER_PORT:-23800}"
FO_APISERVER_PORT="${FARGATE_OPERATOR_APISERVER_PORT:-16443}"
FO_MOTO_PORT="${FARGATE_OPERATOR_MOTO_PORT:-15000}"

# Versions we pin. moto's ECS/state-manager behaviour is what the tests rely
# on, so upgrade it deliberately (and rerun the integration tests).
FO_MOTO_VERSION="${FARGATE_OPERATOR_MOTO_VERSION:-5.2.5}"
FO_K8S_VERSION="v1.20.2" # what Debian bookworm's `kubernetes` source really is

FO_SCRIPT_NAME="$(basename "$0")"

log() {
  printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "$FO_SCRIPT_NAME" "$*" >&2
}

warn() {
  printf '[%s %s] WARNING: %s\n' "$(date +%H:%M:%S)" "$FO_SCRIPT_NAME" "$*" >&2
}

die() {
  printf '[%s %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$FO_SCRIPT_NAME" "$*" >&2
  exit 1
}

# `as_root CMD...`: run directly as root (CI, dev containers), via sudo otherwise.
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (no sudo found)"
  fi
}

# `wait_for TIMEOUT_S WHAT LOGFILE CMD...`: poll CMD every 0.5 s until it
# succeeds. On timeout, print the tail of LOGFILE and fail, so the reason a
# server did not come up is right there in the CI output.
# If FO_WAIT_PID is set and that process dies, fail at once instead of
# waiting out the timeout.
wait_for() {
  local timeout="$1" what="$2" logfile="$3"
  shift 3
  local deadline=$((SECONDS + timeout))
  while ! "$@" >/dev/null 2>&1; do
    if [[ -n "${FO_WAIT_PID:-}" ]] && ! kill -0 "$FO_WAIT_PID" 2>/dev/null; then
      dump_log "$logfile"
      die "$what: process $FO_WAIT_PID exited before becoming ready; see $logfile"
    fi
    if ((SECONDS >= deadline)); then
      dump_log "$logfile"
      die "$what: not ready after ${timeout}s; see $logfile"
    fi
    sleep 0.5
  done
}

dump_log() {
  local logfile="$1"
  if [[ -f "$logfile" ]]; then
    printf -- '----- last 30 lines of %s -----\n' "$logfile" >&2
    tail -n 30 "$logfile" >&2 || true
    printf -- '-----\n' >&2
  fi
}

# `pid_alive PIDFILE`: true if the pid file names a live (non-zombie) process
# that is still the one we started. The cache outlives the processes (a
# machine restart, a session handed over), so a stale pid may by now belong
# to something else: if PIDFILE has a sibling .cmd file (written at start),
# the process's command line must contain that text.
pid_alive() {
  local pidfile="$1" pid state cmdfile="${1%.pid}.cmd"
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$state" != Z ]] || return 1
  if [[ -s "$cmdfile" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(cat "$cmdfile")" || return 1
  fi
}

# `port_in_use PORT`: true if something listens on 127.0.0.1:PORT.
# Uses bash's /dev/tcp so it needs neither ss nor netstat.
port_in_use() {
  (exec 3<>"/dev/tcp/$FO_HOST/$1") 2>/dev/null
}

# `stop_pidfile NAME PIDFILE`: TERM, wait up to 20 s, then KILL; remove the
# pid file. Only ever signals the pid we recorded ourselves, never by name.
stop_pidfile() {
  local name="$1" pidfile="$2" pid i
  if ! pid_alive "$pidfile"; then
    [[ -e "$pidfile" ]] && log "$name: not running (stale pid file removed)"
    rm -f "$pidfile" "${pidfile%.pid}.cmd"
    return 0
  fi
  pid="$(cat "$pidfile")"
  log "$name: stopping pid $pid (TERM)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name: pid $pid ignored TERM for 20s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile" "${pidfile%.pid}.cmd"
}

# Human-readable duration for the "took Ns" messages.
fmt_secs() {
  printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# Apply crds/ to the apiserver of the sourced env.sh and wait until every CRD is Established, so
# `make demo`, `make bench` and `make chaos` work on a fresh environment (not only after the tests).
# --validate=false: the local v1.20 apiserver predates CEL; it drops x-kubernetes-validations.
install_crds() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  # Its stderr warns about CRDs the tests created without last-applied; keep it for a failure only.
  kubectl --request-timeout=20s apply --validate=false -f "$root/crds/" >/dev/null 2>"$FO_LOG_DIR/install-crds.log" ||
    { dump_log "$FO_LOG_DIR/install-crds.log"; die "kubectl apply -f crds/ failed"; }
  local crd
  for crd in "$root"/crds/*.yaml; do
    kubectl --request-timeout=20s wait --for=condition=Established --timeout=60s -f "$crd" >/dev/null
  done
}
