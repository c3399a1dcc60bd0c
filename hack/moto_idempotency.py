"""Idempotency tokens AWS honours and moto 5.2.5 ignores, added to moto for the test servers.

The operator relies on two documented AWS guarantees when a create's response is lost or the
process dies between a create and recording its result:
  - Route 53 CreateHealthCheck: "If you send a CreateHealthCheck request with the same
    CallerReference and settings as a previous request, and if the health check doesn't exist,
    Route 53 creates the health check. If the health check does exist, Route 53 returns the settings
    for the existing health check."
  - ECS RunTask `clientToken`: a repeated request with the same token starts no new tasks and
    returns the tasks of the first request.
moto creates a new health check and new tasks every time, so a test of "a crash between create and
status write never duplicates" would measure moto, not the operator. `apply()` adds both
guarantees; hack/moto-server.py (the shared test moto) and hack/moto-iam-server.py call it.

Route 53 also remembers the CallerReference of a deleted health check: a create with it fails with
HealthCheckAlreadyExists, whatever the settings (moto creates a new check). Added here, so a test of
"a check removed and re-added" sees what AWS does.

One more Route 53 behaviour is corrected: a DELETE of a record with a SetIdentifier removes the
record with that name, type and set identifier (as AWS does); moto 5.2.5 removes every record with
that set identifier, whatever its name, so a test of "renaming a failover record deletes the old
pair" would see moto delete the new pair as well.
Nothing else of moto changes.
"""
import threading

from moto.core.responses import ActionResult
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.route53.exceptions import Route53ClientError
from moto.route53.models import FakeZone, Route53Backend

_lock = threading.Lock()
_deleting = threading.local()  # (name, type) of the DELETEs with a SetIdentifier of this request
_run_task_tokens = {}  # (account, region, cluster, token) -> task ARNs of the first request


_deleted_references = set()  # (account, CallerReference) of deleted health checks


class HealthCheckAlreadyExists(Route53ClientError):
    # moto finds the error's HTTP status in the service model named by the class's module.
    __module__ = "moto.route53.exceptions"

    def __init__(self, reference):
        super().__init__("HealthCheckAlreadyExists",
                         f"A health check with CallerReference {reference} already exists or existed.")


def _create_health_check(original):
    def create_health_check(self, caller_reference, health_check_args):
        with _lock:
            # Route 53: "If you send a CreateHealthCheck request with the same CallerReference as a
            # deleted health check, regardless of the settings, Route 53 returns a
            # HealthCheckAlreadyExists error."
            if (self.account_id, caller_reference) in _deleted_references:
                raise HealthCheckAlreadyExists(caller_reference)
            for check in self.health_checks.values():
                if check.caller_reference == caller_reference:
                    return check
            return original(self, caller_reference, health_check_args)

    return create_health_check


def _delete_health_check(original):
    def delete_health_check(self, health_check_id):
        with _lock:
            check = self.health_checks.get(health_check_id)
            if check is not None:
                _deleted_references.add((self.account_id, check.caller_reference))
        return original(self, health_check_id)

    return delete_health_check


def _run_task(original):
    def run_task(self):
        token = self._get_param("clientToken")
        if not token:
            return original(self)
        cluster = self._get_param("cluster", "default")
        key = (self.current_account, self.region, cluster, token)
        with _lock:
            arns = _run_task_tokens.get(key)
            if arns is not None:
                tasks = self.ecs_backend.describe_tasks(cluster, arns)
                return ActionResult({"tasks": tasks, "failures": []})
            result = original(self)
            _run_task_tokens[key] = [t.task_arn for t in result.result["tasks"]]
            return result

    return run_task


def _norm(name):
    return (name or "").rstrip(".").lower()


def _change_resource_record_sets(original):
    def change_resource_record_sets(self, zoneid, change_list):
        _deleting.queue = [
            (_norm(c["ResourceRecordSet"].get("Name")), c["ResourceRecordSet"].get("Type"))
            for c in change_list
            if c.get("Action") == "DELETE" and "SetIdentifier" in c.get("ResourceRecordSet", {})
        ]
        try:
            return original(self, zoneid, change_list)
        finally:
            _deleting.queue = []

    return change_resource_record_sets


def _delete_rrset_by_id(self, set_identifier):
    queue = getattr(_deleting, "queue", None) or []
    name, rtype = queue.pop(0) if queue else (None, None)
    self.rrsets = [
        r for r in self.rrsets
        if not (r.set_identifier == set_identifier
                and (name is None or _norm(r.name) == name)
                and (rtype is None or r.type == rtype))
    ]


def apply():
    Route53Backend.change_resource_record_sets = _change_resource_record_sets(
        Route53Backend.change_resource_record_sets)
    FakeZone.delete_rrset_by_id = _delete_rrset_by_id
    Route53Backend.create_health_check = _create_health_check(Route53Backend.create_health_check)
    Route53Backend.delete_health_check = _delete_health_check(Route53Backend.delete_health_check)
    EC2ContainerServiceResponse.run_task = _run_task(EC2ContainerServiceResponse.run_task)
