#!/usr/bin/env python3
"""The chart and the report for checkov (driven by hack/checkov.sh).

    checkov_render.py render OUT_DIR     (the tools venv's python: Helm v4 through helm-python-sdk)
        writes OUT_DIR/<variant>/<template>.yaml for each value set of VARIANTS;
    checkov_render.py report NAME JSON   (any python3)
        prints checkov's JSON result as counts, the failures and the skips with their reasons, and
        exits non-zero on a failed check, a parsing error, a skip without a reason, or a skip that
        stayed although the variant's values fix its finding (MUST_PASS).

The variants together render every template and every branch that changes the pod (replicas and
leader election, NetworkPolicy, ServiceMonitor, namespaced RBAC, AccessPolicies, pull policy
Always, a digest-pinned image), so a finding in any of them is seen.
"""
import collections
import json
import pathlib
import sys

CHART = pathlib.Path(__file__).resolve().parent.parent / "charts" / "fargate-operator"

BASE = {"operator": {"clusterId": "checkov"}}
VARIANTS = {
    "defaults": BASE,
    "ha-netpol-monitoring": {**BASE, "replicaCount": 2,
                             "networkPolicy": {"enabled": True},
                             "metrics": {"serviceMonitor": {"enabled": True}}},
    "namespaced": {**BASE, "rbac": {"namespaced": True}, "image": {"pullPolicy": "Always"}},
    "access-policies": {"operator": {"clusterId": "checkov", "requireAccessPolicy": True},
                        "accessPolicies": [{"name": "team-a", "spec": {
                            "namespaces": ["team-a"],
                            "allow": {"roles": ["arn:aws:iam::111122223333:role/team-a-*"],
                                      "clusters": ["apps"], "subnets": ["*"]}}}]},
    "digest": {**BASE, "image": {
        "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
}
# The chart renders a skip only while the values leave its finding in place: where they fix it,
# the check must run and pass (a skip there would hide a real finding).
MUST_PASS = {
    "ha-netpol-monitoring": {"CKV2_K8S_6"},     # the NetworkPolicy selects the pod
    "namespaced": {"CKV_K8S_15"},               # pullPolicy Always
    "digest": {"CKV_K8S_43", "CKV_K8S_15"},     # repository@digest (IfNotPresent is exact then)
}


def render(out):
    import helm_python as helm

    done = []
    with helm.Chart.load(CHART) as chart:
        for name, values in VARIANTS.items():
            # checkov scans all variants as one graph and links a NetworkPolicy to every Pod its
            # labels select, whatever the namespace: a release name (the instance label) and a
            # namespace per variant keep one variant's NetworkPolicy from covering another's pods.
            release = f"fo-{name}"
            rendered = chart.render(values, name=release, namespace=release, is_install=True)
            d = out / name
            d.mkdir(parents=True, exist_ok=True)
            count = 0
            for path, text in sorted(rendered.items()):
                if path.endswith((".yaml", ".yml")) and text.strip():
                    (d / pathlib.Path(path).name).write_text(text)
                    count += 1
            done.append(f"{name} ({count} files)")
    print(", ".join(done))


def report(name, path):
    data = json.loads(pathlib.Path(path).read_text())
    results = data.get("results", {})
    summary = data.get("summary", {})
    problems = []
    passed, failed, skipped = (results.get(k, []) for k in ("passed_checks", "failed_checks", "skipped_checks"))
    print(f"{name}: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped"
          f" ({summary.get('resource_count', '?')} resources, checkov {summary.get('checkov_version', '?')})")
    for r in failed:
        lines = "-".join(map(str, r.get("file_line_range") or []))
        print(f"  FAILED  {r['check_id']} {r['check_name']}\n          {r['resource']} ({r['file_path'].lstrip('/')}:{lines})")
    if failed:
        problems.append(f"{len(failed)} failed check(s): fix each, or skip it inline with its reason")
    if summary.get("parsing_errors"):
        problems.append(f"{summary['parsing_errors']} file(s) checkov could not parse (unscanned)")
    if not passed and not failed:
        problems.append("checkov checked nothing")
    by_reason = collections.defaultdict(list)
    for r in skipped:
        reason = r["check_result"].get("suppress_comment") or ""
        by_reason[(r["check_id"], reason)].append(r)
        if not reason.strip() or reason == "No comment provided":
            problems.append(f"{r['check_id']} skipped without a reason on {r['resource']}")
        variant = r["file_path"].lstrip("/").split("/")[0]
        if r["check_id"] in MUST_PASS.get(variant, ()):
            problems.append(f"{r['check_id']} skipped in variant {variant}, whose values fix it")
    for (check_id, reason), rs in sorted(by_reason.items()):
        print(f"  skipped {check_id} x{len(rs)}: {reason}")
    passed_in = {(r["file_path"].lstrip("/").split("/")[0], r["check_id"]) for r in passed}
    if name == "kubernetes":
        for variant, checks in MUST_PASS.items():
            for check_id in sorted(checks):
                if (variant, check_id) not in passed_in:
                    problems.append(f"{check_id} did not pass in variant {variant}")
    for p in problems:
        print(f"  ERROR   {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "render":
        render(pathlib.Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        sys.exit(report(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
