//! Run states: what a flow run or task run is doing, and what it ended with.

mod details;
pub(crate) mod names;
mod retry;

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use details::StateDetails;
pub use retry::{RetryDelay, RetryPolicy};

/// The kind of a [`State`]; several named states share one type
/// (`Late` and `AwaitingRetry` are both [`StateType::Scheduled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StateType {
    /// Waiting for its scheduled start time.
    Scheduled,
    /// Claimed, about to start.
    Pending,
    /// Executing.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error, a panic or a timeout.
    Failed,
    /// Stopped on request before it finished.
    Cancelled,
    /// The process running it went away; it never reported an outcome.
    Crashed,
    /// Suspended, waiting to be resumed.
    Paused,
    /// A cancellation was requested and is being carried out.
    Cancelling,
}

impl StateType {
    /// Every state type, in declaration order.
    pub const ALL: [StateType; 9] = [
        StateType::Scheduled,
        StateType::Pending,
        StateType::Running,
        StateType::Completed,
        StateType::Failed,
        StateType::Cancelled,
        StateType::Crashed,
        StateType::Paused,
        StateType::Cancelling,
    ];

    /// The default display name of this type (`"Completed"`).
    pub const fn name(self) -> &'static str {
        match self {
            StateType::Scheduled => "Scheduled",
            StateType::Pending => "Pending",
            StateType::Running => "Running",
            StateType::Completed => "Completed",
            StateType::Failed => "Failed",
            StateType::Cancelled => "Cancelled",
            StateType::Crashed => "Crashed",
            StateType::Paused => "Paused",
            StateType::Cancelling => "Cancelling",
        }
    }

    /// Completed, Failed, Cancelled and Crashed are final: a run in one of them is over.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            StateType::Completed | StateType::Failed | StateType::Cancelled | StateType::Crashed
        )
    }
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state of a run at one moment, with the run's result when it carries one.
///
/// `State` (the default type parameter) is what the store keeps: it holds data only for cached
/// results. The engine hands callers a `State<T>` holding the task's or flow's own return value.
///
/// It displays as Prefect does: `Completed(None)`, `Failed('boom')`.
///
/// ```
/// use orion::{State, StateType};
///
/// let done: State<i32> = State::completed().with_data(3);
/// assert_eq!(done.to_string(), "Completed(None)");
/// assert_eq!(done.state_type(), StateType::Completed);
/// assert_eq!(done.data(), Some(&3));
/// assert_eq!(State::<()>::failed("boom").to_string(), "Failed('boom')");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State<T = serde_json::Value> {
    id: Uuid,
    #[serde(rename = "type")]
    state_type: StateType,
    name: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    timestamp: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    details: Option<Box<StateDetails>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Box<T>>,
}

impl<T> State<T> {
    /// A state of the given type and name, stamped now.
    pub fn new(state_type: StateType, name: impl Into<Cow<'static, str>>) -> Self {
        State {
            id: crate::ids::new_id(),
            state_type,
            name: name.into(),
            message: None,
            timestamp: Timestamp::now(),
            details: None,
            data: None,
        }
    }

    /// A state named after its type.
    pub fn of_type(state_type: StateType) -> Self {
        Self::new(state_type, state_type.name())
    }

    /// `Scheduled`, to start at `at`.
    pub fn scheduled(at: Timestamp) -> Self {
        Self::of_type(StateType::Scheduled).with_scheduled_time(at)
    }
    /// `Late`: a Scheduled run past its start time.
    pub fn late(at: Timestamp) -> Self {
        Self::new(StateType::Scheduled, names::LATE).with_scheduled_time(at)
    }
    /// `AwaitingRetry`: a Scheduled run that failed and will run again at `at`.
    pub fn awaiting_retry(at: Timestamp) -> Self {
        Self::new(StateType::Scheduled, names::AWAITING_RETRY).with_scheduled_time(at)
    }
    /// `AwaitingConcurrencySlot`: a Scheduled run waiting for a slot of a full concurrency
    /// limit (a task tag's, or its deployment's); it holds no slot while it waits.
    pub fn awaiting_concurrency_slot() -> Self {
        Self::new(StateType::Scheduled, names::AWAITING_CONCURRENCY_SLOT)
    }
    /// `Pending`.
    pub fn pending() -> Self {
        Self::of_type(StateType::Pending)
    }
    /// `Running`.
    pub fn running() -> Self {
        Self::of_type(StateType::Running)
    }
    /// `Retrying`: Running again after a failure.
    pub fn retrying() -> Self {
        Self::new(StateType::Running, names::RETRYING)
    }
    /// `Completed`.
    pub fn completed() -> Self {
        Self::of_type(StateType::Completed)
    }
    /// `Cached`: Completed with a result taken from an earlier run.
    pub fn cached() -> Self {
        Self::new(StateType::Completed, names::CACHED)
    }
    /// `Failed` with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::of_type(StateType::Failed).with_message(message)
    }
    /// `TimedOut`: Failed because the run exceeded its timeout.
    pub fn timed_out(message: impl Into<String>) -> Self {
        Self::new(StateType::Failed, names::TIMED_OUT).with_message(message)
    }
    /// `Crashed` with a message.
    pub fn crashed(message: impl Into<String>) -> Self {
        Self::of_type(StateType::Crashed).with_message(message)
    }
    /// `Cancelled` with a message.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::of_type(StateType::Cancelled).with_message(message)
    }

    /// Sets the message.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
    /// Sets the result data.
    #[must_use]
    pub fn with_data(mut self, data: T) -> Self {
        self.data = Some(Box::new(data));
        self
    }
    /// Sets the time the state was entered.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self
    }
    /// Sets the scheduled start time (Scheduled states).
    #[must_use]
    pub fn with_scheduled_time(mut self, at: Timestamp) -> Self {
        self.details_mut().scheduled_time = Some(at);
        self
    }
    /// Replaces the details.
    #[must_use]
    pub fn with_details(mut self, details: StateDetails) -> Self {
        self.details = if details == StateDetails::default() {
            None
        } else {
            Some(Box::new(details))
        };
        self
    }

    /// This state's unique id; a state write names the id it replaces.
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// The type.
    pub fn state_type(&self) -> StateType {
        self.state_type
    }
    /// The name (`"Completed"`, `"Cached"`, `"AwaitingRetry"`, …).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The message, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
    /// When the state was entered.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    /// Details: scheduled time, cache key and expiration, related runs.
    pub fn details(&self) -> &StateDetails {
        self.details.as_deref().unwrap_or(StateDetails::EMPTY)
    }
    /// Mutable details, created on first use.
    pub fn details_mut(&mut self) -> &mut StateDetails {
        self.details.get_or_insert_with(Default::default)
    }
    /// The result data, if the state carries it.
    pub fn data(&self) -> Option<&T> {
        self.data.as_deref()
    }
    /// Takes the result data out.
    pub fn into_data(self) -> Option<T> {
        self.data.map(|d| *d)
    }

    /// `true` for Completed.
    pub fn is_completed(&self) -> bool {
        self.state_type == StateType::Completed
    }
    /// `true` for Failed.
    pub fn is_failed(&self) -> bool {
        self.state_type == StateType::Failed
    }
    /// `true` for Crashed.
    pub fn is_crashed(&self) -> bool {
        self.state_type == StateType::Crashed
    }
    /// `true` for Cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.state_type == StateType::Cancelled
    }
    /// `true` for Running.
    pub fn is_running(&self) -> bool {
        self.state_type == StateType::Running
    }
    /// `true` for Pending.
    pub fn is_pending(&self) -> bool {
        self.state_type == StateType::Pending
    }
    /// `true` for Scheduled.
    pub fn is_scheduled(&self) -> bool {
        self.state_type == StateType::Scheduled
    }
    /// `true` for the final types: Completed, Failed, Cancelled, Crashed.
    pub fn is_final(&self) -> bool {
        self.state_type.is_terminal()
    }

    /// The same state with its data transformed.
    pub fn map_data<U>(self, f: impl FnOnce(Option<T>) -> Option<U>) -> State<U> {
        State {
            id: self.id,
            state_type: self.state_type,
            name: self.name,
            message: self.message,
            timestamp: self.timestamp,
            details: self.details,
            data: f(self.data.map(|d| *d)).map(Box::new),
        }
    }
    /// The same state without data, as the store keeps it.
    pub fn without_data<U>(&self) -> State<U> {
        State {
            id: self.id,
            state_type: self.state_type,
            name: self.name.clone(),
            message: self.message.clone(),
            timestamp: self.timestamp,
            details: self.details.clone(),
            data: None,
        }
    }
    /// A copy of this state under a fresh id and timestamp (a state proposed again).
    #[must_use]
    pub fn renewed(mut self) -> Self {
        self.id = crate::ids::new_id();
        self.timestamp = Timestamp::now();
        self
    }

    /// The result: `Ok(data)` for a Completed state carrying data, else an error describing
    /// the state.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Run`] when the state is not Completed or carries no data.
    pub fn result(self) -> crate::Result<T> {
        if self.is_completed() {
            if let Some(data) = self.data {
                return Ok(*data);
            }
        }
        Err(crate::Error::Run {
            state: self.without_data(),
        })
    }
}

impl<T> fmt::Display for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{}('{}')", self.name, m),
            None => write!(f, "{}(None)", self.name),
        }
    }
}
