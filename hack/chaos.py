#!/usr/bin/env python3
"""`make chaos` (part of `make test`): the operator under faults, a leader crash and an apiserver restart.

Two replicas of the real operator binary (`--leader-elect`) run with FARGATE_OPERATOR_FAULTS set to
throttle 30% and lose the response of 5% of every mutating AWS call, against the local apiserver and
a fresh moto account. Then:
  1. CHAOS_OBJECTS (default 200) FargateApps, DnsFailovers and HotPoolClaims (over CHAOS_OBJECTS/20
     HotPools) are created at once;
  2. while they converge, the leader is killed with SIGKILL: the standby must hold the Lease within
     the lease duration (plus the standby's retry period) and a new standby is started;
  3. everything converges; half of the objects are edited (image + replicas, secondary target, pool
     size, a third of the claims released), the kube-apiserver is killed and restarted, a second
     round of edits is applied: everything converges to the edited specs (the watches recovered);
  4. AWS holds exactly one of each resource per object (counted by owner tag), and nothing that no
     object owns;
  5. everything is deleted: every object goes away (no finalizer wedges) and AWS holds nothing
     tagged with this run's cluster id;
  6. every replica not killed on purpose is still running (one that lost the Lease during the
     apiserver outage stood by again) and exits 0 on SIGTERM.
Faults stay on throughout. Exit status 0 only if every check passed; the operators' logs are in
$FO_LOG_DIR/chaos-*.log.

CHAOS_QUOTA_SCALE (default 1) multiplies AWS's per-action quotas (FARGATE_OPERATOR_AWS_QUOTA_SCALE):
at 1, RegisterTaskDefinition and DeregisterTaskDefinition at 1/s set most of the run's length (the
deletion of 100 apps' revisions alone takes minutes); `make test` raises it so CI stays short. The
faults, the crash and the restart are the same at any scale.
"""
import collections
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench import KUBECONFIG, MOTO, REGION, account_session, kubectl, network  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
N = int(os.environ.get("CHAOS_OBJECTS", "200"))
POOLS = max(1, N // 20)
LEASE_SECONDS = 10
TIMEOUT = int(os.environ.get("CHAOS_TIMEOUT_SECONDS", "900"))
QUOTA_SCALE = os.environ.get("CHAOS_QUOTA_SCALE", "1")
LOG_DIR = pathlib.Path(os.environ.get("FO_LOG_DIR", "/tmp"))
ENV_DIR = pathlib.Path(os.environ["FO_ENV_DIR"])
CLUSTER_ID = f"chaos-{uuid.uuid4().hex[:6]}"
GROUP = "fargate.operator.dev"
TAG_CLUSTER, TAG_OWNER = f"{GROUP}/cluster", f"{GROUP}/owner"
MUTATING = [
    "RegisterTaskDefinition", "DeregisterTaskDefinition", "CreateService", "UpdateService", "DeleteService",
    "TagResource", "RunTask", "StopTask", "CreateTargetGroup", "ModifyTargetGroup", "ModifyTargetGroupAttributes",
    "DeleteTargetGroup", "CreateRule", "ModifyRule", "DeleteRule", "SetRulePriorities", "AddTags",
    "ChangeResourceRecordSets", "CreateHealthCheck", "UpdateHealthCheck", "DeleteHealthCheck", "ChangeTagsForResource",
]
FAULTS = ",".join([f"{op}=throttle%0.3" for op in MUTATING] + [f"{op}=lost%0.05" for op in MUTATING])
failures = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} chaos] {msg}", flush=True)


def check(ok, what):
    log(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)
    return ok


def owned(tags, key="Key", value="Value"):
    """The owner tag value when the tags carry this run's cluster id, else "(untagged)": the account
    is fresh, so everything of these kinds in it was made by the operator, and an untagged one is a
    resource nobody can attribute (a leak or a duplicate)."""
    d = {t[key]: t[value] for t in tags or []}
    return d.get(TAG_OWNER) if d.get(TAG_CLUSTER) == CLUSTER_ID else "(untagged)"


# ---------------------------------------------------------------------------------------------
# Fixtures and objects
# ---------------------------------------------------------------------------------------------

def fixtures(role, client):
    _, subnets, sg = network(client)
    elb = client("elbv2")
    lb = elb.create_load_balancer(Name="chaos", Subnets=subnets, SecurityGroups=[sg], Type="application")
    lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    listeners = [elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=8000 + i,
                                     DefaultActions=[{"Type": "fixed-response",
                                                      "FixedResponseConfig": {"StatusCode": "404"}}])
                 ["Listeners"][0]["ListenerArn"] for i in range(4)]
    ecs = client("ecs")
    ecs.create_cluster(clusterName="apps")
    ecs.create_cluster(clusterName="workers")
    td = ecs.register_task_definition(
        family="worker", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "worker", "image": "example/worker", "memory": 512, "essential": True}],
    )["taskDefinition"]["taskDefinitionArn"]
    r53 = client("route53")
    zones = []
    for z in range(5):
        name = f"zone{z}.chaos.example.com"
        hz = r53.create_hosted_zone(Name=name, CallerReference=str(uuid.uuid4()))["HostedZone"]["Id"].split("/")[-1]
        zones.append((hz, name))
    aws = {"region": REGION, "roleArn": role}

    def app(i, image="nginx:1.27", replicas=1):
        return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "FargateApp", "metadata": {"name": f"app-{i:04d}"},
                "spec": {"cluster": "apps", "cpu": 256, "memory": 512, "replicas": replicas,
                         "containers": [{"name": "web", "image": image, "port": 8080}],
                         "network": {"subnets": subnets, "securityGroups": [sg]},
                         "loadBalancer": {"containerName": "web", "containerPort": 8080,
                                          "targetGroup": {"protocol": "HTTP"},
                                          "listenerRule": {"listenerArn": listeners[i % len(listeners)],
                                                           "pathPatterns": [f"/app-{i:04d}/*"]}},
                         "aws": aws}}

    def dns(i, secondary=None):
        zone_id, zone = zones[i % len(zones)]
        return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "DnsFailover", "metadata": {"name": f"dns-{i:04d}"},
                "spec": {"hostedZoneId": zone_id, "name": f"svc{i:04d}.{zone}", "ttl": 60,
                         "primary": {"target": f"lb{i}.primary.example.net",
                                     "healthCheck": {"type": "HTTPS", "path": "/health"}},
                         "secondary": {"target": secondary or f"lb{i}.dr.example.net"}, "aws": aws}}

    def pool(p, scale_to=5):
        return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "HotPool", "metadata": {"name": f"pool-{p:02d}"},
                "spec": {"cluster": "workers", "network": {"subnets": subnets, "securityGroups": [sg]},
                         "versions": [{"version": "1", "taskDefinition": td, "scaleTo": scale_to, "port": 7000}],
                         "claims": {"whenEmpty": "Wait", "onRelease": "Stop", "leaseSeconds": 3600}, "aws": aws}}

    def claim(i):
        return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "HotPoolClaim", "metadata": {"name": f"claim-{i:04d}"},
                "spec": {"pool": f"pool-{i % POOLS:02d}", "version": "1", "client": f"client-{i}"}}

    return {"app": app, "dns": dns, "pool": pool, "claim": claim, "listeners": listeners, "zones": zones}


def create(ns, objs):
    for i in range(0, len(objs), 200):
        kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs[i:i + 200]}))


def apply(ns, objs):
    for i in range(0, len(objs), 200):
        kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs[i:i + 200]}))


# ---------------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------------

class Operator:
    def __init__(self, ns, identity, port):
        self.identity, self.port, self.killed = identity, port, False
        env = {**os.environ, "FARGATE_OPERATOR_CLUSTER_ID": CLUSTER_ID, "FARGATE_OPERATOR_REGION": REGION,
               "FARGATE_OPERATOR_AWS_ENDPOINT_URL": MOTO, "FARGATE_OPERATOR_NAMESPACE": ns,
               "FARGATE_OPERATOR_LEADER_ELECT": "true", "FARGATE_OPERATOR_LEADER_ELECTION_NAMESPACE": ns,
               "FARGATE_OPERATOR_LEASE_DURATION_SECONDS": str(LEASE_SECONDS), "FARGATE_OPERATOR_IDENTITY": identity,
               "FARGATE_OPERATOR_METRICS_ADDR": f"127.0.0.1:{port}", "FARGATE_OPERATOR_RESYNC_SECONDS": "60",
               "FARGATE_OPERATOR_HEALTH_POLL_SECONDS": "10", "FARGATE_OPERATOR_ROUTE53_RPS": "30",
               "FARGATE_OPERATOR_ECS_RPS": "60", "FARGATE_OPERATOR_ELBV2_RPS": "60",
               "FARGATE_OPERATOR_LAUNCHES_PER_SECOND": "50", "FARGATE_OPERATOR_FAULTS": FAULTS,
               "FARGATE_OPERATOR_AWS_QUOTA_SCALE": QUOTA_SCALE}
        self.logf = open(LOG_DIR / f"{identity}.log", "w")
        self.proc = subprocess.Popen([binary(), "run"], env=env, stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log(f"started operator {identity} (pid {self.proc.pid}, metrics :{port})")

    def calls(self):
        """AWS calls by outcome, from this replica's metrics."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10).read().decode()
        except OSError:
            return {}
        out = collections.Counter()
        for labels, v in re.findall(r'^fargate_operator_aws_calls_total\{(.*)\} (\d+)$', text, re.M):
            out[dict(re.findall(r'(\w+)="([^"]*)"', labels))["outcome"]] += int(v)
        return out

    def kill9(self):
        self.killed = True
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        """SIGTERM; True when it was still running and then exited 0 within 30 s (a replica that
        exited by itself, e.g. on losing the Lease, fails: it should have stood by again)."""
        if self.proc.poll() is not None:
            log(f"{self.identity} had already exited with {self.proc.returncode}")
            return False
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return False


def binary():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return os.environ.get("CHAOS_BINARY") or str(target / "debug" / "fargate-operator")


def lease_holder(ns):
    try:
        out = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "--request-timeout=5s", "get", "lease", "-n", ns,
                              "fargate-operator", "-o", "jsonpath={.spec.holderIdentity}"],
                             capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def wait_leader(ns, among, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = lease_holder(ns)
        if holder in among:
            return holder
        time.sleep(0.2)
    return None


# ---------------------------------------------------------------------------------------------
# Convergence
# ---------------------------------------------------------------------------------------------

KINDS = [("fargateapps", "Synced"), ("dnsfailovers", "Ready"), ("hotpools", "Synced"), ("hotpoolclaims", "Ready")]


def items(ns, plural):
    return json.loads(kubectl("get", plural, "-n", ns, "-o", "json"))["items"]


def converged(ns, expect):
    """Per kind: (converged, total); converged = observedGeneration current and the condition True."""
    out = {}
    for plural, cond in KINDS:
        objs = items(ns, plural)
        ok = sum(1 for o in objs if (o.get("status") or {}).get("observedGeneration") == o["metadata"].get("generation")
                 and any(c["type"] == cond and c["status"] == "True" for c in (o.get("status") or {}).get("conditions", [])))
        out[plural] = (ok, len(objs))
    return out, all(ok == total == expect[p] for p, (ok, total) in out.items())


def wait_converged(ns, expect, what, extra=lambda: True):
    start = last = time.monotonic()
    while True:
        state, done = converged(ns, expect)
        if done and extra():
            log(f"{what}: converged in {time.monotonic() - start:.0f} s")
            return True
        if time.monotonic() - last >= 30:
            log(f"{what}: {', '.join(f'{p} {ok}/{t}' for p, (ok, t) in state.items())}")
            last = time.monotonic()
        if time.monotonic() - start > TIMEOUT:
            return check(False, f"{what}: not converged after {TIMEOUT} s: {state}")
        time.sleep(2)


# ---------------------------------------------------------------------------------------------
# AWS inventory by owner tag
# ---------------------------------------------------------------------------------------------

def pages(fn, key, token_in, token_out, **kw):
    out = []
    while True:
        resp = fn(**kw)
        out += resp.get(key, [])
        token = resp.get(token_out)
        if not token:
            return out
        kw[token_in] = token


def inventory(client, fx):
    """owner -> Counter of resource kinds, plus DNS records by name and RUNNING worker tasks."""
    ecs, elb, r53 = client("ecs"), client("elbv2"), client("route53")
    inv = collections.defaultdict(collections.Counter)
    services = {}
    arns = pages(ecs.list_services, "serviceArns", "nextToken", "nextToken", cluster="apps")
    for i in range(0, len(arns), 10):
        for s in ecs.describe_services(cluster="apps", services=arns[i:i + 10], include=["TAGS"])["services"]:
            owner = owned(s.get("tags"), "key", "value")
            if s["status"] == "ACTIVE":
                inv[owner]["service"] += 1
                services[owner] = s["taskDefinition"]
    for arn in pages(ecs.list_task_definitions, "taskDefinitionArns", "nextToken", "nextToken", status="ACTIVE"):
        if arn.split("/")[-1].startswith("worker:"):
            continue  # the fixture's worker task definition, registered by this script
        owner = owned(ecs.list_tags_for_resource(resourceArn=arn).get("tags"), "key", "value")
        if owner:
            inv[owner]["task definition"] += 1
    tgs = pages(elb.describe_target_groups, "TargetGroups", "Marker", "NextMarker")
    for i in range(0, len(tgs), 20):
        for d in elb.describe_tags(ResourceArns=[t["TargetGroupArn"] for t in tgs[i:i + 20]])["TagDescriptions"]:
            if owned(d["Tags"]):
                inv[owned(d["Tags"])]["target group"] += 1
    for listener in fx["listeners"]:
        rules = [r["RuleArn"] for r in pages(elb.describe_rules, "Rules", "Marker", "NextMarker", ListenerArn=listener)
                 if not r["IsDefault"]]
        for i in range(0, len(rules), 20):
            for d in elb.describe_tags(ResourceArns=rules[i:i + 20])["TagDescriptions"]:
                if owned(d["Tags"]):
                    inv[owned(d["Tags"])]["listener rule"] += 1
    checks = pages(r53.list_health_checks, "HealthChecks", "Marker", "NextMarker")
    for i in range(0, len(checks), 10):
        ids = [h["Id"] for h in checks[i:i + 10]]
        for t in r53.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=ids)["ResourceTagSets"]:
            if owned(t["Tags"]):
                inv[owned(t["Tags"])]["health check"] += 1
    records = collections.defaultdict(list)
    for zone_id, _ in fx["zones"]:
        kw = {"HostedZoneId": zone_id}
        while True:
            resp = r53.list_resource_record_sets(**kw)
            for rr in resp["ResourceRecordSets"]:
                if rr["Type"] == "CNAME":
                    records[rr["Name"].rstrip(".")].append((rr.get("Failover"), rr["ResourceRecords"][0]["Value"]))
            if not resp.get("IsTruncated"):
                break
            kw.update(StartRecordName=resp["NextRecordName"], StartRecordType=resp["NextRecordType"])
    tasks = {}
    arns = pages(ecs.list_tasks, "taskArns", "nextToken", "nextToken", cluster="workers", desiredStatus="RUNNING")
    for i in range(0, len(arns), 100):
        for t in ecs.describe_tasks(cluster="workers", tasks=arns[i:i + 100], include=["TAGS"])["tasks"]:
            owner = owned(t.get("tags"), "key", "value")
            inv[owner]["task"] += 1
            tasks[t["taskArn"]] = (owner, {x["key"]: x["value"] for x in t.get("tags", [])}.get(f"{GROUP}/launch"))
    return inv, services, records, tasks


def verify_exactly_one(ns, client, fx):
    inv, services, records, tasks = inventory(client, fx)
    apps = {f"{ns}/FargateApp/{o['metadata']['name']}": o for o in items(ns, "fargateapps")}
    dnss = {f"{ns}/DnsFailover/{o['metadata']['name']}": o for o in items(ns, "dnsfailovers")}
    pools = {f"{ns}/HotPool/{o['metadata']['name']}" for o in items(ns, "hotpools")}
    workers = items(ns, "hotpoolworkers")
    claims = items(ns, "hotpoolclaims")
    bad = []
    for owner, app in apps.items():
        c = inv.get(owner, {})
        if (c.get("service"), c.get("target group"), c.get("listener rule")) != (1, 1, 1):
            bad.append(f"{owner}: {dict(c)}")
        elif not 1 <= c.get("task definition", 0) <= 5:
            bad.append(f"{owner}: {c.get('task definition', 0)} active task definitions")
        elif services.get(owner) != app["status"].get("taskDefinitionArn"):
            bad.append(f"{owner}: service runs {services.get(owner)}, status says {app['status'].get('taskDefinitionArn')}")
        elif app["spec"]["replicas"] != app["status"].get("replicas", {}).get("desired"):
            bad.append(f"{owner}: desired {app['status'].get('replicas')} vs spec {app['spec']['replicas']}")
    check(not bad, f"{len(apps)} FargateApps: exactly one service, target group and listener rule each, "
                   f"<= 5 task definitions, the service on the status's revision" + (f"; {bad[:5]}" if bad else ""))
    bad = []
    for owner, d in dnss.items():
        c = inv.get(owner, {})
        want = sorted([("PRIMARY", d["spec"]["primary"]["target"]), ("SECONDARY", d["spec"]["secondary"]["target"])])
        got = sorted(records.get(d["spec"]["name"], []))
        if c.get("health check") != 1 or got != want:
            bad.append(f"{owner}: {dict(c)}, records {got}, want {want}")
    check(not bad, f"{len(dnss)} DnsFailovers: exactly one health check and the two records of the spec"
                   + (f"; {bad[:5]}" if bad else ""))
    worker_tasks = collections.Counter(w.get("status", {}).get("taskArn") for w in workers)
    tokens = {w["spec"].get("launchToken") for w in workers}
    bad = [f"task {arn.split('/')[-1]} of {owner} (launch {launch}; a worker with that token: {launch in tokens}) "
           f"has {worker_tasks[arn]} workers" for arn, (owner, launch) in tasks.items()
           if worker_tasks[arn] != 1 or owner not in pools]
    bad += [f"worker {w['metadata']['name']} task {w.get('status', {}).get('taskArn')} not running"
            for w in workers if w.get("status", {}).get("taskArn") not in tasks]
    bound = collections.Counter(c.get("status", {}).get("worker") for c in claims)
    bad += [f"worker {w} bound to {n} claims" for w, n in bound.items() if w and n > 1]
    check(not bad, f"{len(workers)} HotPoolWorkers: one RUNNING task each, {len(tasks)} tasks, none without a worker; "
                   f"{len(claims)} claims on distinct workers" + (f"; {bad[:5]}" if bad else ""))
    live = set(apps) | set(dnss) | pools
    leaked = {o: dict(c) for o, c in inv.items() if o not in live}
    check(not leaked, "nothing tagged for an object that no longer exists" + (f": {list(leaked.items())[:5]}" if leaked else ""))


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def restart_apiserver():
    pid = int((ENV_DIR / "kube-apiserver.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    while pathlib.Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    subprocess.run(["bash", str(ROOT / "hack/env-up.sh")], check=True, capture_output=True)
    log(f"kube-apiserver killed and back in {time.monotonic() - t0:.1f} s")


def main():
    if not pathlib.Path(binary()).exists():
        sys.exit(f"chaos: {binary()} missing; run `make build` first")
    ns = f"chaos-{uuid.uuid4().hex[:6]}"
    role, client = account_session()
    fx = fixtures(role, client)
    kubectl("create", "namespace", ns)
    log(f"{N} objects per kind ({POOLS} pools), namespace {ns}, cluster id {CLUSTER_ID}, faults on every mutating call, "
        f"AWS quotas x{QUOTA_SCALE}")
    a = Operator(ns, "chaos-a", 18281)
    ops = [a]
    try:
        check(wait_leader(ns, {"chaos-a"}, 60) == "chaos-a", "replica chaos-a leads")
        b = Operator(ns, "chaos-b", 18282)
        ops.append(b)
        objs = ([fx["app"](i) for i in range(N)] + [fx["dns"](i) for i in range(N)]
                + [fx["pool"](p) for p in range(POOLS)] + [fx["claim"](i) for i in range(N)])
        expect = {"fargateapps": N, "dnsfailovers": N, "hotpools": POOLS, "hotpoolclaims": N}
        create(ns, objs)
        log("created; waiting for a quarter of the FargateApps before killing the leader")
        deadline = time.monotonic() + TIMEOUT
        while converged(ns, expect)[0]["fargateapps"][0] < N // 4 and time.monotonic() < deadline:
            time.sleep(1)
        a.kill9()
        killed = time.monotonic()
        holder = wait_leader(ns, {"chaos-b"}, LEASE_SECONDS * 3)
        takeover = time.monotonic() - killed
        # The lease may have been renewed just before the kill; the standby retries every lease/3.
        check(holder == "chaos-b" and takeover <= LEASE_SECONDS + LEASE_SECONDS / 3 + 1,
              f"leader chaos-a killed -9: chaos-b took over in {takeover:.1f} s (lease {LEASE_SECONDS} s)")
        c = Operator(ns, "chaos-c", 18283)
        ops.append(c)
        wait_converged(ns, expect, "create")
        verify_exactly_one(ns, client, fx)

        # Edits, an apiserver restart in the middle, more edits.
        half = range(0, N, 2)
        apply(ns, [fx["app"](i, image="nginx:1.28", replicas=2) for i in half]
              + [fx["dns"](i, secondary=f"lb{i}.dr2.example.net") for i in half]
              + [fx["pool"](p, scale_to=3) for p in range(0, POOLS, 2)])
        kubectl("delete", "-n", ns, "hotpoolclaims", "--wait=false", *[f"claim-{i:04d}" for i in range(0, N, 3)])
        restart_apiserver()
        apply(ns, [fx["app"](i, image="nginx:1.29", replicas=2) for i in range(0, N, 4)]
              + [fx["dns"](i, secondary=f"lb{i}.dr3.example.net") for i in range(1, N, 4)])
        expect["hotpoolclaims"] = N - len(range(0, N, 3))

        def edits_visible():
            apps = {o["metadata"]["name"]: o for o in items(ns, "fargateapps")}
            return all(apps[f"app-{i:04d}"]["status"].get("replicas", {}).get("desired") == 2 for i in half)
        wait_converged(ns, expect, "edits across an apiserver restart", edits_visible)
        verify_exactly_one(ns, client, fx)

        # Delete everything.
        t0 = time.monotonic()
        for plural in ("hotpoolclaims", "hotpools", "dnsfailovers", "fargateapps"):
            kubectl("delete", plural, "--all", "-n", ns, "--wait=false")
        while True:
            left = {p: len(items(ns, p)) for p in ("fargateapps", "dnsfailovers", "hotpools", "hotpoolclaims", "hotpoolworkers")}
            if not any(left.values()):
                check(True, f"every object deleted in {time.monotonic() - t0:.0f} s")
                break
            if time.monotonic() - t0 > TIMEOUT:
                check(False, f"objects left {TIMEOUT} s after delete: {left}")
                break
            time.sleep(2)
        inv, _, records, tasks = inventory(client, fx)
        check(not inv and not records and not tasks,
              f"nothing left in AWS tagged {TAG_CLUSTER}={CLUSTER_ID}" + (f": {dict(list(inv.items())[:5])}, "
                                                                         f"{len(records)} records" if inv or records else ""))
        totals = collections.Counter()
        for op in ops:
            totals.update(op.calls())
        log(f"AWS call outcomes (surviving replicas): {dict(totals)}")
        check(totals["throttling"] > 0 and totals["transient"] > 0,
              "faults were injected (throttled and lost responses seen)")
    finally:
        if failures:
            events = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "get", "events", "-n", ns,
                                     "--sort-by=.lastTimestamp"], capture_output=True, text=True).stdout
            (LOG_DIR / "chaos-events.txt").write_text(events)
        # Every replica not killed on purpose, chaos-a too when the run ended before its kill.
        stopped = [op.stop() for op in ops if not op.killed]
        check(all(stopped), "every replica still runs after the apiserver restart and stops cleanly on SIGTERM")
        subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "delete", "namespace", ns, "--wait=false"],
                       capture_output=True)
    if failures:
        log(f"{len(failures)} check(s) failed; operator logs: {LOG_DIR}/chaos-*.log")
        sys.exit(1)
    log("all checks passed")


if __name__ == "__main__":
    # A SIGTERM (CI cancelling, a developer's kill) runs main's `finally` too, so no replica outlives
    # the run and holds its metrics port into the next one.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("chaos: terminated"))
    main()
