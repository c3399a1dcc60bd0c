//! The three service models as one [`ApiSource`]: the operator, built with
//! `AwsProvider::with_source`, sends every ECS, ELBv2 and Route 53 call to them instead of the SDK.
//! One account and region today: every object's configuration reaches the same models; a role
//! (`spec.aws.roleArn`) only decides whether its calls are let through ([`ModelSts`]).

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;

use super::FaultRates;
use super::credentialed::Credentialed;
use super::ecs::ModelEcs;
use super::elbv2::ModelElbv2;
use super::latency::Latency;
use super::route53::ModelRoute53;
use super::sts::ModelSts;
use crate::aws::api::ecs::EcsApi;
use crate::aws::api::elbv2::Elbv2Api;
use crate::aws::api::route53::Route53Api;
use crate::aws::errors::Classified;
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
    /// STS: the roles objects assume, and which of them are refused.
    pub sts: Arc<ModelSts>,
    /// Latency of every call the clients make (slow and hung calls).
    pub latency: Arc<Latency>,
}

impl ModelAws {
    /// The three models for `account` in `region`, faults at `faults`, randomness from `seed`.
    pub fn new(seed: u64, faults: FaultRates, account: &str, region: &str) -> Self {
        // A different stream per service, so one service's calls do not shift another's draws.
        Self {
            ecs: Arc::new(ModelEcs::new(seed, faults, account, region)),
            elbv2: Arc::new(ModelElbv2::new(seed.wrapping_add(1), faults, account, region)),
            route53: Arc::new(ModelRoute53::new(seed.wrapping_add(2), faults, account, region)),
            sts: Arc::new(ModelSts::new(account)),
            latency: Arc::new(Latency::new(seed.wrapping_add(3), faults)),
        }
    }

    /// Move the logical clock of the models that keep one (tasks start, changes propagate).
    pub fn advance(&self, d: Duration) {
        self.ecs.advance(d);
        self.route53.advance(d);
    }
}

impl ModelAws {
    /// Set the fault rates of all three services.
    pub fn set_faults(&self, rates: FaultRates) {
        self.ecs.set_faults(rates);
        self.elbv2.set_faults(rates);
        self.route53.faults().set(rates);
        self.latency.set(rates);
    }

    /// Calls the three services answered so far.
    pub fn calls(&self) -> u64 {
        self.ecs.calls() + self.elbv2.calls() + self.route53.faults().calls()
    }
}

// Each client resolves its configuration's credentials before every call: for a role, that is
// `assume_role` below, so a refused role fails its calls as the SDK would.
impl ApiSource for ModelAws {
    fn ecs(&self, cfg: &SdkConfig) -> Arc<dyn EcsApi> {
        Arc::new(Credentialed::new(self.ecs.clone(), cfg, self.latency.clone()))
    }

    fn elbv2(&self, cfg: &SdkConfig) -> Arc<dyn Elbv2Api> {
        Arc::new(Credentialed::new(self.elbv2.clone(), cfg, self.latency.clone()))
    }

    fn route53(&self, cfg: &SdkConfig) -> Arc<dyn Route53Api> {
        Arc::new(Credentialed::new(self.route53.clone(), cfg, self.latency.clone()))
    }

    fn assume_role(&self, role_arn: &str, external_id: Option<&str>) -> Result<(), Classified> {
        self.sts.assume_role(role_arn, external_id)
    }
}
