#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod concurrency;
mod engine;
mod error;
mod ids;
mod orchestration;
mod run_names;
mod runtime;
mod state;
mod yaml;

pub mod deployment;
pub mod logging;
pub mod registry;
pub mod schedule;
#[cfg(feature = "server")]
pub mod server;
pub mod services;
pub mod store;
pub mod testing;

#[cfg(feature = "cli")]
pub mod cli;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use client::{
    ClaimRequest, Clock, ConcurrencyLimitStatus, OrionClient, RunRef, Transition, WorkQueueStatus,
};
pub use concurrency::{ConcurrencySlot, concurrency, rate_limit};
pub use engine::{
    CacheKeyFn, FlowCall, FlowRunContext, TaskCall, TaskFuture, TaskOptions, TaskRunContext,
    TaskRunner, flow_run_context, gather, map, task_input_hash, task_run_context,
};
pub use error::{Error, Result};
pub use logging::{RunLogger, get_run_logger};
pub use orchestration::{Decision, Proposal, RetryDelay, RetryPolicy, RunKind, decide};
pub use orion_macros::{flow, task};
pub use runtime::Orion;
pub use state::{State, StateDetails, StateType};

/// Instants (state timestamps, scheduled times): re-exported from `jiff`.
pub use jiff::Timestamp;
/// Run, flow and state ids: re-exported so that reading a run by an id received as text needs
/// no `uuid` dependency of your own (`"…".parse::<orion::Uuid>()`).
pub use uuid::Uuid;

/// The names every flow file needs: `use orion::prelude::*;`.
pub mod prelude {
    pub use crate::deployment::DeploymentSpec;
    pub use crate::schedule::{CronSchedule, IntervalSchedule, RRuleSchedule};
    pub use crate::services::Agent;
    pub use crate::{Orion, State, StateType, TaskRunner, flow, gather, get_run_logger, map, task};
    pub use serde_json::json;
}
