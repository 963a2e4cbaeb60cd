use orion::prelude::*;
use orion::registry;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

#[flow(name = "registry-sum", version = "1.2", description = "adds numbers")]
async fn registry_sum(nums: Vec<i64>, offset: Option<i64>, origin: Point) -> i64 {
    nums.iter().sum::<i64>() + offset.unwrap_or(0) + i64::from(origin.x + origin.y)
}

/// Not serializable: runs from the registry carry no data for it.
struct Opaque(#[allow(dead_code)] u8);

#[flow(name = "registry-opaque")]
async fn registry_opaque() -> Opaque {
    Opaque(1)
}

#[tokio::test]
async fn flows_are_registered_with_their_parameters() {
    let flow = registry::flow("registry-sum").expect("registered");
    assert_eq!(flow.parameters, ["nums", "offset", "origin"]);
    assert_eq!(flow.version, Some("1.2"));
    assert_eq!(flow.description, Some("adds numbers"));
    let names: Vec<&str> = registry::flows().iter().map(|f| f.name).collect();
    assert!(names.contains(&"registry-sum") && names.contains(&"registry-opaque"));
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

#[tokio::test]
async fn a_registered_flow_runs_from_json_and_records_its_parameters() {
    let orion = Orion::memory();
    let flow = registry::require("registry-sum").unwrap();
    let params = json!({"nums": [1, 2, 3], "origin": {"x": 10, "y": 20}});
    let state = flow.run(&orion, params).await.unwrap();
    assert!(state.is_completed());
    assert_eq!(
        state.data(),
        Some(&json!(36)),
        "a missing Option parameter is None"
    );
    let runs = orion
        .client()
        .read_flow_runs(&Default::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].parameters["nums"], json!([1, 2, 3]));
    assert_eq!(runs[0].parameters["offset"], json!(null));
}

#[tokio::test]
async fn bad_parameters_are_refused_before_a_run_starts_naming_the_parameter() {
    let orion = Orion::memory();
    let flow = registry::require("registry-sum").unwrap();
    let cases = [
        (
            json!({"nums": "1,2", "origin": {"x": 1, "y": 2}}),
            "parameter 'nums': invalid type",
        ),
        (json!({"nums": [1]}), "missing parameter 'origin'"),
        (
            json!({"nums": [1], "origin": {"x": 1}}),
            "parameter 'origin': missing field `y`",
        ),
        (
            json!({"nums": [1], "origin": {"x": 1, "y": 2}, "extra": true}),
            "unknown parameter 'extra'",
        ),
        (json!([1, 2]), "parameters must be a JSON object"),
    ];
    for (params, expected) in cases {
        let err = flow.run(&orion, params.clone()).await.unwrap_err();
        assert!(
            matches!(err, orion::Error::InvalidParameters { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(expected), "{params}: {text}");
        assert!(text.contains("registry-sum"), "{text}");
    }
    assert!(
        orion
            .client()
            .read_flow_runs(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_flows_are_an_error_listing_the_known_ones() {
    let err = registry::require("no-such-flow").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no-such-flow") && text.contains("registry-sum"),
        "{text}"
    );
}

#[tokio::test]
async fn results_that_do_not_serialize_complete_without_data() {
    let state = registry::require("registry-opaque")
        .unwrap()
        .run(&Orion::memory(), json!({}))
        .await
        .unwrap();
    assert!(state.is_completed());
    assert_eq!(state.data(), None);
    let null = registry::require("registry-opaque")
        .unwrap()
        .run(&Orion::memory(), json!(null))
        .await;
    assert!(null.is_ok(), "null means no parameters");
}

#[flow(name = "registry-count-anyhow")]
async fn registry_count_anyhow(words: Vec<String>) -> anyhow::Result<usize> {
    anyhow::ensure!(!words.is_empty(), "no words to count");
    Ok(words.len())
}

#[flow(name = "registry-double")]
async fn registry_double(x: u32) -> Result<u32, String> {
    if x == 0 {
        return Err("zero".into());
    }
    Ok(x * 2)
}

#[tokio::test]
async fn a_flow_returning_result_carries_its_ok_value_when_run_by_name() {
    let orion = Orion::memory();
    let count = registry::require("registry-count-anyhow").unwrap();
    let state = count
        .run(&orion, json!({"words": ["a", "b"]}))
        .await
        .unwrap();
    assert_eq!(state.to_string(), "Completed(None)");
    assert_eq!(state.data(), Some(&json!(2)));
    let failed = count.run(&orion, json!({"words": []})).await.unwrap();
    assert_eq!(failed.to_string(), "Failed('no words to count')");
    assert_eq!(failed.data(), None);

    let double = registry::require("registry-double").unwrap();
    let state = double.run(&orion, json!({"x": 7})).await.unwrap();
    assert_eq!(
        state.data(),
        Some(&json!(14)),
        "the value, not {{\"Ok\": 14}}"
    );
    let failed = double.run(&orion, json!({"x": 0})).await.unwrap();
    assert_eq!(failed.to_string(), "Failed('zero')");
    assert_eq!(failed.data(), None);
}
