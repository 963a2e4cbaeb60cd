//! The flow registry: every `#[flow]` in the program, by name, runnable from JSON parameters.
//!
//! This is how a flow is run by name — by an agent, a deployment, or a command line — when
//! the caller only has its name and a JSON object of parameters.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::engine::BoxFuture;
use crate::state::State;
use crate::store::FlowRun;
use crate::{Error, Orion, Result};

/// A flow compiled into this program.
#[derive(Debug)]
pub struct RegisteredFlow {
    /// The flow's name.
    pub name: &'static str,
    /// Its parameter names, in order.
    pub parameters: &'static [&'static str],
    /// Their Rust types as written in the flow's signature, in the same order.
    pub parameter_types: &'static [&'static str],
    /// Its version, if set.
    pub version: Option<&'static str>,
    /// Its description, if set.
    pub description: Option<&'static str>,
    /// How many times a failed or crashed run of it is retried.
    pub retries: u32,
    /// The delay before each retry, in seconds.
    pub retry_delay_seconds: f64,
    #[doc(hidden)]
    pub call: RegistryCall,
    #[doc(hidden)]
    pub validate: fn(&Map<String, Value>) -> Result<()>,
}

/// How the registry starts a flow: runtime, JSON parameters, an existing run to adopt.
#[doc(hidden)]
pub type RegistryCall = fn(&Orion, Map<String, Value>, Option<FlowRun>) -> Result<BoxFuture<State>>;

inventory::collect!(RegisteredFlow);

impl RegisteredFlow {
    /// Its retry policy, as its runs carry it.
    pub fn retry_policy(&self) -> crate::state::RetryPolicy {
        crate::state::RetryPolicy {
            retries: self.retries,
            delay: crate::state::RetryDelay::Fixed(self.retry_delay_seconds),
            jitter_factor: None,
        }
    }

    /// Runs the flow on `orion` with `parameters` (a JSON object) and returns its final
    /// state; a result that serializes is carried as the state's data.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameters`], before any run is created, when `parameters` is not an
    /// object, lacks a parameter, has one of the wrong type, or names one the flow does not
    /// take.
    ///
    /// ```
    /// use orion::prelude::*;
    ///
    /// #[flow(name = "Addition Machine")]
    /// async fn add(nums: Vec<i64>) -> i64 { nums.iter().sum() }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
    /// # orion::logging::set_console_level(None);
    /// let flow = orion::registry::flow("Addition Machine").unwrap();
    /// let state = flow.run(&Orion::memory(), serde_json::json!({"nums": [1, 2, 3]})).await?;
    /// assert_eq!(state.data(), Some(&serde_json::json!(6)));
    ///
    /// let bad = flow.run(&Orion::memory(), serde_json::json!({"nums": "many"})).await;
    /// assert!(bad.unwrap_err().to_string().contains("nums"));
    /// # Ok(()) }
    /// ```
    pub async fn run(&self, orion: &Orion, parameters: Value) -> Result<State> {
        let map = match parameters {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(Error::InvalidParameters {
                    flow: self.name.to_owned(),
                    detail: format!("parameters must be a JSON object, not {other}"),
                });
            }
        };
        Ok((self.call)(orion, map, None)?.await)
    }

    /// Checks that `parameters` would run this flow: every parameter present (or optional)
    /// with the right type, and no unknown ones.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameters`] naming the parameter.
    pub fn validate(&self, parameters: &Map<String, Value>) -> Result<()> {
        (self.validate)(parameters)
    }

    /// Runs the flow as the already created flow run `run` (its parameters are the run's):
    /// how deployments' runs are executed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameters`] when the run's parameters do not fit the flow.
    pub async fn run_existing(&self, orion: &Orion, run: FlowRun) -> Result<State> {
        let parameters = run.parameters.clone();
        Ok((self.call)(orion, parameters, Some(run))?.await)
    }
}

/// Every registered flow, sorted by name.
pub fn flows() -> Vec<&'static RegisteredFlow> {
    let mut flows: Vec<_> = inventory::iter::<RegisteredFlow>.into_iter().collect();
    flows.sort_by_key(|f| f.name);
    flows
}

/// The registered flow named `name`.
pub fn flow(name: &str) -> Option<&'static RegisteredFlow> {
    inventory::iter::<RegisteredFlow>
        .into_iter()
        .find(|f| f.name == name)
}

/// The registered flow named `name`, or an error listing the known names.
///
/// # Errors
///
/// [`Error::UnknownFlow`].
pub fn require(name: &str) -> Result<&'static RegisteredFlow> {
    flow(name).ok_or_else(|| Error::UnknownFlow {
        name: name.to_owned(),
        known: flows()
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Takes one parameter out of `params` and deserializes it. A missing one is read as JSON
/// `null`, so `Option` parameters may be left out.
#[doc(hidden)]
pub fn take_parameter<T: DeserializeOwned>(
    flow: &str,
    params: &mut Map<String, Value>,
    name: &str,
) -> Result<T> {
    let present = params.contains_key(name);
    let value = params.remove(name).unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|e| Error::InvalidParameters {
        flow: flow.to_owned(),
        detail: if present {
            format!("parameter '{name}': {e}")
        } else {
            format!("missing parameter '{name}'")
        },
    })
}

/// Fails when `params` still holds names the flow does not take.
#[doc(hidden)]
pub fn reject_unknown(flow: &str, params: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match params.keys().next() {
        None => Ok(()),
        Some(name) => Err(Error::InvalidParameters {
            flow: flow.to_owned(),
            detail: format!(
                "unknown parameter '{name}' (the flow takes: {})",
                known.join(", ")
            ),
        }),
    }
}
