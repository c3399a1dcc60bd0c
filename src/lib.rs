//! fargate-operator: reconciles ECS Fargate services, Route 53 failover pairs and hot worker pools
//! from Kubernetes objects.
#![forbid(unsafe_code)]

pub mod api;
pub mod aws;
pub mod config;
pub mod controller;
#[cfg(feature = "sim")]
pub mod kube_model;
pub mod operator;
pub mod runtime;

#[cfg(test)]
mod fuzz_tests;
