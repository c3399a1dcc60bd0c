#!/usr/bin/env python3
"""`make bench`: fargate-operator at scale against the local apiserver + moto, numbers in BENCHMARKS.md.

For each scenario and size: a fresh moto account (objects carry spec.aws.roleArn into it), the
operator binary with its default budgets, N objects created at once, then:
  - time until every object is converged (FargateApp: Ready, its own moto reports the service's
    tasks running; a HealthPublisher plays Route 53's side of CloudWatch; DnsFailover:
    Ready; HotPool: Ready, then every claim Bound),
  - AWS calls per object by operation while converging, and mutating calls against the minimum the
    work needs,
  - an idle window: mutating AWS calls and status writes (target 0), reads per object; from its
    read rates and how long each kind's objects were converged while the rest converged, an
    estimate of the converge window's reads that only verified converged objects,
  - kube-apiserver requests per object (the apiserver's own apiserver_request_total),
  - the operator's peak and steady RSS and CPU seconds.

Environment: BENCH_SIZES (default "100,1000"), BENCH_IDLE_SECONDS (default 600), BENCH_SCENARIOS
(default "fargateapp,dnsfailover,hotpool"), BENCH_BINARY (default target/release, else debug),
BENCH_OUT (default BENCHMARKS.md), BENCH_COMMIT (the binary's commit, default HEAD), BENCH_RESULTS (default hack/bench-results.json), BENCH_METRICS_ADDR
(default 127.0.0.1:18181, the operator's metrics address).

Every result is kept in BENCH_RESULTS by scenario and size (a rerun of one replaces it, with its
date, commit and command), and BENCH_OUT's table and the growth from 100 to 1,000 objects are
rendered from all of them: a run of one scenario does not drop the others' rows.

`BENCH_SCENARIOS=claims` (not in the default list) measures claim binding latency instead: a pool
of BENCH_CLAIM_BURST + 5 workers, then BENCH_CLAIM_SINGLES claims created one at a time, then a
burst of BENCH_CLAIM_BURST claims created at once, each by a client with an open connection to the
apiserver, released together (defaults 20 and 100; BENCH_SIZES is ignored). A
watch of its own on hotpoolclaims, opened before the first claim, times each claim from its
creation request (and from the watch's first event of it) to the watch seeing it Bound; p50 and p99
of each phase go to the "Claim binding latency" section of BENCH_OUT.
"""
import atexit
import concurrent.futures
import http.client
import json
import math
import os
import pathlib
import platform
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
KUBECONFIG = os.environ["KUBECONFIG"]
MOTO = os.environ["FARGATE_TEST_AWS_ENDPOINT"]  # replaced by the bench's own moto in main()
# The bench's own moto: the test environment's moto stays small, and its ECS services report
# their tasks running (MOTO_ECS_SERVICE_RUNNING), so a rollout completes as it would on AWS instead
# of being polled for the whole run. Every FargateApp of the bench asks for one replica.
MOTO_PORT = int(os.environ.get("BENCH_MOTO_PORT", "15099"))
APP_REPLICAS = 1
REGION = os.environ.get("AWS_REGION", "us-east-1")
SIZES = [int(x) for x in os.environ.get("BENCH_SIZES", "100,1000").split(",")]
IDLE = int(os.environ.get("BENCH_IDLE_SECONDS", "600"))
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "fargateapp,dnsfailover,hotpool,all").split(",")
LOG_DIR = pathlib.Path(os.environ.get("FO_LOG_DIR", "/tmp"))
METRICS = os.environ.get("BENCH_METRICS_ADDR", "127.0.0.1:18181")  # another for a second bench on a second env
CLAIM_SINGLES = int(os.environ.get("BENCH_CLAIM_SINGLES", "20"))
CLAIM_BURST = int(os.environ.get("BENCH_CLAIM_BURST", "100"))
RESULTS = pathlib.Path(os.environ.get("BENCH_RESULTS", ROOT / "hack" / "bench-results.json"))
MUTATING = {
    "RegisterTaskDefinition", "DeregisterTaskDefinition", "CreateService", "UpdateService", "DeleteService",
    "RunTask", "StopTask", "TagResource", "CreateTargetGroup", "ModifyTargetGroup", "ModifyTargetGroupAttributes",
    "DeleteTargetGroup", "CreateRule", "ModifyRule", "DeleteRule", "SetRulePriorities", "AddTags",
    "ChangeResourceRecordSets", "CreateHealthCheck", "UpdateHealthCheck", "DeleteHealthCheck", "ChangeTagsForResource",
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} bench] {msg}", flush=True)


def kubectl(*args, stdin=None):
    out = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "--request-timeout=60s", *args], input=stdin,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {out.stderr.strip()[:500]}")
    return out.stdout


def account_session():
    """Credentials of a fresh moto account (moto keeps state per account)."""
    account = str(uuid.uuid4().int)[:12].rjust(12, "1")
    role = f"arn:aws:iam::{account}:role/fargate-operator-bench"
    sts = boto3.client("sts", endpoint_url=MOTO, region_name=REGION,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    c = sts.assume_role(RoleArn=role, RoleSessionName="bench")["Credentials"]
    session = boto3.Session(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                            aws_session_token=c["SessionToken"], region_name=REGION)
    return role, lambda svc, region=REGION: session.client(svc, endpoint_url=MOTO, region_name=region)


def network(client):
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
               for i, az in enumerate(["us-east-1a", "us-east-1b"])]
    sg = ec2.create_security_group(GroupName="bench", Description="bench", VpcId=vpc)["GroupId"]
    return vpc, subnets, sg


# ---------------------------------------------------------------------------------------------
# Scenarios: fixtures, objects, convergence, the minimum mutating calls the work needs
# ---------------------------------------------------------------------------------------------

def fargateapp_objects(n, role, client):
    _, subnets, sg = network(client)
    elb = client("elbv2")
    lb = elb.create_load_balancer(Name="bench", Subnets=subnets, SecurityGroups=[sg], Type="application")["LoadBalancers"][0]
    listeners = [elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=8000 + i,
                                     DefaultActions=[{"Type": "fixed-response",
                                                      "FixedResponseConfig": {"StatusCode": "404"}}])["Listeners"][0]["ListenerArn"]
                 for i in range(10)]
    client("ecs").create_cluster(clusterName="apps")
    objs = []
    for i in range(n):
        objs.append({"apiVersion": "fargate.operator.dev/v1alpha1", "kind": "FargateApp",
                     "metadata": {"name": f"app-{i:04d}"},
                     "spec": {"cluster": "apps", "cpu": 256, "memory": 512, "replicas": APP_REPLICAS,
                              "containers": [{"name": "web", "image": "nginx:1.27", "port": 8080}],
                              "network": {"subnets": subnets, "securityGroups": [sg]},
                              "loadBalancer": {"containerName": "web", "containerPort": 8080,
                                               "targetGroup": {"protocol": "HTTP"},
                                               "listenerRule": {"listenerArn": listeners[i % 10],
                                                                "pathPatterns": [f"/app-{i:04d}/*"]}},
                              "aws": {"region": REGION, "roleArn": role}}})
    # Mutating: RegisterTaskDefinition, CreateService, CreateTargetGroup, ModifyTargetGroupAttributes
    # (the deregistration delay defaults to 30 s, AWS's to 300 s, and CreateTargetGroup cannot set
    # it), CreateRule. Reads a first pass cannot do without: DescribeTargetGroups (is the app's
    # target group there?), ListTaskDefinitions (a revision registered before a crash?), the
    # service (DescribeServices, 10 per call), the listener's rules (a free priority; once per
    # listener) and the listener and its load balancer (once per listener). Then Ready: the
    # service once more when its rollout completes (10 per call) and its targets' health
    # (DescribeTargetHealth, one target group per call).
    listeners_ = 10
    minimum = {"mutating": 5.0, "reads": 3 + 2 / 10 + 3 * listeners_ / n,
               # RegisterTaskDefinition refills at 1/s after 20; ELBv2 mutations (3 an app) at 3/s after 20.
               "floor_s": max(n - 20, (3 * n - 20) / 3),
               "formula": f"5 creates + DescribeTargetGroups + ListTaskDefinitions + 2 x DescribeServices/10 + DescribeTargetHealth + 3 x {listeners_} listeners / N"}
    return objs, [("fargateapps", "Ready")], minimum


def dnsfailover_objects(n, role, client):
    r53 = client("route53")
    zones = []
    for z in range(5):
        name = f"zone{z}.bench.example.com"
        zones.append((r53.create_hosted_zone(Name=name, CallerReference=str(uuid.uuid4()))["HostedZone"]["Id"].split("/")[-1], name))
    objs = []
    for i in range(n):
        zone_id, zone = zones[i % 5]
        objs.append({"apiVersion": "fargate.operator.dev/v1alpha1", "kind": "DnsFailover",
                     "metadata": {"name": f"dns-{i:04d}"},
                     "spec": {"hostedZoneId": zone_id, "name": f"svc{i:04d}.{zone}", "ttl": 60,
                              "primary": {"target": f"lb{i}.primary.example.net",
                                          "healthCheck": {"type": "HTTPS", "path": "/health"}},
                              "secondary": {"target": f"lb{i}.dr.example.net"},
                              "aws": {"region": REGION, "roleArn": role}}})
    # Mutating: CreateHealthCheck, ChangeTagsForResource, and a share of a batched
    # ChangeResourceRecordSets (at most 1,000 records a batch: the pair is 2). Reads: the zone
    # (GetHostedZone) and its records (ListResourceRecordSets, 300 a page) once per zone, and the
    # check's first reading (GetHealthCheckStatus: CloudWatch has no datapoint for minutes).
    zones_ = 5
    minimum = {"mutating": 2 + zones_ * -(-2 * (n // zones_) // 1000) / n,
               # CreateHealthCheck refills at 0.5/s after 50.
               "floor_s": max(0, (n - 50) / 0.5),
               "reads": 1 + zones_ * (1 + -(-2 * (n // zones_) // 300)) / n,
               "formula": f"CreateHealthCheck + ChangeTagsForResource + ChangeResourceRecordSets per 500 pairs of a zone + GetHealthCheckStatus + GetHostedZone and a record walk per zone ({zones_} zones) / N"}
    # Converged with its first health reading: later, it would land in the idle window.
    return objs, [("dnsfailovers", "Ready,PrimaryHealthy")], minimum


def hotpool_objects(n, role, client):
    _, subnets, sg = network(client)
    ecs = client("ecs")
    ecs.create_cluster(clusterName="workers")
    td = ecs.register_task_definition(
        family="worker", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "worker", "image": "example/worker", "memory": 512, "essential": True}],
    )["taskDefinition"]["taskDefinitionArn"]
    pool = {"apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPool", "metadata": {"name": "pool"},
            "spec": {"cluster": "workers", "network": {"subnets": subnets, "securityGroups": [sg]},
                     "versions": [{"version": "1", "taskDefinition": td, "scaleTo": n // 2, "port": 7000}],
                     "claims": {"whenEmpty": "Wait", "onRelease": "Stop", "leaseSeconds": 3600},
                     "aws": {"region": REGION, "roleArn": role}}}
    claims = [{"apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim", "metadata": {"name": f"c-{i:04d}"},
               "spec": {"pool": "pool", "version": "1", "client": f"client-{i}"}} for i in range(n)]
    # A pool of n/2 with n claims: n/2 + n tasks launched, 10 per RunTask, per claim; the task
    # definition read once, and the tasks described 100 per DescribeTasks.
    tasks = n // 2 + n
    minimum = {"mutating": -(-tasks // 10) / n, "reads": (1 + -(-tasks // 100)) / n,
               # --launches-per-second 10 after a burst of 20.
               "floor_s": max(0, (tasks - 20) / 10),
               "formula": "(N/2 + N) tasks / 10 per RunTask + DescribeTaskDefinition + tasks / 100 per DescribeTasks, / N claims"}
    return [pool] + claims, [("hotpools", "Ready"), ("hotpoolclaims", "Ready")], minimum


def all_objects(n, role, client):
    """N of every kind in one process: N FargateApps, N DnsFailovers, a pool of N/2 and N claims."""
    objs, checks = [], []
    minimum = {"mutating": 0.0, "reads": 0.0, "floor_s": 0.0}
    formulas = []
    for kind, make in (("FargateApp", fargateapp_objects), ("DnsFailover", dnsfailover_objects),
                       ("HotPool", hotpool_objects)):
        o, c, m = make(n, role, client)
        formulas.append(f"{kind}: {m['formula']} ({m['mutating']:.2f} + {m['reads']:.2f})")
        objs += o
        checks += c
        minimum["mutating"] += m["mutating"]
        minimum["reads"] += m["reads"]
        # The kinds draw from different buckets: the slowest sets the floor.
        minimum["floor_s"] = max(minimum["floor_s"], m["floor_s"])
    minimum["formula"] = "the sum of the three kinds' minimums; " + "; ".join(formulas)
    return objs, checks, minimum


SCENARIO = {"fargateapp": fargateapp_objects, "dnsfailover": dnsfailover_objects, "hotpool": hotpool_objects,
            "all": all_objects}


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------

def scrape_operator():
    text = urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=10).read().decode()
    calls, writes, reconciles = {}, {}, 0
    for line in text.splitlines():
        m = re.match(r'fargate_operator_reconciles_total\{.*\} (\d+)', line)
        if m:
            reconciles += int(m.group(1))
        m = re.match(r'fargate_operator_aws_calls_total\{(.*)\} (\d+)', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            key = (labels["service"], labels["operation"])
            calls[key] = calls.get(key, 0) + int(m.group(2))
        m = re.match(r'fargate_operator_status_writes_total\{(.*)\} (\d+)', line)
        if m:
            kind = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))).get("kind", "?")
            writes[kind] = writes.get(kind, 0) + int(m.group(2))
    return calls, writes, reconciles


def apiserver():
    """The test apiserver's address, a bearer token, and a TLS context for it."""
    cfg = json.loads(kubectl("config", "view", "--raw", "-o", "json"))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # loopback test apiserver with its own CA
    return cfg["clusters"][0]["cluster"]["server"], cfg["users"][0]["user"]["token"], ctx


def scrape_apiserver():
    server, token, ctx = apiserver()
    req = urllib.request.Request(f"{server}/metrics", headers={"Authorization": f"Bearer {token}"})
    text = urllib.request.urlopen(req, context=ctx, timeout=10).read().decode()
    return sum(float(v) for v in re.findall(r'^apiserver_request_total\{[^}]*\} ([0-9.e+]+)$', text, re.M))


def proc_stats(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return rss, hwm, cpu


PLURAL = {"FargateApp": "fargateapps", "DnsFailover": "dnsfailovers", "HotPool": "hotpools",
          "HotPoolClaim": "hotpoolclaims"}


def items(plural, ns):
    return json.loads(kubectl("get", plural, "-n", ns, "-o", "json"))["items"]


def condition(o, type_):
    return next((c for c in (o.get("status") or {}).get("conditions", []) if c["type"] == type_), None)


def converged(plural, ns, cond, expect):
    ok, listed = 0, items(plural, ns)
    for o in listed:
        st = o.get("status") or {}
        if st.get("observedGeneration") != o["metadata"].get("generation"):
            continue
        # "Ready,PrimaryHealthy": Ready is True and PrimaryHealthy has a reading (True or False).
        first, *known = cond.split(",")
        c = condition(o, first)
        if c and c["status"] == "True" and all((condition(o, k) or {}).get("status") in ("True", "False") for k in known):
            ok += 1
    return ok, len(listed) >= expect and ok >= expect


# Which kind's periodic passes make an operation's idle reads (the rest: every kind's).
OWNER = {"elbv2": "fargateapps", "route53": "dnsfailovers", "cloudwatch": "dnsfailovers",
         "ecs:DescribeServices": "fargateapps", "ecs:ListTaskDefinitions": "fargateapps",
         "ecs:DescribeTasks": "hotpools", "ecs:ListTasks": "hotpools", "ecs:DescribeTaskDefinition": "hotpools"}


def verifying_reads(idle_rate, converged_seconds, expect, idle):
    """Estimated reads of converged objects' periodic passes while the rest converged: each
    operation's idle read rate, scaled by the time its kind's objects spent converged over their
    count (an object converged for half the window is verified as when idle for half of it)."""
    out = {}
    for op, rate in idle_rate.items():
        service, operation = op.split(":", 1)
        if operation in MUTATING or not idle.get((service, operation)):
            continue
        owner = OWNER.get(op) or OWNER.get(service)
        kinds = [owner] if owner in converged_seconds else list(converged_seconds)
        seconds = sum(converged_seconds[k] for k in kinds) / max(sum(expect[k] for k in kinds), 1)
        out[op] = rate * seconds
    return out


def delta(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def ts(text):
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def health_freshness(ns):
    """Seconds from a DnsFailover's records and check being in place (Synced) to its first health
    reading (PrimaryHealthy set): the poller's share of the wait, at 1-second resolution."""
    waits = []
    for o in items("dnsfailovers", ns):
        synced, healthy = condition(o, "Synced"), condition(o, "PrimaryHealthy")
        if synced and healthy:
            waits.append(max(0.0, ts(healthy["lastTransitionTime"]) - ts(synced["lastTransitionTime"])))
    return {"p50": percentile(waits, 50), "p99": percentile(waits, 99), "max": max(waits, default=None)}


def health_datapoints(cw, check_ids, value, at):
    for i in range(0, len(check_ids), 500):
        cw.put_metric_data(Namespace="AWS/Route53", MetricData=[
            {"MetricName": "HealthCheckStatus", "Dimensions": [{"Name": "HealthCheckId", "Value": c}],
             "Timestamp": at, "Value": value} for c in check_ids[i:i + 500]])


class HealthPublisher(threading.Thread):
    """Route 53's side of CloudWatch, which moto does not play: once a minute, a HealthCheckStatus
    datapoint for every health check of the bench's account that has existed for FIRST_DATAPOINT_S
    (Route 53 publishes a new check's first datapoint after a few minutes; until then the operator
    reads it with GetHealthCheckStatus). The value is 1 (healthy) until `fail()`."""
    FIRST_DATAPOINT_S = 120

    def __init__(self, client):
        super().__init__(daemon=True)
        self.r53, self.cw = client("route53"), client("cloudwatch", region="us-east-1")
        self.value, self.first_seen, self.done = 1.0, {}, threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.done.wait(60):
            try:
                self.publish()
            except Exception as e:  # a missed minute, as on AWS; the next one publishes again
                log(f"health publisher: {e}")

    def publish(self):
        now = time.time()
        ids = [c["Id"] for page in self.r53.get_paginator("list_health_checks").paginate() for c in page["HealthChecks"]]
        for i in ids:
            self.first_seen.setdefault(i, now)
        with self.lock:
            health_datapoints(self.cw, [i for i in ids if now - self.first_seen[i] >= self.FIRST_DATAPOINT_S],
                              self.value, now)

    def fail(self, check_ids):
        """From now on every check reads 0, starting with `check_ids` at once."""
        with self.lock:
            self.value = 0.0
            health_datapoints(self.cw, check_ids, 0.0, time.time())

    def stop(self):
        self.done.set()


def flip_all(ns, publisher):
    """Publish HealthCheckStatus 0 for every primary check (as Route 53 would for a dead primary),
    and time until every DnsFailover shows the failover."""
    checks = [(o["metadata"]["name"], o["status"]["healthChecks"]["primary"]["id"]) for o in items("dnsfailovers", ns)]
    start = time.monotonic()
    publisher.fail([c for _, c in checks])
    published = time.monotonic() - start
    while True:
        done = sum(1 for o in items("dnsfailovers", ns) if (condition(o, "FailedOver") or {}).get("status") == "True")
        if done >= len(checks):
            return {"published_s": published, "all_failed_over_s": time.monotonic() - start, "n": len(checks)}
        if time.monotonic() - start > 600:
            return {"published_s": published, "all_failed_over_s": None, "n": len(checks), "done": done}
        time.sleep(1)


def start_moto():
    """Start the bench's own moto (see MOTO_PORT) and point MOTO at it; stopped when the bench exits."""
    global MOTO
    url = f"http://127.0.0.1:{MOTO_PORT}"
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", MOTO_PORT)) == 0:
            sys.exit(f"bench: port {MOTO_PORT} is taken (another bench?); set BENCH_MOTO_PORT")
    env = {**os.environ, "MOTO_ECS_SERVICE_RUNNING": str(APP_REPLICAS)}
    log_file = open(LOG_DIR / "bench-moto.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "hack" / "moto-server.py"), "-H", "127.0.0.1", "-p", str(MOTO_PORT)],
                            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    atexit.register(lambda: os.killpg(proc.pid, signal.SIGKILL))
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"bench: moto on port {MOTO_PORT} exited; see {LOG_DIR / 'bench-moto.log'}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            break
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    else:
        sys.exit(f"bench: moto on port {MOTO_PORT} did not answer in 60 s")
    # As in the test environment: workers stay RUNNING until stopped (hack/env-up.sh).
    req = urllib.request.Request(f"{url}/moto-api/state-manager/set-transition", method="POST",
                                 headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model_name": "ecs::task",
                                                  "transition": {"progression": "manual", "times": 1000000}}).encode())
    urllib.request.urlopen(req, timeout=10).read()
    MOTO = url
    log(f"moto at {url} (ECS services report {APP_REPLICAS} running task(s))")


def operator_env(ns):
    """The operator's settings: its default budgets, watching `ns`, AWS at moto."""
    return {**os.environ, "FARGATE_OPERATOR_CLUSTER_ID": "bench", "FARGATE_OPERATOR_REGION": REGION,
            "FARGATE_OPERATOR_AWS_ENDPOINT_URL": MOTO, "FARGATE_OPERATOR_NAMESPACE": ns,
            "FARGATE_OPERATOR_METRICS_ADDR": METRICS, "FARGATE_OPERATOR_LOG_FORMAT": "json"}


def remove_objects(ns):
    """Leave no finalizer behind: the objects go with the operator stopped (their AWS side lives in
    a throwaway moto account). A merge patch, so objects without finalizers do not stop it."""
    for plural_ in ("hotpoolclaims", "hotpools", "dnsfailovers", "fargateapps", "hotpoolworkers"):
        names = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "get", plural_, "-n", ns, "-o", "name"],
                               capture_output=True, text=True).stdout.split()
        for i in range(0, len(names), 100):
            subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "patch", "-n", ns, "--type=merge",
                            "-p", '{"metadata":{"finalizers":null}}', *names[i:i + 100]], capture_output=True)
        subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "delete", plural_, "--all", "-n", ns, "--wait=false"],
                       capture_output=True)


def start_operator(binary, env, log_path):
    # Another operator (a bench killed earlier) answering on METRICS would be scraped instead.
    try:
        urllib.request.urlopen(f"http://{METRICS}/readyz", timeout=1)
        busy = True
    except urllib.error.HTTPError:  # answers, e.g. 503 while not ready
        busy = True
    except OSError:
        busy = False
    if busy:
        raise RuntimeError(f"something already serves {METRICS}: stop it (an operator left by an earlier bench?)")
    logf = open(log_path, "a")
    op = subprocess.Popen([binary, "run"], env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://{METRICS}/readyz", timeout=1)
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    return op


def stop_operator(op):
    os.killpg(op.pid, signal.SIGTERM)
    try:
        op.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(op.pid, signal.SIGKILL)


def run(scenario, n, binary):
    ns = f"bench-{scenario}-{n}-{uuid.uuid4().hex[:5]}"
    role, client = account_session()
    objs, checks, minimum = SCENARIO[scenario](n, role, client)
    expect = {plural: sum(1 for o in objs if PLURAL[o["kind"]] == plural) for plural, _ in checks}
    kubectl("create", "namespace", ns)
    log(f"{scenario} x{n}: namespace {ns}, {len(objs)} objects")
    env = operator_env(ns)
    log_path = LOG_DIR / f"bench-{scenario}-{n}.log"
    log_path.write_text("")
    op = start_operator(binary, env, log_path)
    publisher = HealthPublisher(client)
    publisher.start()
    try:
        api0 = scrape_apiserver()
        calls0, writes0, _ = scrape_operator()
        start = time.monotonic()
        for i in range(0, len(objs), 200):
            kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs[i:i + 200]}))
        created = time.monotonic() - start
        peak_rss = 0.0
        # Seconds each kind's objects spent converged while others converged: the share of the
        # converge window in which they were verified by periodic passes, as they are when idle.
        converged_seconds, polled = {plural: 0.0 for plural, _ in checks}, time.monotonic()
        while True:
            states = [converged(plural, ns, cond, expect[plural]) for plural, cond in checks]
            now = time.monotonic()
            for (plural, _), (ok, _) in zip(checks, states):
                converged_seconds[plural] += ok * (now - polled)
            polled = now
            peak_rss = max(peak_rss, proc_stats(op.pid)[1])
            if all(done for _, done in states):
                break
            if time.monotonic() - start > 3 * 3600:
                raise RuntimeError(f"{scenario} x{n}: {states} converged after three hours")
            time.sleep(2)
        ready = time.monotonic() - start
        calls1, writes1, _ = scrape_operator()
        api1 = scrape_apiserver()
        rss1, _, cpu1 = proc_stats(op.pid)
        log(f"{scenario} x{n}: converged in {ready:.1f} s; idle window {IDLE} s")
        time.sleep(IDLE)
        calls2, writes2, _ = scrape_operator()
        api2 = scrape_apiserver()
        rss2, hwm2, cpu2 = proc_stats(op.pid)
        conv = delta(calls1, calls0)
        idle = delta(calls2, calls1)
        per_op_idle = {f"{s_}:{o_}": v / max(IDLE, 1e-9) for (s_, o_), v in idle.items()}
        res = {
            "scenario": scenario, "n": n, "objects": len(objs), "create_s": created, "ready_s": ready,
            "floor_s": minimum["floor_s"],
            "calls": conv, "calls_per_obj": sum(conv.values()) / n,
            "mutating_per_obj": sum(v for (s_, o_), v in conv.items() if o_ in MUTATING) / n,
            "reads_per_obj": sum(v for (s_, o_), v in conv.items() if o_ not in MUTATING) / n,
            "min_mutating": minimum["mutating"], "min_reads": minimum["reads"], "min_formula": minimum["formula"],
            "route53_per_obj": sum(v for (s_, o_), v in conv.items() if s_ == "route53") / n,
            "status_writes_per_obj": (sum(writes1.values()) - sum(writes0.values())) / n,
            "api_per_obj": (api1 - api0) / n,
            "idle_mutating": sum(v for (s_, o_), v in idle.items() if o_ in MUTATING),
            "idle_status_writes": sum(writes2.values()) - sum(writes1.values()),
            "idle_status_writes_by_kind": delta(writes2, writes1),
            "idle_reads_per_obj_min": sum(v for (s_, o_), v in idle.items() if o_ not in MUTATING) / n / max(IDLE / 60, 1e-9),
            "idle_reads_per_s": per_op_idle,
            "verifying_reads": verifying_reads(per_op_idle, converged_seconds, expect, idle),
            "idle_api_per_obj_min": (api2 - api1) / n / max(IDLE / 60, 1e-9),
            "peak_rss_mb": max(peak_rss, hwm2), "steady_rss_mb": rss2,
            "cpu_converge_s": cpu1, "cpu_idle_s": cpu2 - cpu1,
        }
        if any(plural == "dnsfailovers" for plural, _ in checks):
            res["health_first_reading_s"] = health_freshness(ns)
            log(f"{scenario} x{n}: first health reading after Synced {res['health_first_reading_s']}")
            res["flip"] = flip_all(ns, publisher)
            log(f"{scenario} x{n}: failover of every primary {res['flip']}")
        # A restart with everything in place: how long until every object was reconciled once,
        # and what that costs.
        stop_operator(op)
        op = start_operator(binary, env, log_path)
        restart = time.monotonic()
        calls3, _, _ = scrape_operator()
        # Claims are bound by their pool's pass, not reconciled one by one.
        owners = sum(1 for o in objs if o["kind"] != "HotPoolClaim")
        while scrape_operator()[2] < owners and time.monotonic() - restart < 3600:
            time.sleep(1)
        res["restart_first_pass_s"] = time.monotonic() - restart
        calls4, _, _ = scrape_operator()
        res["restart_calls"] = {f"{s_}:{o_}": v for (s_, o_), v in sorted(delta(calls4, calls3).items())}
        res["restart_rss_mb"] = proc_stats(op.pid)[0]
        log(f"{scenario} x{n}: {json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.items() if k != 'calls'})}")
        return res
    finally:
        publisher.stop()
        stop_operator(op)
        remove_objects(ns)


# ---------------------------------------------------------------------------------------------
# Claim binding latency (BENCH_SCENARIOS=claims)
# ---------------------------------------------------------------------------------------------

CLAIMS_PATH = "/apis/fargate.operator.dev/v1alpha1/namespaces/{ns}/hotpoolclaims"


class ClaimWatch(threading.Thread):
    """A watch of its own on the namespace's hotpoolclaims (not the operator's): when it first saw
    each claim, and when it first saw it Bound, by the monotonic clock."""

    def __init__(self, ns):
        super().__init__(daemon=True)
        self.server, self.token, self.tls = apiserver()
        self.path = CLAIMS_PATH.format(ns=ns)
        self.seen, self.bound = {}, {}
        self.changed = threading.Condition()
        self.opened = threading.Event()
        self.failed = None

    def request(self, query):
        req = urllib.request.Request(f"{self.server}{self.path}{query}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        return urllib.request.urlopen(req, context=self.tls, timeout=3600)

    def run(self):
        try:
            rv = json.load(self.request(""))["metadata"]["resourceVersion"]
            stream = self.request(f"?watch=1&resourceVersion={rv}")
            self.opened.set()
            for line in stream:
                event = json.loads(line)
                obj, now = event.get("object", {}), time.monotonic()
                name = obj.get("metadata", {}).get("name")
                with self.changed:
                    self.seen.setdefault(name, now)
                    if (obj.get("status") or {}).get("phase") == "Bound":
                        self.bound.setdefault(name, now)
                    self.changed.notify_all()
        except Exception as e:  # noqa: BLE001 - reported by wait_bound
            self.failed = e
            self.opened.set()
            with self.changed:
                self.changed.notify_all()

    def wait_bound(self, names, timeout=600):
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(n in self.bound for n in names):
                if self.failed:
                    raise RuntimeError(f"claim watch failed: {self.failed}")
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.bound]
                    raise RuntimeError(f"{len(missing)} claim(s) not Bound within {timeout} s: {missing[:5]}")
                self.changed.wait(left)


def create_claim(server, token, tls, ns, name, ready=None):
    """POST one claim over a connection of its own, opened (TLS handshake and one request) before
    `ready` (a barrier the burst's clients pass together): a client of a pool holds a connection
    to the apiserver, so the handshake is not part of its claim. Returns the monotonic time just
    before the request was sent."""
    host = urllib.parse.urlsplit(server)
    conn = http.client.HTTPSConnection(host.hostname, host.port, context=tls, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        conn.request("GET", "/version", headers=headers)
        conn.getresponse().read()
        body = json.dumps({"apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
                           "metadata": {"name": name},
                           "spec": {"pool": "pool", "version": "1", "client": name}}).encode()
        if ready is not None:
            ready.wait(60)
        sent = time.monotonic()
        conn.request("POST", CLAIMS_PATH.format(ns=ns), body=body, headers=headers)
        answer = conn.getresponse()
        if answer.status != 201:
            raise RuntimeError(f"creating claim {name}: HTTP {answer.status} {answer.read()[:200]!r}")
        answer.read()
        return sent
    finally:
        conn.close()


def scrape_bind_histogram():
    """The operator's own `hotpool_claim_bind_seconds`: cumulative count per bucket bound."""
    text = urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=10).read().decode()
    return {le: int(float(v)) for le, v in
            re.findall(r'^fargate_operator_hotpool_claim_bind_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M)}


def burst_cpu(operator_pid):
    """CPU seconds so far of the processes a burst keeps busy: is the machine the bound?"""
    pids = {"operator": operator_pid}
    for name in ("kube-apiserver", "etcd"):
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
        if found:
            pids[name] = int(found[0])
    out = {k: proc_stats(pid)[2] for k, pid in pids.items()}
    out["bench"] = time.process_time()
    return out


def percentile_ms(xs, p):
    """Nearest-rank percentile of `xs` (seconds), in milliseconds."""
    ordered = sorted(xs)
    return 1000 * ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def wait_pool_full(ns, workers):
    """Wait until the pool has `workers` Available workers and none starting."""
    deadline = time.monotonic() + 900
    while True:
        st = json.loads(kubectl("get", "hotpool", "pool", "-n", ns, "-o", "json")).get("status") or {}
        if st.get("available") == workers and st.get("starting") == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"pool not full after 15 minutes: {st.get('available')}/{workers} available")
        time.sleep(1)


def claims_latency(binary):
    """Pool of BENCH_CLAIM_BURST + 5 workers; claims one at a time, then a burst (see the module doc)."""
    n = CLAIM_BURST + 5
    ns = f"bench-claims-{CLAIM_BURST}-{uuid.uuid4().hex[:5]}"
    role, client = account_session()
    objs, _, _ = hotpool_objects(2 * n, role, client)
    pool = objs[0]
    kubectl("create", "namespace", ns)
    log(f"claims: namespace {ns}, pool of {n}")
    log_path = LOG_DIR / f"bench-claims-{CLAIM_BURST}.log"
    log_path.write_text("")
    op = start_operator(binary, operator_env(ns), log_path)
    try:
        kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(pool))
        wait_pool_full(ns, n)
        watch = ClaimWatch(ns)
        watch.start()
        watch.opened.wait(30)
        server, token, tls = apiserver()
        sent = {}
        singles = [f"single-{i:03d}" for i in range(CLAIM_SINGLES)]
        for name in singles:
            sent[name] = create_claim(server, token, tls, ns, name)
            watch.wait_bound([name])
        wait_pool_full(ns, n)
        burst = [f"burst-{i:03d}" for i in range(CLAIM_BURST)]
        released = {}
        ready = threading.Barrier(len(burst), action=lambda: released.update(cpu=burst_cpu(op.pid), at=time.monotonic()))
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(burst)) as pool_:
            for name, at in zip(burst, pool_.map(lambda c: create_claim(server, token, tls, ns, c, ready), burst)):
                sent[name] = at
        watch.wait_bound(burst)
        cpu1, wall1 = burst_cpu(op.pid), time.monotonic()
        cpu0 = released["cpu"]
        res = {"scenario": "claims", "n": CLAIM_BURST, "pool": n, "singles": CLAIM_SINGLES,
               "burst_cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu0}, "burst_wall_s": wall1 - released["at"]}
        for phase, names in (("single", singles), ("burst", burst)):
            created = [watch.bound[c] - sent[c] for c in names]
            seen = [watch.bound[c] - watch.seen[c] for c in names]
            res.update({f"{phase}_p50_ms": percentile_ms(created, 50), f"{phase}_p99_ms": percentile_ms(created, 99),
                        f"{phase}_seen_p50_ms": percentile_ms(seen, 50), f"{phase}_seen_p99_ms": percentile_ms(seen, 99)})
        # How the burst arrived (the watch's first events) and ended (its last Bound), from its first event.
        first = min(watch.seen[c] for c in burst)
        res["burst_arrival_ms"] = 1000 * (max(watch.seen[c] for c in burst) - first)
        res["burst_all_bound_ms"] = 1000 * (max(watch.bound[c] for c in burst) - first)
        res["operator_bind_seconds"] = scrape_bind_histogram()
        log(f"claims: {json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in res.items()})}")
        return res
    finally:
        stop_operator(op)
        remove_objects(ns)


def load_results():
    try:
        return json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}


def store_result(res, command):
    """Keep `res` in RESULTS, replacing an earlier result of the same scenario and size."""
    # BENCH_COMMIT: the commit the binary was built from, when HEAD has moved on since.
    commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    stored = load_results()
    stored[f"{res['scenario']}/{res['n']}"] = {
        **{k: v for k, v in res.items() if k != "calls"},
        "calls": {f"{s}:{o}": v for (s, o), v in sorted(res.get("calls", {}).items())},
        "date": time.strftime("%Y-%m-%d"), "commit": commit, "command": command, "idle_s": IDLE,
    }
    RESULTS.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
    return stored


def ratio(value, goal):
    return f"{value / goal:.2f}x" if goal else "-"


def table(stored):
    cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    cpu_count = int(cpu or 1)
    mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    order = {s: i for i, s in enumerate(["fargateapp", "dnsfailover", "hotpool", "all"])}
    results = sorted((r for r in stored.values() if r["scenario"] in order), key=lambda r: (order[r["scenario"]], r["n"]))
    claims = sorted((r for r in stored.values() if r["scenario"] == "claims"), key=lambda r: r["n"])
    current = [r for r in results if "min_reads" in r]
    older = [r for r in results if "min_reads" not in r]
    lines = [
        "# Benchmarks", "",
        f"Measured on {platform.system()} {platform.machine()}, {cpu} cores, {mem} GiB, against the",
        "local kube-apiserver v1.20.2 + etcd + moto 5.2.5 (`make env-up`), operator release build with its default",
        "budgets (ECS 20 rps, ELBv2 8 rps, Route 53 4 rps, 10 launches/s, AWS's per-action quotas) and",
        "`--health-source cloudwatch`. Each row says when, on which commit and with which idle window it was",
        "measured; `make bench` reruns them (the commands are at the end).",
        "", "FargateApp converges to `Ready` (the bench's own moto reports each service's task running, so a",
        "rollout completes as on AWS; rows of 79fdd13 and earlier were measured to `Synced`, with rollouts",
        "that never completed and were polled throughout); DnsFailover to `Ready` with a first health reading",
        "(`PrimaryHealthy` True or False; rows of 79fdd13 and earlier: `Ready`), with the bench publishing",
        "each health check's `HealthCheckStatus` datapoint once a minute from two minutes after it exists,",
        "as Route 53 does (earlier rows had none, so every check was read with GetHealthCheckStatus);",
        "the HotPool row is a pool of N/2 workers with N claims (`whenEmpty: Wait`), converged when",
        "every claim is Bound; `all` is N FargateApps, N DnsFailovers and that pool with its N claims in one",
        "process. The minimum counts reads as well as writes (formulas below); the floor is the time the",
        "slowest AWS quota the work draws from allows (e.g. 1,000 CreateHealthCheck at 0.5/s after 50).", "",
        "| scenario | N | converged (s) / floor (s) | AWS calls/object / minimum (ratio, goal ≤ 1.2x) | mutating/object / minimum | reads/object / minimum | status writes/object | apiserver requests/object | idle: mutating calls (goal 0) | idle: status writes (goal 0) | idle: reads/object/min | RSS peak / steady MiB (goal ≤ 60 for `all` x1000) | CPU s converge / idle | measured (idle window) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in current:
        minimum = r["min_mutating"] + r["min_reads"]
        lines.append(
            f"| {r['scenario']} | {r['n']} | {r['ready_s']:.0f} / {r['floor_s']:.0f} ({ratio(r['ready_s'], r['floor_s'])}) | "
            f"{r['calls_per_obj']:.2f} / {minimum:.2f} ({ratio(r['calls_per_obj'], minimum)}) | "
            f"{r['mutating_per_obj']:.2f} / {r['min_mutating']:.2f} | {r['reads_per_obj']:.2f} / {r['min_reads']:.2f} | "
            f"{r['status_writes_per_obj']:.2f} | {r['api_per_obj']:.1f} | {r['idle_mutating']} | "
            f"{r['idle_status_writes']}{by_kind(r.get('idle_status_writes_by_kind'))} | {r['idle_reads_per_obj_min']:.2f} | "
            f"{r['peak_rss_mb']:.0f} / {r['steady_rss_mb']:.0f} ({ratio(r['peak_rss_mb'], 60)} of 60) | "
            f"{r['cpu_converge_s']:.1f} / {r['cpu_idle_s']:.1f} | "
            f"{r.get('date', '?')} {r.get('commit', '')} ({r.get('idle_s', '?')} s) |")
    lines += ["", "Minimum per object, by scenario:", ""]
    for r in current:
        lines.append(f"- {r['scenario']} x{r['n']}: {r['min_formula']} = {r['min_mutating']:.2f} mutating + {r['min_reads']:.2f} reads")
    health = [r for r in current if "health_first_reading_s" in r]
    if health:
        lines += ["", "## DnsFailover health (goal: a reading within 60 s, a flip within 60 s)", "",
                  "| scenario | N | first reading after Synced p50 / p99 / max (s) | every primary failed over after the metric says 0 (s) |",
                  "|---|---|---|---|"]
        for r in health:
            h, f = r["health_first_reading_s"], r.get("flip", {})
            fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
            lines.append(f"| {r['scenario']} | {r['n']} | {fmt(h['p50'])} / {fmt(h['p99'])} / {fmt(h['max'])} | "
                         f"{fmt(f.get('all_failed_over_s'))} |")
    restarts = [r for r in current if "restart_first_pass_s" in r]
    if restarts:
        lines += ["", "## Restart with everything in place", "",
                  "| scenario | N | every object reconciled once after (s) | AWS calls in that time | RSS then (MiB) |", "|---|---|---|---|---|"]
        for r in restarts:
            lines.append(f"| {r['scenario']} | {r['n']} | {r['restart_first_pass_s']:.0f} | "
                         f"{sum(r['restart_calls'].values())} ({', '.join(f'{k} {v}' for k, v in r['restart_calls'].items())}) | "
                         f"{r['restart_rss_mb']:.0f} |")
    if claims:
        lines += ["", "## Claim binding latency", "",
                  "A pool of N + 5 Available workers; claims created one at a time (each after the previous one",
                  "is Bound), then N at once, each by a client holding an open connection (rows before 29118b2:",
                  "a new connection per claim, its TLS handshake inside the measurement). Measured by a watch of",
                  "the benchmark's own: from each claim's creation request (and, in brackets, from the watch's",
                  "first event of it) to the watch seeing it Bound.", "",
                  "| N | one at a time: p50 / p99 (ms), goal p99 < 250 | burst of N: p50 / p99 (ms), goal p99 < 250 | measured |",
                  "|---|---|---|---|"]
        for r in claims:
            lines.append(
                f"| {r['n']} | {r['single_p50_ms']:.0f} / {r['single_p99_ms']:.0f} "
                f"({r['single_seen_p50_ms']:.0f} / {r['single_seen_p99_ms']:.0f}) | "
                f"{r['burst_p50_ms']:.0f} / {r['burst_p99_ms']:.0f} "
                f"({r['burst_seen_p50_ms']:.0f} / {r['burst_seen_p99_ms']:.0f}) | "
                f"{r.get('date', '?')} {r.get('commit', '')} |")
        for r in claims:
            if "burst_cpu_s" in r:
                cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["burst_cpu_s"].items())
                lines += ["", f"CPU seconds from the burst's release to its last Bound ({r['burst_wall_s']:.2f} s, "
                          f"{cpu}: {sum(r['burst_cpu_s'].values()):.2f} of the {cpu_count} cores' "
                          f"{cpu_count * r['burst_wall_s']:.2f})."]
    lines += ["", "## AWS calls by operation while converging (per object)", ""]
    for r in current:
        ops = ", ".join(f"{k} {v / r['n']:.2f}" for k, v in r["calls"].items())
        lines.append(f"- {r['scenario']} x{r['n']}: {ops}")
    verified = [r for r in current if "verifying_reads" in r]
    if verified:
        lines += ["", "Of those, the reads that verified objects already converged (periodic passes), estimated",
                  "as each operation's idle read rate times the time its kind's objects spent converged",
                  "while the rest converged; the calls that remain are the work of converging:", ""]
        for r in verified:
            v = sum(r["verifying_reads"].values()) / r["n"]
            rest, minimum = r["calls_per_obj"] - v, r["min_mutating"] + r["min_reads"]
            ops = ", ".join(f"{k} {x / r['n']:.2f}" for k, x in sorted(r["verifying_reads"].items()) if x / r["n"] >= 0.01)
            lines.append(f"- {r['scenario']} x{r['n']}: verifying {v:.2f} per object ({ops}); converging "
                         f"{rest:.2f} against the minimum {minimum:.2f} ({ratio(rest, minimum)})")
    if older:
        lines += ["", "## Earlier rows (before #16: mutating minimum only, per-process budgets)", "",
                  "| scenario | N | time to converged (s) | AWS calls/object | mutating/object (minimum) | RSS peak / steady (MiB) | measured |",
                  "|---|---|---|---|---|---|---|"]
        for r in older:
            lines.append(f"| {r['scenario']} | {r['n']} | {r['ready_s']:.1f} | {r['calls_per_obj']:.2f} | "
                         f"{r['mutating_per_obj']:.2f} / {r['min_mutating']:.2f} | {r['peak_rss_mb']:.0f} / {r['steady_rss_mb']:.0f} | "
                         f"{r.get('date', '?')} {r.get('commit', '')} |")
    lines += ["", "## Commands", ""]
    for r in results + claims:
        lines.append(f"- {r['scenario']} x{r['n']}: `{r.get('command', '?')}`")
    return "\n".join(lines) + "\n"


def by_kind(counts):
    """` (DnsFailover 3, HotPool 1)` for a non-empty count per kind, else nothing."""
    if not counts:
        return ""
    return " (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"


BEGIN, END = "<!-- make bench: generated from hack/bench-results.json, begin -->", "<!-- make bench: end -->"


def write_report(out, generated):
    """Replace the generated part of `out`, keeping what people wrote around it (the analysis)."""
    old = out.read_text() if out.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
    else:
        head, tail = "", "\n"
    out.write_text(f"{head}{BEGIN}\n{generated}{END}{tail}")


def main():
    binary = os.environ.get("BENCH_BINARY") or next(
        (str(p) for p in [pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / d / "fargate-operator"
                          for d in ("release", "debug")] if p.exists()), None)
    if not binary:
        sys.exit("bench: build the operator first (make build, or cargo build --release)")
    log(f"binary {binary}; sizes {SIZES}; idle window {IDLE} s; scenarios {SCENARIOS}")
    start_moto()
    command = f"BENCH_SIZES={','.join(map(str, SIZES))} BENCH_IDLE_SECONDS={IDLE} BENCH_SCENARIOS={','.join(SCENARIOS)} make bench"
    out = ROOT / os.environ.get("BENCH_OUT", "BENCHMARKS.md")
    for s in SCENARIOS:
        if s == "claims":
            claims_command = (f"BENCH_CLAIM_BURST={CLAIM_BURST} BENCH_CLAIM_SINGLES={CLAIM_SINGLES} "
                              f"BENCH_SCENARIOS=claims make bench")
            write_report(out, table(store_result(claims_latency(binary), claims_command)))
            log(f"wrote {out}")
            continue
        for n in SIZES:
            stored = store_result(run(s, n, binary), command)
            # Written after every scenario, so an interrupted run keeps what it measured.
            write_report(out, table(stored))
            log(f"wrote {out}")


if __name__ == "__main__":
    main()
