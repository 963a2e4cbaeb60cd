//! Integration tests of orion through its public API.

mod client;
mod concurrency;
mod flows;
mod logging;
mod registry;
mod schedules;
mod store;
mod subflows;
mod tasks;
