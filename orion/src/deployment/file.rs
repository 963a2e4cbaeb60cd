//! Deployment spec files: YAML (or JSON) with Prefect's field names.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::spec::apply_all;
use super::{DeploymentError, DeploymentSpec};
use crate::OrionClient;
use crate::schedule::Schedule;
use crate::store::{CatchUp, Collision, Deployment, DeploymentConcurrency, DeploymentSchedule};

/// One deployment as a spec file writes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: Option<String>,
    flow_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flow_location: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    schedules: Vec<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    work_queue_name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    paused: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    catchup: CatchUp,
    /// Prefect 3's forms: a number, or `{limit, collision_strategy}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    concurrency_limit: Option<LimitField>,
}

/// A deployment's `concurrency_limit` field.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum LimitField {
    Number(u32),
    Full(DeploymentConcurrency),
}

impl<'de> Deserialize<'de> for LimitField {
    /// Either form, with an error that says what was wrong (an untagged enum would only say
    /// that nothing matched).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(LimitField::Number)
                .ok_or_else(|| {
                    D::Error::custom(format!("concurrency_limit: {n} is not a count of runs"))
                }),
            v @ Value::Object(_) => serde_json::from_value(v)
                .map(LimitField::Full)
                .map_err(|e| D::Error::custom(format!("concurrency_limit: {e}"))),
            other => Err(D::Error::custom(format!(
                "concurrency_limit: expected a number or {{limit, collision_strategy}}, got {other}"
            ))),
        }
    }
}

impl LimitField {
    fn concurrency(&self) -> DeploymentConcurrency {
        match *self {
            LimitField::Number(n) => DeploymentConcurrency::new(n, Collision::Enqueue),
            LimitField::Full(c) => c,
        }
    }
}

fn is_default(c: &CatchUp) -> bool {
    *c == CatchUp::All
}

impl SpecFile {
    fn into_spec(self, index: usize) -> Result<DeploymentSpec, DeploymentError> {
        let name = self.name.unwrap_or_default();
        let shown = if name.is_empty() {
            format!("#{}", index + 1)
        } else {
            name.clone()
        };
        let err = |field: &str, reason: String| DeploymentError::new(&shown, field, reason);
        if name.is_empty() {
            return Err(err("name", "missing: every deployment needs a name".into()));
        }
        for (field, given) in [
            ("flow_location", &self.flow_location),
            ("entrypoint", &self.entrypoint),
        ] {
            if given.is_some() {
                return Err(err(
                    field,
                    "flows are compiled into the program, not loaded from files: name the flow with `flow_name` (its #[flow] name)".into(),
                ));
            }
        }
        let flow_name = self
            .flow_name
            .ok_or_else(|| err("flow_name", "missing: name the #[flow] to deploy".into()))?;
        let mut schedules = Vec::new();
        if let Some(one) = self.schedule {
            schedules.push(schedule_item(one).map_err(|r| err("schedule", r))?);
        }
        for (i, item) in self.schedules.into_iter().enumerate() {
            schedules.push(schedule_item(item).map_err(|r| err(&format!("schedules[{i}]"), r))?);
        }
        let mut spec = DeploymentSpec::new(name)
            .flow_name(flow_name)
            .tags(self.tags)
            .schedules(schedules)
            .paused(self.paused)
            .catchup(self.catchup);
        spec.parameters = Ok(self.parameters);
        spec.description = self.description;
        spec.version = self.version;
        spec.concurrency = self.concurrency_limit.as_ref().map(LimitField::concurrency);
        if let Some(queue) = self.work_queue_name {
            spec.work_queue_name = queue;
        }
        Ok(spec)
    }

    fn from_spec(spec: &DeploymentSpec) -> SpecFile {
        let schedules = spec
            .schedules
            .iter()
            .map(|s| {
                let mut map = match serde_json::to_value(&s.schedule) {
                    Ok(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                if !s.active {
                    map.insert("active".into(), Value::Bool(false));
                }
                if !s.parameters.is_empty() {
                    map.insert("parameters".into(), Value::Object(s.parameters.clone()));
                }
                map
            })
            .collect();
        SpecFile {
            name: Some(spec.name.clone()),
            flow_name: spec.flow_name.clone(),
            flow_location: None,
            entrypoint: None,
            description: spec.description.clone(),
            version: spec.version.clone(),
            tags: spec.tags.clone(),
            parameters: spec.parameters.clone().unwrap_or_default(),
            schedule: None,
            schedules,
            work_queue_name: Some(spec.work_queue_name.clone()),
            paused: spec.paused,
            catchup: spec.catchup,
            concurrency_limit: spec.concurrency.map(LimitField::Full),
        }
    }
}

/// A schedule mapping with optional `active` and `parameters` beside its own keys.
fn schedule_item(mut item: Map<String, Value>) -> Result<DeploymentSchedule, String> {
    let active = match item.remove("active") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(other) => return Err(format!("`active` must be true or false, not {other}")),
    };
    let parameters = match item.remove("parameters") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(format!("`parameters` must be a mapping, not {other}")),
    };
    let schedule: Schedule =
        serde_json::from_value(Value::Object(item)).map_err(|e| e.to_string())?;
    Ok(DeploymentSchedule::new(schedule)
        .active(active)
        .parameters(parameters))
}

impl DeploymentSpec {
    /// Reads deployment specs from YAML or JSON text: one document, several documents
    /// (`---`), or a list.
    ///
    /// # Errors
    ///
    /// [`DeploymentError`] with the line and column of malformed YAML or an unknown field, or
    /// naming the deployment and field of a bad value.
    ///
    /// ```
    /// use orion::deployment::DeploymentSpec;
    ///
    /// let specs = DeploymentSpec::from_yaml("name: nightly\nflow_name: etl\nschedule: {cron: '0 2 * * *'}\n")?;
    /// assert_eq!(specs[0].name(), "nightly");
    /// let err = DeploymentSpec::from_yaml("name: nightly\nflow_name: etl\ncolour: blue\n").unwrap_err();
    /// assert!(err.to_string().contains("colour"));
    /// # Ok::<(), orion::deployment::DeploymentError>(())
    /// ```
    pub fn from_yaml(text: &str) -> Result<Vec<DeploymentSpec>, DeploymentError> {
        let yaml_err = |e: crate::yaml::YamlError| DeploymentError::new("<spec file>", "yaml", e.0);
        let is_list = text
            .lines()
            .map(str::trim_start)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("---"))
            .is_some_and(|l| l.starts_with('-') || l.starts_with('['));
        let files: Vec<SpecFile> = if is_list {
            crate::yaml::from_str(text).map_err(yaml_err)?
        } else {
            crate::yaml::from_multiple(text).map_err(yaml_err)?
        };
        if files.is_empty() {
            return Err(DeploymentError::new(
                "<spec file>",
                "yaml",
                "no deployment in it",
            ));
        }
        files
            .into_iter()
            .enumerate()
            .map(|(i, f)| f.into_spec(i))
            .collect()
    }

    /// Reads deployment specs from a file (see [`DeploymentSpec::from_yaml`]).
    ///
    /// # Errors
    ///
    /// [`DeploymentError`] when the file cannot be read or parsed.
    pub fn from_path(
        path: impl AsRef<std::path::Path>,
    ) -> Result<Vec<DeploymentSpec>, DeploymentError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            DeploymentError::new(&path.display().to_string(), "file", e.to_string())
        })?;
        Self::from_yaml(&text).map_err(|mut e| {
            if e.deployment == "<spec file>" {
                e.deployment = path.display().to_string();
            }
            e
        })
    }

    /// The spec as YAML, in the spec-file format.
    ///
    /// # Errors
    ///
    /// When a value cannot be written as YAML.
    pub fn to_yaml(&self) -> Result<String, DeploymentError> {
        crate::yaml::to_string(&SpecFile::from_spec(self))
            .map_err(|e| DeploymentError::new(&self.name, "yaml", e.0))
    }

    /// Applies every spec in `specs`, all or nothing: each is validated before any is stored.
    ///
    /// # Errors
    ///
    /// The first invalid spec's error; store failures.
    pub async fn apply_all(
        specs: Vec<DeploymentSpec>,
        client: &OrionClient,
    ) -> crate::Result<Vec<Deployment>> {
        apply_all(specs, client).await
    }
}

impl From<&Deployment> for DeploymentSpec {
    fn from(d: &Deployment) -> Self {
        let mut spec = DeploymentSpec::new(d.name.clone())
            .flow_name(d.flow_name.clone())
            .tags(d.tags.clone())
            .schedules(d.schedules.clone())
            .work_queue_name(d.work_queue_name.clone())
            .paused(d.paused)
            .catchup(d.catchup);
        spec.concurrency = d.concurrency;
        spec.parameters = Ok(d.parameters.clone());
        spec.description = d.description.clone();
        spec.version = d.version.clone();
        spec
    }
}
