//! The dashboard's pages and the token that guards the server.

use orion::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use super::server::{hello_deployment, http, served, srv_odd};
use crate::api::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_api_and_dashboard_and_the_dashboard_signs_in_once() {
    let orion = Orion::memory();
    let addr = serve(&orion, Some("s3cret")).await;
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let status =
        |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status() };
    let flows = format!("{base}/api/flows/filter");
    assert_eq!(
        status(client.get(format!("{base}/api/health"))).await,
        StatusCode::OK
    );
    assert_eq!(status(client.post(&flows)).await, StatusCode::UNAUTHORIZED);
    let wrong = client.post(&flows).bearer_auth("s3cre");
    assert_eq!(status(wrong).await, StatusCode::UNAUTHORIZED);
    let right = client.post(&flows).bearer_auth("s3cret").json(&json!({}));
    assert_eq!(status(right).await, StatusCode::OK);
    // The dashboard sends a browser to sign in, which sets a same-site cookie.
    let page = client.get(format!("{base}/runs")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login");
    let bad = client
        .get(format!("{base}/login?token=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers().get("set-cookie").is_none());
    let signed = client
        .get(format!("{base}/login?token=s3cret"))
        .send()
        .await
        .unwrap();
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let page = client
        .get(format!("{base}/runs"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    // The sign-in page's form posts the token (it stays out of the address bar), and a
    // wrong one is refused there too.
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::UNAUTHORIZED);
    assert!(
        form.text()
            .await
            .unwrap()
            .contains("<form method=post action=/login>")
    );
    let posted = |token: &'static str| {
        client
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let bad = posted("nope").await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers().get("set-cookie").is_none());
    let signed = posted("s3cret").await.unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        signed.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some(pair)
    );
    // Any other form POST is still refused.
    let form_post = client
        .post(&flows)
        .bearer_auth("s3cret")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=1");
    assert_eq!(status(form_post).await, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Binding beyond this machine without a token is refused.
    let (_switch, shutdown) = orion::services::Shutdown::new();
    let err = orion::server::Api::new("0.0.0.0:0".parse().unwrap())
        .token(None)
        .bind(&orion, shutdown)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("ORION_API_TOKEN"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_pages_show_runs_deployments_queues_and_limits() {
    let (orion, base) = served().await;
    let d = hello_deployment(&orion).await;
    let run = orion
        .client()
        .create_flow_run_from_deployment(&d, None)
        .await
        .unwrap();
    orion.scope(srv_odd()).await;
    orion.client().set_concurrency_limit("db", 4).await.unwrap();
    orion
        .client()
        .upsert_work_queue(orion::store::WorkQueue::new(
            "default",
            jiff::Timestamp::now(),
        ))
        .await
        .unwrap();
    let page = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let response = http().get(url).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, runs) = page("/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(runs.contains(&run.name), "the run is listed");
    assert!(runs.contains("<svg"), "the history chart is drawn");
    assert!(runs.contains("Flow runs <small>2</small>"));
    // Flow names are shown escaped, never as markup.
    assert!(runs.contains("srv &lt;b&gt;odd&lt;/b&gt; name"));
    assert!(!runs.contains("<b>odd</b>"));
    let (_, filtered) = page("/runs?state=COMPLETED").await;
    assert!(!filtered.contains(&run.name) && filtered.contains("Flow runs <small>1</small>"));
    let (status, _) = page("/runs?state=NOPE").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, one) = page(&format!("/runs/{}", run.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(one.contains("State history") && one.contains(">Cancel</button>"));
    let (status, _) = page(&format!("/runs/{}", orion::Uuid::from_u128(3))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, deployments) = page("/deployments").await;
    assert!(deployments.contains("srv-hello/greetings") && deployments.contains("every 1 hour"));
    assert!(deployments.contains("Quick Run"));
    let (_, deployment) = page(&format!("/deployments/{}", d.id)).await;
    assert!(deployment.contains("Custom Run") && deployment.contains("name=\"times\""));
    assert!(
        deployment.contains("value=\"Leo\""),
        "prefilled with the deployment's parameters"
    );
    let (_, queues) = page("/work-queues").await;
    assert!(queues.contains("<td>default</td>"));
    let (_, limits) = page("/concurrency-limits").await;
    assert!(limits.contains("tag:db") && limits.contains("<td>4</td>"));
    let (status, js) = page("/static/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("visibilityState"));
}
