//! `work-queue create | ls | inspect | preview | pause | resume | set-concurrency-limit |
//! clear-concurrency-limit | delete`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{Cell, CliResult, Failure, Out, json_time, when};
use super::{Format, open};
use crate::store::WorkQueue;

/// `work-queue …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum WorkQueueCommand {
    /// Creates a work queue.
    Create {
        /// Its name.
        name: String,
        /// Hand out only runs carrying this tag; repeatable.
        #[arg(long = "tag", short = 't')]
        tags: Vec<String>,
        /// At most this many of its runs claimed or running at once.
        #[arg(long, short = 'l')]
        limit: Option<u32>,
        /// Its place in an agent's order: lower first.
        #[arg(long, short = 'p', default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// A description.
        #[arg(long, short = 'd')]
        description: Option<String>,
    },
    /// Lists work queues by priority.
    Ls {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Shows a work queue with its run counts and last poll.
    Inspect {
        /// Its name.
        name: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// The runs a work queue would hand out next, in order.
    Preview {
        /// Its name.
        name: String,
        /// At most this many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Pauses a work queue: it hands out nothing.
    Pause {
        /// Its name.
        name: String,
    },
    /// Resumes a paused work queue.
    Resume {
        /// Its name.
        name: String,
    },
    /// Limits how many of its runs are claimed or running at once.
    SetConcurrencyLimit {
        /// Its name.
        name: String,
        /// The limit.
        limit: u32,
    },
    /// Removes a work queue's concurrency limit.
    ClearConcurrencyLimit {
        /// Its name.
        name: String,
    },
    /// Deletes a work queue (`default` cannot be deleted).
    Delete {
        /// Its name.
        name: String,
    },
}

pub(super) async fn run(cmd: WorkQueueCommand, o: &mut Out<'_>) -> CliResult {
    let orion = open().await?;
    let client = orion.client();
    match cmd {
        WorkQueueCommand::Create {
            name,
            tags,
            limit,
            priority,
            description,
        } => {
            if client.read_work_queue(&name).await.is_ok() && name != WorkQueue::DEFAULT {
                return Err(Failure::Input(format!(
                    "work queue {name:?} already exists"
                )));
            }
            let mut queue = WorkQueue::new(name, client.now())
                .tags(tags)
                .concurrency_limit(limit)
                .priority(priority);
            if let Some(d) = description {
                queue = queue.description(d);
            }
            let q = client.upsert_work_queue(queue).await?;
            o.line(format!("Created work queue '{}' ({})", q.name, q.id))
        }
        WorkQueueCommand::Ls { output } => {
            let queues = client.read_work_queues().await?;
            if output == Format::Json {
                return o.json(&Value::Array(queues.iter().map(queue_json).collect()));
            }
            let rows: Vec<Vec<Cell>> = queues
                .iter()
                .map(|q| {
                    vec![
                        Cell::plain(q.name.clone()),
                        Cell::plain(q.priority.to_string()),
                        Cell::plain(
                            q.concurrency_limit
                                .map(|l| l.to_string())
                                .unwrap_or_default(),
                        ),
                        Cell::plain(if q.paused { "paused" } else { "active" }),
                        Cell::plain(q.tags.join(", ")),
                        Cell::plain(when(q.last_polled)),
                    ]
                })
                .collect();
            o.table(
                &["NAME", "PRIORITY", "LIMIT", "STATUS", "TAGS", "LAST POLLED"],
                &rows,
            )
        }
        WorkQueueCommand::Inspect { name, output } => {
            let status = client.work_queue_status(&name).await?;
            let q = &status.queue;
            if output == Format::Json {
                let mut value = queue_json(q);
                value["late_runs"] = json!(status.late_runs);
                value["active_runs"] = json!(status.active_runs);
                value["scheduled_runs"] = json!(status.scheduled_runs);
                return o.json(&value);
            }
            o.line(format!("Work queue '{}' ({})", q.name, q.id))?;
            o.line(format!("  priority        {}", q.priority))?;
            o.line(format!(
                "  limit           {}",
                q.concurrency_limit
                    .map_or_else(|| "none".into(), |l| l.to_string())
            ))?;
            o.line(format!("  paused          {}", q.paused))?;
            o.line(format!("  tags            {}", q.tags.join(", ")))?;
            o.line(format!("  scheduled runs  {}", status.scheduled_runs))?;
            o.line(format!("  late runs       {}", status.late_runs))?;
            o.line(format!("  active runs     {}", status.active_runs))?;
            o.line(format!(
                "  last polled     {} {}",
                when(q.last_polled),
                q.last_polled_by
                    .as_deref()
                    .map(|a| format!("by {a}"))
                    .unwrap_or_default()
            ))
        }
        WorkQueueCommand::Preview {
            name,
            limit,
            output,
        } => {
            let runs = client.preview_work_queue(&name, limit).await?;
            if output == Format::Json {
                return o.json(&Value::Array(
                    runs.iter().map(super::flow_run::run_json).collect(),
                ));
            }
            let rows: Vec<Vec<Cell>> = runs
                .iter()
                .map(|r| {
                    vec![
                        Cell::plain(when(r.expected_start_time)),
                        Cell::plain(r.name.clone()),
                        Cell::plain(r.flow_name.clone()),
                        Cell::plain(r.id.to_string()),
                    ]
                })
                .collect();
            o.table(&["SCHEDULED", "NAME", "FLOW", "ID"], &rows)
        }
        WorkQueueCommand::Pause { name } => {
            client.pause_work_queue(&name).await?;
            o.line(format!("Paused work queue '{name}'"))
        }
        WorkQueueCommand::Resume { name } => {
            client.resume_work_queue(&name).await?;
            o.line(format!("Resumed work queue '{name}'"))
        }
        WorkQueueCommand::SetConcurrencyLimit { name, limit } => {
            let q = client.read_work_queue(&name).await?;
            client
                .upsert_work_queue(q.concurrency_limit(Some(limit)))
                .await?;
            o.line(format!(
                "Work queue '{name}' now runs at most {limit} at once"
            ))
        }
        WorkQueueCommand::ClearConcurrencyLimit { name } => {
            let q = client.read_work_queue(&name).await?;
            client.upsert_work_queue(q.concurrency_limit(None)).await?;
            o.line(format!("Work queue '{name}' has no concurrency limit"))
        }
        WorkQueueCommand::Delete { name } => {
            if client.delete_work_queue(&name).await? {
                o.line(format!("Deleted work queue '{name}'"))
            } else {
                Err(Failure::Input(format!("work queue {name:?} not found")))
            }
        }
    }
}

/// A work queue as JSON, with Prefect's field names.
fn queue_json(q: &WorkQueue) -> Value {
    json!({
        "id": q.id,
        "name": q.name,
        "description": q.description,
        "is_paused": q.paused,
        "concurrency_limit": q.concurrency_limit,
        "priority": q.priority,
        "tags": q.tags,
        "created": json_time(Some(q.created)),
        "last_polled": json_time(q.last_polled),
        "last_polled_by": q.last_polled_by,
    })
}
