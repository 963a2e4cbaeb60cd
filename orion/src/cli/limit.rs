//! `concurrency-limit create | ls | inspect | reset | delete`: task-tag limits (Prefect's
//! `concurrency-limit` commands) and named limits (`--named`, Prefect 3's global ones).

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{Cell, CliResult, Failure, Out, json_time, when};
use super::{Format, open};
use crate::store::{ConcurrencyLimit, Slot, tag_limit_name};
use crate::{ConcurrencyLimitStatus, OrionClient};

/// `concurrency-limit …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum LimitCommand {
    /// Limits the task runs carrying a tag (or, with --named, the holders of a named limit)
    /// to LIMIT at once, across every process; changes the size of an existing one.
    Create {
        /// The task tag (or, with --named, the limit's name).
        name: String,
        /// How many at once (0 makes such task runs fail at once instead of waiting).
        limit: u32,
        /// A named limit, for `orion::concurrency` and `orion::rate_limit`, not a task tag.
        #[arg(long)]
        named: bool,
        /// A rate limit: each slot taken stays taken this many seconds (implies --named).
        #[arg(long, value_name = "SECONDS")]
        per: Option<f64>,
    },
    /// Lists the limits with their slots in use and waiters.
    Ls {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Shows a limit with who holds its slots and who waits, in line order.
    Inspect {
        /// The task tag or the limit's name.
        name: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t)]
        output: Format,
    },
    /// Frees every slot of a limit and empties its line (for slots known to be stale).
    Reset {
        /// The task tag or the limit's name.
        name: String,
    },
    /// Deletes a limit: what it limited is no longer limited.
    Delete {
        /// The task tag or the limit's name.
        name: String,
    },
}

pub(super) async fn run(cmd: LimitCommand, o: &mut Out<'_>) -> CliResult {
    let orion = open().await?;
    let client = orion.client();
    match cmd {
        LimitCommand::Create {
            name,
            limit,
            named,
            per,
        } => {
            let per = per
                .map(|s| {
                    std::time::Duration::try_from_secs_f64(s)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            Failure::Input(format!(
                                "--per {s}: must be a number of seconds above zero"
                            ))
                        })
                })
                .transpose()?;
            let stored = if named || per.is_some() {
                let limit = ConcurrencyLimit::new(name, limit, client.now()).per(per);
                client.upsert_concurrency_limit(limit).await?
            } else {
                client.set_concurrency_limit(&name, limit).await?
            };
            o.line(format!(
                "Concurrency limit '{}' is now {}",
                stored.name,
                size(&stored)
            ))
        }
        LimitCommand::Ls { output } => {
            let mut statuses = Vec::new();
            for limit in client.read_concurrency_limits().await? {
                statuses.push(client.read_concurrency_limit(&limit.name).await?);
            }
            if output == Format::Json {
                return o.json(&Value::Array(statuses.iter().map(status_json).collect()));
            }
            let rows: Vec<Vec<Cell>> = statuses
                .iter()
                .map(|s| {
                    let (kind, name) = kind_and_name(&s.limit);
                    vec![
                        Cell::plain(name),
                        Cell::plain(kind),
                        Cell::plain(size(&s.limit)),
                        Cell::plain(s.active_slots().to_string()),
                        Cell::plain(s.waiters.len().to_string()),
                    ]
                })
                .collect();
            o.table(&["NAME", "KIND", "LIMIT", "ACTIVE", "WAITING"], &rows)
        }
        LimitCommand::Inspect { name, output } => {
            let status = client
                .read_concurrency_limit(&resolve(client, &name).await?)
                .await?;
            if output == Format::Json {
                return o.json(&status_json(&status));
            }
            let l = &status.limit;
            let (kind, shown) = kind_and_name(l);
            o.line(format!("Concurrency limit '{shown}' ({kind}, {})", l.id))?;
            o.line(format!("  limit     {}", size(l)))?;
            o.line(format!("  active    {}", status.active_slots()))?;
            o.line(format!("  waiting   {}", status.waiters.len()))?;
            if !status.holders.is_empty() || !status.waiters.is_empty() {
                o.line("")?;
                let rows: Vec<Vec<Cell>> = status
                    .holders
                    .iter()
                    .chain(&status.waiters)
                    .map(|s| {
                        vec![
                            Cell::plain(if s.waiting { "waiting" } else { "holding" }),
                            Cell::plain(s.holder_name.clone()),
                            Cell::plain(when(Some(s.since))),
                            Cell::plain(s.lease.owner_name.clone()),
                            Cell::plain(when(Some(s.lease.expires))),
                        ]
                    })
                    .collect();
                o.table(&["", "HOLDER", "SINCE", "PROCESS", "LEASE UNTIL"], &rows)?;
            }
            Ok(())
        }
        LimitCommand::Reset { name } => {
            let name = resolve(client, &name).await?;
            let dropped = client.reset_concurrency_limit(&name).await?;
            o.line(format!(
                "Reset concurrency limit '{name}': {dropped} slot(s) and place(s) in line freed"
            ))
        }
        LimitCommand::Delete { name } => {
            let name = resolve(client, &name).await?;
            client.delete_concurrency_limit(&name).await?;
            o.line(format!("Deleted concurrency limit '{name}'"))
        }
    }
}

/// The stored name for what the user typed: a name as stored, else a task tag's limit.
async fn resolve(client: &OrionClient, given: &str) -> CliResult<String> {
    for name in [given.to_owned(), tag_limit_name(given)] {
        let stored = client.store().read_concurrency_limit(&name).await;
        if stored.map_err(crate::Error::from)?.is_some() {
            return Ok(name);
        }
    }
    Err(Failure::Input(format!(
        "no concurrency limit named {given:?} (nor one on the task tag {given:?}): see `concurrency-limit ls`"
    )))
}

fn kind_and_name(limit: &ConcurrencyLimit) -> (&'static str, String) {
    match (limit.tag(), limit.per) {
        (Some(tag), _) => ("tag", tag.to_owned()),
        (None, Some(_)) => ("rate", limit.name.clone()),
        (None, None) => ("named", limit.name.clone()),
    }
}

fn size(limit: &ConcurrencyLimit) -> String {
    match limit.per {
        Some(per) => format!("{} per {} s", limit.limit, per.as_secs_f64()),
        None => limit.limit.to_string(),
    }
}

fn slot_json(s: &Slot) -> Value {
    json!({
        "holder_id": s.holder,
        "holder": s.holder_name,
        "occupy": s.occupy,
        "since": json_time(Some(s.since)),
        "process": s.lease.owner_name,
        "lease_expires": json_time(Some(s.lease.expires)),
    })
}

/// A limit as JSON (Prefect's `concurrency_limit`, `active_slots` names).
fn status_json(s: &ConcurrencyLimitStatus) -> Value {
    let (kind, name) = kind_and_name(&s.limit);
    json!({
        "id": s.limit.id,
        "name": s.limit.name,
        "tag": s.limit.tag(),
        "kind": kind,
        "display_name": name,
        "concurrency_limit": s.limit.limit,
        "slot_decay_seconds": s.limit.per.map(|d| d.as_secs_f64()),
        "active_slots": s.holders.iter().map(slot_json).collect::<Vec<_>>(),
        "waiting": s.waiters.iter().map(slot_json).collect::<Vec<_>>(),
        "created": json_time(Some(s.limit.created)),
        "updated": json_time(Some(s.limit.updated)),
    })
}
