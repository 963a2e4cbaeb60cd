use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::{RetryPolicy, State};

/// A flow: the named unit that flow runs belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Flow {
    /// Its id.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// When it was first stored.
    pub created: Timestamp,
}

impl Flow {
    /// A new flow record with a fresh id.
    pub fn new(name: impl Into<String>) -> Self {
        Flow {
            id: crate::ids::new_id(),
            name: name.into(),
            created: Timestamp::now(),
        }
    }
}

/// One execution of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FlowRun {
    /// Its id.
    pub id: Uuid,
    /// Its name (`rare-frog`).
    pub name: String,
    /// The flow's id.
    pub flow_id: Uuid,
    /// The flow's name, kept alongside for display and filtering.
    pub flow_name: String,
    /// The parameters it was called with, as a JSON object.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Tags.
    pub tags: Vec<String>,
    /// For a subflow: the task run in the parent flow run that stands for it.
    pub parent_task_run_id: Option<Uuid>,
    /// The task runner's display name.
    pub task_runner: Option<String>,
    /// The deployment it was created from.
    pub deployment_id: Option<Uuid>,
    /// The work queue it waits in (runs from deployments).
    pub work_queue_name: Option<String>,
    /// Whether a scheduler created it from a deployment's schedule.
    pub auto_scheduled: bool,
    /// A key that makes creating it idempotent: a second create with the same key for the
    /// same flow returns the first run.
    pub idempotency_key: Option<String>,
    /// The current state (the last entry of its history).
    pub state: Option<State>,
    /// How many times it entered Running.
    pub run_count: u32,
    /// When it was created.
    pub created: Timestamp,
    /// When it should start.
    pub expected_start_time: Option<Timestamp>,
    /// When it first entered Running.
    pub start_time: Option<Timestamp>,
    /// When it entered a final state.
    pub end_time: Option<Timestamp>,
    /// Its retry policy, kept with it so that whoever finds it failed or crashed (its own
    /// engine, or the reaper in another process) retries it the same way.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The agent holding it while it is claimed, running or being cancelled: a run whose
    /// lease expires without renewal is found crashed by the reaper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// Who holds a claimed run, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Lease {
    /// The holder's id (one per agent).
    pub owner: Uuid,
    /// The holder's name, for messages (`agent 'web-1'`).
    pub owner_name: String,
    /// When the lease lapses unless renewed.
    pub expires: Timestamp,
    /// When the holder last renewed it (or claimed the run).
    pub renewed: Timestamp,
}

impl Lease {
    /// A lease held by `owner` from `now` for `duration`.
    pub fn new(
        owner: Uuid,
        owner_name: impl Into<String>,
        now: Timestamp,
        duration: std::time::Duration,
    ) -> Self {
        let duration =
            jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX);
        Lease {
            owner,
            owner_name: owner_name.into(),
            expires: now.checked_add(duration).unwrap_or(Timestamp::MAX),
            renewed: now,
        }
    }
}

impl FlowRun {
    /// When the run counts in run history: its expected start, else its creation.
    pub fn history_time(&self) -> Timestamp {
        self.expected_start_time.unwrap_or(self.created)
    }

    /// A new flow run record, created now, with no state yet.
    pub fn new(flow: &Flow, name: impl Into<String>) -> Self {
        FlowRun {
            id: crate::ids::new_id(),
            name: name.into(),
            flow_id: flow.id,
            flow_name: flow.name.clone(),
            parameters: serde_json::Map::new(),
            tags: Vec::new(),
            parent_task_run_id: None,
            task_runner: None,
            deployment_id: None,
            work_queue_name: None,
            auto_scheduled: false,
            idempotency_key: None,
            state: None,
            run_count: 0,
            created: Timestamp::now(),
            expected_start_time: None,
            start_time: None,
            end_time: None,
            retry: RetryPolicy::default(),
            lease: None,
        }
    }
}

/// One execution of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskRun {
    /// Its id.
    pub id: Uuid,
    /// Its name (`log_message-dd6ef374-0`).
    pub name: String,
    /// The flow run it ran in (None for a task called outside any flow).
    pub flow_run_id: Option<Uuid>,
    /// The task's identity: its name and a stable hash of where it is defined.
    pub task_key: Arc<str>,
    /// The per-flow-run call counter that tells apart calls of the same task.
    pub dynamic_key: u32,
    /// The cache key of its last attempt, when caching is on.
    pub cache_key: Option<String>,
    /// Tags.
    pub tags: Arc<[String]>,
    /// The current state.
    pub state: Option<State>,
    /// How many times it entered Running.
    pub run_count: u32,
    /// When it was created.
    pub created: Timestamp,
    /// When it first entered Running.
    pub start_time: Option<Timestamp>,
    /// When it entered a final state.
    pub end_time: Option<Timestamp>,
}

impl TaskRun {
    /// A new task run record, created now, with no state yet.
    pub fn new(name: impl Into<String>, task_key: Arc<str>, dynamic_key: u32) -> Self {
        TaskRun {
            id: crate::ids::new_id(),
            name: name.into(),
            flow_run_id: None,
            task_key,
            dynamic_key,
            cache_key: None,
            tags: Arc::from(Vec::new()),
            state: None,
            run_count: 0,
            created: Timestamp::now(),
            start_time: None,
            end_time: None,
        }
    }
}

/// A log level, with Python's names and numbers as Prefect shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// 10.
    Debug = 10,
    /// 20.
    Info = 20,
    /// 30.
    Warning = 30,
    /// 40.
    Error = 40,
    /// 50.
    Critical = 50,
}

impl LogLevel {
    /// The lowest level at or above Python's number `n` (`25`: Warning); above 50, Critical.
    pub fn at_least(n: u8) -> Self {
        [
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warning,
            LogLevel::Error,
            LogLevel::Critical,
        ]
        .into_iter()
        .find(|l| *l as u8 >= n)
        .unwrap_or(LogLevel::Critical)
    }

    /// `"INFO"`, `"WARNING"`, ….
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The error of parsing a [`LogLevel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?}: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")]
pub struct ParseLogLevelError(pub String);

impl FromStr for LogLevel {
    type Err = ParseLogLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" | "TRACE" | "10" => Ok(LogLevel::Debug),
            "INFO" | "20" => Ok(LogLevel::Info),
            "WARNING" | "WARN" | "30" => Ok(LogLevel::Warning),
            "ERROR" | "40" => Ok(LogLevel::Error),
            "CRITICAL" | "50" => Ok(LogLevel::Critical),
            _ => Err(ParseLogLevelError(s.to_owned())),
        }
    }
}

/// One stored log line of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogRecord {
    /// The logger's name: `orion.engine`, `orion.flow_runs`, `orion.task_runs`, or a `tracing`
    /// target.
    pub name: Cow<'static, str>,
    /// The level.
    pub level: LogLevel,
    /// The text.
    pub message: String,
    /// When it was logged.
    pub timestamp: Timestamp,
    /// The flow run it belongs to.
    pub flow_run_id: Option<Uuid>,
    /// The task run it belongs to.
    pub task_run_id: Option<Uuid>,
}

/// A deployment: a flow with a name, parameters, tags, a work queue and schedules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Deployment {
    /// Its id.
    pub id: Uuid,
    /// Its name, unique per flow.
    pub name: String,
    /// The flow's id.
    pub flow_id: Uuid,
    /// The flow's name.
    pub flow_name: String,
    /// A description.
    pub description: Option<String>,
    /// A version string.
    pub version: Option<String>,
    /// Tags, given to its runs.
    pub tags: Vec<String>,
    /// Default parameters of its runs.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Its schedules.
    pub schedules: Vec<DeploymentSchedule>,
    /// The work queue its runs go to.
    pub work_queue_name: String,
    /// Whether its schedules are off.
    pub paused: bool,
    /// What becomes of the slots its schedules passed while nothing was serving.
    #[serde(default)]
    pub catchup: CatchUp,
    /// Its flow's retry policy, given to its runs (taken from the flow when the program
    /// that applied the deployment has it).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// At most this many of its runs claimed or running at once, and what becomes of a run
    /// that finds them all taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<DeploymentConcurrency>,
    /// Its flow's parameters, names and Rust types (taken from the flow when the program that
    /// applied the deployment has it): how a program without the flow shows and checks them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_types: Vec<crate::deployment::ParameterType>,
    /// When it was first created.
    pub created: Timestamp,
    /// When it was last applied.
    pub updated: Timestamp,
}

impl Deployment {
    /// `"<flow name>/<deployment name>"`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.flow_name, self.name)
    }
}

/// One schedule of a deployment, with its own switch and parameter overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeploymentSchedule {
    /// When.
    pub schedule: crate::schedule::Schedule,
    /// Whether it creates runs.
    pub active: bool,
    /// Parameters merged over the deployment's for runs of this schedule.
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

impl DeploymentSchedule {
    /// An active schedule without overrides.
    pub fn new(schedule: impl Into<crate::schedule::Schedule>) -> Self {
        DeploymentSchedule {
            schedule: schedule.into(),
            active: true,
            parameters: Default::default(),
        }
    }
    /// Turns the schedule on or off.
    #[must_use]
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }
    /// Parameter overrides for this schedule's runs.
    #[must_use]
    pub fn parameters(mut self, parameters: serde_json::Map<String, serde_json::Value>) -> Self {
        self.parameters = parameters;
        self
    }
}

/// A deployment's concurrency limit: at most `limit` of its runs are claimed, running or
/// being cancelled at once, across every agent and process.
///
/// The limit is checked inside an agent's claim, atomically with it: a run that finds the
/// deployment full never holds anything, so it neither fills its work queue nor keeps other
/// deployments' runs waiting behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeploymentConcurrency {
    /// How many of its runs at once.
    pub limit: u32,
    /// What becomes of a run that finds the limit reached.
    #[serde(default, rename = "collision_strategy")]
    pub collision: Collision,
}

impl DeploymentConcurrency {
    /// At most `limit` runs at once, with `collision` for the others.
    pub fn new(limit: u32, collision: Collision) -> Self {
        DeploymentConcurrency { limit, collision }
    }
}

/// What becomes of a deployment's run that is due while its concurrency limit is reached
/// (Prefect 3's collision strategies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Collision {
    /// It waits, in state `AwaitingConcurrencySlot`, and starts as soon as a slot frees
    /// (earliest due first).
    #[default]
    Enqueue,
    /// It is cancelled, with a message saying why.
    CancelNew,
}

impl std::str::FromStr for Collision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "enqueue" => Ok(Collision::Enqueue),
            "cancel_new" => Ok(Collision::CancelNew),
            _ => Err(format!(
                "unknown collision strategy {s:?}: expected enqueue or cancel-new"
            )),
        }
    }
}

/// What becomes of a deployment's scheduled runs whose time passed while no agent was serving
/// (the program was down): Prefect runs them all; orion lets a deployment choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CatchUp {
    /// Run every missed slot (Prefect's behaviour).
    #[default]
    All,
    /// Run only the most recent missed slot; cancel the older ones, saying why.
    Latest,
    /// Run none of them: cancel every missed slot, saying why.
    None,
}

impl std::str::FromStr for CatchUp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(CatchUp::All),
            "latest" => Ok(CatchUp::Latest),
            "none" => Ok(CatchUp::None),
            other => Err(format!(
                "unknown catch-up policy {other:?}: expected all, latest or none"
            )),
        }
    }
}

/// A work queue: where deployment runs wait for an agent.
///
/// Agents serve queues in priority order (lower first): a queue's runs are taken only when no
/// queue before it has a due run the agent could take. A paused queue hands out nothing; a
/// queue with a concurrency limit hands out runs only while fewer than that many of its runs
/// are claimed or running. With tags, the queue hands out only runs carrying all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkQueue {
    /// Its id.
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// A description.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether it hands out no runs.
    #[serde(default)]
    pub paused: bool,
    /// At most this many of its runs claimed or running at once (None: no limit).
    #[serde(default)]
    pub concurrency_limit: Option<u32>,
    /// Its place in an agent's order: lower first.
    #[serde(default)]
    pub priority: i32,
    /// Only runs carrying all of these tags are handed out.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it was created.
    pub created: Timestamp,
    /// When an agent last asked it for work.
    #[serde(default)]
    pub last_polled: Option<Timestamp>,
    /// The agent that last asked.
    #[serde(default)]
    pub last_polled_by: Option<String>,
}

impl WorkQueue {
    /// The name of the queue that always exists.
    pub const DEFAULT: &'static str = "default";

    /// A queue named `name`, unpaused, without limit, priority 0, created at `now`.
    pub fn new(name: impl Into<String>, now: Timestamp) -> Self {
        WorkQueue {
            id: crate::ids::new_id(),
            name: name.into(),
            description: None,
            paused: false,
            concurrency_limit: None,
            priority: 0,
            tags: Vec::new(),
            created: now,
            last_polled: None,
            last_polled_by: None,
        }
    }
    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
    /// Pauses or unpauses it.
    #[must_use]
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }
    /// Sets the concurrency limit.
    #[must_use]
    pub fn concurrency_limit(mut self, limit: Option<u32>) -> Self {
        self.concurrency_limit = limit;
        self
    }
    /// Sets the priority (lower first).
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Hands out only runs carrying all of `tags`.
    #[must_use]
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
}
