#!/usr/bin/env bash
# Install everything the integration tests need, skipping what is already there:
#   - Debian packages: etcd-server (etcd), golang-go (Go 1.19, only to build
#     kube-apiserver), dpkg-dev (apt-get source), and small tools;
#   - $FO_CACHE/venv with moto[server] (the AWS emulator);
#   - $FO_CACHE/bin/kube-apiserver v1.20.2, built from Debian bookworm's
#     `kubernetes` source package (no other way to get an apiserver binary here:
#     only package registries are reachable, and Debian ships no kube-apiserver).
#
# Safe to rerun: a warm run only checks and exits in seconds.
# Cold run: ~1 min apt + ~1 min venv + the apiserver build (see the log path
# it prints); measured numbers are in hack/README.md.
#
# Env: FARGATE_OPERATOR_CACHE (default ~/.cache/fargate-operator),
#      FARGATE_OPERATOR_MOTO_VERSION, FO_BUILD_JOBS (default 2).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START=$SECONDS
mkdir -p "$FO_CACHE" "$FO_BIN" "$FO_LOG_DIR"

# One setup at a time per cache (a developer's shell and a test run may race).
exec 9>"$FO_CACHE/.setup.lock"
if ! flock -n 9; then
  log "another setup.sh holds $FO_CACHE/.setup.lock; waiting for it"
  flock 9
fi

export DEBIAN_FRONTEND=noninteractive

###############################################################################
# 1. Debian packages
###############################################################################
# etcd-server: the etcd binary (3.4) kube-apiserver 1.20 stores into.
# golang-go:   Go 1.19, to build kube-apiserver (Go >= 1.18 needs the reflect2
#              patch below).
# dpkg-dev:    dpkg-source, which `apt-get source` uses to unpack + patch.
# xz-utils/patch: dpkg-source needs them for the 3.0 (quilt) debian.tar.xz.
# openssl/curl/ca-certificates: env-up.sh makes certs and polls /readyz.
# util-linux:  flock/setsid (essential on Debian, listed for other bases).
APT_PACKAGES=(etcd-server golang-go dpkg-dev xz-utils patch openssl curl ca-certificates util-linux)

APT_UPDATED=0
apt_update_once() {
  if [[ "$APT_UPDATED" -eq 0 ]]; then
    log "apt-get update"
    as_root apt-get update -qq >"$FO_LOG_DIR/apt-update.log" 2>&1 ||
      { dump_log "$FO_LOG_DIR/apt-update.log"; die "apt-get update failed"; }
    APT_UPDATED=1
  fi
}

pkg_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  pkg_installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt_update_once
  log "apt-get install ${missing[*]}"
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >"$FO_LOG_DIR/apt-install.log" 2>&1 ||
    { dump_log "$FO_LOG_DIR/apt-install.log"; die "apt-get install failed"; }
else
  log "Debian packages: all present (${APT_PACKAGES[*]})"
fi
command -v etcd >/dev/null || die "etcd not on PATH after installing etcd-server"

###############################################################################
# 2. moto (AWS emulator) in its own virtualenv
###############################################################################
moto_ok() {
  [[ -x "$FO_VENV/bin/moto_server" ]] &&
    "$FO_VENV/bin/moto_server" --help >/dev/null 2>&1 &&
    [[ "$("$FO_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" == "$FO_MOTO_VERSION" ]]
}

if moto_ok; then
  log "moto $FO_MOTO_VERSION: present in $FO_VENV"
else
  command -v python3 >/dev/null || die "python3 not found"
  log "creating venv $FO_VENV with moto[server]==$FO_MOTO_VERSION (log: $FO_LOG_DIR/venv.log)"
  # --clear: a half-built venv or one made by another python is rebuilt whole.
  python3 -m venv --clear "$FO_VENV" >"$FO_LOG_DIR/venv.log" 2>&1 ||
    { dump_log "$FO_LOG_DIR/venv.log"; die "python3 -m venv failed"; }
  "$FO_VENV/bin/pip" install --disable-pip-version-check -q "moto[server]==$FO_MOTO_VERSION" \
    >>"$FO_LOG_DIR/venv.log" 2>&1 ||
    { dump_log "$FO_LOG_DIR/venv.log"; die "pip install moto[server] failed"; }
  moto_ok || die "moto_server does not work after install; see $FO_LOG_DIR/venv.log"
  log "moto $FO_MOTO_VERSION: installed"
fi

###############################################################################
# 3. kube-apiserver v1.20.2 from Debian's `kubernetes` source package
###############################################################################
APISERVER="$FO_BIN/kube-apiserver"
BUILD_LOG="$FO_LOG_DIR/kube-apiserver-build.log"

apiserver_ok() {
  [[ -x "$APISERVER" ]] && "$APISERVER" --version 2>/dev/null | grep -qx "Kubernetes $FO_K8S_VERSION"
}

# Add a deb-src entry for bookworm in its own file, copying the URIs and key
# of the machine's existing deb822 bookworm entry (so a mirror or snapshot
# configured there is honoured). Only done when `apt-cache showsrc` cannot
# already see the package.
ensure_deb_src() {
  if [[ -n "$(apt-cache showsrc kubernetes 2>/dev/null | head -1)" ]]; then
    return 0
  fi
  local file=/etc/apt/sources.list.d/fargate-operator-src.sources
  if [[ ! -f "$file" ]]; then
    local uris signed
    # First stanza of type deb whose Suites has the bare word "bookworm".
    read -r uris signed < <(
      awk '
        function flush() { if (isdeb && isbw && uris != "" && !done) { print uris, (sb == "" ? "-" : sb); done = 1 }
                           isdeb = isbw = 0; uris = sb = "" }
        /^[[:space:]]*$/ { flush(); next }
        /^Types:/    { for (i = 2; i <= NF; i++) if ($i == "deb") isdeb = 1 }
        /^Suites:/   { for (i = 2; i <= NF; i++) if ($i == "bookworm") isbw = 1 }
        /^URIs:/     { uris = $2 }
        /^Signed-By:/ { sb = $2 }
        END { flush() }
      ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    ) || true
    uris="${uris:-http://deb.debian.org/debian}"
    signed="${signed:--}"
    [[ "$signed" == "-" ]] && signed=/usr/share/keyrings/debian-archive-keyring.gpg
    log "adding deb-src for bookworm ($uris) in $file"
    as_root tee "$file" >/dev/null <<EOF
# Added by fargate-operator hack/setup.sh: source packages (kubernetes) for
# building kube-apiserver for the integration tests.
Types: deb-src
URIs: $uris
Suites: bookworm
Components: main
Signed-By: $signed
EOF
  fi
  APT_UPDATED=0
  apt_update_once
  [[ -n "$(apt-cache showsrc kubernetes 2>/dev/null | head -1)" ]] ||
    die "apt-cache showsrc kubernetes finds nothing even with $file"
}

# Replicate modern-go/reflect2 v1.0.2's Go 1.18 fix in the vendored v1.0.1.
# Go 1.18 changed reflect.mapiterinit(t, m) *hiter into
# reflect.mapiterinit(t, m, it *hiter): the runtime now fills an iterator the
# caller allocated. v1.0.1 still links to the old 2-arg shape, so it reads a
# garbage return value and kube-apiserver segfaults as soon as json-iterator
# walks a map (i.e. at startup). The fix: link to the 3-arg function, give
# hiter the full runtime.hiter layout (runtime writes all of it, and the GC
# must see the pointer fields where they really are), and keep the old
# 2-arg helper as a wrapper so the callers stay untouched.
patch_reflect2() {
  local src="$1"
  local f="$src/vendor/github.com/modern-go/reflect2/unsafe_link.go"
  if grep -q 'fargate-operator: Go 1.18 mapiterinit' "$f"; then
    log "reflect2: already patched"
    return 0
  fi
  log "reflect2: patching $f for Go >= 1.18 (3-arg reflect.mapiterinit)"
  python3 - "$f" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()

old_link = '''// m escapes into the return value, but the caller of mapiterinit
// doesn't let the return value escape.
//go:noescape
//go:linkname mapiterinit reflect.mapiterinit
func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter
'''
new_link = '''// fargate-operator: Go 1.18 mapiterinit fix (as in reflect2 v1.0.2).
// Since Go 1.18 reflect.mapiterinit fills an iterator that the caller
// allocates instead of returning one.
//go:noescape
//go:linkname reflect_mapiterinit reflect.mapiterinit
func reflect_mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)

// mapiterinit keeps the old two-argument shape for the existing callers.
func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter {
	it := new(hiter)
	reflect_mapiterinit(rtype, m, it)
	return it
}
'''
old_hiter = '''type hiter struct {
	key   unsafe.Pointer // Must be in first position.  Write nil to indicate iteration end (see cmd/internal/gc/range.go).
	value unsafe.Pointer // Must be in second position (see cmd/internal/gc/range.go).
	// rest fields are ignored
}
'''
# runtime.hiter of Go 1.18-1.23 (src/runtime/map.go), field for field: the
# runtime writes the whole struct, and the GC scans it by this type.
new_hiter = '''type hiter struct {
	key         unsafe.Pointer // Must be in first position.  Write nil to indicate iteration end.
	value       unsafe.Pointer // Must be in second position.
	t           unsafe.Pointer
	h           unsafe.Pointer
	buckets     unsafe.Pointer
	bptr        unsafe.Pointer
	overflow    *[]unsafe.Pointer
	oldoverflow *[]unsafe.Pointer
	startBucket uintptr
	offset      uint8
	wrapped     bool
	B           uint8
	i           uint8
	bucket      uintptr
	checkBucket uintptr
}
'''
for old, new in ((old_link, new_link), (old_hiter, new_hiter)):
    if text.count(old) != 1:
        sys.exit("reflect2 patch: expected text not found in %s (different reflect2 version?)" % path)
    text = text.replace(old, new)
open(path, "w").write(text)
PY
}

# `go version` -> minor number, e.g. 19 for go1.19.8.
go_minor() {
  go version | sed -nE 's/.* go1\.([0-9]+)(\.[0-9]+)?.*/\1/p'
}

build_apiserver() {
  local minor
  minor="$(go_minor)"
  [[ -n "$minor" ]] || die "cannot parse '$(go version)'"
  # The reflect2 fix hard-codes runtime.hiter; Go 1.24 replaced the map
  # implementation (swiss tables) and older Go needs no fix at all.
  ((minor >= 18 && minor <= 23)) ||
    die "need Go 1.18..1.23 to build kube-apiserver 1.20 with the reflect2 fix; have $(go version)"

  # --- source --------------------------------------------------------------
  local srcroot="$FO_CACHE/src" src
  src="$(find "$srcroot" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' 2>/dev/null | head -1 || true)"
  if [[ -z "$src" || ! -f "$src/.fo-unpacked" ]]; then
    ensure_deb_src
    log "fetching Debian source package 'kubernetes' into $srcroot"
    rm -rf "$srcroot"
    mkdir -p "$srcroot"
    # Needs no root. APT::Sandbox::User=root: when we are root, apt's _apt
    # user cannot write into our cache dir and apt falls back to root anyway;
    # this only silences that warning.
    (cd "$srcroot" && apt-get -o APT::Sandbox::User=root source -qq kubernetes) \
      >"$FO_LOG_DIR/apt-source.log" 2>&1 ||
      { dump_log "$FO_LOG_DIR/apt-source.log"; die "apt-get source kubernetes failed"; }
    src="$(find "$srcroot" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -1)"
    [[ -n "$src" && -d "$src/vendor" ]] || die "unexpected layout in $srcroot (no kubernetes-*/vendor)"
    touch "$src/.fo-unpacked"
  else
    log "source: reusing $src"
  fi
  grep -q 'really1.20.2' <<<"$src" || warn "source dir $src is not the expected 1.20.2 tree"

  # --- GOPATH mode ---------------------------------------------------------
  # Module mode fails offline ("updates to go.mod needed": 1.20's go.mod
  # predates Go 1.19's stricter checks and vendor/modules.txt consistency
  # rules). GOPATH mode with the tree at $GOPATH/src/k8s.io/kubernetes is how
  # Kubernetes itself built in 2021 (hack/run-in-gopath.sh) and needs no network.
  local gopath="$FO_CACHE/gopath"
  mkdir -p "$gopath/src/k8s.io"
  ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"
  export GOPATH="$gopath" GO111MODULE=off GOFLAGS='' GOPROXY=off GOTOOLCHAIN=local \
    CGO_ENABLED=0 GOCACHE="$FO_CACHE/go-build"
  local jobs="${FO_BUILD_JOBS:-2}"
  # Enter through the symlink: in GOPATH mode the import path comes from cwd.
  cd "$gopath/src/k8s.io/kubernetes"

  patch_reflect2 "$src"

  # --- generated OpenAPI definitions --------------------------------------
  # The release tarball ships every zz_generated file except
  # pkg/generated/openapi/zz_generated.openapi.go, which kube-apiserver
  # imports. Generate it like Makefile.generated_files does: input is every
  # package (outside vendor/, staging/ named as vendor/) with a
  # `+k8s:openapi-gen=` tag, minus code-generator and sample-apiserver.
  local openapi_out="pkg/generated/openapi/zz_generated.openapi.go"
  if [[ ! -s "$openapi_out" ]]; then
    log "building openapi-gen (log: $BUILD_LOG)"
    nice -n 10 go build -p "$jobs" -o _output/bin/openapi-gen ./vendor/k8s.io/kube-openapi/cmd/openapi-gen \
      >>"$BUILD_LOG" 2>&1 || { dump_log "$BUILD_LOG"; die "building openapi-gen failed; see $BUILD_LOG"; }
    local inputs
    inputs="$(
      find -H . \( -path './_*' -o -path './.*' -o -path ./vendor -o -path ./debian \) -prune \
        -o -type f -name '*.go' -print0 |
        xargs -0 grep -l '^// *+k8s:' |
        xargs grep -l '+k8s:openapi-gen=' |
        sed -e 's|^\./staging/src/|vendor/|' -e 's|^\./||' |
        grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
        xargs -n1 dirname | LC_ALL=C sort -u |
        sed 's|^|k8s.io/kubernetes/|' | paste -sd, -
    )"
    [[ -n "$inputs" ]] || die "found no +k8s:openapi-gen= packages"
    log "generating $openapi_out from $(tr ',' '\n' <<<"$inputs" | wc -l) packages"
    # -r FILE: record API-rule violations instead of failing on them (the
    # upstream Makefile diffs this report against api/api-rules/; we don't care).
    nice -n 10 _output/bin/openapi-gen --logtostderr \
      -i "$inputs" \
      -o "$GOPATH/src" \
      -p k8s.io/kubernetes/pkg/generated/openapi \
      -O zz_generated.openapi \
      -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
      -r _output/openapi-violations.report \
      >>"$BUILD_LOG" 2>&1 || { rm -f "$openapi_out"; dump_log "$BUILD_LOG"; die "openapi-gen failed; see $BUILD_LOG"; }
    [[ -s "$openapi_out" ]] || die "openapi-gen wrote no $openapi_out; see $BUILD_LOG"
  else
    log "openapi: $openapi_out already generated"
  fi

  # --- kube-apiserver ------------------------------------------------------
  # Version stamps as hack/lib/version.sh would set them (in GOPATH mode the
  # packages live under k8s.io/kubernetes/vendor/), so /version and
  # `--version` say v1.20.2 rather than v0.0.0-master.
  local build_date ldflags="-s -w" pkg
  build_date="$(date -u -d "@$(dpkg-parsechangelog -l "$src/debian/changelog" -STimestamp 2>/dev/null || date +%s)" +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X k8s.io/kubernetes/vendor/$pkg.gitVersion=$FO_K8S_VERSION"
    ldflags+=" -X k8s.io/kubernetes/vendor/$pkg.gitMajor=1"
    ldflags+=" -X k8s.io/kubernetes/vendor/$pkg.gitMinor=20"
    ldflags+=" -X k8s.io/kubernetes/vendor/$pkg.gitTreeState=archive"
    ldflags+=" -X k8s.io/kubernetes/vendor/$pkg.buildDate=$build_date"
  done
  log "building kube-apiserver with $(go version | awk '{print $3}'), -p $jobs, niced; this takes a while (log: $BUILD_LOG)"
  local t0=$SECONDS
  # -v lists each package as it compiles: progress for `tail -f` on the log.
  nice -n 10 go build -v -p "$jobs" -ldflags "$ldflags" -o "$APISERVER.tmp" k8s.io/kubernetes/cmd/kube-apiserver \
    >>"$BUILD_LOG" 2>&1 || { dump_log "$BUILD_LOG"; die "building kube-apiserver failed; see $BUILD_LOG"; }
  mv -f "$APISERVER.tmp" "$APISERVER"
  log "kube-apiserver built in $(fmt_secs $((SECONDS - t0)))"
}

# kubectl: the tests and the demo drive the apiserver with it as users do. Every machine image of
# this project ships it (/usr/bin/kubectl); Debian bookworm has no package for it.
if command -v kubectl >/dev/null 2>&1; then
  log "kubectl: $(command -v kubectl)"
else
  die "kubectl is not on PATH; install kubectl >= 1.23 (the tests and make demo use it)"
fi

if apiserver_ok; then
  log "kube-apiserver $FO_K8S_VERSION: present at $APISERVER"
else
  : >"$BUILD_LOG"
  (build_apiserver)
  apiserver_ok || die "$APISERVER --version does not report $FO_K8S_VERSION; see $BUILD_LOG"
  log "kube-apiserver $FO_K8S_VERSION: $APISERVER"
fi

log "setup complete in $(fmt_secs $((SECONDS - START))) (cache: $FO_CACHE)"
