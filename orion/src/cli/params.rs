//! Parameters and times given on the command line: `--param k=v`, `--params JSON`,
//! `--start-in 10m`, `--start-at TIME`.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use super::output::{CliResult, Failure};

/// The parameters of `--params JSON` (an object) with each `--param name=value` over them; a
/// value is read as JSON when it is JSON (`3`, `[1, 2]`, `true`, `"x"`), else as text.
pub(super) fn parameters(pairs: &[String], json: Option<&str>) -> CliResult<Map<String, Value>> {
    let mut map = match json {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(Failure::Input(format!(
                    "--params must be a JSON object, not {other}"
                )));
            }
            Err(e) => return Err(Failure::Input(format!("--params is not JSON: {e}"))),
        },
    };
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(Failure::Input(format!(
                "--param {pair:?} is not NAME=VALUE"
            )));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(Failure::Input(format!("--param {pair:?} has no name")));
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        map.insert(name.to_owned(), value);
    }
    Ok(map)
}

/// A duration such as `90s`, `10m`, `1h30m`, `2d` or plain seconds (`45`).
pub(super) fn duration(text: &str) -> CliResult<SignedDuration> {
    let bad = || {
        Failure::Input(format!(
            "{text:?} is not a duration such as 30s, 10m, 1h30m or 2d"
        ))
    };
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return i64::try_from(secs)
            .map(SignedDuration::from_secs)
            .map_err(|_| bad());
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() || text.is_empty() {
        return Err(bad());
    }
    Ok(SignedDuration::from_secs(total))
}

/// When a run should start: `--start-in` from `now`, or `--start-at` (RFC 3339), or now.
pub(super) fn start_time(
    start_in: Option<&str>,
    start_at: Option<&str>,
    now: Timestamp,
) -> CliResult<Option<Timestamp>> {
    match (start_in, start_at) {
        (Some(_), Some(_)) => Err(Failure::Input(
            "give --start-in or --start-at, not both".into(),
        )),
        (Some(d), None) => now
            .checked_add(duration(d)?)
            .map(Some)
            .map_err(|e| Failure::Input(format!("--start-in {d:?}: {e}"))),
        (None, Some(t)) => t.parse::<Timestamp>().map(Some).map_err(|e| {
            Failure::Input(format!(
                "--start-at {t:?} is not an RFC 3339 time with an offset: {e}"
            ))
        }),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_units() {
        assert_eq!(duration("90s").unwrap(), SignedDuration::from_secs(90));
        assert_eq!(duration("1h30m").unwrap(), SignedDuration::from_secs(5400));
        assert_eq!(duration("45").unwrap(), SignedDuration::from_secs(45));
        for bad in ["", "10x", "m", "10m5", "-5m", "99999999999999999999d"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_read_json_values_and_fall_back_to_text() {
        let map = parameters(
            &["nums=[1, 2]".into(), "name=Leo".into(), "n=3".into()],
            Some(r#"{"n": 1, "x": true}"#),
        )
        .unwrap();
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"nums": [1, 2], "name": "Leo", "n": 3, "x": true})
        );
        assert!(parameters(&["novalue".into()], None).is_err());
        assert!(parameters(&[], Some("[1]")).is_err());
        assert!(parameters(&[], Some("{")).is_err());
    }
}
