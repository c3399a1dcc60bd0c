#!/usr/bin/env python3
"""List what the demo's operator made in moto: every AWS resource tagged
fargate.operator.dev/cluster=<cluster id> (ECS services, task definitions and tasks, target groups,
listener rules, Route 53 health checks) and the records of the demo zones. Used by hack/demo.sh.

With --count, print only the number of resources still tagged (teardown checks it reaches 0)."""
import os
import sys

import boto3

CLUSTER_TAG = "fargate.operator.dev/cluster"
cluster_id = os.environ.get("DEMO_CLUSTER_ID", "demo")
endpoint = os.environ["FARGATE_TEST_AWS_ENDPOINT"]
kw = dict(endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
ecs, elb, r53 = (boto3.client(s, **kw) for s in ("ecs", "elbv2", "route53"))


def ours(tags, key="key", value="value"):
    return any(t.get(key) == CLUSTER_TAG and t.get(value) == cluster_id for t in tags or [])


rows = []
for cluster in ("apps", "workers"):
    arns = ecs.list_services(cluster=cluster).get("serviceArns", [])
    for s in ecs.describe_services(cluster=cluster, services=arns, include=["TAGS"])["services"] if arns else []:
        if s["status"] == "ACTIVE" and ours(s.get("tags")):
            rows.append(("ecs service", s["serviceName"], f"{s['desiredCount']} desired, {s['taskDefinition'].split('/')[-1]}"))
    tasks = ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING").get("taskArns", [])
    for i in range(0, len(tasks), 100):
        for t in ecs.describe_tasks(cluster=cluster, tasks=tasks[i:i + 100], include=["TAGS"])["tasks"]:
            if ours(t.get("tags")):
                version = next((x["value"] for x in t["tags"] if x["key"] == "fargate.operator.dev/version"), "?")
                rows.append(("ecs task", t["taskArn"].split("/")[-1], f"{t['lastStatus']}, worker version {version}"))
for arn in ecs.list_task_definitions(status="ACTIVE").get("taskDefinitionArns", []):
    tags = ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
    if ours(tags):
        rows.append(("ecs task definition", arn.split("/")[-1], ""))
tgs = elb.describe_target_groups().get("TargetGroups", [])
tg_tags = {d["ResourceArn"]: d["Tags"] for i in range(0, len(tgs), 20)
           for d in elb.describe_tags(ResourceArns=[t["TargetGroupArn"] for t in tgs[i:i + 20]])["TagDescriptions"]}
for tg in tgs:
    if ours(tg_tags.get(tg["TargetGroupArn"]), "Key", "Value"):
        rows.append(("target group", tg["TargetGroupName"], f"{tg['Protocol']}:{tg['Port']} ip"))
for lb in elb.describe_load_balancers().get("LoadBalancers", []):
    for listener in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
        rules = [r for r in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]]
        tags = {d["ResourceArn"]: d["Tags"] for d in elb.describe_tags(ResourceArns=[r["RuleArn"] for r in rules])["TagDescriptions"]} if rules else {}
        for r in rules:
            if ours(tags.get(r["RuleArn"]), "Key", "Value"):
                conds = [v for c in r["Conditions"]
                         for v in c.get("Values") or c.get("HostHeaderConfig", {}).get("Values")
                         or c.get("PathPatternConfig", {}).get("Values") or []]
                rows.append(("listener rule", f"{lb['LoadBalancerName']} priority {r['Priority']}", " ".join(conds)))
checks = r53.list_health_checks().get("HealthChecks", [])
for h in checks:
    tags = r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=h["Id"])["ResourceTagSet"]["Tags"]
    if ours(tags, "Key", "Value"):
        c = h["HealthCheckConfig"]
        rows.append(("route53 health check", h["Id"], f"{c['Type']} {c.get('FullyQualifiedDomainName', '')}"))
n_tagged = len(rows)
if "--count" in sys.argv:
    print(n_tagged)
    sys.exit(0)
for z in r53.list_hosted_zones()["HostedZones"]:
    for rr in r53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]:
        if rr["Type"] in ("CNAME", "A") or (rr["Type"] == "NS" and rr["Name"] != z["Name"]):
            target = rr.get("AliasTarget", {}).get("DNSName") or ",".join(v["Value"] for v in rr.get("ResourceRecords", []))
            role = f" {rr['Failover']}" if rr.get("Failover") else ""
            rows.append(("route53 record", f"{rr['Name']} {rr['Type']}{role}", target[:60]))
width = max((len(r[1]) for r in rows), default=10)
for kind, name, detail in rows:
    print(f"  {kind:22} {name:{width}}  {detail}")
print(f"  ({n_tagged} resources tagged {CLUSTER_TAG}={cluster_id})")
