//! The engine: runs flows and tasks in this process.

mod cache;
pub(crate) mod context;
mod flow_call;
mod flow_run;
mod future;
mod outcome;
mod runner;
mod tag_limits;
mod task_call;
mod task_run;

pub use cache::task_input_hash;
pub use context::{FlowRunContext, TaskRunContext, flow_run_context, task_run_context};
pub use flow_call::{FlowCall, FlowSpec};
pub use future::{TaskFuture, gather, map};
pub(crate) use outcome::panic_message as panic_text;
pub use outcome::{BoxFuture, Verdict};
pub use runner::TaskRunner;
pub use task_call::{Body, CacheKeyFn, Codec, TaskCall, TaskOptions, TaskSpec};
