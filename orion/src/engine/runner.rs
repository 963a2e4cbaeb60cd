use std::fmt;

/// How a flow run executes the task runs submitted with `.submit()` or [`crate::map`].
///
/// Awaiting a task call directly (`my_task(x).await`) always runs it right there; the task
/// runner decides what happens to submitted ones.
///
/// ```
/// use orion::TaskRunner;
///
/// assert_eq!(TaskRunner::default().to_string(), "ConcurrentTaskRunner");
/// assert_eq!(TaskRunner::concurrent().limit(4).limit_value(), Some(4));
/// assert_eq!(TaskRunner::sequential().to_string(), "SequentialTaskRunner");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRunner {
    kind: Kind,
    limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequential,
    Concurrent,
    Parallel,
}

impl Default for TaskRunner {
    fn default() -> Self {
        TaskRunner::concurrent()
    }
}

impl TaskRunner {
    /// One submitted task run at a time, in submission order.
    pub const fn sequential() -> Self {
        TaskRunner {
            kind: Kind::Sequential,
            limit: Some(1),
        }
    }
    /// Submitted task runs run concurrently as tokio tasks (the default); synchronous task
    /// bodies run on the blocking pool.
    pub const fn concurrent() -> Self {
        TaskRunner {
            kind: Kind::Concurrent,
            limit: None,
        }
    }
    /// Each submitted task run gets an OS thread of its own (the blocking pool), for CPU-bound
    /// work; at most as many at once as the machine has cores, unless [`TaskRunner::limit`]
    /// says otherwise.
    pub const fn parallel() -> Self {
        TaskRunner {
            kind: Kind::Parallel,
            limit: None,
        }
    }
    /// At most `n` submitted task runs at once (at least 1). Ignored by the sequential runner.
    #[must_use]
    pub const fn limit(mut self, n: usize) -> Self {
        if !matches!(self.kind, Kind::Sequential) {
            self.limit = Some(if n == 0 { 1 } else { n });
        }
        self
    }
    /// The configured limit, if any.
    pub const fn limit_value(&self) -> Option<usize> {
        self.limit
    }
    /// Whether task bodies get OS threads of their own.
    pub const fn is_parallel(&self) -> bool {
        matches!(self.kind, Kind::Parallel)
    }

    pub(crate) fn effective_limit(&self) -> Option<usize> {
        match (self.kind, self.limit) {
            (_, Some(n)) => Some(n),
            (Kind::Parallel, None) => {
                Some(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
            }
            _ => None,
        }
    }
}

impl fmt::Display for TaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Sequential => "SequentialTaskRunner",
            Kind::Concurrent => "ConcurrentTaskRunner",
            Kind::Parallel => "ParallelTaskRunner",
        })
    }
}
