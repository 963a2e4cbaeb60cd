//! The wake-up channel: one connection per process that `LISTEN`s for notifications that
//! flow runs may be claimable and wakes this process's agents. A notification is a hint:
//! agents still poll, so a lost one (the connection down) costs at most a poll interval, and
//! every reconnection wakes them once in case one was missed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::RUNS_DUE;

/// Listens until the store is dropped (the task is aborted then), reconnecting with backoff.
pub(super) async fn run(config: Config, due: Arc<Notify>) {
    let mut pause = Duration::from_millis(100);
    loop {
        if listen_once(&config, &due).await.is_ok() {
            pause = Duration::from_millis(100);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: `Ok` once it had listened (and then ended), `Err` when it never
/// got that far.
async fn listen_once(config: &Config, due: &Notify) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, mut messages) = tokio::sync::mpsc::unbounded_channel();
    // The connection is driven here; its messages come out as a stream.
    let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let drive = async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(m) => {
                    if sender.send(m).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    };
    let listen = async {
        client.batch_execute(&format!("LISTEN {RUNS_DUE}")).await?;
        // Anything that happened while not listening went unheard: look once.
        due.notify_waiters();
        while let Some(message) = messages.recv().await {
            if let AsyncMessage::Notification(_) = message {
                due.notify_waiters();
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    };
    tokio::pin!(drive);
    tokio::select! {
        () = &mut drive => {
            // The connection ended (the server restarted, the backend was killed).
            Ok(())
        }
        listened = listen => listened,
    }
}
