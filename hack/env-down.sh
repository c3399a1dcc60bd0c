#!/usr/bin/env bash
# Stop the test environment started by hack/env-up.sh: TERM, wait, then KILL,
# only the pids env-up.sh recorded (never by process name, so a developer's own
# etcd or moto is left alone).
#
#   hack/env-down.sh           stop; keep etcd data, certs and token (fast restart)
#   hack/env-down.sh --purge   also delete etcd data, so the next env-up starts
#                              from an empty cluster
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    -h | --help)
      sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

if [[ ! -d "$FO_ENV_DIR" ]]; then
  log "nothing to stop ($FO_ENV_DIR does not exist)"
  exit 0
fi

exec 9>"$FO_ENV_DIR/env.lock"
flock 9

# Reverse start order: clients (apiserver) before their storage (etcd).
for name in moto kube-apiserver etcd; do
  stop_pidfile "$name" "$FO_ENV_DIR/$name.pid"
  rm -f "$FO_ENV_DIR/$name.config"
done

if ((PURGE)); then
  log "purging etcd data ($FO_ENV_DIR/etcd-data)"
  rm -rf "$FO_ENV_DIR/etcd-data"
fi
log "environment stopped"
