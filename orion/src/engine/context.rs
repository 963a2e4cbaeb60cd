//! The run context: which flow run or task run the current code executes in.
//!
//! Async code finds it in a tokio task-local; synchronous task bodies on the blocking pool in
//! a thread-local set around them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use super::runner::TaskRunner;
use crate::Orion;
use crate::logging;
use crate::store::{LogLevel, LogRecord};

tokio::task_local! {
    static CURRENT: RunCtx;
}

thread_local! {
    static SYNC_CURRENT: RefCell<Option<RunCtx>> = const { RefCell::new(None) };
}

/// The run the current code belongs to.
#[derive(Clone)]
pub(crate) enum RunCtx {
    Flow(Arc<FlowRunCtx>),
    Task(Arc<TaskRunCtx>),
}

/// Facts about the flow run that is executing, as flow code and cache key functions see them.
#[derive(Debug, Clone)]
pub struct FlowRunContext {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) flow_name: &'static str,
}

impl FlowRunContext {
    /// The flow run's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// The flow run's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The flow's name.
    pub fn flow_name(&self) -> &'static str {
        self.flow_name
    }
}

/// Facts about the task run that is executing, as task code and cache key functions see them.
#[derive(Debug, Clone)]
pub struct TaskRunContext {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) task_name: &'static str,
    pub(crate) task_key: Arc<str>,
    pub(crate) flow_run_id: Option<Uuid>,
    pub(crate) run_count: u32,
}

impl TaskRunContext {
    /// The task run's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// The task run's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The task's name.
    pub fn task_name(&self) -> &'static str {
        self.task_name
    }
    /// The task's identity, `"{name}-{8 hex}"`: its name and a stable hash of where the
    /// function is defined, so two different functions with the same name have different
    /// keys. Task-run names start with it; a cache key function should include it so that
    /// another task's cached result is never taken.
    pub fn task_key(&self) -> &str {
        &self.task_key
    }
    /// The flow run it runs in, if any.
    pub fn flow_run_id(&self) -> Option<Uuid> {
        self.flow_run_id
    }
    /// Which attempt this is: 1 on the first run, 2 on the first retry.
    pub fn run_count(&self) -> u32 {
        self.run_count
    }
}

pub(crate) struct FlowRunCtx {
    pub(crate) orion: Orion,
    pub(crate) info: FlowRunContext,
    pub(crate) source: String,
    pub(crate) runner: RunnerHandle,
    pub(crate) children: Arc<Children>,
    counters: Mutex<Vec<(usize, u32)>>,
    /// Where the flow body last panicked, noted by the panic hook.
    pub(crate) panic_at: PanicAt,
}

pub(crate) struct TaskRunCtx {
    pub(crate) orion: Orion,
    pub(crate) flow: Option<Arc<FlowRunCtx>>,
    pub(crate) info: TaskRunContext,
    pub(crate) source: String,
    /// Where the task body panicked, noted by the panic hook.
    pub(crate) panic_at: PanicAt,
}

/// The location of a run body's last panic.
#[derive(Default)]
pub(crate) struct PanicAt(Mutex<Option<String>>);

impl PanicAt {
    /// Takes the noted location.
    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl FlowRunCtx {
    pub(crate) fn new(orion: Orion, info: FlowRunContext, runner: TaskRunner) -> Self {
        FlowRunCtx {
            source: format!("Flow run '{}'", info.name),
            orion,
            info,
            runner: RunnerHandle::new(runner),
            children: Arc::default(),
            counters: Mutex::new(Vec::new()),
            panic_at: PanicAt::default(),
        }
    }

    /// The next call counter for the task identified by `key` in this flow run.
    pub(crate) fn next_dynamic_key(&self, key: usize) -> u32 {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        match counters.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                counters.push((key, 1));
                0
            }
        }
    }

    pub(crate) fn log(&self, level: LogLevel, message: String) {
        emit(
            &self.orion,
            level,
            "orion.flow_runs".into(),
            &self.source,
            message,
            Some(self.info.id),
            None,
        );
    }
}

impl RunCtx {
    /// Notes where this run's body panicked (called by the panic hook).
    pub(crate) fn note_panic(&self, location: Option<String>) {
        let at = match self {
            RunCtx::Flow(f) => &f.panic_at,
            RunCtx::Task(t) => &t.panic_at,
        };
        // `try_lock`: a panic while the slot is held must not deadlock the hook.
        if let Ok(mut slot) = at.0.try_lock() {
            *slot = location;
        }
    }

    pub(crate) fn orion(&self) -> &Orion {
        match self {
            RunCtx::Flow(f) => &f.orion,
            RunCtx::Task(t) => &t.orion,
        }
    }

    /// The flow run this code is part of, directly or through a task run.
    pub(crate) fn flow(&self) -> Option<&Arc<FlowRunCtx>> {
        match self {
            RunCtx::Flow(f) => Some(f),
            RunCtx::Task(t) => t.flow.as_ref(),
        }
    }

    pub(crate) fn log(&self, level: LogLevel, target: Option<&'static str>, message: String) {
        match self {
            RunCtx::Flow(f) => {
                let name = target.map_or(Cow::Borrowed("orion.flow_runs"), Cow::Borrowed);
                emit(
                    &f.orion,
                    level,
                    name,
                    &f.source,
                    message,
                    Some(f.info.id),
                    None,
                );
            }
            RunCtx::Task(t) => {
                let name = target.map_or(Cow::Borrowed("orion.task_runs"), Cow::Borrowed);
                emit(
                    &t.orion,
                    level,
                    name,
                    &t.source,
                    message,
                    t.info.flow_run_id,
                    Some(t.info.id),
                );
            }
        }
    }

    pub(crate) fn flow_run_context(&self) -> Option<FlowRunContext> {
        self.flow().map(|f| f.info.clone())
    }

    pub(crate) fn task_run_context(&self) -> Option<TaskRunContext> {
        match self {
            RunCtx::Task(t) => Some(t.info.clone()),
            RunCtx::Flow(_) => None,
        }
    }
}

/// Prints and stores one log line, as the settings ask.
pub(crate) fn emit(
    orion: &Orion,
    level: LogLevel,
    name: Cow<'static, str>,
    source: &str,
    message: String,
    flow_run_id: Option<Uuid>,
    task_run_id: Option<Uuid>,
) {
    let timestamp = Timestamp::now();
    if logging::should_print(level) {
        logging::print(timestamp, level, source, &message);
    }
    if logging::should_store(level) {
        let schedule = orion.logs().push(LogRecord {
            name,
            level,
            message,
            timestamp,
            flow_run_id,
            task_run_id,
        });
        if schedule {
            orion.write_logs_soon();
        }
    }
}

/// The current run, if any.
pub(crate) fn current() -> Option<RunCtx> {
    CURRENT
        .try_with(RunCtx::clone)
        .ok()
        .or_else(|| SYNC_CURRENT.with(|c| c.borrow().clone()))
}

/// Whether code is running inside a flow run or task run.
pub(crate) fn in_run() -> bool {
    CURRENT.try_with(|_| ()).is_ok() || SYNC_CURRENT.with(|c| c.borrow().is_some())
}

/// Runs `fut` as part of `ctx`, with run-log capture of `tracing` events.
pub(crate) fn scope<F: Future + Unpin>(ctx: RunCtx, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(ctx, logging::Captured(fut))
}

/// Runs the synchronous `f` as part of `ctx` on this thread, with run-log capture of
/// `tracing` events; other events go on to `outer` (the default where the run was started,
/// see [`logging::outer_default`]).
pub(crate) fn sync_scope<T>(ctx: RunCtx, outer: tracing::Dispatch, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<RunCtx>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            SYNC_CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = SYNC_CURRENT.with(|c| c.borrow_mut().replace(ctx));
    let _reset = Reset(previous);
    logging::with_capture(outer, f)
}

/// The context of the flow run executing now, if any.
///
/// ```
/// use orion::prelude::*;
///
/// #[flow]
/// async fn who_am_i() -> String {
///     orion::flow_run_context().map(|c| c.flow_name().to_string()).unwrap_or_default()
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # orion::logging::set_console_level(None);
/// let orion = orion::Orion::memory();
/// assert_eq!(orion.scope(who_am_i()).await, "who-am-i"); // flow names use hyphens by default
/// # }
/// ```
pub fn flow_run_context() -> Option<FlowRunContext> {
    current().and_then(|c| c.flow_run_context())
}

/// The context of the task run executing now, if any.
pub fn task_run_context() -> Option<TaskRunContext> {
    current().and_then(|c| c.task_run_context())
}

/// The task runner of one flow run: its kind and its concurrency limit.
pub(crate) struct RunnerHandle {
    pub(crate) kind: TaskRunner,
    pub(crate) limit: Option<Arc<Semaphore>>,
    pub(crate) tail: super::future::Tail,
}

impl RunnerHandle {
    pub(crate) fn new(kind: TaskRunner) -> Self {
        RunnerHandle {
            limit: kind.effective_limit().map(|n| Arc::new(Semaphore::new(n))),
            kind,
            tail: Default::default(),
        }
    }
}

/// What a flow run knows about its children: how many ran, how many did not complete, how
/// many submitted ones are still going, and whether they should stop.
#[derive(Default)]
pub(crate) struct Children {
    total: AtomicU32,
    failed: AtomicU32,
    inflight: AtomicUsize,
    idle: Notify,
    cancelled: AtomicBool,
    cancel: Notify,
}

impl Children {
    pub(crate) fn record(&self, completed: bool) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if !completed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(failed, total)` so far.
    pub(crate) fn counts(&self) -> (u32, u32) {
        (
            self.failed.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn start(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(Arc::clone(self))
    }

    /// Waits until every submitted child has finished.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inflight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Asks every running child to stop.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.cancel.notify_waiters();
    }

    /// Resolves once [`Children::cancel`] was called.
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.cancel.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.cancelled.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// Counts one submitted child as in flight until dropped.
pub(crate) struct InflightGuard(Arc<Children>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
