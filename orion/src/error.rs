//! The library's error type.

use crate::state::State;
use crate::store::StoreError;

/// Everything that can go wrong in orion itself.
///
/// Failures of user code are not errors of the library: they are [`State`]s
/// (Failed, Crashed, TimedOut) of the run that hit them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not read or write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Orchestration refused a transition outright.
    #[error("state transition aborted: {reason}")]
    Aborted {
        /// Why.
        reason: String,
    },
    /// No flow of that name is registered in this program.
    #[error("no flow named {name:?} is registered in this program (known flows: {known})")]
    UnknownFlow {
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// Parameters did not fit the flow's signature.
    #[error("invalid parameters for flow {flow:?}: {detail}")]
    InvalidParameters {
        /// The flow.
        flow: String,
        /// What was wrong, naming the parameter.
        detail: String,
    },
    /// A run ended in a state other than Completed, or a Completed state had no result.
    #[error("run ended in state {state}")]
    Run {
        /// The final state, without data.
        state: State<()>,
    },
    /// Another writer moved the run first: it was claimed by another agent, reaped, or
    /// cancelled. Normal under competition, unlike [`Error::Aborted`].
    #[error("{what} {id} was changed by another writer (it is now {})", current.as_ref().map_or_else(|| "gone".to_owned(), ToString::to_string))]
    Conflict {
        /// `"flow run"` or `"task run"`.
        what: &'static str,
        /// The run.
        id: uuid::Uuid,
        /// The state it is in now, if it still exists.
        current: Option<Box<State<()>>>,
    },
    /// A schedule that cannot be built.
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    /// A deployment spec that cannot be applied.
    #[error(transparent)]
    Deployment(#[from] crate::deployment::DeploymentError),
    /// A record that was asked for does not exist.
    #[error("{what} {name:?} not found")]
    NotFound {
        /// `"deployment"`, ….
        what: &'static str,
        /// Its name or id.
        name: String,
    },
    /// A concurrency limit can never grant what was asked (it has fewer slots than asked for,
    /// a limit of 0 among them), so waiting would never end.
    #[error("concurrency limit {limit:?} has {size} slot(s) and can never grant {asked}: {hint}")]
    ConcurrencyLimit {
        /// The limit's name (`tag:TAG` for a task tag's).
        limit: String,
        /// Its size.
        size: u32,
        /// How many slots were asked for.
        asked: u32,
        /// What to do about it.
        hint: &'static str,
    },
    /// A setting (environment variable or option) has a value orion cannot use.
    #[error("invalid setting {name}={value:?}: {reason}")]
    Setting {
        /// The setting's name.
        name: &'static str,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

/// `Result` with orion's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
