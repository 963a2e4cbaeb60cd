//! `deployment create | ls | inspect | run | execute | pause | resume | delete | schedule`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{Cell, CliResult, Failure, Out, json_time, when};
use super::{Cli, Format, needs_flows, open, params};
use crate::deployment::{DeploymentRunOptions, DeploymentSpec};
use crate::store::{Deployment, DeploymentFilter, FlowRunFilter, Sort};
use crate::{Orion, OrionClient};

/// `deployment …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum DeploymentCommand {
    /// Creates or updates deployments, all or nothing: the ones this program declares, or
    /// those in YAML/JSON spec files.
    Create {
        /// Spec files (none: the program's own declared deployments).
        files: Vec<std::path::PathBuf>,
    },
    /// Lists deployments.
    Ls {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Shows one deployment.
    Inspect {
        /// `FLOW/DEPLOYMENT`, or its id.
        name: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Creates a run of a deployment for an agent to pick up; prints its name and id.
    Run {
        /// `FLOW/DEPLOYMENT`, or its id.
        name: String,
        /// A parameter, `NAME=VALUE` (VALUE read as JSON when it is JSON); repeatable.
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
        /// Parameters as one JSON object (`--param` values go over it).
        #[arg(long = "params")]
        params_json: Option<String>,
        /// Start after this long (`30s`, `10m`, `1h30m`).
        #[arg(long)]
        start_in: Option<String>,
        /// Start at this time (RFC 3339).
        #[arg(long)]
        start_at: Option<String>,
        /// A tag added to the deployment's; repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Runs a deployment here and now with its parameters, printing its logs; exits 1 when
    /// the run does not complete.
    Execute {
        /// `FLOW/DEPLOYMENT`, or its id.
        name: String,
    },
    /// Pauses a deployment's schedules (its scheduled runs are removed).
    Pause {
        /// `FLOW/DEPLOYMENT`, or its id.
        name: String,
    },
    /// Resumes a paused deployment.
    Resume {
        /// `FLOW/DEPLOYMENT`, or its id.
        name: String,
    },
    /// Deletes a deployment (its runs stay).
    Delete {
        /// `FLOW/DEPLOYMENT`, or its id.
        name: String,
    },
    /// A deployment's schedules.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
}

/// `deployment schedule …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum ScheduleCommand {
    /// Lists a deployment's schedules.
    Ls {
        /// `FLOW/DEPLOYMENT`, or its id.
        name: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// The next dates of a deployment's active schedules, and its runs already scheduled.
    Preview {
        /// `FLOW/DEPLOYMENT`, or its id.
        name: String,
        /// How many dates.
        #[arg(short = 'n', long = "count", default_value_t = 10)]
        n: usize,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
}

pub(super) async fn run(cli: &Cli, cmd: DeploymentCommand, o: &mut Out<'_>) -> CliResult {
    match cmd {
        DeploymentCommand::Create { files } => create(cli, files, o).await,
        DeploymentCommand::Ls { output } => {
            let orion = open().await?;
            let all = orion
                .client()
                .read_deployments(&DeploymentFilter::default())
                .await?;
            if output == Format::Json {
                return o.json(&Value::Array(all.iter().map(deployment_json).collect()));
            }
            let rows: Vec<Vec<Cell>> = all
                .iter()
                .map(|d| {
                    vec![
                        Cell::plain(d.full_name()),
                        Cell::plain(d.work_queue_name.clone()),
                        Cell::plain(schedules_text(d)),
                        Cell::plain(if d.paused { "paused" } else { "active" }),
                        Cell::plain(d.id.to_string()),
                    ]
                })
                .collect();
            o.table(&["NAME", "WORK QUEUE", "SCHEDULES", "STATUS", "ID"], &rows)
        }
        DeploymentCommand::Inspect { name, output } => {
            let orion = open().await?;
            let d = find(orion.client(), &name).await?;
            if output == Format::Json {
                return o.json(&deployment_json(&d));
            }
            let yaml = DeploymentSpec::from(&d)
                .to_yaml()
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            o.line(format!("# {} ({})", d.full_name(), d.id))?;
            o.line(yaml.trim_end())
        }
        DeploymentCommand::Run {
            name,
            params,
            params_json,
            start_in,
            start_at,
            tags,
            output,
        } => {
            let parameters = params::parameters(&params, params_json.as_deref())?;
            let orion = open().await?;
            let client = orion.client();
            let d = find(client, &name).await?;
            let mut options = DeploymentRunOptions::new()
                .parameters(Value::Object(parameters))
                .tags(tags);
            if let Some(at) =
                params::start_time(start_in.as_deref(), start_at.as_deref(), client.now())?
            {
                options = options.scheduled_time(at);
            }
            let run = client
                .create_flow_run_from_deployment(&d, Some(options))
                .await?;
            if output == Format::Json {
                return o.json(&super::flow_run::run_json(&run));
            }
            o.line(format!(
                "Created flow run '{}' ({}) of deployment '{}', scheduled for {}",
                run.name,
                run.id,
                d.full_name(),
                when(run.expected_start_time)
            ))
        }
        DeploymentCommand::Execute { name } => {
            needs_flows(o, "deployment execute")?;
            let orion = open().await?;
            let d = find(orion.client(), &name).await?;
            let state = orion.execute_deployment(&d.full_name()).await?;
            orion.flush_logs().await;
            finished(&orion, &state, o).await
        }
        DeploymentCommand::Pause { name } => {
            let orion = open().await?;
            let client = orion.client();
            let d = find(client, &name).await?;
            client.pause_deployment(d.id).await?;
            o.line(format!("Paused deployment '{}'", d.full_name()))
        }
        DeploymentCommand::Resume { name } => {
            let orion = open().await?;
            let client = orion.client();
            let d = find(client, &name).await?;
            client.resume_deployment(d.id).await?;
            o.line(format!("Resumed deployment '{}'", d.full_name()))
        }
        DeploymentCommand::Delete { name } => {
            let orion = open().await?;
            let client = orion.client();
            let d = find(client, &name).await?;
            client.delete_deployment(d.id).await?;
            o.line(format!("Deleted deployment '{}'", d.full_name()))
        }
        DeploymentCommand::Schedule(cmd) => schedule(cmd, o).await,
    }
}

/// Prints how a run that ran here ended; a run that did not complete is a failure (exit 1).
pub(super) async fn finished(orion: &Orion, state: &crate::State, o: &mut Out<'_>) -> CliResult {
    let id = state.details().flow_run_id;
    let name = match id {
        Some(id) => orion.client().read_flow_run(id).await?.map(|r| r.name),
        None => None,
    };
    let which = match (name, id) {
        (Some(n), Some(id)) => format!("Flow run '{n}' ({id})"),
        _ => "The flow run".to_owned(),
    };
    if state.is_completed() {
        o.line(format!("{which} finished in state {state}"))
    } else {
        Err(Failure::Runtime(format!(
            "{which} finished in state {state}"
        )))
    }
}

async fn create(cli: &Cli, files: Vec<std::path::PathBuf>, o: &mut Out<'_>) -> CliResult {
    let mut specs = Vec::new();
    if files.is_empty() {
        if cli.deployments.is_empty() {
            needs_flows(o, "deployment create without a spec file")?;
            return Err(Failure::Input(
                "this program declares no deployments: give spec files, or declare them with \
                 orion::cli::Cli::new().deployment(DeploymentSpec::new(…))"
                    .into(),
            ));
        }
        o.line(format!(
            "Loading deployments from program '{}'...",
            o.program
        ))?;
        specs.extend(cli.deployments.iter().cloned());
    } else {
        for file in &files {
            let kind = match file.extension().and_then(|e| e.to_str()) {
                Some("json") => "JSON",
                _ => "YAML",
            };
            o.line(format!(
                "Loading deployments from {kind} file '{}'...",
                file.display()
            ))?;
            specs.extend(DeploymentSpec::from_path(file).map_err(crate::Error::from)?);
        }
    }
    let orion = open().await?;
    let client = orion.client();
    let mut existed = Vec::with_capacity(specs.len());
    for spec in &specs {
        existed.push(exists(client, spec).await?);
    }
    let applied = DeploymentSpec::apply_all(specs, client).await?;
    for (d, existed) in applied.iter().zip(existed) {
        o.line(format!(
            "{} deployment '{}' for flow '{}'",
            if existed { "Updated" } else { "Created" },
            d.name,
            d.flow_name
        ))?;
    }
    Ok(())
}

async fn exists(client: &OrionClient, spec: &DeploymentSpec) -> CliResult<bool> {
    let Some(flow) = spec.flow_name.as_deref() else {
        return Ok(false);
    };
    match client
        .read_deployment_by_name(&format!("{flow}/{}", spec.name()))
        .await
    {
        Ok(_) => Ok(true),
        Err(crate::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn schedule(cmd: ScheduleCommand, o: &mut Out<'_>) -> CliResult {
    let orion = open().await?;
    let client = orion.client();
    match cmd {
        ScheduleCommand::Ls { name, output } => {
            let d = find(client, &name).await?;
            if output == Format::Json {
                return o.json(&Value::Array(
                    d.schedules.iter().map(schedule_json).collect(),
                ));
            }
            let rows: Vec<Vec<Cell>> = d
                .schedules
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    vec![
                        Cell::plain(i.to_string()),
                        Cell::plain(schedule_text(&s.schedule)),
                        Cell::plain(if s.active { "active" } else { "inactive" }),
                        Cell::plain(Value::Object(s.parameters.clone()).to_string()),
                    ]
                })
                .collect();
            o.table(&["#", "SCHEDULE", "STATUS", "PARAMETERS"], &rows)
        }
        ScheduleCommand::Preview { name, n, output } => {
            let d = find(client, &name).await?;
            let now = client.now();
            let mut dates: Vec<(jiff::Zoned, usize)> = Vec::new();
            for (i, s) in d.schedules.iter().enumerate().filter(|(_, s)| s.active) {
                dates.extend(s.schedule.iter_from(now).take(n).map(|z| (z, i)));
            }
            dates.sort_by_key(|(z, _)| z.timestamp());
            dates.dedup_by_key(|(z, _)| z.timestamp());
            dates.truncate(n);
            let scheduled = client
                .read_flow_runs(
                    &FlowRunFilter::new()
                        .deployment_id(d.id)
                        .state_types([crate::state::StateType::Scheduled])
                        .sort(Sort::ExpectedStartAsc)
                        .limit(n),
                )
                .await?;
            if output == Format::Json {
                return o.json(&json!({
                    "deployment": d.full_name(),
                    "paused": d.paused,
                    "next_dates": dates.iter().map(|(z, i)| json!({
                        "time": z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                        "schedule_index": i,
                    })).collect::<Vec<_>>(),
                    "scheduled_runs": scheduled.iter().map(super::flow_run::run_json).collect::<Vec<_>>(),
                }));
            }
            if d.paused {
                o.line("The deployment is paused: no runs are created for these dates.")?;
            }
            for (z, i) in &dates {
                o.line(format!(
                    "{}  schedule {i}",
                    z.strftime("%Y-%m-%dT%H:%M:%S%:z")
                ))?;
            }
            if !scheduled.is_empty() {
                o.line("")?;
                o.line(format!("Runs already scheduled ({}):", scheduled.len()))?;
                for r in &scheduled {
                    o.line(format!(
                        "{}  {}  {}",
                        when(r.expected_start_time),
                        r.name,
                        r.id
                    ))?;
                }
            }
            Ok(())
        }
    }
}

/// The deployment a user named: `FLOW/DEPLOYMENT`, or its id.
pub(super) async fn find(client: &OrionClient, text: &str) -> CliResult<Deployment> {
    if let Ok(id) = text.parse::<uuid::Uuid>() {
        return client
            .read_deployment(id)
            .await?
            .ok_or_else(|| Failure::Input(format!("no deployment has the id {id}")));
    }
    Ok(client.read_deployment_by_name(text).await?)
}

fn schedule_text(s: &crate::schedule::Schedule) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn schedules_text(d: &Deployment) -> String {
    d.schedules
        .iter()
        .filter(|s| s.active)
        .map(|s| schedule_text(&s.schedule))
        .collect::<Vec<_>>()
        .join(", ")
}

fn schedule_json(s: &crate::store::DeploymentSchedule) -> Value {
    json!({
        "schedule": s.schedule,
        "active": s.active,
        "parameters": s.parameters,
    })
}

/// A deployment as JSON, with Prefect's field names.
pub(super) fn deployment_json(d: &Deployment) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "flow_id": d.flow_id,
        "flow_name": d.flow_name,
        "full_name": d.full_name(),
        "description": d.description,
        "version": d.version,
        "tags": d.tags,
        "parameters": d.parameters,
        "schedules": d.schedules.iter().map(schedule_json).collect::<Vec<_>>(),
        "work_queue_name": d.work_queue_name,
        "paused": d.paused,
        "concurrency_limit": d.concurrency.map(|c| c.limit),
        "concurrency_options": d.concurrency.map(|c| json!({"collision_strategy": c.collision})),
        "created": json_time(Some(d.created)),
        "updated": json_time(Some(d.updated)),
    })
}
