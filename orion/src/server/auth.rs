//! The bearer-token check, compared in constant time.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The cookie the dashboard keeps the token in.
const COOKIE: &str = "orion_token";

/// `app` with every request but `/api/health` and `/login` needing `token`, when there is one.
pub(crate) fn layer(app: Router, token: Option<Arc<str>>) -> Router {
    let Some(token) = token else {
        return app;
    };
    let login_token = token.clone();
    app.route(
        "/login",
        axum::routing::get(move |q: Query<Login>| login(q, login_token.clone())),
    )
    .layer(middleware::from_fn(move |req: Request, next: Next| {
        let token = token.clone();
        async move { check(&token, req, next).await }
    }))
}

fn same(given: &str, token: &str) -> bool {
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
}

async fn check(token: &str, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/api/health" || path == "/login" || path.starts_with("/static/") {
        return next.run(req).await;
    }
    match presented(req.headers()) {
        Some(given) if same(&given, token) => next.run(req).await,
        _ if !path.starts_with("/api") => Redirect::to("/login").into_response(),
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong API token").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this server needs a token: send Authorization: Bearer <ORION_API_TOKEN>",
        )
        .into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct Login {
    token: Option<String>,
}

async fn login(Query(q): Query<Login>, token: Arc<str>) -> Response {
    match q.token {
        Some(given) if same(&given, &token) => (
            [(
                header::SET_COOKIE,
                format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/"),
            )],
            Redirect::to("/"),
        )
            .into_response(),
        given => {
            let note = if given.is_some() { "<p class=err>Wrong token.</p>" } else { "" };
            let page = format!(
                "<!doctype html><meta charset=utf-8><title>orion: sign in</title>\
                 <link rel=stylesheet href=/static/app.css><main class=login><h1>orion</h1>{note}\
                 <form method=get action=/login><label>API token <input type=password name=token autofocus></label>\
                 <button>Sign in</button></form></main>"
            );
            (StatusCode::UNAUTHORIZED, axum::response::Html(page)).into_response()
        }
    }
}
