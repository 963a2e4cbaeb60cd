/// A deployment that cannot be applied: names the deployment, the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deployment {deployment:?}: {field}: {reason}")]
#[non_exhaustive]
pub struct DeploymentError {
    /// The deployment's name (or the file, for a file that cannot be read).
    pub deployment: String,
    /// The field (`name`, `parameters.nums`, `schedules[1]`, `yaml`).
    pub field: String,
    /// What is wrong, with the line and column for YAML.
    pub reason: String,
}

impl DeploymentError {
    pub(crate) fn new(
        deployment: &str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        DeploymentError {
            deployment: deployment.to_owned(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}
