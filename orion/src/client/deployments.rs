//! Deployments through the client.

use uuid::Uuid;

use super::OrionClient;
use crate::deployment::{DeploymentRunOptions, DeploymentSpec};
use crate::state::State;
use crate::store::{Deployment, DeploymentFilter, Flow, FlowRun, FlowRunFilter, SetState};
use crate::{Error, Result, StateType};

impl OrionClient {
    /// A deployment by id.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_deployment(&self, id: Uuid) -> Result<Option<Deployment>> {
        Ok(self.store().read_deployment(id).await?)
    }

    /// A deployment by its full name, `"<flow name>/<deployment name>"`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is none; store failures.
    pub async fn read_deployment_by_name(&self, full_name: &str) -> Result<Deployment> {
        let not_found = || Error::NotFound {
            what: "deployment",
            name: full_name.to_owned(),
        };
        // Deployment names cannot hold '/', flow names can: split at the last one.
        let (flow, name) = full_name.rsplit_once('/').ok_or_else(not_found)?;
        self.store()
            .read_deployment_by_name(flow, name)
            .await?
            .ok_or_else(not_found)
    }

    /// Deployments matching `filter`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>> {
        Ok(self.store().read_deployments(filter).await?)
    }

    /// Every deployment's id, last update and pause (see
    /// [`crate::store::Store::read_deployment_versions`]).
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_deployment_versions(&self) -> Result<Vec<crate::store::DeploymentVersion>> {
        Ok(self.store().read_deployment_versions().await?)
    }

    /// Deletes a deployment and its runs that have not started; returns whether it existed.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn delete_deployment(&self, id: Uuid) -> Result<bool> {
        let scheduled = FlowRunFilter::new()
            .deployment_id(id)
            .state_types([StateType::Scheduled]);
        self.store().delete_flow_runs(&scheduled).await?;
        Ok(self.store().delete_deployment(id).await?)
    }

    /// Turns a deployment's schedules off and deletes the future runs they created.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn pause_deployment(&self, id: Uuid) -> Result<Deployment> {
        self.set_paused(id, true).await
    }

    /// Turns a deployment's schedules back on.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn resume_deployment(&self, id: Uuid) -> Result<Deployment> {
        self.set_paused(id, false).await
    }

    async fn set_paused(&self, id: Uuid, paused: bool) -> Result<Deployment> {
        let mut d = self
            .read_deployment(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "deployment",
                name: id.to_string(),
            })?;
        d.paused = paused;
        d.updated = self.now();
        let stored = self.store().upsert_deployments(vec![d]).await?.remove(0);
        if paused {
            self.delete_future_auto_scheduled(id).await?;
        }
        Ok(stored)
    }

    /// Stores validated deployment records (see [`DeploymentSpec::apply`]), all or none: each
    /// one's future auto-scheduled runs that have not started are deleted (the scheduler
    /// makes them anew; manual runs stay), and each work queue they name is created when it
    /// does not exist.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn apply_deployments(&self, mut records: Vec<Deployment>) -> Result<Vec<Deployment>> {
        // Applied from a program without the flow (a spec file through a standalone CLI): keep
        // the parameter types an earlier apply took from the flow.
        for d in records.iter_mut().filter(|d| d.parameter_types.is_empty()) {
            if let Some(old) = self
                .store()
                .read_deployment_by_name(&d.flow_name, &d.name)
                .await?
            {
                d.parameter_types = old.parameter_types;
            }
        }
        let stored = self.store().upsert_deployments(records).await?;
        for d in &stored {
            self.delete_future_auto_scheduled(d.id).await?;
            self.ensure_work_queue(&d.work_queue_name).await?;
        }
        self.signals().runs_due.notify_waiters();
        Ok(stored)
    }

    /// Inserts flow runs in one write where the store can (a scheduler's runs ahead): each
    /// run whose idempotency key is taken is not inserted and the stored one is returned.
    ///
    /// # Errors
    ///
    /// When a flow does not exist; store failures.
    pub async fn create_flow_runs(&self, runs: Vec<FlowRun>) -> Result<Vec<FlowRun>> {
        let stored = self.store().create_flow_runs(runs).await?;
        self.signals().runs_due.notify_waiters();
        Ok(stored)
    }

    /// Deletes the runs of a deployment that its schedules created and that have not started.
    pub(crate) async fn delete_future_auto_scheduled(&self, deployment_id: Uuid) -> Result<usize> {
        let filter = FlowRunFilter::new()
            .deployment_id(deployment_id)
            .auto_scheduled(true)
            .state_types([StateType::Scheduled]);
        Ok(self.store().delete_flow_runs(&filter).await?)
    }

    /// Creates a flow run of a deployment, Scheduled for now (or `options.scheduled_time`),
    /// with the deployment's parameters, the schedule's overrides and `options`' overrides
    /// merged in that order, the deployment's tags and work queue.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameters`] when the merged parameters do not fit the flow: checked
    /// by the flow itself when it is compiled into this program, else against the parameter
    /// types the deployment keeps; store failures.
    pub async fn create_flow_run_from_deployment(
        &self,
        deployment: &Deployment,
        options: Option<DeploymentRunOptions>,
    ) -> Result<FlowRun> {
        let options = options.unwrap_or_default();
        let run = self.deployment_run(deployment, options);
        match crate::registry::flow(&deployment.flow_name) {
            Some(flow) => flow.validate(&run.parameters)?,
            // A program without the flow (a standalone server): the types the deployment keeps.
            None if !deployment.parameter_types.is_empty() => crate::deployment::check_parameters(
                &deployment.flow_name,
                &deployment.parameter_types,
                &run.parameters,
            )?,
            None => {}
        }
        let run = self.create_flow_run(run).await?;
        self.signals().runs_due.notify_waiters();
        Ok(run)
    }
}

impl OrionClient {
    /// Runs a finished run of a deployment again — the dashboard's Retry: it goes back to
    /// Scheduled (named AwaitingRetry), due now, for an agent to take; its state history
    /// keeps what came before. A user action, like cancelling: orchestration's rule that
    /// final states are final binds runs' own transitions, not this.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; [`Error::Aborted`] when the run is not finished or belongs to no
    /// deployment (no agent would take it); [`Error::Conflict`] when another writer moved it
    /// meanwhile; store failures.
    pub async fn retry_flow_run(&self, id: Uuid) -> Result<State> {
        let run = self
            .read_flow_run(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "flow run",
                name: id.to_string(),
            })?;
        let current = match &run.state {
            Some(s) if s.is_final() => s.clone(),
            other => {
                return Err(Error::Aborted {
                    reason: format!(
                        "only a finished run can be retried; this one is {}",
                        other.as_ref().map_or("without a state", |s| s.name())
                    ),
                });
            }
        };
        if run.deployment_id.is_none() {
            return Err(Error::Aborted {
                reason: "only a deployment's run can be retried (an agent runs it again)".into(),
            });
        }
        let now = self.now();
        let state = State::awaiting_retry(now).with_timestamp(now);
        match self
            .store()
            .set_flow_run_state(id, Some(current.id()), state.clone())
            .await?
        {
            SetState::Written => {
                self.signals().runs_due.notify_waiters();
                Ok(state)
            }
            SetState::Conflict { current } => Err(Error::Conflict {
                what: "flow run",
                id,
                current: current.map(|s| Box::new(s.without_data())),
            }),
        }
    }

    /// The flow run [`OrionClient::create_flow_run_from_deployment`] would create, not stored
    /// and not validated (the scheduler's runs: their parameters were checked on apply).
    pub(crate) fn deployment_run(
        &self,
        deployment: &Deployment,
        options: DeploymentRunOptions,
    ) -> FlowRun {
        let mut parameters = deployment.parameters.clone();
        if let Some(schedule) = options
            .schedule_index
            .and_then(|i| deployment.schedules.get(i))
        {
            parameters.extend(schedule.parameters.clone());
        }
        parameters.extend(options.parameters);
        let at = options.scheduled_time.unwrap_or_else(|| self.now());
        let flow = Flow {
            id: deployment.flow_id,
            name: deployment.flow_name.clone(),
            created: deployment.created,
        };
        let mut run = FlowRun::new(&flow, crate::run_names::random_slug());
        run.parameters = parameters;
        run.tags = deployment.tags.clone();
        for tag in options.tags {
            if !run.tags.contains(&tag) {
                run.tags.push(tag);
            }
        }
        run.deployment_id = Some(deployment.id);
        run.retry = deployment.retry.clone();
        run.work_queue_name = Some(deployment.work_queue_name.clone());
        run.auto_scheduled = options.schedule_index.is_some();
        run.idempotency_key = options.idempotency_key;
        run.created = self.now();
        run.expected_start_time = Some(at);
        run.state = Some(State::scheduled(at).with_timestamp(self.now()));
        run
    }
}

impl DeploymentSpec {
    /// The spec of a stored deployment, to change and apply again, or export.
    pub fn of(deployment: &Deployment) -> Self {
        Self::from(deployment)
    }
}
