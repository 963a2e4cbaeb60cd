//! The dashboard in a real browser: headless Chromium from the OS packages, driven through
//! `chromedriver`. Quick Run runs the seed's deployment to Completed with its "Hello Leo!"
//! log line; a Custom Run with a bad parameter shows the error at the field; a running run is
//! cancelled. Screenshots of the main pages are saved (to `ORION_SCREENSHOTS`, else under the
//! target directory).
//!
//! Outside CI the test skips, saying so, when Chromium or its driver is not installed; under
//! CI (`CI` set) it fails instead.

#[path = "support/api.rs"]
mod api;
#[path = "support/temp.rs"]
mod temp;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orion::prelude::*;
use orion::store::SqliteStore;
use serde_json::json;

#[task]
async fn log_message(name: String) {
    get_run_logger().info(format!("Hello {name}!"));
}

/// The seed's flow.
#[flow(name = "leonardo_dicapriflow")]
async fn leonardo_dicapriflow(name: String) {
    log_message(name).await;
}

#[task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[flow(name = "Addition Machine")]
async fn addition_machine(nums: Vec<i64>, rounds: u32) -> i64 {
    let mut total = 0;
    for _ in 0..rounds {
        for n in &nums {
            total = add(total, *n).await;
        }
    }
    total
}

#[flow(name = "long-job")]
async fn long_job(seconds: u64) {
    for i in 0..seconds * 10 {
        if i % 10 == 0 {
            get_run_logger().info(format!("working: {}s", i / 10));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn shots() -> PathBuf {
    std::env::var_os("ORION_SCREENSHOTS").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
        PathBuf::from,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_run_custom_run_and_cancel_in_a_real_browser() {
    let Some((driver, chromium)) = webdriver::installed() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (.ci/run does)"
        );
        eprintln!("skipped: no chromium/chromedriver (apt-get install chromium chromium-driver)");
        return;
    };
    orion::logging::set_console_level(None);
    let store = SqliteStore::open(temp::temp_db("browser")).unwrap();
    let orion = Orion::with_store(Arc::new(store));
    let hourly = IntervalSchedule::new(Duration::from_secs(3600)).unwrap();
    let leo = DeploymentSpec::new("leo")
        .flow(leonardo_dicapriflow)
        .parameters(json!({"name": "Leo"}))
        .schedule(hourly.clone())
        .apply(orion.client())
        .await
        .unwrap();
    let adder = DeploymentSpec::new("my-first-deployment")
        .flow(addition_machine)
        .parameters(json!({"nums": [1, 2, 3], "rounds": 2}))
        .schedule(orion::schedule::CronSchedule::new("0 9 * * *").unwrap())
        .apply(orion.client())
        .await
        .unwrap();
    let long = DeploymentSpec::new("nightly")
        .flow(long_job)
        .parameters(json!({"seconds": 120}))
        .apply(orion.client())
        .await
        .unwrap();
    // History for the chart: a few runs finished directly.
    for _ in 0..3 {
        orion
            .execute_deployment("Addition Machine/my-first-deployment")
            .await
            .unwrap();
    }
    let addr = api::serve(&orion, None).await;
    let services = orion
        .serve()
        .agent(
            Agent::new()
                .limit(4)
                .poll_interval(Duration::from_millis(200)),
        )
        .start();
    let base = format!("http://{addr}");
    let browser = webdriver::Browser::start(&driver, &chromium, 1280, 860).await;
    let wait = Duration::from_secs(30);

    // Quick Run on the seed's deployment: the page of the new run follows it to Completed and
    // shows its log line.
    browser.goto(&format!("{base}/deployments")).await;
    browser
        .wait_for("//td/a", "leonardo_dicapriflow/leo", wait)
        .await;
    browser.screenshot(&shots().join("deployments.png")).await;
    let quick = browser
        .all("//tr[td/a[.='leonardo_dicapriflow/leo']]//button[.='Quick Run']")
        .await;
    assert_eq!(quick.len(), 1, "one Quick Run button on the seed's row");
    browser.click(&quick[0]).await;
    browser
        .wait_for("//*[@id='run-state']", "Completed", wait)
        .await;
    browser
        .wait_for("//*[@id='logs']", "Hello Leo!", wait)
        .await;
    let url = browser.url().await;
    let run_id: orion::Uuid = url.rsplit('/').next().unwrap().parse().unwrap();
    let run = orion.client().read_flow_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.deployment_id, Some(leo.id));
    assert!(run.state.unwrap().is_completed());
    browser.screenshot(&shots().join("run.png")).await;

    // Custom Run: a value of the wrong type is shown at its field and creates nothing; a good
    // one runs.
    let before = orion
        .client()
        .read_flow_runs(&Default::default())
        .await
        .unwrap()
        .len();
    browser
        .goto(&format!("{base}/deployments/{}", adder.id))
        .await;
    let rounds = browser.wait_for("//input[@name='rounds']", "", wait).await;
    browser.fill(&rounds, "-2").await;
    let run_button = browser
        .all("//form[contains(@class,'custom-run')]//button")
        .await;
    browser.click(&run_button[0]).await;
    browser
        .wait_for("//span[@data-for='rounds']", "parameter 'rounds'", wait)
        .await;
    let nums = browser.all("//input[@name='nums']").await;
    browser.fill(&nums[0], "[1, 2,").await;
    browser.click(&run_button[0]).await;
    browser
        .wait_for("//span[@data-for='nums']", "not valid JSON", wait)
        .await;
    browser.screenshot(&shots().join("custom-run.png")).await;
    let after = orion
        .client()
        .read_flow_runs(&Default::default())
        .await
        .unwrap()
        .len();
    assert_eq!(after, before, "a refused Custom Run creates no run");
    browser.fill(&nums[0], "[10, 20]").await;
    browser.fill(&rounds, "3").await;
    browser.click(&run_button[0]).await;
    browser
        .wait_for("//*[@id='run-state']", "Completed", wait)
        .await;
    browser.wait_for("//h2", "Task runs 6", wait).await;

    // Cancel a running run from its page.
    let job = orion
        .client()
        .create_flow_run_from_deployment(&long, None)
        .await
        .unwrap();
    browser.goto(&format!("{base}/runs/{}", job.id)).await;
    browser
        .wait_for("//*[@id='logs']", "working: 1s", wait)
        .await;
    let cancel = browser.wait_for("//button", "Cancel", wait).await;
    browser.click(&cancel).await;
    browser
        .wait_for("//*[@id='run-state']", "Cancelled", wait)
        .await;
    let job = orion.client().read_flow_run(job.id).await.unwrap().unwrap();
    assert!(job.state.unwrap().is_cancelled());

    browser.goto(&format!("{base}/runs")).await;
    browser.wait_for("//h1", "Flow runs", wait).await;
    // Times are shown in the browser's zone (Asia/Kolkata here), UTC in the tooltip.
    let quick_run = orion.client().read_flow_run(run_id).await.unwrap().unwrap();
    let started = quick_run.start_time.unwrap();
    let shown = browser
        .all(&format!("//tr[td/a[.='{}']]//time", quick_run.name))
        .await;
    assert_eq!(shown.len(), 1, "the Quick Run's row shows its start");
    assert_eq!(
        browser.text(&shown[0]).await,
        started
            .in_tz("Asia/Kolkata")
            .unwrap()
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    );
    assert_eq!(
        browser.attribute(&shown[0], "title").await,
        started.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
    );
    browser.screenshot(&shots().join("runs.png")).await;
    browser.goto(&format!("{base}/work-queues")).await;
    browser.wait_for("//td", "default", wait).await;
    browser.screenshot(&shots().join("work-queues.png")).await;
    browser.close();
    services.shutdown().await.unwrap();
}
