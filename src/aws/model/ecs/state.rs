//! The model's state, its settings, and what every call shares: cluster and name resolution, tag
//! validation, errors, and the task definition registry.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::{SimRng, error};
use super::services::Service;
use super::tasks::{RunMemory, Task};
use super::{TaskDefinitionInfo, TaskInfo};
use crate::aws::api::ecs::Page;
use crate::aws::api::ecs::{RegisterTaskDefinitionRequest, TaskDefinitionRevision};
use crate::aws::errors::{Classified, classify_code};

/// The model's settings: delays and lags of the world, and the capacity failure rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EcsSettings {
    /// Probability in `[0, 1]` that each task of a RunTask fails for capacity.
    pub capacity_failure_rate: f64,
    /// RunTask to RUNNING (PENDING with an IP at half of it); also how long a service's counts
    /// and rollout take to settle.
    pub start_delay: Duration,
    /// StopTask (or a task stopping on its own) to STOPPED.
    pub stop_delay: Duration,
    /// RunTask to the task showing in ListTasks.
    pub list_lag: Duration,
    /// RunTask to the task showing in DescribeTasks.
    pub describe_lag: Duration,
    /// Up to this much more, drawn per task for each of the two lags: AWS's reads are eventually
    /// consistent per task, so the tasks of one RunTask do not all show at once.
    pub lag_spread: Duration,
    /// How long a STOPPED task is still described.
    pub stopped_retention: Duration,
    /// DeleteService to INACTIVE.
    pub drain_delay: Duration,
    /// How long an INACTIVE service is still described.
    pub inactive_retention: Duration,
    /// ARNs per page of ListTasks and ListTaskDefinitions (AWS: 100).
    pub page_size: usize,
    /// ListTaskDefinitions answers every family that starts with the prefix (the trait's looser
    /// contract) instead of the one family AWS documents.
    pub list_task_definitions_by_prefix: bool,
}

impl Default for EcsSettings {
    fn default() -> Self {
        Self {
            capacity_failure_rate: 0.0,
            start_delay: Duration::from_secs(20),
            stop_delay: Duration::from_secs(30),
            list_lag: Duration::ZERO,
            describe_lag: Duration::ZERO,
            lag_spread: Duration::ZERO,
            stopped_retention: Duration::from_secs(3600),
            drain_delay: Duration::from_secs(30),
            inactive_retention: Duration::from_secs(3600),
            page_size: 100,
            list_task_definitions_by_prefix: false,
        }
    }
}

/// A cluster.
#[derive(Clone, Debug)]
pub(super) struct Cluster {
    pub arn: String,
}

/// One task definition revision.
#[derive(Clone, Debug)]
pub(super) struct Revision {
    pub arn: String,
    pub active: bool,
    pub tags: BTreeMap<String, String>,
}

/// Everything the model knows.
#[derive(Debug)]
pub(super) struct State {
    pub rng: SimRng,
    pub now: Duration,
    pub settings: EcsSettings,
    /// `arn:aws:ecs:<region>:<account>`.
    pub arn_prefix: String,
    pub clusters: BTreeMap<String, Cluster>,
    /// Revisions by family and number (never removed: numbers are not reused).
    pub families: BTreeMap<String, BTreeMap<u32, Revision>>,
    /// Every service ever created, oldest first; the newest of a cluster and name is the current one.
    pub services: Vec<Service>,
    /// CreateService client tokens: the request and the index of the service it created.
    pub service_tokens: BTreeMap<String, (crate::aws::api::ecs::CreateServiceRequest, usize)>,
    /// Every task ever started, by ARN.
    pub tasks: BTreeMap<String, Task>,
    /// Tasks started so far (the start order, and the ListTasks cursor).
    pub task_seq: u64,
    /// RunTask client tokens.
    pub run_tokens: BTreeMap<String, RunMemory>,
}

/// An error with the category the SDK would give its code (a 400 answer).
pub(super) fn err(code: &str, message: &str) -> Classified {
    error(classify_code(Some(code), Some(400)), code, message)
}

pub(super) fn cluster_not_found() -> Classified {
    err("ClusterNotFoundException", "Cluster not found.")
}

pub(super) fn invalid(message: &str) -> Classified {
    err("InvalidParameterException", message)
}

pub(super) fn client(message: &str) -> Classified {
    err("ClientException", message)
}

/// A name of 1..=255 letters, digits, hyphens and underscores (families, services, clusters).
pub(super) fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// AWS's tag rules: at most 50, keys 1..=128 and values ≤ 256 characters, no `aws:` keys.
pub(super) fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), Classified> {
    if tags.len() > 50 {
        return Err(invalid("Too many tags: at most 50 are allowed."));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(invalid(&format!("Invalid tag: key '{k}' or its value has an invalid length.")));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid("Tag keys starting with 'aws:' are reserved."));
        }
    }
    Ok(())
}

/// A paging cursor: what the next page starts after.
pub(super) fn token_after(kind: &str, key: &str) -> String {
    format!("{kind}.{key}")
}

/// The key a cursor of `kind` holds; a token of another kind is refused as AWS refuses a bad one.
pub(super) fn key_of_token<'t>(kind: &str, token: Option<&'t str>) -> Result<Option<&'t str>, Classified> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => match t.split_once('.') {
            Some((k, key)) if k == kind => Ok(Some(key)),
            _ => Err(invalid("Invalid nextToken.")),
        },
    }
}

impl State {
    pub fn new(rng: SimRng, account: &str, region: &str) -> Self {
        Self {
            rng,
            now: Duration::ZERO,
            settings: EcsSettings::default(),
            arn_prefix: format!("arn:aws:ecs:{region}:{account}"),
            clusters: BTreeMap::new(),
            families: BTreeMap::new(),
            services: Vec::new(),
            service_tokens: BTreeMap::new(),
            tasks: BTreeMap::new(),
            task_seq: 0,
            run_tokens: BTreeMap::new(),
        }
    }

    // --- clusters ----------------------------------------------------------------------------

    pub fn create_cluster(&mut self, name: &str) -> String {
        let arn = format!("{}:cluster/{name}", self.arn_prefix);
        self.clusters.entry(name.to_string()).or_insert(Cluster { arn }).arn.clone()
    }

    pub fn delete_cluster(&mut self, name: &str) -> bool {
        if self.clusters.remove(name).is_none() {
            return false;
        }
        for s in self.services.iter_mut().filter(|s| s.cluster == name) {
            s.forgotten = true;
        }
        for t in self.tasks.values_mut().filter(|t| t.cluster == name) {
            t.forgotten = true;
        }
        true
    }

    /// The name of the existing cluster `cluster` (name or ARN of this account and region; empty is
    /// `default`), or `ClusterNotFoundException`.
    pub fn cluster(&self, cluster: &str) -> Result<(String, String), Classified> {
        let name = if cluster.is_empty() {
            "default"
        } else if let Some(rest) = cluster.strip_prefix(&format!("{}:cluster/", self.arn_prefix)) {
            rest
        } else if cluster.starts_with("arn:") {
            return Err(cluster_not_found());
        } else {
            cluster
        };
        let c = self.clusters.get(name).ok_or_else(cluster_not_found)?;
        Ok((name.to_string(), c.arn.clone()))
    }

    // --- task definitions --------------------------------------------------------------------

    pub fn register(&mut self, req: &RegisterTaskDefinitionRequest) -> Result<TaskDefinitionRevision, Classified> {
        if !valid_name(&req.family) {
            return Err(client("Family must be 1-255 letters, numbers, hyphens and underscores."));
        }
        if req.container_definitions.is_empty() {
            return Err(client("Container list cannot be empty."));
        }
        for c in &req.container_definitions {
            if c.name().is_none_or(str::is_empty) {
                return Err(client("Container.name should not be null or empty."));
            }
            if c.image().is_none_or(str::is_empty) {
                return Err(client("Container.image should not be null or empty."));
            }
        }
        if req.cpu.is_empty() || req.memory.is_empty() {
            return Err(client("Fargate requires that 'cpu' be defined at the task level."));
        }
        check_tags(&req.tags)?;
        let revisions = self.families.entry(req.family.clone()).or_default();
        let number = revisions.keys().next_back().map_or(1, |n| n.saturating_add(1));
        let arn = format!("{}:task-definition/{}:{number}", self.arn_prefix, req.family);
        revisions.insert(number, Revision { arn: arn.clone(), active: true, tags: req.tags.clone() });
        Ok(TaskDefinitionRevision { arn, tags: req.tags.clone() })
    }

    /// The revision `reference` names: `family` (newest ACTIVE), `family:N` or an ARN of this
    /// account and region (any status); `None` when there is none.
    pub fn revision(&self, reference: &str) -> Option<(&str, u32, &Revision)> {
        let local = match reference.strip_prefix(&format!("{}:task-definition/", self.arn_prefix)) {
            Some(rest) if rest.contains(':') => rest,
            Some(_) => return None,
            None if reference.starts_with("arn:") => return None,
            None => reference,
        };
        let (family, number) = match local.split_once(':') {
            Some((f, n)) => (f, Some(n.parse::<u32>().ok()?)),
            None => (local, None),
        };
        let (family, revisions) = self.families.get_key_value(family)?;
        let (number, rev) = match number {
            Some(n) => (n, revisions.get(&n)?),
            None => revisions.iter().rev().find(|(_, r)| r.active).map(|(n, r)| (*n, r))?,
        };
        Some((family.as_str(), number, rev))
    }

    /// The revision `reference` names, usable to start tasks or services: known and ACTIVE.
    pub fn runnable_revision(&self, reference: &str) -> Result<(String, String), Classified> {
        match self.revision(reference) {
            None => Err(client(&format!("Unable to find task definition '{reference}'. TaskDefinition not found."))),
            Some((_, _, rev)) if !rev.active => {
                Err(client(&format!("The task definition '{reference}' is INACTIVE and cannot be used.")))
            }
            Some((family, _, rev)) => Ok((family.to_string(), rev.arn.clone())),
        }
    }

    pub fn describe_task_definition(
        &self,
        reference: &str,
        include_tags: bool,
    ) -> Result<TaskDefinitionRevision, Classified> {
        let (_, _, rev) = self.revision(reference).ok_or_else(|| client("Unable to describe task definition."))?;
        Ok(TaskDefinitionRevision {
            arn: rev.arn.clone(),
            tags: if include_tags { rev.tags.clone() } else { BTreeMap::new() },
        })
    }

    pub fn list_task_definitions(&self, prefix: &str, token: Option<&str>) -> Result<Page, Classified> {
        // The cursor is the last (family, revision) answered; compared as a pair, not as text.
        let after = match key_of_token("td", token)? {
            Some(key) => {
                let (family, n) = key.rsplit_once(':').ok_or_else(|| invalid("Invalid nextToken."))?;
                Some((family.to_string(), n.parse::<u32>().map_err(|_| invalid("Invalid nextToken."))?))
            }
            None => None,
        };
        let by_prefix = self.settings.list_task_definitions_by_prefix;
        let matching = self
            .families
            .iter()
            .filter(|(family, _)| if by_prefix { family.starts_with(prefix) } else { family.as_str() == prefix })
            .flat_map(|(family, revisions)| {
                revisions.iter().filter(|(_, r)| r.active).map(move |(n, r)| ((family, *n), &r.arn))
            })
            .filter(|((family, n), _)| after.as_ref().is_none_or(|(f, a)| (family.as_str(), *n) > (f.as_str(), *a)));
        let size = self.settings.page_size.max(1);
        let mut arns = Vec::new();
        let mut last = None;
        let mut more = false;
        for (key, arn) in matching {
            if arns.len() == size {
                more = true;
                break;
            }
            arns.push(arn.clone());
            last = Some(key);
        }
        Ok(Page {
            arns,
            next_token: if more { last.map(|(f, n)| token_after("td", &format!("{f}:{n}"))) } else { None },
        })
    }

    pub fn deregister(&mut self, reference: &str) -> Result<(), Classified> {
        // Deregister takes a revision, never a bare family.
        let local = reference.rsplit('/').next().unwrap_or(reference);
        if !local.contains(':') {
            return Err(client("Revision is missing."));
        }
        let (family, number) = match self.revision(reference) {
            Some((family, number, _)) => (family.to_string(), number),
            None => return Err(client("Unable to describe task definition.")),
        };
        if let Some(rev) = self.families.get_mut(&family).and_then(|r| r.get_mut(&number)) {
            rev.active = false;
        }
        Ok(())
    }

    pub fn task_definition_infos(&self) -> Vec<TaskDefinitionInfo> {
        self.families
            .iter()
            .flat_map(|(family, revisions)| {
                revisions.iter().map(move |(n, r)| TaskDefinitionInfo {
                    arn: r.arn.clone(),
                    family: family.clone(),
                    revision: *n,
                    status: if r.active { "ACTIVE" } else { "INACTIVE" }.to_string(),
                    tags: r.tags.clone(),
                })
            })
            .collect()
    }

    pub fn task_infos(&self) -> Vec<TaskInfo> {
        let mut tasks: Vec<&Task> = self.tasks.values().collect();
        tasks.sort_by_key(|t| t.seq);
        tasks
            .into_iter()
            .map(|t| TaskInfo {
                task: t.view(self.now),
                task_definition: t.task_definition.clone(),
                visible: t.visible(self.now),
                listed: t.listed(self.now),
            })
            .collect()
    }
}
