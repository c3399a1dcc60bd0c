//! AWS's own per-action throttling quotas, for the actions the operator calls. A group's actions
//! share one bucket (AWS counts them together); an action in no group is limited only by its
//! service's budget. The numbers are AWS's published defaults (sources in `docs/budgets.md`);
//! an account with raised quotas is still held to them, which costs speed, never throttling.

use super::Service;

/// One action group's quota: a token bucket of `burst` tokens refilled at `rate` per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActionQuota {
    /// The service the actions belong to.
    pub service: Service,
    /// The group's name (metrics and docs).
    pub group: &'static str,
    /// The actions the group counts.
    pub actions: &'static [&'static str],
    /// Sustained requests per second.
    pub rate: f64,
    /// Requests allowed at once.
    pub burst: f64,
}

/// Every group the operator draws from (AWS defaults; `docs/budgets.md` cites each row).
pub const QUOTAS: &[ActionQuota] = &[
    ActionQuota {
        service: Service::Ecs,
        group: "service-read",
        actions: &["DescribeServices"],
        rate: 20.0,
        burst: 100.0,
    },
    ActionQuota {
        service: Service::Ecs,
        group: "service-modify",
        actions: &["CreateService", "UpdateService", "DeleteService"],
        rate: 5.0,
        burst: 50.0,
    },
    ActionQuota {
        service: Service::Ecs,
        group: "task-definition-read",
        actions: &["DescribeTaskDefinition", "ListTaskDefinitions"],
        rate: 20.0,
        burst: 50.0,
    },
    ActionQuota {
        service: Service::Ecs,
        group: "task-definition-modify",
        actions: &["RegisterTaskDefinition", "DeregisterTaskDefinition"],
        rate: 1.0,
        burst: 20.0,
    },
    ActionQuota {
        service: Service::Ecs,
        group: "cluster-resource-read",
        actions: &["DescribeTasks", "ListTasks"],
        rate: 20.0,
        burst: 100.0,
    },
    ActionQuota {
        service: Service::Ecs,
        group: "cluster-resource-modify",
        actions: &["RunTask", "StopTask"],
        rate: 40.0,
        burst: 100.0,
    },
    ActionQuota {
        service: Service::Elbv2,
        group: "mutating",
        actions: &[
            "CreateRule",
            "ModifyRule",
            "DeleteRule",
            "SetRulePriorities",
            "CreateTargetGroup",
            "DeleteTargetGroup",
            "ModifyTargetGroup",
            "ModifyTargetGroupAttributes",
            "AddTags",
        ],
        rate: 3.0,
        burst: 20.0,
    },
    ActionQuota {
        service: Service::Route53,
        group: "create-health-check",
        actions: &["CreateHealthCheck"],
        rate: 0.5,
        burst: 50.0,
    },
    ActionQuota {
        service: Service::Route53,
        group: "get-health-check-status",
        actions: &["GetHealthCheckStatus"],
        rate: 1.0,
        burst: 4.0,
    },
    ActionQuota {
        service: Service::Route53,
        group: "delete-health-check",
        actions: &["DeleteHealthCheck"],
        rate: 3.0,
        burst: 15.0,
    },
    ActionQuota {
        service: Service::Route53,
        group: "update-health-check",
        actions: &["UpdateHealthCheck"],
        rate: 5.0,
        burst: 50.0,
    },
];

/// The group `operation` of `service` is counted in, if AWS throttles it on its own.
pub fn group_of(service: Service, operation: &str) -> Option<&'static str> {
    QUOTAS.iter().find(|q| q.service == service && q.actions.contains(&operation)).map(|q| q.group)
}

/// The quota of a group.
pub fn group_quota(service: Service, group: &str) -> Option<&'static ActionQuota> {
    QUOTAS.iter().find(|q| q.service == service && q.group == group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_in_at_most_one_group_and_every_quota_is_usable() {
        for q in QUOTAS {
            assert!(q.rate > 0.0 && q.burst >= 1.0, "{}", q.group);
            for a in q.actions {
                let groups = QUOTAS.iter().filter(|o| o.service == q.service && o.actions.contains(a)).count();
                assert_eq!(groups, 1, "{a} is in {groups} groups");
                assert_eq!(group_of(q.service, a), Some(q.group));
            }
        }
        let (unthrottled, ecs_action) = ("ListTagsForResource", "RunTask");
        assert_eq!(group_of(Service::Ecs, unthrottled), None);
        assert_eq!(group_of(Service::Route53, ecs_action), None, "actions are per service");
    }
}
