#!/usr/bin/env python3
"""Chart tests (driven by hack/test-chart.sh, which provides the environment):

1. `helm lint --strict` (Helm v4 through helm-python-sdk) is clean with a cluster id, and names
   operator.clusterId when it is missing; the chart's crds/ equal crds/.
2. Every rendered manifest of several value sets validates strictly against the Kubernetes schemas
   of 1.28 to the newest kubernetes-validate knows; the Deployment is locked down.
3. The chart installs into the real local apiserver and every rendered object exists afterwards.
4. Least privilege: the operator runs with the chart's ServiceAccount token (not admin) through a
   full reconcile of every kind (the examples, against moto) and their deletion; a "forbidden" in
   its log fails the test.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "fargate-operator"
KUBECONFIG = os.environ["KUBECONFIG"]
MOTO = os.environ["FARGATE_TEST_AWS_ENDPOINT"]
BIN = os.environ["FO_OPERATOR_BIN"]
VENV_PY = os.environ["FO_MOTO_PYTHON"]
RELEASE = "fo"
SYSTEM_NS = "fargate-system-test"
APP_NS = "chart-rbac-test"
FAILURES = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILURES.append(what)


def kubectl(*args, stdin=None, check_rc=True):
    out = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "--request-timeout=30s", *args], input=stdin,
                         capture_output=True, text=True)
    if check_rc and out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


BASE = {"operator": {"clusterId": "chart-test"}}
VARIANTS = {
    "defaults": BASE,
    "ha-irsa-monitoring": {**BASE, "replicaCount": 2,
                           "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/fo"}},
                           "metrics": {"serviceMonitor": {"enabled": True}, "bindAddress": "[::]"},
                           "networkPolicy": {"enabled": True, "metricsFrom": [
                               {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}},
    "namespaced": {**BASE, "rbac": {"namespaced": True}},
}
# Everything allowed to the test's app namespace: the least-privilege run goes through the
# AccessPolicy gate (--require-access-policy) with the chart's RBAC.
ALLOW_ALL = {"name": "chart-rbac-test", "spec": {"namespaces": [APP_NS], "allow": {
    "roles": ["*"], "listeners": [{"arn": "*"}], "hostedZones": [{"id": "*"}], "clusters": ["*"], "subnets": ["*"],
    "securityGroups": ["*"], "targetGroups": ["*"], "taskDefinitionFamilies": ["*"]}}}
VARIANTS["access-policies"] = {"operator": {"clusterId": "chart-test", "requireAccessPolicy": True},
                               "accessPolicies": [ALLOW_ALL]}


def lint():
    report = helm.lint(CHART, {"operator": {"clusterId": "ci"}}, strict=True)
    bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
    check(not bad, f"helm lint --strict is clean ({bad})")
    missing = helm.lint(CHART, None, strict=True)
    text = json.dumps(missing)
    check("clusterId" in text, "helm lint without operator.clusterId names it")
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        copy = CHART / "crds" / crd.name
        check(copy.exists() and copy.read_text() == crd.read_text(), f"chart crds/{crd.name} equals crds/ (make crds)")


def render_all():
    rendered = {}
    with helm.Chart.load(CHART) as chart:
        for name, values in VARIANTS.items():
            out = chart.render(values, name=RELEASE, namespace=SYSTEM_NS, is_install=True)
            rendered[name] = [d for path, text in sorted(out.items()) if path.endswith((".yaml", ".yml")) for d in docs(text)]
    return rendered


def validate(rendered):
    versions = sorted({v for v in kubernetes_validate.utils.all_versions()
                       if tuple(map(int, v.split(".")[:2])) >= (1, 28)}, key=lambda v: tuple(map(int, v.split("."))))
    check(len(versions) >= 2, f"kubernetes-validate knows 1.28 and newer ({versions})")
    crds = [d for f in sorted((CHART / "crds").glob("*.yaml")) for d in docs(f.read_text())]
    for variant, objs in rendered.items():
        for obj in objs + crds:
            if obj["apiVersion"].startswith("monitoring.coreos.com"):
                continue  # not a Kubernetes schema; its shape is the Prometheus Operator's
            if obj["apiVersion"].startswith("fargate.operator.dev/"):
                continue  # our own kind: the install below has the apiserver check it against the CRD
            errors = []
            for v in versions:
                try:
                    kubernetes_validate.validate(obj, v, strict=True)
                except Exception as e:  # noqa: BLE001 - every failure is reported
                    errors.append(f"{v}: {(str(e) or repr(e)).splitlines()[0]}")
            check(not errors, f"{variant}: {obj['kind']}/{obj['metadata']['name']} valid for {versions[0]}..{versions[-1]} {errors[:2]}")
    kinds = {o["kind"] for o in rendered["ha-irsa-monitoring"]}
    check({"PodDisruptionBudget", "ServiceMonitor", "Role", "ClusterRole"} <= kinds,
          f"replicas 2 renders a PDB, the leader-election Role and a ServiceMonitor ({sorted(kinds)})")
    check("PodDisruptionBudget" not in {o["kind"] for o in rendered["defaults"]}, "one replica renders no PDB")
    cluster_roles = [o for o in rendered["namespaced"] if o["kind"] == "ClusterRole"]
    check(len(cluster_roles) == 1 and cluster_roles[0]["metadata"]["name"].endswith("-access-policies")
          and all(set(r["verbs"]) == {"list", "watch"} for r in cluster_roles[0]["rules"])
          and {res for r in cluster_roles[0]["rules"] for res in r["resources"]} == {"accesspolicies", "namespaces"},
          "rbac.namespaced renders one ClusterRole: list/watch of accesspolicies and namespaces")
    policies = [o for o in rendered["access-policies"] if o["kind"] == "AccessPolicy"]
    check(len(policies) == 1 and policies[0]["spec"] == ALLOW_ALL["spec"], "accessPolicies values become AccessPolicies")
    dep = next(o for o in rendered["access-policies"] if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    check(env.get("FARGATE_OPERATOR_REQUIRE_ACCESS_POLICY") == "true", "operator.requireAccessPolicy reaches the operator")
    dep = next(o for o in rendered["defaults"] if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc = c["securityContext"]
    check(pod["securityContext"]["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
          and sc["capabilities"]["drop"] == ["ALL"], "the pod runs as non-root, read-only, no escalation, no capabilities")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"] == "/readyz",
          "probes on /healthz and /readyz")
    check(dep["spec"]["strategy"]["type"] == "Recreate",
          "one replica without leader election updates with Recreate (never two reconciling processes)")
    ha = next(o for o in rendered["ha-irsa-monitoring"] if o["kind"] == "Deployment")
    check(ha["spec"]["strategy"]["type"] == "RollingUpdate", "with leader election the Deployment rolls")
    role = next(o for o in rendered["ha-irsa-monitoring"] if o["kind"] == "Role")
    named = [r for r in role["rules"] if r.get("resourceNames")]
    check(named and all(r["resourceNames"] == ["fargate-operator"] for r in named)
          and all(set(r["verbs"]) <= {"create"} for r in role["rules"] if not r.get("resourceNames")),
          "the leader-election Role reaches only its own Lease (create aside, which RBAC cannot name)")
    check("NetworkPolicy" not in {o["kind"] for o in rendered["defaults"]}, "no NetworkPolicy unless asked for")
    netpol = next(o for o in rendered["ha-irsa-monitoring"] if o["kind"] == "NetworkPolicy")
    rule = netpol["spec"]["ingress"]
    check(netpol["spec"]["policyTypes"] == ["Ingress"] and len(rule) == 1 and rule[0]["ports"] == [{"protocol": "TCP", "port": 8080}]
          and rule[0]["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"},
          "the NetworkPolicy admits only the metrics port, from metricsFrom")
    env = {e["name"]: e.get("value") for e in ha["spec"]["template"]["spec"]["containers"][0]["env"]}
    check(env.get("FARGATE_OPERATOR_METRICS_ADDR") == "[::]:8080", "metrics.bindAddress reaches the operator")
    sa = next(o for o in rendered["ha-irsa-monitoring"] if o["kind"] == "ServiceAccount")
    check(sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn", "").startswith("arn:aws:iam::"),
          "the IRSA annotation reaches the ServiceAccount")


def install_crds():
    """Install the chart's CRDs and wait until each is Established. The test needs them, so the test
    installs them: nothing else in `make test` runs before it on an empty cluster. Client-side apply
    with --validate=false, because Helm 4's server-side apply of crds/ is refused by the test's v1.20
    apiserver for CRDs that carry CEL rules (x-kubernetes-validations postdates it; it drops them)."""
    files = sorted((CHART / "crds").glob("*.yaml"))
    kubectl("apply", "--validate=false", *[a for f in files for a in ("-f", str(f))])
    names = [d["metadata"]["name"] for f in files for d in docs(f.read_text())]
    out = kubectl("wait", "--for=condition=Established", "--timeout=60s",
                  *[f"customresourcedefinition/{n}" for n in names], check_rc=False)
    check(out.returncode == 0, f"the chart's {len(names)} CRDs are Established {(out.stderr or '').strip()}")
    if out.returncode != 0:
        raise RuntimeError("CRDs not Established; the install test cannot go on")


def install(values):
    for ns in (SYSTEM_NS, APP_NS):
        kubectl("create", "namespace", ns, check_rc=False)
    install_crds()
    # The CRDs were installed above (and validated for 1.28+ before), so the release is installed
    # from a copy without crds/: what `helm install --skip-crds` does on old clusters.
    chart = pathlib.Path(tempfile.mkdtemp()) / CHART.name
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("crds"))
    with helm.Config(kubeconfig_path=KUBECONFIG, namespace=SYSTEM_NS) as cfg:
        if any(r["name"] == RELEASE for r in cfg.list()):
            cfg.uninstall(RELEASE)
        release = cfg.install(str(chart), RELEASE, values, namespace=SYSTEM_NS, timeout=120)
        check(release.get("status") in ("deployed", "DEPLOYED") or release.get("info", {}).get("status") == "deployed",
              f"helm install: {release.get('status') or release.get('info', {}).get('status')}")
        manifest = release.get("manifest", "")
    objs = docs(manifest)
    for o in objs:
        ns = o["metadata"].get("namespace")
        args = ["get", f"{o['kind']}.{o['apiVersion'].split('/')[0]}" if "/" in o["apiVersion"] else o["kind"],
                o["metadata"]["name"]]
        if ns:
            args += ["-n", ns]
        check(kubectl(*args, check_rc=False).returncode == 0, f"installed {o['kind']}/{o['metadata']['name']} exists")
    return objs


def sa_kubeconfig(sa):
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    out = kubectl("create", "--raw", f"/api/v1/namespaces/{SYSTEM_NS}/serviceaccounts/{sa}/token", "-f", "-",
                  stdin=json.dumps(req))
    token = json.loads(out.stdout)["status"]["token"]
    admin = yaml.safe_load(pathlib.Path(KUBECONFIG).read_text())
    cluster = admin["clusters"][0]
    cfg = {"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
           "users": [{"name": sa, "user": {"token": token}}],
           "contexts": [{"name": sa, "context": {"cluster": cluster["name"], "user": sa}}], "current-context": sa}
    path = pathlib.Path(tempfile.mkdtemp()) / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def wait(args, timeout=120):
    out = kubectl("wait", "-n", APP_NS, f"--timeout={timeout}s", *args, check_rc=False)
    return out.returncode == 0, (out.stderr or out.stdout).strip()


def distinct_names(obj):
    """The examples, with DNS names of their own: `make demo` may own the examples' records in the
    same moto account, and the point here is permissions, not conflicts."""
    spec = obj.get("spec", {})
    if obj["kind"] == "DnsFailover":
        spec["name"] = "chart-rbac." + spec["name"]
        spec.pop("delegation", None)
    if obj["kind"] == "FargateApp" and spec.get("dns"):
        spec["dns"]["name"] = "chart-rbac-" + spec["dns"]["name"]
    return obj


def least_privilege_run(sa):
    kubeconfig = sa_kubeconfig(sa)
    can = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "auth", "can-i", "create", "namespaces"],
                         capture_output=True, text=True)
    check(can.stdout.strip() == "no", "the ServiceAccount token is not an admin")
    subst = subprocess.run([VENV_PY, str(ROOT / "hack" / "demo_fixtures.py")], capture_output=True, text=True, check=True).stdout
    log_path = pathlib.Path(os.environ.get("FO_LOG_DIR", "/tmp")) / "operator-chart-rbac.log"
    env = {**os.environ, "KUBECONFIG": kubeconfig, "FARGATE_OPERATOR_CLUSTER_ID": "chart-test",
           "FARGATE_OPERATOR_REGION": os.environ.get("AWS_REGION", "us-east-1"),
           "FARGATE_OPERATOR_AWS_ENDPOINT_URL": MOTO, "FARGATE_OPERATOR_NAMESPACE": APP_NS,
           "FARGATE_OPERATOR_METRICS_ADDR": "127.0.0.1:0", "FARGATE_OPERATOR_LEADER_ELECT": "true",
           "FARGATE_OPERATOR_LEADER_ELECTION_NAMESPACE": SYSTEM_NS, "FARGATE_OPERATOR_HEALTH_POLL_SECONDS": "2",
           "FARGATE_OPERATOR_REQUIRE_ACCESS_POLICY": "true",
           "FARGATE_OPERATOR_LOG_LEVEL": "info,kube_runtime::controller=warn", "POD_NAMESPACE": SYSTEM_NS}
    with open(log_path, "w") as log:
        op = subprocess.Popen([BIN, "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        kubectl("create", "namespace", APP_NS, check_rc=False)
        for f in sorted((ROOT / "examples").glob("*.yaml")):
            if f.name == "hotpoolworker.yaml":
                continue
            text = subprocess.run(["sed", "-e", subst, str(f)], capture_output=True, text=True, check=True).stdout
            kubectl("apply", "--validate=false", "-n", APP_NS, "-f", "-", stdin=yaml.safe_dump_all(
                [distinct_names(d) for d in docs(text)]))
        for args, what in [
            (["--for=condition=Synced", "fa", "--all"], "every FargateApp Synced"),
            (["--for=condition=Synced", "dnsf", "--all"], "every DnsFailover Synced"),
            (["--for=condition=Ready", "hp", "--all"], "every HotPool Ready"),
            (["--for=condition=Ready", "hpc", "--all"], "every HotPoolClaim bound (Ready)"),
        ]:
            ok, msg = wait(args)
            check(ok, f"with the chart's RBAC only: {what} {'' if ok else msg}")
        lease = kubectl("get", "lease", "fargate-operator", "-n", SYSTEM_NS, "-o", "jsonpath={.spec.holderIdentity}",
                        check_rc=False).stdout
        check(bool(lease), f"the operator holds the Lease in {SYSTEM_NS} ({lease!r})")
        events = kubectl("get", "events.events.k8s.io", "-n", APP_NS, "-o", "name", check_rc=False).stdout.split()
        check(len(events) > 0, f"the operator published Events ({len(events)})")
        kubectl("delete", "-n", APP_NS, "hpc,hp,dnsf,fa", "--all", "--wait=false")
        for kind in ("hpc", "hp", "dnsf", "fa"):
            ok, msg = wait(["--for=delete", kind, "--all"], timeout=120)
            check(ok, f"with the chart's RBAC only: every {kind} deleted (finalizer removed) {'' if ok else msg}")
        left = kubectl("get", "hpw", "-n", APP_NS, "-o", "name", check_rc=False).stdout.split()
        check(not left, f"no HotPoolWorker left ({left})")
    finally:
        os.killpg(op.pid, signal.SIGTERM)
        try:
            op.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(op.pid, signal.SIGKILL)
    text = log_path.read_text()
    denied = [line for line in text.splitlines() if "forbidden" in line.lower() or " 403" in line]
    check(not denied, f"no request was forbidden ({denied[:3]}; log: {log_path})")


def main():
    lint()
    rendered = render_all()
    validate(rendered)
    values = {"operator": {"clusterId": "chart-test", "watchNamespace": APP_NS, "requireAccessPolicy": True},
              "replicaCount": 2, "image": {"repository": "fargate-operator", "tag": "test"},
              "accessPolicies": [ALLOW_ALL]}
    objs = install(values)
    sa = next(o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount")
    least_privilege_run(sa)
    with helm.Config(kubeconfig_path=KUBECONFIG, namespace=SYSTEM_NS) as cfg:
        cfg.uninstall(RELEASE)
    print(f"chart tests: {len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
