//! AWS SDK configuration: region, endpoint override and per-object role assumption.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use tokio::sync::Mutex;

use super::errors::Classified;
use super::faults::{FaultInjector, FaultPlan};
use crate::api::AwsOverride;

/// What an object's AWS calls need, beyond the controller defaults.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ConfigKey {
    region: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
}

/// Where the per-service calls go instead of the SDK: the simulator's in-memory AWS model. It gets
/// the object's configuration (its region) and answers the calls itself.
pub trait ApiSource: Send + Sync + std::fmt::Debug {
    /// The ECS calls for `cfg`.
    fn ecs(&self, cfg: &SdkConfig) -> Arc<dyn super::api::ecs::EcsApi>;
    /// The ELBv2 calls for `cfg`.
    fn elbv2(&self, cfg: &SdkConfig) -> Arc<dyn super::api::elbv2::Elbv2Api>;
    /// The Route 53 calls for `cfg`.
    fn route53(&self, cfg: &SdkConfig) -> Arc<dyn super::api::route53::Route53Api>;
    /// The CloudWatch calls for `cfg`; `None` (the default) when the source models no CloudWatch,
    /// and health is read from Route 53 alone.
    fn cloudwatch(&self, cfg: &SdkConfig) -> Option<Arc<dyn super::api::cloudwatch::CloudWatchApi>> {
        let _ = cfg;
        None
    }

    /// sts:AssumeRole of `role_arn` (with `external_id`), asked each time a client of a
    /// configuration for that role resolves its credentials. An error is what STS answers (e.g.
    /// `AccessDenied`). By default every role is assumable: a source that models no STS needs
    /// nothing here.
    fn assume_role(&self, role_arn: &str, external_id: Option<&str>) -> Result<(), Classified> {
        let _ = (role_arn, external_id);
        Ok(())
    }
}

/// The credentials of a role under an [`ApiSource`]: instead of calling STS, every resolution asks
/// the source, so a source can refuse a role the way STS does and the refusal reaches the call
/// through the configuration's credentials provider, as an `AssumeRoleProvider`'s would.
///
/// Nothing is cached here: the source answers from memory, and asking it each time lets a
/// revoked (or restored) role show on the very next call rather than at some simulated expiry.
#[derive(Debug)]
struct SourceRole {
    source: Arc<dyn ApiSource>,
    role_arn: String,
    external_id: Option<String>,
}

impl ProvideCredentials for SourceRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let answer = match self.source.assume_role(&self.role_arn, self.external_id.as_deref()) {
            // Never sent anywhere: a source answers the calls itself.
            Ok(()) => Ok(Credentials::new("source-role", "source-role", Some("source-role".into()), None, "ApiSource")),
            // The role and the code stay in the message: classification looks for `AccessDenied` in
            // the error chain, as it does for the SDK's AssumeRoleProvider.
            Err(c) => Err(CredentialsError::provider_error(format!(
                "sts:AssumeRole of {} failed: {}: {}",
                self.role_arn, c.code, c.message
            ))),
        };
        future::ProvideCredentials::ready(answer)
    }
}

/// The service clients of one (region, role): built once and shared by every object that asks for
/// that configuration, so a reconcile costs no client construction and every client shares the
/// provider's one HTTP client (one connection pool, one root certificate store).
#[derive(Clone, Debug)]
pub struct Clients {
    /// The configuration the clients were built from.
    pub config: SdkConfig,
    /// ECS.
    pub ecs: Arc<dyn super::api::ecs::EcsApi>,
    /// ELBv2.
    pub elbv2: Arc<dyn super::api::elbv2::Elbv2Api>,
    /// Route 53.
    pub route53: Arc<dyn super::api::route53::Route53Api>,
    /// Whose AWS quotas the clients' calls spend.
    pub scope: Arc<super::budget::Scope>,
    /// DescribeServices shared by the objects of this configuration.
    pub service_reads: Arc<super::ecs_reads::ServiceReads>,
    /// DescribeRules and DescribeTargetGroups shared by the objects of this configuration.
    pub elb_reads: Arc<super::elb_reads::ElbReads>,
    /// Record-set and health-check reads shared by the objects of this configuration.
    pub route53_reads: Arc<super::route53_reads::Route53Reads>,
}

/// The CloudWatch calls of one role, in the Region CloudWatch keeps Route 53's metrics in.
#[derive(Clone, Debug)]
pub struct CloudWatchClient {
    /// The calls.
    pub api: Arc<dyn super::api::cloudwatch::CloudWatchApi>,
    /// Whose AWS quotas they spend.
    pub scope: Arc<super::budget::Scope>,
}

/// Builds `SdkConfig`s and their clients: the controller's default, and one per (region, role)
/// that objects ask for, cached so each role is assumed once (its credentials refreshed by the
/// SDK) and each client is built once.
#[derive(Clone, Debug)]
pub struct AwsProvider {
    base: SdkConfig,
    session_name: String,
    cache: Arc<Mutex<HashMap<ConfigKey, SdkConfig>>>,
    clients: Arc<Mutex<HashMap<ConfigKey, Clients>>>,
    cloudwatch: Arc<Mutex<HashMap<ConfigKey, Option<CloudWatchClient>>>>,
    faults: Option<Arc<FaultPlan>>,
    source: Option<Arc<dyn ApiSource>>,
}

impl AwsProvider {
    /// Load the default credential chain (IRSA web identity, EKS Pod Identity, env, profile) with
    /// `region` and `endpoint_url` overrides. The SDK's own retries are off: `AwsCaller` retries.
    pub async fn new(region: Option<String>, endpoint_url: Option<String>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(RetryConfig::disabled());
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        // One HTTP client for every service client: without it each SDK client builds its own
        // connector, TLS configuration and connection pool (the largest share of the memory a
        // client costs).
        loader = loader.http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https(),
        );
        let base = loader.load().await;
        let faults = std::env::var("FARGATE_OPERATOR_FAULTS").ok().and_then(|spec| match FaultPlan::parse(&spec) {
            Ok(plan) if !plan.is_empty() => {
                tracing::warn!(%spec, "AWS fault injection is ON (FARGATE_OPERATOR_FAULTS)");
                Some(Arc::new(plan))
            }
            Ok(_) => None,
            Err(err) => {
                tracing::error!(%err, "ignoring FARGATE_OPERATOR_FAULTS");
                None
            }
        });
        Self { faults, ..Self::from_base(base) }
    }

    /// Inject faults into every client this provider builds (tests and chaos runs).
    pub fn with_faults(mut self, plan: FaultPlan) -> Self {
        self.faults = Some(Arc::new(plan));
        self
    }

    /// The ECS calls for `cfg`, over an SDK client (with the fault injector when faults are on).
    pub fn ecs(&self, cfg: &SdkConfig) -> Arc<dyn super::api::ecs::EcsApi> {
        if let Some(source) = &self.source {
            return source.ecs(cfg);
        }
        let mut b = aws_sdk_ecs::config::Builder::from(cfg);
        if let Some(plan) = &self.faults {
            b = b.interceptor(FaultInjector::new(plan.clone()));
        }
        Arc::new(super::api::ecs::SdkEcs::new(aws_sdk_ecs::Client::from_conf(b.build())))
    }

    /// The ELBv2 calls for `cfg`, over an SDK client.
    pub fn elbv2(&self, cfg: &SdkConfig) -> Arc<dyn super::api::elbv2::Elbv2Api> {
        if let Some(source) = &self.source {
            return source.elbv2(cfg);
        }
        let mut b = aws_sdk_elasticloadbalancingv2::config::Builder::from(cfg);
        if let Some(plan) = &self.faults {
            b = b.interceptor(FaultInjector::new(plan.clone()));
        }
        Arc::new(super::api::elbv2::SdkElbv2::new(aws_sdk_elasticloadbalancingv2::Client::from_conf(b.build())))
    }

    /// The Route 53 calls for `cfg`, over an SDK client.
    pub fn route53(&self, cfg: &SdkConfig) -> Arc<dyn super::api::route53::Route53Api> {
        if let Some(source) = &self.source {
            return source.route53(cfg);
        }
        let mut b = aws_sdk_route53::config::Builder::from(cfg);
        if let Some(plan) = &self.faults {
            b = b.interceptor(FaultInjector::new(plan.clone()));
        }
        Arc::new(super::api::route53::SdkRoute53::new(aws_sdk_route53::Client::from_conf(b.build())))
    }

    /// A provider over an already-loaded base configuration (tests supply static credentials).
    pub fn from_base(base: SdkConfig) -> Self {
        Self {
            base,
            session_name: "fargate-operator".into(),
            cache: Arc::default(),
            clients: Arc::default(),
            cloudwatch: Arc::default(),
            faults: None,
            source: None,
        }
    }

    /// This provider with every call answered by `source` (the simulator's AWS model). A role's
    /// configuration then gets its credentials from [`ApiSource::assume_role`], not from STS.
    pub fn with_source(mut self, source: Arc<dyn ApiSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// The controller's default configuration.
    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    /// The clients for an object's `spec.aws` (the default's when it has none), built on first use.
    pub async fn clients_for(&self, aws: Option<&AwsOverride>) -> Clients {
        let key = Self::key_of(aws);
        if let Some(clients) = self.clients.lock().await.get(&key) {
            return clients.clone();
        }
        // Boxed: building a configuration (credential providers, STS) is a future of kilobytes
        // that every reconcile future would otherwise reserve room for, though it runs once.
        let config = Box::pin(self.config_for(aws)).await;
        let region = config.region().map(|r| r.to_string());
        let built = Clients {
            service_reads: Arc::default(),
            elb_reads: Arc::default(),
            route53_reads: Arc::default(),
            scope: Arc::new(super::budget::Scope::of(key.role_arn.as_deref(), region.as_deref())),
            ecs: self.ecs(&config),
            elbv2: self.elbv2(&config),
            route53: self.route53(&config),
            config,
        };
        // Two first uses at once both build; the first stored wins and the other is dropped.
        self.clients.lock().await.entry(key).or_insert(built).clone()
    }

    /// The CloudWatch client of an object's role (the operator's own identity when it has none),
    /// in us-east-1 whatever the object's Region. `None` when the calls are answered by a source
    /// that models no CloudWatch.
    pub async fn cloudwatch_for(&self, aws: Option<&AwsOverride>) -> Option<CloudWatchClient> {
        let region = super::api::cloudwatch::ROUTE53_METRICS_REGION.to_string();
        let spec = AwsOverride {
            region: Some(region.clone()),
            role_arn: aws.and_then(|a| a.role_arn.clone()),
            external_id: aws.and_then(|a| a.external_id.clone()),
        };
        let key = Self::key_of(Some(&spec));
        if let Some(client) = self.cloudwatch.lock().await.get(&key) {
            return client.clone();
        }
        let config = Box::pin(self.config_for(Some(&spec))).await;
        let api = match &self.source {
            Some(source) => source.cloudwatch(&config),
            None => {
                let mut b = aws_sdk_cloudwatch::config::Builder::from(&config);
                if let Some(plan) = &self.faults {
                    b = b.interceptor(FaultInjector::new(plan.clone()));
                }
                let client = aws_sdk_cloudwatch::Client::from_conf(b.build());
                Some(Arc::new(super::api::cloudwatch::SdkCloudWatch::new(client))
                    as Arc<dyn super::api::cloudwatch::CloudWatchApi>)
            }
        };
        let built = api.map(|api| CloudWatchClient {
            api,
            scope: Arc::new(super::budget::Scope::of(spec.role_arn.as_deref(), Some(&region))),
        });
        self.cloudwatch.lock().await.entry(key).or_insert(built).clone()
    }

    fn key_of(aws: Option<&AwsOverride>) -> ConfigKey {
        match aws.filter(|a| a.region.is_some() || a.role_arn.is_some()) {
            None => ConfigKey { region: None, role_arn: None, external_id: None },
            Some(aws) => ConfigKey {
                region: aws.region.clone(),
                role_arn: aws.role_arn.clone(),
                external_id: aws.external_id.clone(),
            },
        }
    }

    /// The configuration for an object's `spec.aws` (the default when it has none).
    pub async fn config_for(&self, aws: Option<&AwsOverride>) -> SdkConfig {
        let key = Self::key_of(aws);
        if key.region.is_none() && key.role_arn.is_none() {
            return self.base.clone();
        }
        let mut cache = self.cache.lock().await;
        if let Some(cfg) = cache.get(&key) {
            return cfg.clone();
        }
        let mut builder = self.base.to_builder();
        let region = key.region.clone().map(Region::new).or_else(|| self.base.region().cloned());
        builder.set_region(region.clone());
        if let (Some(role), Some(source)) = (&key.role_arn, &self.source) {
            let provider =
                SourceRole { source: source.clone(), role_arn: role.clone(), external_id: key.external_id.clone() };
            builder.set_credentials_provider(Some(SharedCredentialsProvider::new(provider)));
        } else if let Some(role) = &key.role_arn {
            // STS is called lazily on first use and again before expiry; the provider caches.
            let mut assume = AssumeRoleProvider::builder(role).session_name(&self.session_name);
            if let Some(id) = &key.external_id {
                assume = assume.external_id(id);
            }
            if let Some(region) = region {
                assume = assume.region(region);
            }
            let provider = assume.configure(&self.base).build().await;
            builder.set_credentials_provider(Some(SharedCredentialsProvider::new(provider)));
        }
        let cfg = builder.build();
        cache.insert(key, cfg.clone());
        cfg
    }
}
