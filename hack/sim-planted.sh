#!/usr/bin/env bash
# Plant each known bug of hack/sim-planted/*.patch into a copy of HEAD and run the simulator at
# its `make test` budget against it. Each must be caught (the run fails); prints, per bug, whether
# it was caught, what failed first and how long it took. Exits non-zero when one is missed.
# Usage: make sim-planted   (env: SIM_SEEDS, SIM_STEPS, SIM_SHRINK_SECONDS as for the simulator;
#        SIM_PLANTED=03 runs only the patches whose name starts with 03)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

root="$(git rev-parse --show-toplevel)"
tree="$FO_CACHE/sim-planted/tree"
# Its own target directory: a planted build must never land in the checkout's.
export CARGO_TARGET_DIR="$FO_CACHE/cargo-target-planted"
mkdir -p "$FO_LOG_DIR" "$(dirname "$tree")"
missed=0
summary=()
for patch in "$root"/hack/sim-planted/"${SIM_PLANTED:-}"*.patch; do
  name="$(basename "$patch" .patch)"
  git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
  git -C "$root" worktree prune
  git -C "$root" worktree add --quiet --detach "$tree" HEAD
  git -C "$tree" apply "$patch"
  logfile="$FO_LOG_DIR/sim-planted-$name.log"
  log "$name: planted; running the simulator (log: $logfile)"
  start=$(date +%s)
  if (cd "$tree" && SIM_SHRINK_SECONDS="${SIM_SHRINK_SECONDS:-0}" \
      cargo test --locked --features sim --test simulation -- random_steps --nocapture) >"$logfile" 2>&1; then
    verdict="MISSED"
    missed=$((missed + 1))
  else
    verdict="caught"
  fi
  took=$(( $(date +%s) - start ))
  first="$(grep -m1 -A1 ' failed:$' "$logfile" | tail -n1 | cut -c1-160 || true)"
  summary+=("$name: $verdict in ${took}s${first:+ — $first}")
done
git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || true
for line in "${summary[@]}"; do log "$line"; done
[ "$missed" -eq 0 ] || die "$missed planted bug(s) not caught"
