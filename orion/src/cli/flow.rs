//! `flow ls | run`: the flows compiled into this program.

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{Cell, CliResult, Out, json_time, when};
use super::{Format, needs_flows, open, params};

/// `flow …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum FlowCommand {
    /// Lists the flows compiled into this program with their parameters (in a program with
    /// none, the flows the database knows).
    Ls {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Runs a flow here and now, printing its logs; exits 1 when the run does not complete.
    Run {
        /// The flow's name.
        name: String,
        /// A parameter, `NAME=VALUE` (VALUE read as JSON when it is JSON); repeatable.
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
        /// Parameters as one JSON object (`--param` values go over it).
        #[arg(long = "params")]
        params_json: Option<String>,
    },
}

pub(super) async fn run(cmd: FlowCommand, o: &mut Out<'_>) -> CliResult {
    match cmd {
        FlowCommand::Ls { output } => {
            let flows = crate::registry::flows();
            if flows.is_empty() {
                return stored_flows(output, o).await;
            }
            if output == Format::Json {
                let all = flows
                    .iter()
                    .map(|f| {
                        json!({
                            "name": f.name,
                            "parameters": f.parameters.iter().zip(f.parameter_types)
                                .map(|(n, t)| json!({"name": n, "type": t}))
                                .collect::<Vec<_>>(),
                            "version": f.version,
                            "description": f.description,
                            "retries": f.retries,
                            "retry_delay_seconds": f.retry_delay_seconds,
                        })
                    })
                    .collect();
                return o.json(&Value::Array(all));
            }
            let rows: Vec<Vec<Cell>> = flows
                .iter()
                .map(|f| {
                    let params: Vec<String> = f
                        .parameters
                        .iter()
                        .zip(f.parameter_types)
                        .map(|(n, t)| format!("{n}: {t}"))
                        .collect();
                    vec![
                        Cell::plain(f.name),
                        Cell::plain(params.join(", ")),
                        Cell::plain(f.description.unwrap_or_default()),
                    ]
                })
                .collect();
            o.table(&["NAME", "PARAMETERS", "DESCRIPTION"], &rows)
        }
        FlowCommand::Run {
            name,
            params,
            params_json,
        } => {
            needs_flows(o, "flow run")?;
            let flow = crate::registry::require(&name)?;
            let parameters = params::parameters(&params, params_json.as_deref())?;
            let orion = open().await?;
            let state = flow.run(&orion, Value::Object(parameters)).await?;
            orion.flush_logs().await;
            super::deployment::finished(&orion, &state, o).await
        }
    }
}

async fn stored_flows(output: Format, o: &mut Out<'_>) -> CliResult {
    let orion = open().await?;
    let flows = orion.client().read_flows().await?;
    if output == Format::Json {
        let all = flows
            .iter()
            .map(|f| json!({"id": f.id, "name": f.name, "created": json_time(Some(f.created))}))
            .collect();
        return o.json(&Value::Array(all));
    }
    o.note("This program contains no flows; these are the flows the database knows.")?;
    let rows: Vec<Vec<Cell>> = flows
        .iter()
        .map(|f| {
            vec![
                Cell::plain(f.name.clone()),
                Cell::plain(when(Some(f.created))),
                Cell::plain(f.id.to_string()),
            ]
        })
        .collect();
    o.table(&["NAME", "CREATED", "ID"], &rows)
}
