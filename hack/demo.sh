#!/usr/bin/env bash
# `make demo`: run fargate-operator against the local environment (etcd + kube-apiserver + moto on
# loopback, started by hack/env-up.sh), apply every example, and show what the controllers report.
#
# On a terminal it then follows the operator's log until Ctrl-C; otherwise it stops the operator
# and exits. The environment keeps running either way (`make env-down` stops it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$FO_ENV_DIR/env.sh"

NS="${DEMO_NAMESPACE:-demo}"
METRICS_ADDR="${DEMO_METRICS_ADDR:-127.0.0.1:18080}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/fargate-operator"
LOG="$FO_LOG_DIR/operator-demo.log"
PIDFILE="$FO_ENV_DIR/operator-demo.pid"
KC=(kubectl --request-timeout=20s)
mkdir -p "$FO_LOG_DIR"

[[ -x "$BIN" ]] || die "$BIN is missing: run 'make build' (make demo does)"

stop_pidfile "fargate-operator (demo)" "$PIDFILE"

log "installing CRDs from crds/"
install_crds
"${KC[@]}" create namespace "$NS" --dry-run=client -o yaml | "${KC[@]}" apply -f - >/dev/null

log "creating the AWS resources the examples refer to in moto (VPC, subnets, ALB + listener, ECS clusters, task definitions, zones)"
SUBST="$FO_ENV_DIR/demo-examples.sed"
"$FO_VENV/bin/python" "$ROOT/hack/demo_fixtures.py" >"$SUBST"

log "starting fargate-operator (log: $LOG)"
FARGATE_OPERATOR_CLUSTER_ID=demo \
  FARGATE_OPERATOR_REGION="$AWS_REGION" \
  FARGATE_OPERATOR_AWS_ENDPOINT_URL="$FARGATE_TEST_AWS_ENDPOINT" \
  FARGATE_OPERATOR_METRICS_ADDR="$METRICS_ADDR" \
  FARGATE_OPERATOR_NAMESPACE="$NS" \
  FARGATE_OPERATOR_HEALTH_POLL_SECONDS=5 \
  FARGATE_OPERATOR_LEADER_ELECT=true \
  FARGATE_OPERATOR_LEADER_ELECTION_NAMESPACE="$NS" \
  FARGATE_OPERATOR_IDENTITY="demo-$(hostname)" \
  setsid nohup "$BIN" run >"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"
FO_WAIT_PID=$(cat "$PIDFILE") wait_for 60 "fargate-operator /readyz" "$LOG" curl -fsS "http://$METRICS_ADDR/readyz"

# A claim left by an interrupted earlier demo may be Failed (moto forgets its tasks when it stops,
# Kubernetes keeps the objects): start the claims afresh.
"${KC[@]}" delete hpc -n "$NS" --all --ignore-not-found >/dev/null
log "applying examples/ to namespace $NS (placeholder IDs rewritten to the moto ones)"
for f in "$ROOT"/examples/*.yaml; do
  # HotPoolWorker objects belong to the controller; that example only shows their shape.
  [[ "$(basename "$f")" == hotpoolworker.yaml ]] && continue
  sed -f "$SUBST" "$f" | "${KC[@]}" apply --validate=false -n "$NS" -f - >/dev/null
done
# An earlier demo applied the worker example; it is not a real worker.
"${KC[@]}" delete hpw -n "$NS" 3f2b6c1e-5d7a-4c8e-9b1f-2a6d4e8c0f17 --ignore-not-found >/dev/null
# Every object reports on its current generation once the controller has seen it.
for kind in fa dnsf hp hpc; do
  "${KC[@]}" wait -n "$NS" --for=jsonpath='{.status.observedGeneration}' --timeout=60s "$kind" --all >/dev/null
done
"${KC[@]}" wait -n "$NS" --for=condition=Ready --timeout=90s hp/workers-pool >/dev/null ||
  warn "HotPool workers-pool is not Ready yet; see kubectl describe hp workers-pool -n $NS"
"${KC[@]}" wait -n "$NS" --for=jsonpath='{.status.phase}'=Bound --timeout=60s hpc/job-42 >/dev/null ||
  warn "HotPoolClaim job-42 is not Bound yet"

echo
echo "== kubectl get accesspolicies (cluster-scoped)"
"${KC[@]}" get accesspolicies
for kind in fargateapps dnsfailovers hotpools hotpoolclaims; do
  echo
  echo "== kubectl get $kind -n $NS"
  "${KC[@]}" get "$kind" -n "$NS"
done
echo
echo "== FargateApp web in AWS (moto): status"
"${KC[@]}" get fa web -n "$NS" -o jsonpath='{"taskDefinition: "}{.status.taskDefinitionArn}{"\nservice:        "}{.status.serviceArn}{"\ntargetGroup:    "}{.status.targetGroupArn}{"\nrule priority:  "}{.status.listenerRulePriority}{"\nurl:            "}{.status.url}{"\n"}'
echo
echo "== conditions of FargateApp web"
"${KC[@]}" get fa web -n "$NS" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
echo
echo "== HotPool workers-pool: the implementation table (kubectl get hpw -l fargate.operator.dev/pool=workers-pool)"
"${KC[@]}" get hpw -n "$NS" -l fargate.operator.dev/pool=workers-pool -o wide
echo
echo "== HotPoolClaim job-42"
"${KC[@]}" get hpc job-42 -n "$NS" -o jsonpath='{"phase: "}{.status.phase}{"\nworker: "}{.status.worker}{"\naddress: "}{.status.ip}{":"}{.status.port}{"\ntask: "}{.status.taskArn}{"\nexpires: "}{.status.expiresAt}{"\n"}'
echo
echo "== what the operator made in AWS (moto), by the fargate.operator.dev/cluster=demo tag"
"$FO_VENV/bin/python" "$ROOT/hack/demo_aws.py"
echo
echo "== leader lease"
"${KC[@]}" get lease fargate-operator -n "$NS" -o jsonpath='holder: {.spec.holderIdentity}{"\n"}'
echo
echo "== metrics (http://$METRICS_ADDR/metrics)"
curl -fsS "http://$METRICS_ADDR/metrics" | grep -E '^fargate_operator_(leader|reconciles_total|status_writes_total|hotpool_)' || true
echo
echo "FargateApp is reconciled in AWS (here: moto, which never runs tasks, so Ready stays False while"
echo "Synced is True). DnsFailover and HotPool are reconciled too (moto starts worker tasks RUNNING at once)."
if [[ -t 0 && -t 1 || "${DEMO_KEEP:-0}" == 1 ]]; then
  echo "Try (KUBECONFIG=$KUBECONFIG):"
  echo "  kubectl delete hpc job-42 -n $NS      # its worker is stopped (onRelease: Stop) and the pool refills"
  echo "  kubectl patch fa web -n $NS --type merge -p '{\"spec\":{\"replicas\":3}}'   # then kubectl describe fa web -n $NS"
  echo "  kubectl explain fargateapp.spec.loadBalancer"
else
  echo "DEMO_KEEP=1 make demo leaves the examples and the operator running to play with."
fi

# Teardown: delete the examples while the operator runs, so every finalizer removes its AWS
# resources, then check none is left and stop the operator. DEMO_KEEP=1 leaves everything running.
teardown() {
  trap - INT TERM
  if [[ "${DEMO_KEEP:-0}" == 1 ]]; then
    log "DEMO_KEEP=1: leaving the examples and the operator (pid $(cat "$PIDFILE")) running"
    exit 0
  fi
  log "teardown: deleting the examples (the operator removes their AWS resources first)"
  "${KC[@]}" delete -n "$NS" hpc,hp,dnsf,fa --all --wait=false >/dev/null
  for kind in hpc hp dnsf fa; do
    "${KC[@]}" wait -n "$NS" --for=delete --timeout=120s "$kind" --all >/dev/null ||
      warn "some $kind objects are still there: kubectl describe $kind -n $NS"
  done
  left=$("$FO_VENV/bin/python" "$ROOT/hack/demo_aws.py" --count)
  if [[ "$left" == 0 ]]; then
    log "teardown: no AWS resource tagged fargate.operator.dev/cluster=demo is left in moto"
  else
    warn "teardown: $left AWS resource(s) tagged fargate.operator.dev/cluster=demo are left in moto"
  fi
  stop_pidfile "fargate-operator (demo)" "$PIDFILE"
  log "operator stopped; the environment keeps running (make env-down stops it)"
  exit 0
}

if [[ -t 0 && -t 1 ]]; then
  echo
  log "following the operator log; Ctrl-C deletes the examples, checks AWS is clean and stops the operator"
  trap teardown INT TERM
  tail -n +1 -f "$LOG" &
  wait $! || true
  teardown
else
  teardown
fi
