//! [`EcsApi`] for [`ModelEcs`]: each call draws its fault, then runs on the state under the lock.

use super::super::{Fault, lost, refusal};
use super::ModelEcs;
use super::state::State;
use crate::aws::api::ApiFuture;
use crate::aws::api::ecs::{
    CreateServiceRequest, EcsApi, EcsService, EcsTask, Page, RegisterTaskDefinitionRequest, RunTaskOutcome,
    RunTaskRequest, TaskDefinitionRevision, UpdateServiceRequest,
};
use crate::aws::errors::Classified;

impl ModelEcs {
    /// One call of `operation`: refused by a throttle or 5xx fault before it runs; run, then its
    /// answer replaced by a transient error, when the answer is lost.
    fn call<T>(&self, operation: &str, run: impl FnOnce(&mut State) -> Result<T, Classified>) -> Result<T, Classified> {
        let mut state = self.state();
        let fault = self.faults.draw(&mut state.rng);
        if let Some(refused) = refusal(fault, operation) {
            return Err(refused);
        }
        let answer = run(&mut state);
        if fault == Fault::Lost {
            return Err(lost(operation));
        }
        answer
    }
}

impl EcsApi for ModelEcs {
    fn describe_services<'a>(&'a self, cluster: &'a str, services: &'a [String]) -> ApiFuture<'a, Vec<EcsService>> {
        Box::pin(async move { self.call("DescribeServices", |s| s.describe_services(cluster, services)) })
    }

    fn create_service<'a>(&'a self, req: &'a CreateServiceRequest) -> ApiFuture<'a, EcsService> {
        Box::pin(async move { self.call("CreateService", |s| s.create_service(req)) })
    }

    fn update_service<'a>(&'a self, req: &'a UpdateServiceRequest) -> ApiFuture<'a, ()> {
        Box::pin(async move { self.call("UpdateService", |s| s.update_service(req)) })
    }

    fn delete_service<'a>(&'a self, cluster: &'a str, service: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move { self.call("DeleteService", |s| s.delete_service(cluster, service)) })
    }

    fn register_task_definition<'a>(
        &'a self,
        req: &'a RegisterTaskDefinitionRequest,
    ) -> ApiFuture<'a, TaskDefinitionRevision> {
        Box::pin(async move { self.call("RegisterTaskDefinition", |s| s.register(req)) })
    }

    fn describe_task_definition<'a>(
        &'a self,
        task_definition: &'a str,
        include_tags: bool,
    ) -> ApiFuture<'a, TaskDefinitionRevision> {
        Box::pin(async move {
            self.call("DescribeTaskDefinition", |s| s.describe_task_definition(task_definition, include_tags))
        })
    }

    fn list_task_definitions<'a>(&'a self, family_prefix: &'a str, next_token: Option<&'a str>) -> ApiFuture<'a, Page> {
        Box::pin(
            async move { self.call("ListTaskDefinitions", |s| s.list_task_definitions(family_prefix, next_token)) },
        )
    }

    fn deregister_task_definition<'a>(&'a self, task_definition: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move { self.call("DeregisterTaskDefinition", |s| s.deregister(task_definition)) })
    }

    fn run_task<'a>(&'a self, req: &'a RunTaskRequest) -> ApiFuture<'a, RunTaskOutcome> {
        Box::pin(async move { self.call("RunTask", |s| s.run_task(req)) })
    }

    fn list_tasks<'a>(
        &'a self,
        cluster: &'a str,
        started_by: &'a str,
        next_token: Option<&'a str>,
    ) -> ApiFuture<'a, Page> {
        Box::pin(async move { self.call("ListTasks", |s| s.list_tasks(cluster, started_by, next_token)) })
    }

    fn describe_tasks<'a>(&'a self, cluster: &'a str, tasks: &'a [String]) -> ApiFuture<'a, Vec<EcsTask>> {
        Box::pin(async move { self.call("DescribeTasks", |s| s.describe_tasks(cluster, tasks)) })
    }

    fn stop_task<'a>(&'a self, cluster: &'a str, task: &'a str, reason: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move { self.call("StopTask", |s| s.stop_task(cluster, task, reason)) })
    }
}
