//! The three service models as one [`ApiSource`]: the operator, built with
//! `AwsProvider::with_source`, sends every ECS, ELBv2 and Route 53 call to them instead of the SDK.
//! One account and region today: every object's configuration reaches the same models.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;

use super::FaultRates;
use super::ecs::ModelEcs;
use super::elbv2::ModelElbv2;
use super::route53::ModelRoute53;
use crate::aws::api::ecs::EcsApi;
use crate::aws::api::elbv2::Elbv2Api;
use crate::aws::api::route53::Route53Api;
use crate::aws::sdk::ApiSource;

/// ECS, ELBv2 and Route 53 in memory, each with a generator derived from one seed.
#[derive(Debug, Clone)]
pub struct ModelAws {
    /// ECS.
    pub ecs: Arc<ModelEcs>,
    /// ELBv2.
    pub elbv2: Arc<ModelElbv2>,
    /// Route 53.
    pub route53: Arc<ModelRoute53>,
}

impl ModelAws {
    /// The three models for `account` in `region`, faults at `faults`, randomness from `seed`.
    pub fn new(seed: u64, faults: FaultRates, account: &str, region: &str) -> Self {
        // A different stream per service, so one service's calls do not shift another's draws.
        Self {
            ecs: Arc::new(ModelEcs::new(seed, faults, account, region)),
            elbv2: Arc::new(ModelElbv2::new(seed.wrapping_add(1), faults, account, region)),
            route53: Arc::new(ModelRoute53::new(seed.wrapping_add(2), faults, account, region)),
        }
    }

    /// Move the logical clock of the models that keep one (tasks start, changes propagate).
    pub fn advance(&self, d: Duration) {
        self.ecs.advance(d);
        self.route53.advance(d);
    }
}

impl ApiSource for ModelAws {
    fn ecs(&self, _cfg: &SdkConfig) -> Arc<dyn EcsApi> {
        self.ecs.clone()
    }

    fn elbv2(&self, _cfg: &SdkConfig) -> Arc<dyn Elbv2Api> {
        self.elbv2.clone()
    }

    fn route53(&self, _cfg: &SdkConfig) -> Arc<dyn Route53Api> {
        self.route53.clone()
    }
}
