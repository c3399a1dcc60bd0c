#!/usr/bin/env bash
# Test the Argo CD health checks (deploy/argocd/health/<Kind>.lua) with real Lua interpreters:
#   - every sample in deploy/argocd/testdata/<Kind>/*.yaml gets the status (and message) its
#     header promises, under lua5.4 and under lua5.1 (Argo CD runs gopher-lua, a Lua 5.1:
#     a 5.4-only construct would pass under 5.4 and break in Argo CD);
#   - every line of every script runs in some sample; no script leaks a global;
#   - the samples are valid against the CRDs in crds/ (so they look like real objects);
#   - deploy/argocd/resource-customizations.yaml is what hack/gen-argocd-customizations.py makes
#     from the scripts, and embeds each script byte for byte;
#   - deploy/argocd/application.yaml is the Application issue #6 describes.
# Installs what it needs, idempotently: Debian's lua5.4 and lua5.1 (when missing) and PyYAML in
# $FARGATE_OPERATOR_CACHE/tools-venv (hack/tools-venv.sh). A warm run takes about a second.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/tools-venv.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LUAS=(lua5.4 lua5.1)

missing=()
for lua in "${LUAS[@]}"; do
  command -v "$lua" >/dev/null 2>&1 || missing+=("$lua")
done
if ((${#missing[@]})); then
  mkdir -p "$FO_LOG_DIR"
  logf="$FO_LOG_DIR/apt-lua.log"
  log "installing ${missing[*]} from Debian (log: $logf)"
  # The lock timeout: hack/setup.sh may be running apt at the same moment.
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${missing[@]}" >"$logf" 2>&1; then
    log "apt-get install failed; running apt-get update once and retrying"
    as_root apt-get -o DPkg::Lock::Timeout=300 update -qq >>"$logf" 2>&1 ||
      { dump_log "$logf"; die "apt-get update failed"; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends "${missing[@]}" >>"$logf" 2>&1 ||
      { dump_log "$logf"; die "apt-get install ${missing[*]} failed"; }
  fi
fi
for lua in "${LUAS[@]}"; do
  command -v "$lua" >/dev/null 2>&1 || die "$lua is not on PATH after installing it"
done

ensure_tools_venv
PY="$FO_TOOLS_VENV/bin/python"

status=0
log "health scripts against deploy/argocd/testdata (${LUAS[*]})"
"$PY" hack/argocd_health_test.py "${LUAS[@]}" >"$FO_LOG_DIR/argocd-health.log" 2>&1 || status=1
# The per-sample lines go to the log; failures and the summary to the terminal.
grep -v '^ok ' "$FO_LOG_DIR/argocd-health.log" || true
((status == 0)) || log "full output: $FO_LOG_DIR/argocd-health.log"

log "deploy/argocd/resource-customizations.yaml is up to date"
"$PY" hack/gen-argocd-customizations.py --check || status=1

log "deploy/argocd/resource-customizations.yaml and application.yaml parse and say what they should"
"$PY" - <<'PY' || status=1
import pathlib, sys, yaml

root = pathlib.Path(".")
errors = []
cm = yaml.safe_load((root / "deploy/argocd/resource-customizations.yaml").read_text())
data = (cm or {}).get("data") or {}
want_keys = set()
for lua in sorted((root / "deploy/argocd/health").glob("*.lua")):
    key = f"resource.customizations.health.fargate.operator.dev_{lua.stem}"
    want_keys.add(key)
    if data.get(key) != lua.read_text():
        errors.append(f"argocd-cm key {key} does not embed {lua} byte for byte")
if set(data) != want_keys:
    errors.append(f"argocd-cm keys {sorted(data)}, want {sorted(want_keys)}")
if (cm.get("kind"), cm.get("metadata", {}).get("name")) != ("ConfigMap", "argocd-cm"):
    errors.append("resource-customizations.yaml must be the argocd-cm ConfigMap")

app = yaml.safe_load((root / "deploy/argocd/application.yaml").read_text())
spec = app.get("spec", {})
src = spec.get("source", {})
checks = {
    "apiVersion": (app.get("apiVersion"), "argoproj.io/v1alpha1"),
    "kind": (app.get("kind"), "Application"),
    "spec.source.repoURL": (src.get("repoURL"), "https://github.com/example/fargate-operator.git"),
    "spec.source.path": (src.get("path"), "charts/fargate-operator"),
    "spec.syncPolicy.syncOptions": (spec.get("syncPolicy", {}).get("syncOptions"), ["CreateNamespace=true"]),
}
for field, (have, want) in checks.items():
    if have != want:
        errors.append(f"application.yaml {field} is {have!r}, want {want!r}")
for field in ("project", "destination"):
    if not spec.get(field):
        errors.append(f"application.yaml has no spec.{field}")
for e in errors:
    print("FAIL " + e)
print(f"argocd-manifests: {0 if errors else 2} passed, {len(errors)} failed")
sys.exit(1 if errors else 0)
PY

if ((status != 0)); then
  die "Argo CD health checks: FAILED (see above)"
fi
log "Argo CD health checks: all green"
