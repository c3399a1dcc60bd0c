#!/usr/bin/env bash
# Build the release binary exactly as the Dockerfile's build stage does, then test that binary:
#   hack/release.sh                          build (cargo) + test the binary
#   hack/release.sh --binary PATH            test an already built binary, no cargo
#   hack/release.sh --print-build-command    print the build command and exit
# No Docker engine runs where the tests run, so this is how the image's build is exercised.
# The tests: `--version` reports Cargo.toml's version; `crd --out-dir` writes exactly crds/;
# `run --help` parses; the binary needs no shared library beyond what the runtime image
# (gcr.io/distroless/cc-debian12) ships: glibc and libgcc_s.
# Honours CARGO_TARGET_DIR (CI keeps it under the cache, outside the checkout).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# KEEP IDENTICAL to the RUN command of the Dockerfile's build stage: hack/lint-dockerfile.sh fails
# when the two differ.
RELEASE_BUILD=(cargo build --release --locked --bin fargate-operator)

# Shared libraries the distroless cc image provides (glibc's and libgcc_s).
ALLOWED_LIBS_RE='^(linux-vdso\.so\.1|libgcc_s\.so\.1|libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libutil\.so\.1|ld-linux-[a-z0-9-]+\.so\.[0-9]+|ld-linux\.so\.[0-9]+)$'

usage() {
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

binary=""
case "${1:-}" in
  --print-build-command)
    printf '%s\n' "${RELEASE_BUILD[*]}"
    exit 0
    ;;
  --binary)
    [[ -n "${2:-}" ]] || usage
    binary="$2"
    ;;
  "") ;;
  *) usage ;;
esac

if [[ -z "$binary" ]]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found"
  log "building: ${RELEASE_BUILD[*]}"
  t0=$SECONDS
  "${RELEASE_BUILD[@]}"
  binary="${CARGO_TARGET_DIR:-target}/release/fargate-operator"
  log "built $binary in $(fmt_secs $((SECONDS - t0)))"
fi
[[ -x "$binary" ]] || die "no executable at $binary"

failures=0
check() {
  local what="$1"
  shift
  if "$@"; then
    log "ok: $what"
  else
    warn "FAILED: $what"
    failures=$((failures + 1))
  fi
}

version_matches() {
  local want have
  want="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
  have="$("$binary" --version)"
  [[ "$have" == "fargate-operator $want" ]] || { warn "--version says '$have', Cargo.toml says $want"; return 1; }
}

crds_match() {
  local dir rc=0
  dir="$(mktemp -d)"
  if ! "$binary" crd --out-dir "$dir"; then
    rc=1
  elif ! diff -r crds "$dir" >&2; then
    warn "'$binary crd' differs from crds/ (run make crds?)"
    rc=1
  fi
  rm -rf "$dir"
  return "$rc"
}

run_help() {
  "$binary" run --help | grep -q -- '--cluster-id'
}

libs_allowed() {
  command -v ldd >/dev/null 2>&1 || { warn "ldd not found"; return 1; }
  local libs bad
  # `ldd` prints "name => path (addr)" or "path (addr)"; keep the library's file name.
  libs="$(ldd "$binary" | awk '{print $1}' | xargs -n1 basename)"
  bad="$(grep -Ev "$ALLOWED_LIBS_RE" <<<"$libs" || true)"
  [[ -z "$bad" ]] || { warn "links libraries the runtime image lacks: $(paste -sd' ' <<<"$bad")"; return 1; }
}

check "--version matches Cargo.toml" version_matches
check "'crd --out-dir' reproduces crds/" crds_match
check "'run --help' lists the flags" run_help
check "needs only glibc and libgcc_s (the distroless cc image)" libs_allowed

if ((failures)); then
  die "release checks: $failures failed for $binary"
fi
log "release binary OK: $binary ($(du -h "$binary" | cut -f1), sha256 $(sha256sum "$binary" | cut -c1-16)...)"
