//! YAML reading and writing, behind one small module so the crate can change.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A YAML document that could not be read: the parser's message, with line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct YamlError(pub(crate) String);

/// Reads one value from YAML text (JSON is YAML too).
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| YamlError(e.to_string()))
}

/// Reads every document of a YAML stream.
pub(crate) fn from_multiple<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, YamlError> {
    serde_saphyr::from_multiple(text).map_err(|e| YamlError(e.to_string()))
}

/// Writes a value as YAML.
pub(crate) fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_saphyr::to_string(value).map_err(|e| YamlError(e.to_string()))
}
