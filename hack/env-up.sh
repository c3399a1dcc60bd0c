#!/usr/bin/env bash
# Start (or reuse, if already running and healthy) the integration-test
# environment on loopback:
#   etcd            http://127.0.0.1:$FARGATE_OPERATOR_ETCD_PORT      (23790; peer 23800)
#   kube-apiserver  https://127.0.0.1:$FARGATE_OPERATOR_APISERVER_PORT (16443)
#   moto            http://127.0.0.1:$FARGATE_OPERATOR_MOTO_PORT      (15000; hack/moto-server.py)
# and write:
#   $FO_CACHE/env/kubeconfig  (token user, CA embedded)
#   $FO_CACHE/env/env.sh      (source it: KUBECONFIG, FARGATE_TEST_AWS_ENDPOINT, dummy AWS creds)
#
# The servers are detached (own session, stdin/stdout closed) so they outlive
# this script and later test runs reuse them; hack/env-down.sh stops them.
# Run hack/setup.sh first.
#
# Env: FARGATE_OPERATOR_CACHE, the *_PORT variables above,
#      FARGATE_OPERATOR_READY_TIMEOUT (seconds per server, default 180).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START=$SECONDS
READY_TIMEOUT="${FARGATE_OPERATOR_READY_TIMEOUT:-180}"
APISERVER="$FO_BIN/kube-apiserver"
MOTO="$FO_VENV/bin/moto_server"
PKI="$FO_ENV_DIR/pki"
KUBECONFIG_FILE="$FO_ENV_DIR/kubeconfig"
TOKEN_FILE="$FO_ENV_DIR/admin.token"

command -v etcd >/dev/null || die "etcd not found; run hack/setup.sh"
[[ -x "$APISERVER" ]] || die "$APISERVER missing; run hack/setup.sh"
[[ -x "$MOTO" ]] || die "$MOTO missing; run hack/setup.sh"
command -v kubectl >/dev/null || die "kubectl not found"

mkdir -p "$FO_ENV_DIR" "$PKI"
chmod 700 "$FO_ENV_DIR"

# Serialise concurrent env-up/env-down on the same cache.
exec 9>"$FO_ENV_DIR/env.lock"
flock 9

###############################################################################
# Credentials and certificates (generated once, reused while valid)
###############################################################################

# A random local admin token: it only ever unlocks this loopback apiserver.
if [[ ! -s "$TOKEN_FILE" ]]; then
  (umask 077 && openssl rand -hex 32 >"$TOKEN_FILE")
fi
TOKEN="$(cat "$TOKEN_FILE")"
# --token-auth-file format: token,user,uid,"group1,group2"
(umask 077 && printf '%s,fargate-operator-admin,fargate-operator-admin,"system:masters"\n' "$TOKEN" \
  >"$FO_ENV_DIR/tokens.csv.tmp")
mv -f "$FO_ENV_DIR/tokens.csv.tmp" "$FO_ENV_DIR/tokens.csv"

# Our own CA + serving cert instead of the one --cert-dir would self-sign:
# kube-rs uses rustls (webpki), which accepts only a proper chain: a v3 CA
# (basicConstraints CA:TRUE, keyCertSign) signing a leaf that is not a CA,
# has the address in subjectAltName (IP:127.0.0.1; CN is ignored) and the
# serverAuth EKU. With the CA embedded in the kubeconfig, no client needs
# insecure-skip-tls-verify.
gen_ca() {
  log "generating test CA in $PKI"
  openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -subj "/CN=fargate-operator-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
  rm -f "$PKI/apiserver.crt" # a new CA invalidates the leaf
}

gen_serving_cert() {
  log "generating apiserver serving cert (SAN IP:127.0.0.1, DNS:localhost)"
  openssl req -new -nodes -newkey rsa:2048 -sha256 \
    -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr" \
    -subj "/CN=kube-apiserver" 2>/dev/null
  cat >"$PKI/apiserver.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$FO_HOST,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
authorityKeyIdentifier=keyid
subjectKeyIdentifier=hash
EOF
  openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -sha256 -days 825 -extfile "$PKI/apiserver.ext" \
    -out "$PKI/apiserver.crt" 2>/dev/null
  rm -f "$PKI/apiserver.csr"
}

(
  umask 077
  # Regenerate when missing or expiring within a day, so a long-lived cache
  # never serves an expired cert.
  if [[ ! -s "$PKI/ca.crt" || ! -s "$PKI/ca.key" ]] || ! openssl x509 -checkend 86400 -noout -in "$PKI/ca.crt" >/dev/null; then
    gen_ca
  fi
  if [[ ! -s "$PKI/apiserver.crt" || ! -s "$PKI/apiserver.key" ]] ||
    ! openssl x509 -checkend 86400 -noout -in "$PKI/apiserver.crt" >/dev/null ||
    ! openssl verify -CAfile "$PKI/ca.crt" "$PKI/apiserver.crt" >/dev/null 2>&1; then
    gen_serving_cert
  fi
  # Service-account token signing key (RSA; the public half verifies).
  if [[ ! -s "$PKI/sa.key" ]]; then
    log "generating service-account signing key"
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
)

###############################################################################
# Process management
###############################################################################

# `start_detached NAME LOG CMD...`: start CMD in its own session (setsid: no
# SIGHUP when the calling shell or CI step ends; nohup for good measure) with
# stdin/stdout/stderr away from our terminal, and record its pid. In a
# non-interactive shell a background job is not a process-group leader, so
# setsid execs in place and $! is the server's own pid.
start_detached() {
  local name="$1" logfile="$2"
  shift 2
  [[ -f "$logfile" ]] && mv -f "$logfile" "$logfile.prev"
  printf '# %s started %s\n# %s\n' "$name" "$(date -Is)" "$*" >"$logfile"
  (
    # Close every inherited fd above 2 first: a server that inherits a lock
    # fd (our fd 9, or the one `flock LOCKFILE hack/env-up.sh` passes down)
    # holds that lock for as long as it runs, and the next env-up/env-down
    # waiting on it hangs forever.
    for fd in /proc/"$BASHPID"/fd/*; do
      fd="${fd##*/}"
      if ((fd > 2)); then { eval "exec $fd>&-"; } 2>/dev/null || true; fi
    done
    exec nohup setsid "$@" >>"$logfile" 2>&1 </dev/null
  ) &
  echo $! >"$FO_ENV_DIR/$name.pid"
  printf '%s' "$1" >"$FO_ENV_DIR/$name.cmd" # what pid_alive checks the pid against
  log "$name: started pid $! (log: $logfile)"
}

# `ensure NAME PORT HEALTH_FN FINGERPRINT CMD...`: reuse a running, healthy
# NAME started with the same configuration; otherwise (re)start it and wait
# until HEALTH_FN passes.
ensure() {
  local name="$1" port="$2" health="$3" fingerprint="$4"
  shift 4
  local pidfile="$FO_ENV_DIR/$name.pid" logfile="$FO_ENV_DIR/$name.log"
  local fpfile="$FO_ENV_DIR/$name.config"
  if pid_alive "$pidfile"; then
    if [[ "$(cat "$fpfile" 2>/dev/null)" != "$fingerprint" ]]; then
      log "$name: configuration changed, restarting"
      stop_pidfile "$name" "$pidfile"
    elif FO_WAIT_PID="$(cat "$pidfile")" wait_for_quiet 15 "$health"; then
      log "$name: reusing pid $(cat "$pidfile") (healthy)"
      return 0
    else
      warn "$name: pid $(cat "$pidfile") is running but unhealthy; restarting (old log: $logfile.prev)"
      stop_pidfile "$name" "$pidfile"
    fi
  else
    rm -f "$pidfile"
  fi
  if port_in_use "$port"; then
    die "$name: 127.0.0.1:$port is already taken by a process we did not start; stop it or set the port variable (see hack/lib.sh)"
  fi
  start_detached "$name" "$logfile" "$@"
  printf '%s' "$fingerprint" >"$fpfile"
  FO_WAIT_PID="$(cat "$pidfile")" wait_for "$READY_TIMEOUT" "$name" "$logfile" "$health"
  log "$name: ready"
}

# Like wait_for but silent and returning non-zero instead of dying.
wait_for_quiet() {
  local timeout="$1" deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    [[ -z "${FO_WAIT_PID:-}" ]] || kill -0 "$FO_WAIT_PID" 2>/dev/null || return 1
    sleep 0.5
  done
}

# `fingerprint FILES... -- CMD...`: hash of a command line and the content of
# the files it reads (certs, tokens): if any of them changes, a running
# server is stale and gets restarted.
fingerprint() {
  local files=()
  while [[ "$1" != "--" ]]; do files+=("$1"); shift; done
  shift
  { printf '%s\n' "$@"; ((${#files[@]} == 0)) || cat "${files[@]}"; } | sha256sum | cut -d' ' -f1
}

###############################################################################
# etcd
###############################################################################
ETCD_URL="http://$FO_HOST:$FO_ETCD_PORT"
etcd_healthy() { curl -fsS --max-time 2 "$ETCD_URL/health" | grep -q '"health":"true"'; }

# Single member, loopback only. No fsync-heavy tuning flags: etcd 3.4 lacks
# --unsafe-no-fsync; the data set of a test run is tiny anyway.
ETCD_CMD=(
  etcd
  --name fargate-operator-test
  --data-dir "$FO_ENV_DIR/etcd-data"
  --listen-client-urls "$ETCD_URL"
  --advertise-client-urls "$ETCD_URL"
  --listen-peer-urls "http://$FO_HOST:$FO_ETCD_PEER_PORT"
  --initial-advertise-peer-urls "http://$FO_HOST:$FO_ETCD_PEER_PORT"
  --initial-cluster "fargate-operator-test=http://$FO_HOST:$FO_ETCD_PEER_PORT"
  --initial-cluster-state new
  --logger zap --log-outputs stderr --log-level warn
)
ensure etcd "$FO_ETCD_PORT" etcd_healthy "$(fingerprint -- "${ETCD_CMD[@]}")" "${ETCD_CMD[@]}"

###############################################################################
# kube-apiserver
###############################################################################
APISERVER_URL="https://$FO_HOST:$FO_APISERVER_PORT"
apiserver_healthy() {
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $TOKEN" \
    "$APISERVER_URL/readyz" | grep -qx ok
}

APISERVER_CMD=(
  "$APISERVER"
  --etcd-servers "$ETCD_URL"
  # Loopback only; advertise the same address (the default would be the
  # machine's first non-loopback IP).
  --bind-address "$FO_HOST"
  --advertise-address "$FO_HOST"
  --secure-port "$FO_APISERVER_PORT"
  # No --insecure-port: in v1.20 the plain-HTTP port is already gone (the
  # flag is accepted but "has no effect"), so nothing listens on 8080.
  --tls-cert-file "$PKI/apiserver.crt"
  --tls-private-key-file "$PKI/apiserver.key"
  # Ignored while --tls-* are set; keeps any self-signed fallback out of
  # /var/run/kubernetes.
  --cert-dir "$PKI/generated"
  --token-auth-file "$FO_ENV_DIR/tokens.csv"
  --authorization-mode RBAC
  --service-account-key-file "$PKI/sa.pub"
  --service-account-signing-key-file "$PKI/sa.key"
  --service-account-issuer https://kubernetes.default.svc.cluster.local
  --service-cluster-ip-range 10.96.0.0/24
  # No kube-controller-manager runs, so nothing would ever create the
  # "kubernetes" Service endpoints for a loopback advertise address: don't try.
  --endpoint-reconciler-type none
  --profiling=false
)
ensure kube-apiserver "$FO_APISERVER_PORT" apiserver_healthy \
  "$(fingerprint "$FO_ENV_DIR/tokens.csv" "$PKI/apiserver.crt" "$PKI/sa.pub" -- "${APISERVER_CMD[@]}")" \
  "${APISERVER_CMD[@]}"

###############################################################################
# moto (AWS emulator)
###############################################################################
MOTO_URL="http://$FO_HOST:$FO_MOTO_PORT"
moto_healthy() { curl -fsS --max-time 2 -o /dev/null "$MOTO_URL/moto-api/"; }
# moto's own server plus the idempotency tokens AWS honours and moto ignores (Route 53
# CallerReference, ECS RunTask clientToken): see hack/moto_idempotency.py.
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MOTO_CMD=("$FO_VENV/bin/python" "$HACK_DIR/moto-server.py" -H "$FO_HOST" -p "$FO_MOTO_PORT")
ensure moto "$FO_MOTO_PORT" moto_healthy \
  "$(fingerprint "$HACK_DIR/moto-server.py" "$HACK_DIR/moto_idempotency.py" -- "${MOTO_CMD[@]}")" "${MOTO_CMD[@]}"

# By default every DescribeTasks advances each ECS task one state (RUNNING ->
# DEACTIVATING -> ... -> STOPPED), so pollers watch healthy tasks die. Make
# the progression manual; tests stop tasks with StopTask. Idempotent, so it
# is (re)applied on every env-up, also to a reused server.
curl -fsS --max-time 5 -X POST "$MOTO_URL/moto-api/state-manager/set-transition" \
  -H 'Content-Type: application/json' \
  -d '{"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}}' \
  >/dev/null || die "moto: set-transition for ecs::task failed; see $FO_ENV_DIR/moto.log"
curl -fsS --max-time 5 "$MOTO_URL/moto-api/state-manager/get-transition?model_name=ecs::task" |
  grep -q '"manual"' || die "moto: ecs::task transition is not manual after setting it"
log "moto: ecs::task state transition set to manual"

###############################################################################
# kubeconfig + env.sh
###############################################################################
CA_DATA="$(base64 -w0 <"$PKI/ca.crt")"
(
  umask 077
  cat >"$KUBECONFIG_FILE.tmp" <<EOF
# Generated by hack/env-up.sh for the local test apiserver; not a real cluster.
apiVersion: v1
kind: Config
clusters:
- name: fargate-operator-test
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $CA_DATA
users:
- name: fargate-operator-admin
  user:
    token: $TOKEN
contexts:
- name: fargate-operator-test
  context:
    cluster: fargate-operator-test
    user: fargate-operator-admin
    namespace: default
current-context: fargate-operator-test
EOF
  mv -f "$KUBECONFIG_FILE.tmp" "$KUBECONFIG_FILE"

  cat >"$FO_ENV_DIR/env.sh.tmp" <<EOF
# Generated by hack/env-up.sh. Source it before running the integration tests:
#   source $FO_ENV_DIR/env.sh
# Everything here points at loopback emulators; the AWS keys are moto's dummy
# values (moto files requests under account 123456789012 for unknown keys).
export KUBECONFIG="$KUBECONFIG_FILE"
export FARGATE_TEST_AWS_ENDPOINT="$MOTO_URL"
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
# Keep the SDK credential/region chain from ever probing the EC2 metadata
# address, and from mixing in a developer's real profile or session.
export AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE
EOF
  mv -f "$FO_ENV_DIR/env.sh.tmp" "$FO_ENV_DIR/env.sh"
)

###############################################################################
# Smoke checks: the things the operator's tests depend on
###############################################################################
KC=(kubectl --kubeconfig "$KUBECONFIG_FILE" --request-timeout=20s)
"${KC[@]}" get ns >/dev/null || die "kubectl get ns failed; see $FO_ENV_DIR/kube-apiserver.log"

# A CRD with a status subresource becomes Established, and a
# coordination.k8s.io/v1 Lease (leader election) can be written. Both are
# deleted again so the tests start from an empty API.
"${KC[@]}" apply -f - >/dev/null <<'EOF' || die "creating the smoke-test CRD failed"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: envchecks.smoke.fargate-operator.test
spec:
  group: smoke.fargate-operator.test
  names: {kind: EnvCheck, plural: envchecks, singular: envcheck, listKind: EnvCheckList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {replicas: {type: integer}}}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
EOF
"${KC[@]}" wait --for=condition=Established --timeout=60s crd/envchecks.smoke.fargate-operator.test >/dev/null ||
  die "smoke-test CRD never became Established"
"${KC[@]}" apply -f - >/dev/null <<'EOF' || die "creating a Lease failed"
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: fargate-operator-env-check
  namespace: default
spec:
  holderIdentity: env-up
  leaseDurationSeconds: 15
EOF
"${KC[@]}" delete lease -n default fargate-operator-env-check >/dev/null
"${KC[@]}" delete crd envchecks.smoke.fargate-operator.test --wait=false >/dev/null
log "kubectl: namespaces, CRD and Lease OK"

log "environment up in $(fmt_secs $((SECONDS - START))):"
log "  etcd            $ETCD_URL"
log "  kube-apiserver  $APISERVER_URL"
log "  moto            $MOTO_URL"
log "  kubeconfig      $KUBECONFIG_FILE"
log "  use:  source $FO_ENV_DIR/env.sh"
