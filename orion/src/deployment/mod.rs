//! Deployments: a flow with a name, parameters, tags, a work queue and schedules, defined in
//! Rust with [`DeploymentSpec`] or in YAML spec files, stored through the client.
//!
//! ```
//! use std::time::Duration;
//! use orion::prelude::*;
//! use orion::deployment::DeploymentSpec;
//! use orion::schedule::IntervalSchedule;
//!
//! #[flow(name = "Addition Machine")]
//! async fn add(nums: Vec<i64>) -> i64 { nums.iter().sum() }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # orion::logging::set_console_level(None);
//! let orion = Orion::memory();
//! DeploymentSpec::new("every-15-minutes")
//!     .flow(add)
//!     .parameters(serde_json::json!({"nums": [1, 2, 3]}))
//!     .schedule(IntervalSchedule::new(Duration::from_secs(900))?)
//!     .apply(orion.client())
//!     .await?;
//! let state = orion.execute_deployment("Addition Machine/every-15-minutes").await?;
//! assert_eq!(state.data(), Some(&serde_json::json!(6)));
//! # Ok(()) }
//! ```

mod error;
mod file;
mod parameters;
mod spec;

pub use error::DeploymentError;
pub(crate) use parameters::of_flow as parameter_types_of;
pub use parameters::{ParameterType, check as check_parameters};
pub use spec::{DeploymentRunOptions, DeploymentSpec, FlowFn};

/// A deployment's concurrency limit and collision strategy, where deployments are defined
/// (the records live in [`crate::store`]).
pub use crate::store::{Collision, DeploymentConcurrency};
