//! A flow's parameters as a deployment keeps them — names and Rust types — so a program that
//! does not have the flow compiled in (a standalone server) can still show a form for them
//! and check values against the types it knows.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// One parameter of a deployment's flow: its name and its Rust type as written in the flow's
/// signature (`Vec<i64>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParameterType {
    /// The parameter's name.
    pub name: String,
    /// Its Rust type.
    #[serde(rename = "type")]
    pub rust_type: String,
}

impl ParameterType {
    /// `name` of Rust type `rust_type`.
    pub fn new(name: impl Into<String>, rust_type: impl Into<String>) -> Self {
        ParameterType {
            name: name.into(),
            rust_type: rust_type.into(),
        }
    }

    /// Whether the parameter is text (a form takes it as typed).
    pub fn is_text(&self) -> bool {
        matches!(
            compact(&self.rust_type).as_str(),
            "String" | "&str" | "&'staticstr" | "str"
        )
    }
}

/// The parameter types of the registered flow `flow`, if this program has it.
pub(crate) fn of_flow(flow: &str) -> Vec<ParameterType> {
    crate::registry::flow(flow).map_or_else(Vec::new, |f| {
        f.parameters
            .iter()
            .zip(f.parameter_types)
            .map(|(n, t)| ParameterType::new(*n, *t))
            .collect()
    })
}

fn compact(rust_type: &str) -> String {
    rust_type.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Checks `parameters` against `types` as far as the types are understood: every parameter
/// present unless it is an `Option`, none unknown, and values of the primitive, text, `Vec`,
/// `Option` and map types of the right JSON shape and range. Other types are not checked here
/// (the flow checks them when it runs).
///
/// # Errors
///
/// [`Error::InvalidParameters`] naming the parameter, worded as the flow's own check.
pub fn check(flow: &str, types: &[ParameterType], parameters: &Map<String, Value>) -> Result<()> {
    let invalid = |detail: String| Error::InvalidParameters {
        flow: flow.to_owned(),
        detail,
    };
    for p in types {
        let ty = compact(&p.rust_type);
        match parameters.get(&p.name) {
            None if ty.starts_with("Option<") => {}
            None => return Err(invalid(format!("missing parameter '{}'", p.name))),
            Some(value) => {
                if let Err(e) = fits(&ty, value) {
                    return Err(invalid(format!("parameter '{}': {e}", p.name)));
                }
            }
        }
    }
    if let Some(unknown) = parameters
        .keys()
        .find(|k| !types.iter().any(|p| &p.name == *k))
    {
        return Err(invalid(format!(
            "unknown parameter '{unknown}' (the flow takes {})",
            types
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// The type inside `outer<…>`, if `ty` is that.
fn inner<'a>(ty: &'a str, outer: &str) -> Option<&'a str> {
    ty.strip_prefix(outer)?.strip_prefix('<')?.strip_suffix('>')
}

/// Whether `value` deserializes as Rust type `ty` (compact), as far as it is understood.
fn fits(ty: &str, value: &Value) -> std::result::Result<(), String> {
    let shown = || match value {
        Value::String(s) => format!("string {s:?}"),
        v => v.to_string(),
    };
    let want = |what: &str| Err(format!("invalid type: {}, expected {what}", shown()));
    if let Some(t) = inner(ty, "Option") {
        return if value.is_null() {
            Ok(())
        } else {
            fits(t, value)
        };
    }
    if let Some(t) = inner(ty, "Vec").or_else(|| inner(ty, "VecDeque")) {
        let Value::Array(items) = value else {
            return want("a sequence");
        };
        return items.iter().try_for_each(|v| fits(t, v));
    }
    if let Some(kv) = inner(ty, "HashMap").or_else(|| inner(ty, "BTreeMap")) {
        let Value::Object(map) = value else {
            return want("a map");
        };
        let t = kv.split_once(',').map_or("", |(_, t)| t);
        return map.values().try_for_each(|v| fits(t, v));
    }
    let integer = |min: i128, max: i128| match value
        .as_i64()
        .map(i128::from)
        .or(value.as_u64().map(i128::from))
    {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        Some(n) => Err(format!("invalid value: integer `{n}`, expected {ty}")),
        None => want(ty),
    };
    match ty {
        "String" | "&str" | "str" => {
            if value.is_string() {
                Ok(())
            } else {
                want("a string")
            }
        }
        "bool" => {
            if value.is_boolean() {
                Ok(())
            } else {
                want("a boolean")
            }
        }
        "f32" | "f64" => {
            if value.is_number() {
                Ok(())
            } else {
                want(ty)
            }
        }
        "u8" => integer(0, u8::MAX.into()),
        "u16" => integer(0, u16::MAX.into()),
        "u32" => integer(0, u32::MAX.into()),
        "u64" | "usize" | "u128" => integer(0, u64::MAX.into()),
        "i8" => integer(i8::MIN.into(), i8::MAX.into()),
        "i16" => integer(i16::MIN.into(), i16::MAX.into()),
        "i32" => integer(i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" | "i128" => integer(i64::MIN.into(), i64::MAX.into()),
        // Types not understood here are checked by the flow when it runs.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn types() -> Vec<ParameterType> {
        vec![
            ParameterType::new("nums", "Vec<i64>"),
            ParameterType::new("rounds", "u32"),
            ParameterType::new("name", "String"),
            ParameterType::new("note", "Option<String>"),
            ParameterType::new("extra", "MyConfig"),
        ]
    }

    fn check_json(v: Value) -> std::result::Result<(), String> {
        check("f", &types(), v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn values_are_checked_against_the_types_understood() {
        let ok = json!({"nums": [1, -2], "rounds": 3, "name": "Leo", "extra": {"any": 1}});
        check_json(ok.clone()).unwrap();
        let mut with_note = ok.clone();
        with_note["note"] = json!(null);
        check_json(with_note).unwrap();
        let cases = [
            (
                json!({"nums": [1], "rounds": -2, "name": "x", "extra": 0}),
                "parameter 'rounds': invalid value: integer `-2`, expected u32",
            ),
            (
                json!({"nums": [1], "rounds": 4294967296u64, "name": "x", "extra": 0}),
                "parameter 'rounds'",
            ),
            (
                json!({"nums": [1, "2"], "rounds": 1, "name": "x", "extra": 0}),
                "parameter 'nums': invalid type: string \"2\", expected i64",
            ),
            (
                json!({"nums": 1, "rounds": 1, "name": "x", "extra": 0}),
                "expected a sequence",
            ),
            (
                json!({"nums": [1], "rounds": 1, "name": 5, "extra": 0}),
                "parameter 'name': invalid type: 5, expected a string",
            ),
            (
                json!({"nums": [1], "rounds": 1, "extra": 0}),
                "missing parameter 'name'",
            ),
            (
                json!({"nums": [1], "rounds": 1, "name": "x", "extra": 0, "colour": 1}),
                "unknown parameter 'colour'",
            ),
        ];
        for (value, expected) in cases {
            let err = check_json(value).unwrap_err();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
    }

    #[test]
    fn text_parameters_are_told_apart() {
        assert!(ParameterType::new("a", "String").is_text());
        assert!(ParameterType::new("a", "& str").is_text());
        assert!(!ParameterType::new("a", "Vec<String>").is_text());
    }
}
