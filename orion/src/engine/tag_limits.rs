//! Task-tag concurrency limits in the engine: before each attempt, a task run takes a slot
//! of the limit of each of its tags, all or none; while one is full it waits in state
//! `AwaitingConcurrencySlot`, holding nothing, and a release in this runtime wakes the first
//! in line at once. The slots are released when the attempt ends, however it ends.

use std::time::Duration;

use super::context::{Children, TaskRunContext};
use super::task_run::{propose_end, propose_until_set};
use crate::OrionClient;
use crate::client::{RunRef, SlotAsk, SlotHold, SlotLine};
use crate::orchestration::RetryPolicy;
use crate::state::State;
use crate::store::{Acquired, LogLevel, tag_limit_name};

/// Who asks for slots, and how to tell its story.
pub(crate) struct Asker<'a> {
    pub(crate) client: &'a OrionClient,
    pub(crate) info: &'a TaskRunContext,
    pub(crate) retry: &'a RetryPolicy,
    /// Its flow run's children: cancelled with the flow, which ends the wait.
    pub(crate) cancel: Option<&'a Children>,
    pub(crate) log: &'a (dyn Fn(LogLevel, String) + Send + Sync),
}

/// Takes the slots of `tags` for the attempt about to start. `Err` is the state the run
/// ended in instead (a limit of 0, its flow cancelled while it waited, a store failure),
/// already recorded.
pub(crate) async fn take(
    asker: Asker<'_>,
    tags: &[String],
    current: &mut State,
) -> Result<Option<SlotHold>, State> {
    let Asker {
        client,
        info,
        retry,
        cancel,
        log,
    } = asker;
    if tags.is_empty() {
        return Ok(None);
    }
    // A retry waits out its delay first: no slot is held while nothing runs.
    if let Some(at) = current
        .details()
        .scheduled_time
        .filter(|_| current.is_scheduled())
    {
        if let Ok(wait) = Duration::try_from(client.now().duration_until(at)) {
            tokio::time::sleep(wait).await;
        }
    }
    let ask = SlotAsk {
        limits: tags.iter().map(|t| tag_limit_name(t)).collect(),
        holder: info.id,
        holder_name: format!("task run '{}'", info.name),
        occupy: 1,
        create: None,
    };
    let mut line = SlotLine::new(client, &ask);
    let mut waiting = false;
    let ended = loop {
        let asked = line.asking();
        let full = match client.try_take_slots(&ask).await {
            Ok(Acquired::Granted { slots, .. }) => {
                line.settle();
                return Ok((!slots.is_empty()).then(|| client.hold(info.id)));
            }
            Ok(Acquired::Refused { limit, size }) => {
                break State::failed(format!(
                    "Concurrency limit for the '{}' tag is {size}: the task run can never start. Raise the limit or delete it.",
                    limit.strip_prefix("tag:").unwrap_or(&limit)
                ));
            }
            Ok(full) => {
                line.join();
                full
            }
            Err(e) => break State::crashed(format!("could not take a concurrency slot: {e}")),
        };
        if let (false, Acquired::Full { limit, size, .. }) = (waiting, &full) {
            waiting = true;
            let tag = limit.strip_prefix("tag:").unwrap_or(limit);
            let message = format!(
                "Concurrency limit for the '{tag}' tag ({size}) reached: waiting for a slot."
            );
            log(LogLevel::Info, message.clone());
            let proposed = State::awaiting_concurrency_slot().with_message(message);
            let run = RunRef::task(info.id, Some(current), info.run_count, retry);
            match propose_until_set(client, run, proposed).await {
                Ok(state) => *current = state,
                Err(e) => break State::crashed(format!("could not wait for a slot: {e}")),
            }
            if !current.is_scheduled() {
                // Moved by someone else meanwhile: no attempt.
                line.settle();
                client.release_slots(info.id).await.ok();
                return Err(current.clone());
            }
        }
        match cancel {
            Some(children) => tokio::select! {
                () = line.turn(&full, asked) => {}
                () = children.cancelled() => {
                    break State::cancelled("The parent flow run was cancelled or timed out.");
                }
            },
            None => line.turn(&full, asked).await,
        }
    };
    line.settle();
    client.release_slots(info.id).await.ok();
    let run = RunRef::task(info.id, Some(current), info.run_count, retry);
    let ended = propose_end(client, run, ended, "task run").await;
    *current = ended.clone();
    Err(ended)
}
