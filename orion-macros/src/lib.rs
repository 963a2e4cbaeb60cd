//! The `#[flow]` and `#[task]` attributes of [orion](https://docs.rs/orion). Use them through
//! `orion` (`use orion::prelude::*;`), not directly: the generated code refers to `::orion`.

mod attr;
mod expand;

use proc_macro::TokenStream;

/// Makes an `async fn` a flow: calling it creates a flow run.
///
/// The function keeps its parameters; it returns a [`FlowCall`] that runs the flow when
/// awaited (a subflow run when awaited inside another flow). Every flow is registered by name,
/// so it can also be run from a JSON object of parameters (`orion::registry`).
///
/// # Options
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "..."` | the flow's name | the function name, `_` → `-` |
/// | `version = "..."` | a version string | none |
/// | `description = "..."` | a description | none |
/// | `task_runner = TaskRunner::sequential()` | the runner for submitted tasks | concurrent |
/// | `retries = 2` | retries after a failure | 0 |
/// | `retry_delay_seconds = 10` | seconds before each retry | 0 |
/// | `timeout_seconds = 60` | a time limit per attempt | none |
/// | `flow_run_name = "etl-{day}"` | the run name, a `format!` string over the parameters | random `adjective-animal` |
///
/// Parameters must be `Serialize + DeserializeOwned + Clone + Send + 'static` (they are
/// stored as JSON and cloned for retries).
///
/// # What it expands to
///
/// ```ignore
/// #[flow(name = "Addition Machine", retries = 1)]
/// async fn add(nums: Vec<i64>) -> i64 { nums.iter().sum() }
/// ```
///
/// is, without the macro (simplified):
///
/// ```ignore
/// fn add(nums: Vec<i64>) -> orion::FlowCall<i64, __OrionFlow_add> {
///     async fn inner(nums: Vec<i64>) -> i64 { nums.iter().sum() }
///     static SPEC: FlowSpec = FlowSpec { name: "Addition Machine", retries: 1, parameters: &["nums"], .. };
///     let parameters = json!({ "nums": nums });                     // recorded with the run
///     let mut args = Some((nums,));
///     let body = Box::new(move |last: bool| {                        // one attempt per call
///         let (nums,) = if last { args.take().unwrap() } else { args.clone().unwrap() };
///         Box::pin(inner(nums))
///     });
///     FlowCall::new(&SPEC, parameters, body)
/// }
/// // and, at link time, an entry in orion::registry: "Addition Machine" → a function that
/// // deserializes {"nums": [...]} and calls add(nums).
/// ```
///
/// [`FlowCall`]: https://docs.rs/orion/latest/orion/struct.FlowCall.html
#[proc_macro_attribute]
pub fn flow(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr::Kind::Flow, args.into(), item.into()).into()
}

/// Makes a function a task: calling it creates a task run.
///
/// Works on `async fn` and on plain `fn` (run on tokio's blocking pool). The function returns
/// a [`TaskCall`]: `.await` it to run now and get the value, `.submit()` it to hand it to the
/// flow run's task runner, or `.return_state().await` for its final state.
///
/// A return type spelled `Result<T, E>` (any path ending in `Result`) counts `Err(e)` as a
/// failure: the run ends Failed with `e`'s `Display` text, and is retried while retries remain.
///
/// # Options
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "..."` | the task's name | the function name |
/// | `description = "..."` | a description | none |
/// | `tags = ["a", "b"]` | tags of its runs | none |
/// | `retries = 3` | retries after a failure | 0 |
/// | `retry_delay_seconds = 10` / `[1, 10, 100]` / `exponential_backoff(10)` | delay before each retry | 0 |
/// | `retry_jitter_factor = 0.5` | random extra delay, as a fraction | none |
/// | `timeout_seconds = 5` | a time limit per attempt | none |
/// | `cache_key_fn = orion::task_input_hash` | a cache key function | no caching |
/// | `cache_expiration = 3600` | seconds a cached result stays valid | forever |
/// | `task_run_name = "fetch-{url}"` | the run name, a `format!` string over the parameters | `{task}-{hash}-{n}` |
///
/// Parameters must be `Clone + Send + 'static` (cloned for retries); with `cache_key_fn` they
/// must also be `Serialize`, and the return type `Serialize + DeserializeOwned`.
///
/// # What it expands to
///
/// ```ignore
/// #[task(retries = 2)]
/// async fn fetch(url: String) -> Result<String, Error> { get(&url).await }
/// ```
///
/// is, without the macro (simplified):
///
/// ```ignore
/// fn fetch(url: String) -> orion::TaskCall<Result<String, Error>> {
///     async fn inner(url: String) -> Result<String, Error> { get(&url).await }
///     static SPEC: TaskSpec = TaskSpec { name: "fetch", retries: 2, .. };
///     let mut args = Some((url,));
///     let body = Body::Async(Box::new(move |last: bool| {           // one attempt per call
///         let (url,) = if last { args.take().unwrap() } else { args.clone().unwrap() };
///         Box::pin(inner(url))
///     }));
///     // how a return value counts: Err(e) → Failed(e.to_string())
///     TaskCall::new(&SPEC, body, |r| match r { Ok(_) => Verdict::Value, Err(e) => Verdict::Err { message: e.to_string(), chain: format!("{e:#}") } })
/// }
/// ```
///
/// [`TaskCall`]: https://docs.rs/orion/latest/orion/struct.TaskCall.html
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr::Kind::Task, args.into(), item.into()).into()
}
