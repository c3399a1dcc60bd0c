#!/usr/bin/env python3
"""Create (or find) the AWS resources the examples refer to, in the local moto server, and print a
sed script that rewrites the examples' placeholder IDs to them. Used by hack/demo.sh.

Idempotent: resources are found by name/tag before anything is created."""
import os
import sys

import boto3

endpoint = os.environ["FARGATE_TEST_AWS_ENDPOINT"]
kw = dict(endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
ec2, elb, ecs, r53 = (boto3.client(s, **kw) for s in ("ec2", "elbv2", "ecs", "route53"))


def tagged_vpc():
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["fargate-operator-demo"]}])["Vpcs"]
    if vpcs:
        return vpcs[0]["VpcId"]
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": "fargate-operator-demo"}])
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    return vpc


vpc = tagged_vpc()
subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"])
if len(subnets) < 2:
    for i, az in enumerate(["us-east-1a", "us-east-1b"]):
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=az)
    subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"])
groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["demo-web"]}, {"Name": "vpc-id", "Values": [vpc]}])
sg = groups["SecurityGroups"][0]["GroupId"] if groups["SecurityGroups"] else ec2.create_security_group(
    GroupName="demo-web", Description="fargate-operator demo", VpcId=vpc)["GroupId"]

try:
    lb = elb.describe_load_balancers(Names=["shared"])["LoadBalancers"][0]
except elb.exceptions.LoadBalancerNotFoundException:
    lb = elb.create_load_balancer(Name="shared", Subnets=subnets[:2], SecurityGroups=[sg], Scheme="internet-facing",
                                  Type="application")["LoadBalancers"][0]
listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
listener = listeners[0]["ListenerArn"] if listeners else elb.create_listener(
    LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
    DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}])["Listeners"][0]["ListenerArn"]

for cluster in ("apps", "workers"):
    if not [c for c in ecs.describe_clusters(clusters=[cluster])["clusters"] if c["status"] == "ACTIVE"]:
        ecs.create_cluster(clusterName=cluster)


# examples/hotpool.yaml runs worker:42 and worker:43: register the family up to revision 43.
revisions = ecs.list_task_definitions(familyPrefix="worker", maxResults=100)["taskDefinitionArns"]
for _ in range(43 - len(revisions)):
    ecs.register_task_definition(
        family="worker", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        # moto needs a container-level memory to place the task.
        containerDefinitions=[{"name": "worker", "image": "example/worker:2.4", "memory": 512, "essential": True}])


def zone(name):
    for z in r53.list_hosted_zones()["HostedZones"]:
        if z["Name"].rstrip(".") == name:
            return z["Id"].split("/")[-1]
    return r53.create_hosted_zone(Name=name, CallerReference=f"demo-{name}")["HostedZone"]["Id"].split("/")[-1]


apps_zone, acs_zone, app_zone = zone("apps.example.com"), zone("acs.app.com"), zone("app.com")

# Placeholders in examples/ -> real IDs. Longest first so no placeholder is a prefix of another.
subs = {
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2": listener,
    "subnet-0aaa1111": subnets[0],
    "subnet-0bbb2222": subnets[1],
    "sg-0web1234": sg,
    "sg-0aaa1111": sg,
    "sg-0wrk1234": sg,
    "Z0APPS12345": apps_zone,
    "Z0ACS12345": acs_zone,
    "Z0APP12345": app_zone,
}
for old, new in subs.items():
    sys.stdout.write(f"s|{old}|{new}|g\n")
