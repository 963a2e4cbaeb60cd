//! Support for the code `#[flow]` and `#[task]` generate. Not a stable API.

use std::marker::PhantomData;

pub use inventory;
pub use serde_json;

pub use crate::engine::{
    Body, BoxFuture, CacheKeyFn, Codec, FlowCall, FlowSpec, TaskCall, TaskRunner, TaskSpec, Verdict,
};
pub use crate::orchestration::RetryDelay;
pub use crate::registry::{RegisteredFlow, reject_unknown};
pub use crate::{Error, Orion, State};
pub use std::borrow::Cow;
pub use std::sync::OnceLock;
pub use std::sync::atomic::AtomicU32;

/// A flow parameter: it is stored as JSON and read back by agents.
#[diagnostic::on_unimplemented(
    message = "flow parameter type `{Self}` must be `Serialize + DeserializeOwned + Clone + Send + 'static`",
    label = "flow parameters are stored as JSON and cloned for retries",
    note = "derive `serde::Serialize`, `serde::Deserialize` and `Clone` for it"
)]
pub trait FlowParameter:
    serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static
{
}
impl<T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static> FlowParameter
    for T
{
}

/// A task argument: cloned for each retry and moved across threads.
#[diagnostic::on_unimplemented(
    message = "task parameter type `{Self}` must be `Clone + Send + 'static`",
    label = "task arguments are cloned for retries and may run on another thread",
    note = "wrap shared resources in `std::sync::Arc`"
)]
pub trait TaskArgument: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> TaskArgument for T {}

/// A task argument that a cache key is computed from.
#[diagnostic::on_unimplemented(
    message = "task parameter type `{Self}` must be `Serialize` when the task has a `cache_key_fn`",
    label = "cache keys are computed from the serialized inputs"
)]
pub trait CacheInput: serde::Serialize {}
impl<T: serde::Serialize> CacheInput for T {}

/// A cached task result: stored as JSON.
#[diagnostic::on_unimplemented(
    message = "the return type `{Self}` must be `Serialize + DeserializeOwned` when the task has a `cache_key_fn`",
    label = "cached results are stored as JSON"
)]
pub trait CacheOutput: serde::Serialize + serde::de::DeserializeOwned {}
impl<T: serde::Serialize + serde::de::DeserializeOwned> CacheOutput for T {}

/// A return value: sent between tasks.
#[diagnostic::on_unimplemented(message = "the return type `{Self}` must be `Send + 'static`")]
pub trait Output: Send + 'static {}
impl<T: Send + 'static> Output for T {}

/// Compile-time bound checks, placed by the macros on the user's own tokens.
pub const fn flow_parameter<T: FlowParameter>() {}
/// See [`TaskArgument`].
pub const fn task_argument<T: TaskArgument>() {}
/// See [`CacheInput`].
pub const fn cache_input<T: CacheInput>() {}
/// See [`CacheOutput`].
pub const fn cache_output<T: CacheOutput>() {}
/// See [`Output`].
pub const fn output<T: Output>() {}

/// Serializes one flow parameter, naming it on failure.
pub fn parameter_value<T: FlowParameter>(
    name: &str,
    value: &T,
) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| format!("parameter '{name}' cannot be serialized: {e}"))
}

/// Reads one flow parameter from a JSON object.
pub fn take_parameter<T: FlowParameter>(
    flow: &str,
    params: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> crate::Result<T> {
    crate::registry::take_parameter(flow, params, name)
}

/// Clones a task argument for a retry.
pub fn clone_argument<T: TaskArgument>(value: &T) -> T {
    value.clone()
}

/// The codec for a cached result.
pub fn codec<R: CacheOutput>() -> Codec<R> {
    Codec {
        encode: |r| serde_json::to_value(r),
        decode: serde_json::from_value::<R>,
    }
}

/// The `T` of a `Result<T, E>` (whatever alias spells it: `anyhow::Result<T>`, `io::Result<T>`).
pub trait OkType {
    /// `T`.
    type Ok;
}
impl<T, E> OkType for Result<T, E> {
    type Ok = T;
}

/// The codec for the cached result of a task returning `Result<T, E>`: only successes are
/// cached, so only `T` is stored, and a hit is returned as `Ok`.
pub fn result_codec<R, T>() -> Codec<R>
where
    R: OkType<Ok = T> + From<Ok<T>> + IntoOk<T>,
    T: CacheOutput,
{
    Codec {
        encode: |r| match r.ok_ref() {
            Some(v) => serde_json::to_value(v),
            None => Err(serde::ser::Error::custom("a failed result is not cached")),
        },
        decode: |v| serde_json::from_value::<T>(v).map(|v| R::from(Ok(v))),
    }
}

/// A success, to build a `Result` of any error type from.
pub struct Ok<T>(pub T);

impl<T, E> From<Ok<T>> for Result<T, E> {
    fn from(ok: Ok<T>) -> Self {
        Result::Ok(ok.0)
    }
}

/// Borrows the success of a `Result`.
pub trait IntoOk<T> {
    /// The success, if it is one.
    fn ok_ref(&self) -> Option<&T>;
}
impl<T, E> IntoOk<T> for Result<T, E> {
    fn ok_ref(&self) -> Option<&T> {
        self.as_ref().ok()
    }
}

/// Picks, for a concrete return type, whether a run without a value can be returned as `Err`.
/// Used as `(&Probe::<R>::new()).from_error()`: the first impl applies when `R` is a
/// `Result` whose error converts from [`Error`], the second otherwise.
pub struct Probe<R>(PhantomData<fn() -> R>);

impl<R> Probe<R> {
    /// A probe.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

/// Specialized: `Result<T, E>` with `E: From<Error>`.
pub trait ErrFromOrion<R> {
    /// A conversion.
    fn error_converter(&self) -> Option<fn(Error) -> R>;
}
impl<T, E: From<Error>> ErrFromOrion<Result<T, E>> for Probe<Result<T, E>> {
    fn error_converter(&self) -> Option<fn(Error) -> Result<T, E>> {
        Some(|e| Err(E::from(e)))
    }
}
/// Fallback: no conversion.
pub trait NoErrFromOrion<R> {
    /// None.
    fn error_converter(&self) -> Option<fn(Error) -> R> {
        None
    }
}
impl<R> NoErrFromOrion<R> for &Probe<R> {}

/// How the registry path carries a flow's return value as state data, picked per return type
/// by `(&&Probe::<R>::new()).encoder()`: a `Result<T, E>` whose `T` serializes carries `T`
/// (its `Ok` value; an `Err` is a Failed state without data), any other serializable value
/// carries itself, and anything else carries nothing.
pub trait EncodeOk<R> {
    /// The encoder.
    fn encoder(&self) -> Option<fn(&R) -> Option<serde_json::Value>>;
}
impl<T: serde::Serialize, E> EncodeOk<Result<T, E>> for &Probe<Result<T, E>> {
    fn encoder(&self) -> Option<fn(&Result<T, E>) -> Option<serde_json::Value>> {
        Some(|r| r.as_ref().ok().and_then(|v| serde_json::to_value(v).ok()))
    }
}
/// Second choice: the value serializes.
pub trait EncodeValue<R> {
    /// The encoder.
    fn encoder(&self) -> Option<fn(&R) -> Option<serde_json::Value>>;
}
impl<R: serde::Serialize> EncodeValue<R> for &&Probe<R> {
    fn encoder(&self) -> Option<fn(&R) -> Option<serde_json::Value>> {
        Some(|r| serde_json::to_value(r).ok())
    }
}
/// Fallback: not serializable.
pub trait NoEncodeValue<R> {
    /// None.
    fn encoder(&self) -> Option<fn(&R) -> Option<serde_json::Value>> {
        None
    }
}
impl<R> NoEncodeValue<R> for Probe<R> {}

/// Runs a flow call for the registry and converts its state to JSON data.
pub fn registry_run<R: Send + 'static, M: 'static>(
    orion: &Orion,
    call: FlowCall<R, M>,
    encode: Option<fn(&R) -> Option<serde_json::Value>>,
    adopt: Option<crate::store::FlowRun>,
) -> BoxFuture<State> {
    let mut call = call.on(orion);
    call.adopt = adopt;
    Box::pin(async move {
        let state = call.return_state().await;
        state.map_data(|data| data.and_then(|d| encode.and_then(|f| f(&d))))
    })
}

/// An error with its causes, for a run's error log line: `(&e).error_chain()` picks
/// [`ErrorChain`] for a `std::error::Error` (its `source()` chain) and [`DisplayChain`]
/// otherwise (`{:#}`, which is how `anyhow::Error` prints its context chain).
pub trait ErrorChain {
    /// `outer: inner: root`.
    fn error_chain(&self) -> String;
}
impl<E: std::error::Error> ErrorChain for E {
    fn error_chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.ends_with(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }
}
/// Fallback of [`ErrorChain`]: the alternate `Display`.
pub trait DisplayChain {
    /// `{:#}`.
    fn error_chain(&self) -> String;
}
impl<E: std::fmt::Display> DisplayChain for &E {
    fn error_chain(&self) -> String {
        format!("{self:#}")
    }
}

/// Names a flow at the type level: implemented by the marker type `#[flow]` generates, so a
/// flow function can be passed where a flow is meant (`DeploymentSpec::flow(my_flow)`).
pub trait FlowMarker {
    /// The flow's name.
    const NAME: &'static str;
}
