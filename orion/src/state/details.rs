use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Extra facts a state carries, each optional.
///
/// The final state a call hands back names its run: `task_run_id` (and the `flow_run_id` it
/// ran in) for a task call's state, `flow_run_id` for a flow call's, so the run, its history
/// and its logs can be read from there:
///
/// ```
/// use orion::prelude::*;
///
/// #[task]
/// async fn one() -> u8 { 1 }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
/// # orion::logging::set_console_level(None);
/// let orion = Orion::memory();
/// let state = orion.scope(one().return_state()).await;
/// let id = state.details().task_run_id.expect("a call's state names its run");
/// let run = orion.client().read_task_run(id).await?.expect("stored");
/// assert_eq!(run.state.unwrap().id(), state.id());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StateDetails {
    /// When a Scheduled run should start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<Timestamp>,
    /// The cache key a Completed result is stored under, or a Cached result came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// When the cached result stops being valid (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_expiration: Option<Timestamp>,
    /// The flow run this state belongs to, when it is a task run's or a subflow's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_run_id: Option<Uuid>,
    /// The task run this state belongs to (set on the state a task call returns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_run_id: Option<Uuid>,
    /// Set on a Running state proposed with a cache key to bypass the cache.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_cache: bool,
}

impl StateDetails {
    pub(crate) const EMPTY: &'static StateDetails = &StateDetails {
        scheduled_time: None,
        cache_key: None,
        cache_expiration: None,
        flow_run_id: None,
        task_run_id: None,
        refresh_cache: false,
    };
}
