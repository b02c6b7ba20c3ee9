//! nectr-fleet: the fleet manager.
//!
//! Layers (dependencies point one way, downwards in this list):
//!
//! - [`reconcile`]: the loop that observes Jenkins and the cloud, calls [`scaler::decide`]
//!   and carries out the plan; the only layer that combines IO with decisions.
//! - [`server`] and [`metrics`]: `/metrics` (Prometheus text) and `/status` (JSON).
//! - [`jenkins`]: REST client plus the pure `why`-text and label-expression parsers.
//! - [`cloud`]: the [`cloud::CloudProvider`] trait and its implementation over the AWS SDK
//!   (EC2, SSM, S3). No AWS SDK type leaves that module.
//! - [`scaler`]: the pure decision function. No IO, no clock reads.
//! - [`config`]: parse, validate and diff `fleet.toml` (imports nothing from `cloud`).
//! - [`pricing`]: the bundled on-demand price table, spot assumption, billing arithmetic.
//! - [`sim`]: the cost simulator (`nectr-fleet simulate`), driving the same `decide`.
//! - [`util`] and [`secret`]: small shared helpers.

pub mod cloud;
pub mod config;
pub mod cost;
pub mod jenkins;
pub mod lease;
pub mod log;
pub mod metrics;
pub mod page;
pub mod pricing;
pub mod reconcile;
pub mod scaler;
pub mod secret;
pub mod server;
pub mod sim;
pub mod tls;
pub mod util;
