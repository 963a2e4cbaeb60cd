//! Integration tests of orion through its public API.

#[path = "../support/api.rs"]
mod api;
#[path = "../support/postgres.rs"]
mod pg;
#[path = "../support/recorder.rs"]
mod recorder;
#[path = "../support/temp.rs"]
mod temp;

mod cli;
mod client;
mod concurrency;
mod dashboard;
mod deployments;
mod flows;
mod ledger_property;
mod limits;
mod logging;
mod odd_calls;
mod postgres;
mod registry;
mod remote;
mod schedule_errors;
mod schedules;
mod server;
mod services;
mod sqlite_queue;
mod store;
mod subflows;
mod tasks;
