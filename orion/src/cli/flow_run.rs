//! `flow-run ls | inspect | logs | cancel | delete`, by id or by name.

use std::collections::HashMap;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};
use uuid::Uuid;

use super::output::{Cell, CliResult, Failure, Out, json_time, took, when};
use super::{Format, open};
use crate::OrionClient;
use crate::state::{State, StateType};
use crate::store::{FlowRun, FlowRunFilter, LogFilter, LogLevel, Sort, TaskRun};

/// `flow-run …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum FlowRunCommand {
    /// Lists flow runs, newest first.
    Ls {
        /// Only runs of this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Only runs of this deployment (`FLOW/DEPLOYMENT`).
        #[arg(long)]
        deployment: Option<String>,
        /// Only runs in this state: a type (`Failed`, `COMPLETED`) or a name (`Late`);
        /// repeatable.
        #[arg(long)]
        state: Vec<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Shows a flow run with its state history and task runs.
    Inspect {
        /// Its id or name.
        run: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Prints a flow run's logs.
    Logs {
        /// Its id or name.
        run: String,
        /// Keep printing new lines until the run is over.
        #[arg(long, short)]
        follow: bool,
        /// Only lines at this level or above (DEBUG, INFO, WARNING, ERROR, CRITICAL).
        #[arg(long)]
        level: Option<String>,
    },
    /// Cancels a flow run: a scheduled one at once, a running one through its agent.
    Cancel {
        /// Its id or name.
        run: String,
    },
    /// Deletes a flow run with its task runs, states and logs.
    Delete {
        /// Its id or name.
        run: String,
    },
}

pub(super) async fn run(cmd: FlowRunCommand, o: &mut Out<'_>) -> CliResult {
    let orion = open().await?;
    let client = orion.client();
    match cmd {
        FlowRunCommand::Ls {
            flow,
            deployment,
            state,
            limit,
            output,
        } => {
            let mut filter = FlowRunFilter::new().sort(Sort::CreatedDesc).limit(limit);
            if let Some(flow) = flow {
                filter = filter.flow_name(flow);
            }
            if let Some(d) = deployment {
                filter = filter.deployment_id(super::deployment::find(client, &d).await?.id);
            }
            let (types, names) = states(&state);
            filter = filter.state_types(types).state_names(names);
            let runs = client.read_flow_runs(&filter).await?;
            if output == Format::Json {
                return o.json(&Value::Array(runs.iter().map(run_json).collect()));
            }
            let rows: Vec<Vec<Cell>> = runs
                .iter()
                .map(|r| {
                    let state = r.state.as_ref();
                    vec![
                        Cell::plain(r.name.clone()),
                        Cell::plain(r.flow_name.clone()),
                        Cell::state(state.map_or("", State::name), state.map(State::state_type)),
                        Cell::plain(when(r.start_time.or(r.expected_start_time))),
                        Cell::plain(took(r.start_time, r.end_time)),
                        Cell::plain(r.id.to_string()),
                    ]
                })
                .collect();
            o.table(&["NAME", "FLOW", "STATE", "START", "DURATION", "ID"], &rows)
        }
        FlowRunCommand::Inspect { run, output } => {
            let run = resolve(client, &run).await?;
            let history = client.read_flow_run_states(run.id).await?;
            let tasks = client.read_task_runs_of(run.id).await?;
            if output == Format::Json {
                let mut value = run_json(&run);
                value["state_history"] = history.iter().map(state_json).collect();
                value["task_runs"] = tasks.iter().map(task_json).collect();
                return o.json(&value);
            }
            o.line(format!("Flow run '{}' ({})", run.name, run.id))?;
            o.line(format!("  flow         {}", run.flow_name))?;
            if let Some(d) = run.deployment_id {
                o.line(format!("  deployment   {d}"))?;
            }
            if let Some(q) = &run.work_queue_name {
                o.line(format!("  work queue   {q}"))?;
            }
            o.line(format!(
                "  parameters   {}",
                Value::Object(run.parameters.clone())
            ))?;
            if !run.tags.is_empty() {
                o.line(format!("  tags         {}", run.tags.join(", ")))?;
            }
            o.line(format!(
                "  state        {}",
                run.state
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ))?;
            o.line(format!("  run count    {}", run.run_count))?;
            o.line("")?;
            o.line("State history:")?;
            let rows: Vec<Vec<Cell>> = history
                .iter()
                .map(|s| {
                    vec![
                        Cell::plain(when(Some(s.timestamp()))),
                        Cell::state(s.name(), Some(s.state_type())),
                        Cell::plain(s.message().unwrap_or_default()),
                    ]
                })
                .collect();
            o.table(&["TIME", "STATE", "MESSAGE"], &rows)?;
            if !tasks.is_empty() {
                o.line("")?;
                o.line("Task runs:")?;
                let rows: Vec<Vec<Cell>> = tasks
                    .iter()
                    .map(|t| {
                        let state = t.state.as_ref();
                        vec![
                            Cell::plain(t.name.clone()),
                            Cell::run_state(state),
                            Cell::plain(when(t.start_time)),
                            Cell::plain(took(t.start_time, t.end_time)),
                        ]
                    })
                    .collect();
                o.table(&["NAME", "STATE", "START", "DURATION"], &rows)?;
            }
            Ok(())
        }
        FlowRunCommand::Logs { run, follow, level } => {
            let run = resolve(client, &run).await?;
            let level = match level {
                Some(l) => Some(l.parse::<LogLevel>().map_err(|_| {
                    Failure::Input(format!(
                        "--level {l:?} is not DEBUG, INFO, WARNING, ERROR or CRITICAL"
                    ))
                })?),
                None => None,
            };
            logs(client, &run, follow, level, o).await
        }
        FlowRunCommand::Cancel { run } => {
            let run = resolve(client, &run).await?;
            let state = client.cancel_flow_run(run.id).await?;
            o.line(format!(
                "Flow run '{}' ({}) is now {}",
                run.name,
                run.id,
                state.name()
            ))
        }
        FlowRunCommand::Delete { run } => {
            let run = resolve(client, &run).await?;
            client
                .store()
                .delete_flow_runs(&FlowRunFilter::new().ids([run.id]))
                .await
                .map_err(crate::Error::from)?;
            o.line(format!("Deleted flow run '{}' ({})", run.name, run.id))
        }
    }
}

/// The flow run a user named: an id, or a name (an error lists the runs when several share
/// it).
pub(super) async fn resolve(client: &OrionClient, text: &str) -> CliResult<FlowRun> {
    if let Ok(id) = text.parse::<Uuid>() {
        return client
            .read_flow_run(id)
            .await?
            .ok_or_else(|| Failure::Input(format!("no flow run has the id {id}")));
    }
    let mut runs = client
        .read_flow_runs(&FlowRunFilter::new().name(text).limit(20))
        .await?;
    match runs.len() {
        0 => Err(Failure::Input(format!(
            "no flow run is named {text:?} (give a name from `flow-run ls`, or an id)"
        ))),
        1 => Ok(runs.remove(0)),
        _ => Err(Failure::Input(format!(
            "{} flow runs are named {text:?}; give one of their ids:\n{}",
            runs.len(),
            runs.iter()
                .map(|r| format!(
                    "  {}  {}  created {}",
                    r.id,
                    r.flow_name,
                    when(Some(r.created))
                ))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
    }
}

/// `--state` values split into state types and state names (the named states spelled as
/// orion spells them, whatever the case given).
fn states(given: &[String]) -> (Vec<StateType>, Vec<String>) {
    use crate::state::names::{
        AWAITING_CONCURRENCY_SLOT, AWAITING_RETRY, CACHED, LATE, RETRYING, TIMED_OUT,
    };
    const NAMES: [&str; 6] = [
        LATE,
        AWAITING_RETRY,
        AWAITING_CONCURRENCY_SLOT,
        RETRYING,
        CACHED,
        TIMED_OUT,
    ];
    let mut types = Vec::new();
    let mut names = Vec::new();
    for s in given {
        if let Some(t) = StateType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
        {
            types.push(t);
        } else if let Some(n) = NAMES.iter().find(|n| n.eq_ignore_ascii_case(s)) {
            names.push((*n).to_owned());
        } else {
            names.push(s.clone());
        }
    }
    (types, names)
}

async fn logs(
    client: &OrionClient,
    run: &FlowRun,
    follow: bool,
    level: Option<LogLevel>,
    o: &mut Out<'_>,
) -> CliResult {
    let mut filter = LogFilter::new().flow_run_id(run.id);
    if let Some(level) = level {
        filter = filter.min_level(level);
    }
    let zone = jiff::tz::TimeZone::system();
    let mut tasks: HashMap<Uuid, String> = HashMap::new();
    let mut printed = 0;
    loop {
        // Read the run's state before its logs: once it is over, the lines read after it are
        // all there will be.
        let over = client
            .read_flow_run(run.id)
            .await?
            .and_then(|r| r.state)
            .is_none_or(|s| s.is_final());
        let lines = client.read_logs(&filter).await?;
        if lines
            .iter()
            .skip(printed)
            .any(|l| l.task_run_id.is_some_and(|t| !tasks.contains_key(&t)))
        {
            tasks = client
                .read_task_runs_of(run.id)
                .await?
                .into_iter()
                .map(|t: TaskRun| (t.id, t.name))
                .collect();
        }
        for line in lines.iter().skip(printed) {
            let source = match line.task_run_id.and_then(|t| tasks.get(&t)) {
                Some(task) => format!("Task run '{task}'"),
                None => format!("Flow run '{}'", run.name),
            };
            o.line(crate::logging::format_line(
                line.timestamp,
                &zone,
                line.level,
                &source,
                &line.message,
            ))?;
        }
        printed = printed.max(lines.len());
        if !follow || over {
            return Ok(());
        }
        o.out.flush()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn state_json(s: &State) -> Value {
    json!({
        "id": s.id(),
        "type": s.state_type(),
        "name": s.name(),
        "message": s.message(),
        "timestamp": json_time(Some(s.timestamp())),
    })
}

/// A flow run as JSON, with Prefect's field names.
pub(super) fn run_json(r: &FlowRun) -> Value {
    let state = r.state.as_ref();
    json!({
        "id": r.id,
        "name": r.name,
        "flow_id": r.flow_id,
        "flow_name": r.flow_name,
        "deployment_id": r.deployment_id,
        "work_queue_name": r.work_queue_name,
        "parameters": r.parameters,
        "tags": r.tags,
        "state_type": state.map(State::state_type),
        "state_name": state.map(State::name),
        "state": state.map(state_json),
        "run_count": r.run_count,
        "auto_scheduled": r.auto_scheduled,
        "created": json_time(Some(r.created)),
        "expected_start_time": json_time(r.expected_start_time),
        "start_time": json_time(r.start_time),
        "end_time": json_time(r.end_time),
    })
}

fn task_json(t: &TaskRun) -> Value {
    let state = t.state.as_ref();
    json!({
        "id": t.id,
        "name": t.name,
        "task_key": &*t.task_key,
        "state_type": state.map(State::state_type),
        "state_name": state.map(State::name),
        "run_count": t.run_count,
        "start_time": json_time(t.start_time),
        "end_time": json_time(t.end_time),
    })
}
