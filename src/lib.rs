//! fargate-operator: reconciles ECS Fargate services, Route 53 failover pairs and hot worker pools
//! from Kubernetes objects.
#![forbid(unsafe_code)]

pub mod api;
