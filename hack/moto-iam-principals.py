#!/usr/bin/env python3
"""Create IAM principals in a moto server that enforces IAM (hack/moto-iam-server.py).

Used by tests/iam_policy.rs, with the venv's interpreter (boto3 comes with moto). Reads one JSON
document on stdin:

    {"endpoint": "http://127.0.0.1:PORT",
     "admin": null | {"access_key_id": "...", "secret_access_key": "..."},
     "principals": [{"name": "full", "policy": {...IAM policy document...}}, ...]}

With "admin": null it first bootstraps an administrator with exactly BOOTSTRAP_CALLS requests
(CreateUser, PutUserPolicy, CreateAccessKey), which must be the server's
INITIAL_NO_AUTH_ACTION_COUNT: those are the only unauthenticated requests it accepts. Everything
after that is signed with the administrator's key.

For each principal NAME it creates, in moto's default account:
  - IAM user NAME with the policy inline, and an access key (the operator's own identity);
  - IAM role fargate-operator-NAME with the same policy inline, trusting only that user
    (the role an object names in spec.aws.roleArn).

Writes one JSON document on stdout:

    {"admin": {"access_key_id": ..., "secret_access_key": ...},
     "principals": {"NAME": {"access_key_id": ..., "secret_access_key": ...,
                             "user_arn": ..., "role_arn": ...}}}
"""

import json
import sys

import boto3

BOOTSTRAP_CALLS = 3
REGION = "us-east-1"
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def iam_client(endpoint, key_id, secret):
    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def bootstrap(endpoint):
    # Unknown keys are fine here: these requests are not authenticated.
    iam = iam_client(endpoint, "bootstrap", "bootstrap")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(ALLOW_ALL))
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def principal(iam, name, policy):
    document = json.dumps(policy)
    user = iam.create_user(UserName=name)["User"]
    iam.put_user_policy(UserName=name, PolicyName="fargate-operator", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName=f"fargate-operator-{name}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="fargate-operator", PolicyDocument=document)
    return {
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "user_arn": user["Arn"],
        "role_arn": role["Arn"],
    }


def main():
    request = json.load(sys.stdin)
    endpoint = request["endpoint"]
    admin = request.get("admin") or bootstrap(endpoint)
    iam = iam_client(endpoint, admin["access_key_id"], admin["secret_access_key"])
    principals = {p["name"]: principal(iam, p["name"], p["policy"]) for p in request.get("principals", [])}
    json.dump({"admin": admin, "principals": principals}, sys.stdout)


if __name__ == "__main__":
    main()
