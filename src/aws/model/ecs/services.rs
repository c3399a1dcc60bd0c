//! Services: CreateService with client-token memory, DescribeServices, UpdateService and
//! DeleteService (DRAINING, then INACTIVE, then forgotten), and a service's counts and deployments
//! settling over the start delay.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ecs::types::{DeploymentConfiguration, LoadBalancer, NetworkConfiguration};

use super::ServiceInfo;
use super::state::{State, check_tags, err, invalid, valid_name};
use crate::aws::api::ecs::{CreateServiceRequest, EcsService, ServiceDeployment, UpdateServiceRequest};
use crate::aws::errors::Classified;

/// One deployment of a service.
#[derive(Clone, Debug)]
pub(super) struct Deployment {
    id: String,
    /// When it is rolled out (its rollout COMPLETED) and an older deployment is drained.
    settles_at: Duration,
    failed: bool,
    failed_tasks: i32,
}

/// One service (one generation of a name: a re-created service is a new one).
#[derive(Clone, Debug)]
pub(super) struct Service {
    pub cluster: String,
    pub name: String,
    arn: String,
    task_definition: String,
    desired_count: i32,
    network_configuration: Option<NetworkConfiguration>,
    load_balancers: Vec<LoadBalancer>,
    deployment_configuration: Option<DeploymentConfiguration>,
    grace: Option<i32>,
    tags: BTreeMap<String, String>,
    /// Running tasks when the counts last changed, and when they reach the desired count.
    running_from: i32,
    counts_settle_at: Duration,
    /// Oldest first; the last is PRIMARY.
    deployments: Vec<Deployment>,
    /// DeleteService: when it was asked, when the service turns INACTIVE, when it is forgotten.
    deleted: Option<(Duration, Duration)>,
    gone_at: Option<Duration>,
    /// Its cluster was deleted.
    pub forgotten: bool,
}

impl Service {
    fn target(&self) -> i32 {
        if self.deleted.is_some() { 0 } else { self.desired_count }
    }

    fn running(&self, now: Duration) -> i32 {
        if now >= self.counts_settle_at { self.target() } else { self.running_from }
    }

    fn status(&self, now: Duration) -> &'static str {
        match self.deleted {
            None => "ACTIVE",
            Some((_, inactive_at)) if now < inactive_at => "DRAINING",
            Some(_) => "INACTIVE",
        }
    }

    fn live(&self, now: Duration) -> bool {
        !self.forgotten && self.status(now) != "INACTIVE"
    }

    fn visible(&self, now: Duration) -> bool {
        !self.forgotten && self.gone_at.is_none_or(|g| now < g)
    }

    /// The service as DescribeServices answers it at `now`.
    fn view(&self, now: Duration) -> EcsService {
        let running = self.running(now);
        let primary_settled = self.deployments.last().is_none_or(|d| now >= d.settles_at);
        let last = self.deployments.len().saturating_sub(1);
        let deployments = self
            .deployments
            .iter()
            .enumerate()
            // An older deployment is shown until the PRIMARY one has replaced its tasks.
            .filter(|(i, _)| *i == last || !primary_settled)
            .map(|(i, d)| {
                let state = if d.failed {
                    "FAILED"
                } else if now >= d.settles_at {
                    "COMPLETED"
                } else {
                    "IN_PROGRESS"
                };
                let reason = match state {
                    "FAILED" => format!("ECS deployment {} failed: tasks failed to start.", d.id),
                    "COMPLETED" => format!("ECS deployment {} completed.", d.id),
                    _ => format!("ECS deployment {} in progress.", d.id),
                };
                ServiceDeployment {
                    status: if i == last { "PRIMARY" } else { "ACTIVE" }.to_string(),
                    rollout_state: Some(state.to_string()),
                    rollout_state_reason: Some(reason),
                    failed_tasks: d.failed_tasks,
                }
            })
            .collect();
        EcsService {
            arn: self.arn.clone(),
            status: self.status(now).to_string(),
            desired_count: self.target(),
            running_count: running,
            pending_count: if now < self.counts_settle_at { self.target().saturating_sub(running).max(0) } else { 0 },
            task_definition: self.task_definition.clone(),
            network_configuration: self.network_configuration.clone(),
            load_balancers: self.load_balancers.clone(),
            deployment_configuration: self.deployment_configuration.clone(),
            health_check_grace_period_seconds: self.grace,
            deployments,
            latest_event: None,
            tags: self.tags.clone(),
        }
    }
}

fn not_found() -> Classified {
    err("ServiceNotFoundException", "Service not found.")
}

fn not_active() -> Classified {
    err("ServiceNotActiveException", "Service was not ACTIVE.")
}

/// ECS's defaults for a service created without a deployment configuration.
fn default_deployment_configuration() -> DeploymentConfiguration {
    DeploymentConfiguration::builder().maximum_percent(200).minimum_healthy_percent(100).build()
}

/// The awsvpc configuration every Fargate task and service needs, with at least one subnet.
pub(super) fn check_network(network: Option<&NetworkConfiguration>) -> Result<(), Classified> {
    match network.and_then(NetworkConfiguration::awsvpc_configuration) {
        None => Err(invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.")),
        Some(vpc) if vpc.subnets().is_empty() => Err(invalid("subnets can not be empty.")),
        Some(_) => Ok(()),
    }
}

impl State {
    /// The index of the newest service named `service` (name or ARN) in cluster `cluster` that
    /// DescribeServices still shows.
    fn find_service(&self, cluster: &str, service: &str) -> Option<usize> {
        let name = match service.strip_prefix(&format!("{}:service/", self.arn_prefix)) {
            Some(path) => match path.split_once('/') {
                Some((c, n)) if c == cluster => n,
                Some(_) => return None,
                None => path,
            },
            None if service.starts_with("arn:") => return None,
            None => service,
        };
        let now = self.now;
        self.services.iter().rposition(|s| s.cluster == cluster && s.name == name && s.visible(now))
    }

    fn new_deployment(&mut self) -> Deployment {
        let id = format!("ecs-svc/{:019}", self.rng.below(10_000_000_000_000_000_000));
        Deployment {
            id,
            settles_at: self.now.saturating_add(self.settings.start_delay),
            failed: false,
            failed_tasks: 0,
        }
    }

    pub fn describe_services(&self, cluster: &str, services: &[String]) -> Result<Vec<EcsService>, Classified> {
        let (cluster, _) = self.cluster(cluster)?;
        if services.is_empty() || services.len() > 10 {
            return Err(invalid("DescribeServices names 1 to 10 services."));
        }
        Ok(services
            .iter()
            .filter_map(|service| self.find_service(&cluster, service))
            .filter_map(|i| self.services.get(i))
            .map(|s| s.view(self.now))
            .collect())
    }

    pub fn create_service(&mut self, req: &CreateServiceRequest) -> Result<EcsService, Classified> {
        let (cluster, _) = self.cluster(&req.cluster)?;
        if !req.client_token.is_empty() {
            if let Some((first, index)) = self.service_tokens.get(&req.client_token) {
                if first != req {
                    return Err(invalid("The clientToken was already used with different parameters."));
                }
                return self.services.get(*index).map(|s| s.view(self.now)).ok_or_else(not_found);
            }
            if req.client_token.len() > 36 {
                return Err(invalid("clientToken must be at most 36 characters."));
            }
        }
        if !valid_name(&req.service_name) {
            return Err(invalid("Service name must be 1-255 letters, numbers, hyphens and underscores."));
        }
        if let Some(existing) = self.find_service(&cluster, &req.service_name).and_then(|i| self.services.get(i)) {
            match existing.status(self.now) {
                "ACTIVE" => return Err(invalid("Creation of service was not idempotent.")),
                "DRAINING" => return Err(invalid("Unable to Start a service that is still Draining.")),
                _ => {}
            }
        }
        if req.desired_count < 0 {
            return Err(invalid("desiredCount must be 0 or more."));
        }
        if req.health_check_grace_period_seconds.is_some() && req.load_balancers.is_empty() {
            return Err(invalid(
                "Health check grace period is only valid for services configured to use load balancers",
            ));
        }
        check_network(req.network_configuration.as_ref())?;
        check_tags(&req.tags)?;
        let (_, task_definition) = self.runnable_revision(&req.task_definition)?;
        let deployment = self.new_deployment();
        let service = Service {
            cluster: cluster.clone(),
            name: req.service_name.clone(),
            arn: format!("{}:service/{cluster}/{}", self.arn_prefix, req.service_name),
            task_definition,
            desired_count: req.desired_count,
            network_configuration: req.network_configuration.clone(),
            load_balancers: req.load_balancers.clone(),
            deployment_configuration: Some(
                req.deployment_configuration.clone().unwrap_or_else(default_deployment_configuration),
            ),
            grace: req.health_check_grace_period_seconds,
            tags: req.tags.clone(),
            running_from: 0,
            counts_settle_at: deployment.settles_at,
            deployments: vec![deployment],
            deleted: None,
            gone_at: None,
            forgotten: false,
        };
        let view = service.view(self.now);
        self.services.push(service);
        if !req.client_token.is_empty() {
            let index = self.services.len().saturating_sub(1);
            self.service_tokens.insert(req.client_token.clone(), (req.clone(), index));
        }
        Ok(view)
    }

    /// The index of the service a write names: unknown is ServiceNotFound, deleted ServiceNotActive.
    fn live_service(&self, cluster: &str, service: &str) -> Result<usize, Classified> {
        let (cluster, _) = self.cluster(cluster)?;
        let index = self.find_service(&cluster, service).ok_or_else(not_found)?;
        match self.services.get(index) {
            Some(s) if s.live(self.now) && s.deleted.is_none() => Ok(index),
            Some(_) => Err(not_active()),
            None => Err(not_found()),
        }
    }

    pub fn update_service(&mut self, req: &UpdateServiceRequest) -> Result<(), Classified> {
        let index = self.live_service(&req.cluster, &req.service)?;
        if req.desired_count.is_some_and(|n| n < 0) {
            return Err(invalid("desiredCount must be 0 or more."));
        }
        let task_definition = match &req.task_definition {
            Some(td) => Some(self.runnable_revision(td)?.1),
            None => None,
        };
        if let Some(n) = &req.network_configuration {
            check_network(Some(n))?;
        }
        let now = self.now;
        let Some(current) = self.services.get(index) else { return Err(not_found()) };
        let lbs_after = req.load_balancers.as_ref().unwrap_or(&current.load_balancers);
        if req.health_check_grace_period_seconds.is_some() && lbs_after.is_empty() {
            return Err(invalid(
                "Health check grace period is only valid for services configured to use load balancers",
            ));
        }
        let redeploy = req.force_new_deployment
            || task_definition.as_ref().is_some_and(|td| *td != current.task_definition)
            || req.network_configuration.as_ref().is_some_and(|n| current.network_configuration.as_ref() != Some(n))
            || req.load_balancers.as_ref().is_some_and(|l| *l != current.load_balancers);
        let deployment = redeploy.then(|| self.new_deployment());
        let settle = now.saturating_add(self.settings.start_delay);
        let Some(s) = self.services.get_mut(index) else { return Err(not_found()) };
        let running = s.running(now);
        if let Some(td) = task_definition {
            s.task_definition = td;
        }
        if let Some(n) = req.desired_count {
            s.desired_count = n;
        }
        if let Some(n) = &req.network_configuration {
            s.network_configuration = Some(n.clone());
        }
        if let Some(d) = &req.deployment_configuration {
            s.deployment_configuration = Some(d.clone());
        }
        if let Some(l) = &req.load_balancers {
            s.load_balancers = l.clone();
        }
        if let Some(g) = req.health_check_grace_period_seconds {
            s.grace = Some(g);
        }
        if let Some(d) = deployment {
            // The PRIMARY one turns ACTIVE until the new one has replaced its tasks; older ones
            // are dropped (the model keeps one ACTIVE deployment at most).
            let previous = s.deployments.pop();
            s.deployments = previous.into_iter().collect();
            s.deployments.push(d);
        }
        if redeploy || req.desired_count.is_some() {
            s.running_from = running;
            s.counts_settle_at = settle;
        }
        Ok(())
    }

    pub fn delete_service(&mut self, cluster: &str, service: &str) -> Result<(), Classified> {
        let index = self.live_service(cluster, service)?;
        let now = self.now;
        let inactive_at = now.saturating_add(self.settings.drain_delay);
        let gone_at = inactive_at.saturating_add(self.settings.inactive_retention);
        let Some(s) = self.services.get_mut(index) else { return Err(not_found()) };
        // force: the service is scaled to 0 at once and its tasks drain until it turns INACTIVE.
        s.running_from = s.running(now);
        s.counts_settle_at = inactive_at;
        s.deleted = Some((now, inactive_at));
        s.gone_at = Some(gone_at);
        Ok(())
    }

    pub fn fail_deployment(&mut self, cluster: &str, service: &str, failed_tasks: i32) -> bool {
        let Ok(index) = self.live_service(cluster, service) else { return false };
        let Some(d) = self.services.get_mut(index).and_then(|s| s.deployments.last_mut()) else { return false };
        d.failed = true;
        d.failed_tasks = d.failed_tasks.saturating_add(failed_tasks.max(0));
        true
    }

    pub fn service_infos(&self) -> Vec<ServiceInfo> {
        self.services
            .iter()
            .map(|s| ServiceInfo {
                cluster: s.cluster.clone(),
                name: s.name.clone(),
                service: s.view(self.now),
                visible: s.visible(self.now),
            })
            .collect()
    }
}
