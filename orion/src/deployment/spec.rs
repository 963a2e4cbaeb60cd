//! `DeploymentSpec`: the builder, validation and apply.

use serde::Serialize;
use serde_json::{Map, Value};

use super::DeploymentError;
use crate::registry;
use crate::schedule::Schedule;
use crate::store::{CatchUp, Collision, Deployment, DeploymentConcurrency, DeploymentSchedule};
use crate::{FlowCall, OrionClient};

/// What a deployment should be; [`DeploymentSpec::apply`] creates it or updates the one of
/// the same flow and name.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    pub(crate) name: String,
    pub(crate) flow_name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) parameters: Result<Map<String, Value>, String>,
    pub(crate) schedules: Vec<DeploymentSchedule>,
    pub(crate) work_queue_name: String,
    pub(crate) paused: bool,
    pub(crate) catchup: CatchUp,
    pub(crate) concurrency: Option<DeploymentConcurrency>,
}

/// A `#[flow]` function, passed by name: `DeploymentSpec::new("x").flow(my_flow)`.
///
/// Implemented for every function a `#[flow]` generates.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a #[flow] function",
    label = "pass the name of a function marked #[flow], without calling it"
)]
pub trait FlowFn<Args> {
    /// The flow's name.
    fn flow_name(&self) -> &'static str;
}

macro_rules! flow_fn {
    ($($arg:ident),*) => {
        impl<F, R, M, $($arg),*> FlowFn<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> FlowCall<R, M>,
            M: crate::__private::FlowMarker,
        {
            fn flow_name(&self) -> &'static str {
                M::NAME
            }
        }
    };
}
flow_fn!();
flow_fn!(A1);
flow_fn!(A1, A2);
flow_fn!(A1, A2, A3);
flow_fn!(A1, A2, A3, A4);
flow_fn!(A1, A2, A3, A4, A5);
flow_fn!(A1, A2, A3, A4, A5, A6);
flow_fn!(A1, A2, A3, A4, A5, A6, A7);
flow_fn!(A1, A2, A3, A4, A5, A6, A7, A8);

/// Options of a run created from a deployment.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct DeploymentRunOptions {
    /// Parameters merged over the deployment's (and the schedule's).
    pub parameters: Map<String, Value>,
    /// Tags added to the deployment's.
    pub tags: Vec<String>,
    /// When the run should start (default: now).
    pub scheduled_time: Option<jiff::Timestamp>,
    /// A second create with the same key returns the first run.
    pub idempotency_key: Option<String>,
    /// The schedule (by position) whose parameter overrides apply; it also marks the run as
    /// created by a scheduler.
    pub schedule_index: Option<usize>,
}

impl DeploymentRunOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Parameter overrides (a JSON object).
    #[must_use]
    pub fn parameters(mut self, parameters: Value) -> Self {
        if let Value::Object(map) = parameters {
            self.parameters = map;
        }
        self
    }
    /// Extra tags.
    #[must_use]
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
    /// When the run should start.
    #[must_use]
    pub fn scheduled_time(mut self, at: jiff::Timestamp) -> Self {
        self.scheduled_time = Some(at);
        self
    }
    /// An idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    /// The schedule whose overrides apply.
    #[must_use]
    pub fn schedule_index(mut self, index: usize) -> Self {
        self.schedule_index = Some(index);
        self
    }
}

impl DeploymentSpec {
    /// A deployment named `name`; its flow is set with [`DeploymentSpec::flow`] or
    /// [`DeploymentSpec::flow_name`].
    pub fn new(name: impl Into<String>) -> Self {
        DeploymentSpec {
            name: name.into(),
            flow_name: None,
            description: None,
            version: None,
            tags: Vec::new(),
            parameters: Ok(Map::new()),
            schedules: Vec::new(),
            work_queue_name: "default".into(),
            paused: false,
            catchup: CatchUp::All,
            concurrency: None,
        }
    }

    /// The flow, as the `#[flow]` function itself.
    #[must_use]
    pub fn flow<Args>(mut self, flow: impl FlowFn<Args>) -> Self {
        self.flow_name = Some(flow.flow_name().to_owned());
        self
    }
    /// The flow, by name.
    #[must_use]
    pub fn flow_name(mut self, name: impl Into<String>) -> Self {
        self.flow_name = Some(name.into());
        self
    }
    /// A description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
    /// A version string.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }
    /// Tags.
    #[must_use]
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
    /// Default parameters: a JSON object, or any `Serialize` struct.
    #[must_use]
    pub fn parameters(mut self, parameters: impl Serialize) -> Self {
        self.parameters = match serde_json::to_value(parameters) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(format!("must be an object of parameter names, not {other}")),
            Err(e) => Err(e.to_string()),
        };
        self
    }
    /// One schedule (replacing any).
    #[must_use]
    pub fn schedule(mut self, schedule: impl Into<Schedule>) -> Self {
        self.schedules = vec![DeploymentSchedule::new(schedule)];
        self
    }
    /// Several schedules, each with its own `active` flag and parameter overrides.
    #[must_use]
    pub fn schedules(mut self, schedules: impl IntoIterator<Item = DeploymentSchedule>) -> Self {
        self.schedules = schedules.into_iter().collect();
        self
    }
    /// The work queue its runs go to (default `"default"`).
    #[must_use]
    pub fn work_queue_name(mut self, name: impl Into<String>) -> Self {
        self.work_queue_name = name.into();
        self
    }
    /// Creates it with its schedules off.
    #[must_use]
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }
    /// What becomes of the slots its schedules passed while nothing was serving (default
    /// [`CatchUp::All`], as in Prefect).
    #[must_use]
    pub fn catchup(mut self, catchup: CatchUp) -> Self {
        self.catchup = catchup;
        self
    }

    /// At most `limit` of its runs claimed or running at once, across every agent and
    /// process; `collision` says what becomes of a run that is due while they are all taken:
    /// [`Collision::Enqueue`] waits (state `AwaitingConcurrencySlot`) and starts as soon as a
    /// slot frees, [`Collision::CancelNew`] cancels it, saying why.
    ///
    /// ```
    /// use orion::deployment::DeploymentSpec;
    /// use orion::store::Collision;
    ///
    /// let spec = DeploymentSpec::new("nightly")
    ///     .flow_name("etl")
    ///     .concurrency_limit(1, Collision::Enqueue);
    /// assert!(spec.validate().is_ok());
    /// ```
    #[must_use]
    pub fn concurrency_limit(mut self, limit: u32, collision: Collision) -> Self {
        self.concurrency = Some(DeploymentConcurrency::new(limit, collision));
        self
    }

    /// The deployment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the spec: name rules, the flow (against this program's registry when it holds
    /// the flow), parameters, schedules' parameter overrides.
    ///
    /// # Errors
    ///
    /// [`DeploymentError`] naming the field.
    pub fn validate(&self) -> Result<(), DeploymentError> {
        let err = |field: &str, reason: String| DeploymentError::new(&self.name, field, reason);
        validate_name(&self.name).map_err(|r| err("name", r))?;
        if self.work_queue_name.trim().is_empty() {
            return Err(err("work_queue_name", "must not be empty".into()));
        }
        if self.concurrency.is_some_and(|c| c.limit == 0) {
            return Err(err(
                "concurrency_limit",
                "must be at least 1: a limit of 0 would never run the deployment (pause it instead)"
                    .into(),
            ));
        }
        let flow_name = self.flow_name.as_deref().ok_or_else(|| {
            err(
                "flow_name",
                "no flow: set .flow(my_flow) or .flow_name(\"...\")".into(),
            )
        })?;
        let parameters = self
            .parameters
            .as_ref()
            .map_err(|e| err("parameters", e.clone()))?;
        let Some(flow) = registry::flow(flow_name) else {
            return Ok(());
        };
        flow.validate(parameters)
            .map_err(|e| err("parameters", strip_prefix(&e)))?;
        for (i, schedule) in self.schedules.iter().enumerate() {
            let mut merged = parameters.clone();
            merged.extend(schedule.parameters.clone());
            flow.validate(&merged)
                .map_err(|e| err(&format!("schedules[{i}].parameters"), strip_prefix(&e)))?;
        }
        Ok(())
    }

    pub(crate) fn to_record(
        &self,
        flow_id: uuid::Uuid,
        flow_name: &str,
        now: jiff::Timestamp,
    ) -> Deployment {
        Deployment {
            id: crate::ids::new_id(),
            name: self.name.clone(),
            flow_id,
            flow_name: flow_name.to_owned(),
            description: self.description.clone(),
            version: self.version.clone(),
            tags: self.tags.clone(),
            parameters: self.parameters.clone().unwrap_or_default(),
            schedules: self.schedules.clone(),
            work_queue_name: self.work_queue_name.clone(),
            paused: self.paused,
            catchup: self.catchup,
            concurrency: self.concurrency,
            retry: registry::flow(flow_name)
                .map(crate::registry::RegisteredFlow::retry_policy)
                .unwrap_or_default(),
            parameter_types: super::parameter_types_of(flow_name),
            created: now,
            updated: now,
        }
    }

    /// Creates the deployment, or updates the one of the same flow and name. An update deletes
    /// the future runs its schedules created that have not started (a scheduler makes them
    /// anew); runs created by hand stay.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Deployment`] when the spec is invalid; store failures.
    pub async fn apply(self, client: &OrionClient) -> crate::Result<Deployment> {
        let mut applied = apply_all(vec![self], client).await?;
        Ok(applied.remove(0))
    }
}

/// Applies several specs: all are validated first, then stored together, or none is.
pub(crate) async fn apply_all(
    specs: Vec<DeploymentSpec>,
    client: &OrionClient,
) -> crate::Result<Vec<Deployment>> {
    let mut seen = std::collections::HashSet::new();
    for spec in &specs {
        spec.validate()?;
        let key = (spec.flow_name.clone(), spec.name.clone());
        if !seen.insert(key) {
            return Err(
                DeploymentError::new(&spec.name, "name", "given twice for the same flow").into(),
            );
        }
        let flow_name = spec.flow_name.as_deref().unwrap_or_default();
        if registry::flow(flow_name).is_none()
            && crate::logging::should_print(crate::store::LogLevel::Warning)
        {
            crate::logging::print(
                jiff::Timestamp::now(),
                crate::store::LogLevel::Warning,
                "orion.deployments",
                &format!(
                    "Deployment '{}': flow '{flow_name}' is not compiled into this program; its parameters were not checked",
                    spec.name
                ),
            );
        }
    }
    let mut records = Vec::with_capacity(specs.len());
    for spec in &specs {
        let flow_name = spec.flow_name.as_deref().unwrap_or_default();
        let flow = client.create_flow(flow_name).await?;
        records.push(spec.to_record(flow.id, flow_name, client.now()));
    }
    client.apply_deployments(records).await
}

/// Deployment names: not empty, at most 255 characters, no `/` (it separates the flow's
/// name in `"flow/deployment"`), `%`, `&`, `<`, `>` or control characters.
fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > 255 {
        return Err("is longer than 255 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '%' | '&' | '<' | '>') || c.is_control())
    {
        return Err(format!(
            "{name:?} contains {c:?}; names may not contain / % & < > or control characters"
        ));
    }
    Ok(())
}

fn strip_prefix(e: &crate::Error) -> String {
    match e {
        crate::Error::InvalidParameters { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}
