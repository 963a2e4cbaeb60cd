//! `TaskCall`: what calling a `#[task]` function returns.

use std::future::IntoFuture;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};

use super::context::TaskRunContext;
use super::future::TaskFuture;
use super::outcome::{BoxFuture, Verdict};
use crate::orchestration::RetryDelay;
use crate::state::State;
use crate::{Error, Orion};

/// A cache key function: Prefect's `cache_key_fn(context, parameters)`. Returning `None`
/// skips the cache for that call.
pub type CacheKeyFn = fn(&TaskRunContext, &Map<String, Value>) -> Option<String>;

/// A task's definition, built by `#[task]` as a `static`.
#[doc(hidden)]
#[derive(Debug)]
pub struct TaskSpec {
    pub name: &'static str,
    /// Where the function is defined (`module::path::fn_name`); its hash is the task's identity.
    pub path: &'static str,
    pub description: Option<&'static str>,
    pub tags: &'static [&'static str],
    pub retries: u32,
    pub retry_delay: RetryDelay,
    pub retry_jitter_factor: Option<f64>,
    pub timeout_seconds: Option<f64>,
    pub cache_key_fn: Option<CacheKeyFn>,
    pub cache_expiration_seconds: Option<f64>,
    /// Counter for calls made outside any flow run.
    pub standalone_calls: AtomicU32,
    pub key: OnceLock<(u32, Arc<str>, Arc<[String]>)>,
}

impl TaskSpec {
    /// `(hash, "name-hhhhhhhh", tags)`, computed once.
    pub(crate) fn identity(&self) -> &(u32, Arc<str>, Arc<[String]>) {
        self.key.get_or_init(|| {
            let hash = stable_hash(self.path);
            let tags: Vec<String> = self.tags.iter().map(|t| (*t).to_owned()).collect();
            (
                hash,
                format!("{}-{hash:08x}", self.name).into(),
                tags.into(),
            )
        })
    }
}

/// FNV-1a, 32 bits: stable across builds and platforms, unlike `std`'s hasher.
pub(crate) fn stable_hash(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Per-call options of a task call; `None` keeps the task's own setting.
///
/// ```
/// use std::time::Duration;
/// use orion::TaskOptions;
///
/// let opts = TaskOptions::new().retries(3).timeout(Duration::from_secs(5)).name("fetch-users");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TaskOptions {
    /// The task run's name.
    pub name: Option<String>,
    /// Retries after a failure.
    pub retries: Option<u32>,
    /// The delay before each retry.
    pub retry_delay: Option<RetryDelay>,
    /// Random extra retry delay, as a fraction.
    pub retry_jitter_factor: Option<f64>,
    /// A time limit for each attempt.
    pub timeout: Option<Duration>,
    /// Tags, replacing the task's.
    pub tags: Option<Vec<String>>,
    /// How long a cached result stays valid.
    pub cache_expiration: Option<Duration>,
    /// Run even when a valid cached result exists, and cache the new result.
    pub refresh_cache: bool,
}

impl TaskOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the task run's name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the number of retries.
    #[must_use]
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }
    /// Sets the retry delay.
    #[must_use]
    pub fn retry_delay(mut self, delay: RetryDelay) -> Self {
        self.retry_delay = Some(delay);
        self
    }
    /// Sets the retry jitter factor.
    #[must_use]
    pub fn retry_jitter_factor(mut self, factor: f64) -> Self {
        self.retry_jitter_factor = Some(factor);
        self
    }
    /// Sets a time limit per attempt.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Replaces the tags.
    #[must_use]
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }
    /// Sets how long a cached result stays valid.
    #[must_use]
    pub fn cache_expiration(mut self, expiration: Duration) -> Self {
        self.cache_expiration = Some(expiration);
        self
    }
    /// Bypasses (and refreshes) the cache.
    #[must_use]
    pub fn refresh_cache(mut self, refresh: bool) -> Self {
        self.refresh_cache = refresh;
        self
    }
}

/// The body of a task: a factory that makes one attempt. The argument is `true` for the last
/// possible attempt, which may move the arguments instead of cloning them.
#[doc(hidden)]
pub enum Body<R> {
    Async(Box<dyn FnMut(bool) -> BoxFuture<R> + Send>),
    Blocking(Box<dyn FnMut(bool) -> Box<dyn FnOnce() -> R + Send> + Send>),
}

/// How a cached result is written to and read from the store (generated when caching is on).
#[doc(hidden)]
pub struct Codec<R> {
    pub encode: fn(&R) -> Result<Value, serde_json::Error>,
    pub decode: fn(Value) -> Result<R, serde_json::Error>,
}

/// A call of a `#[task]` function, not started yet.
///
/// `.await` runs it now and gives the function's return value; [`TaskCall::submit`] hands it
/// to the flow run's task runner; [`TaskCall::return_state`] gives its final [`State`].
#[must_use = "a task call does nothing until it is awaited or submitted"]
pub struct TaskCall<R> {
    pub(crate) spec: &'static TaskSpec,
    pub(crate) body: Body<R>,
    pub(crate) run_name: Option<String>,
    pub(crate) inputs: Option<Map<String, Value>>,
    pub(crate) verdict: fn(&R) -> Verdict,
    pub(crate) codec: Option<Codec<R>>,
    pub(crate) from_error: Option<fn(Error) -> R>,
    pub(crate) options: Option<Box<TaskOptions>>,
    pub(crate) orion: Option<Orion>,
}

impl<R: Send + 'static> TaskCall<R> {
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn __new(
        spec: &'static TaskSpec,
        body: Body<R>,
        run_name: Option<String>,
        inputs: Option<Map<String, Value>>,
        verdict: fn(&R) -> Verdict,
        codec: Option<Codec<R>>,
        from_error: Option<fn(Error) -> R>,
    ) -> Self {
        TaskCall {
            spec,
            body,
            run_name,
            inputs,
            verdict,
            codec,
            from_error,
            options: None,
            orion: None,
        }
    }

    fn options_mut(&mut self) -> &mut TaskOptions {
        self.options.get_or_insert_with(Default::default)
    }

    /// Applies per-call options over the task's own.
    pub fn with_options(mut self, options: TaskOptions) -> Self {
        let mine = self.options_mut();
        let TaskOptions {
            name,
            retries,
            retry_delay,
            retry_jitter_factor,
            timeout,
            tags,
            cache_expiration,
            refresh_cache,
        } = options;
        mine.name = name.or(mine.name.take());
        mine.retries = retries.or(mine.retries);
        mine.retry_delay = retry_delay.or(mine.retry_delay.take());
        mine.retry_jitter_factor = retry_jitter_factor.or(mine.retry_jitter_factor);
        mine.timeout = timeout.or(mine.timeout);
        mine.tags = tags.or(mine.tags.take());
        mine.cache_expiration = cache_expiration.or(mine.cache_expiration);
        mine.refresh_cache |= refresh_cache;
        self
    }
    /// Sets the number of retries for this call.
    pub fn retries(mut self, n: u32) -> Self {
        self.options_mut().retries = Some(n);
        self
    }
    /// Names this task run.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options_mut().name = Some(name.into());
        self
    }
    /// Replaces the tags for this call.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.options_mut().tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }
    /// Sets a time limit per attempt for this call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options_mut().timeout = Some(timeout);
        self
    }
    /// Runs this call against `orion` instead of the ambient runtime (outside a flow run only:
    /// inside one, task runs belong to the flow run's runtime).
    pub fn on(mut self, orion: &Orion) -> Self {
        self.orion = Some(orion.clone());
        self
    }

    /// Runs the task now and returns its final state instead of its value; never panics on
    /// the task's account.
    pub async fn return_state(self) -> State<R> {
        super::task_run::run(self, super::context::current(), None)
            .await
            .into_state()
    }

    /// Hands the call to the current flow run's task runner and returns at once.
    ///
    /// Outside a flow run the task runs as a tokio task. The flow run does not finish before
    /// every task run submitted in it has.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn submit(self) -> TaskFuture<R> {
        super::future::submit(self)
    }
}

impl<R: Send + 'static> IntoFuture for TaskCall<R> {
    type Output = R;
    type IntoFuture = BoxFuture<R>;

    /// Runs the task now and gives its value.
    ///
    /// A task that panicked panics here again (after its run was recorded Failed and its
    /// retries were used); one that returned `Err` gives that `Err`.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let from_error = self.from_error;
            let outcome = super::task_run::run(self, super::context::current(), None).await;
            outcome.into_value(from_error, "task run")
        })
    }
}
