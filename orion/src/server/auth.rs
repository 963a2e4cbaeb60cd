//! What guards the server: the bearer token (compared in constant time); without a token, a
//! Host check (only `localhost` and loopback addresses: a page on another site cannot reach
//! the server by DNS rebinding); and JSON-only POSTs (a page on another site can post a form
//! to the server, never a JSON body without the server's CORS consent, which it never gives).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The cookie the dashboard keeps the token in.
const COOKIE: &str = "orion_token";

/// `app` guarded: every request but `/api/health` and `/login` needing `token` when there is
/// one, else coming for a loopback host name; every POST carrying JSON.
pub(crate) fn layer(app: Router, token: Option<Arc<str>>) -> Router {
    let app = app.layer(middleware::from_fn(json_posts));
    let Some(token) = token else {
        return app.layer(middleware::from_fn(loopback_host));
    };
    let (by_link, by_form) = (token.clone(), token.clone());
    app.route(
        "/login",
        axum::routing::get(move |Query(q): Query<Login>| login(q, by_link.clone()))
            .post(move |Form(f): Form<Login>| login(f, by_form.clone())),
    )
    .layer(middleware::from_fn(move |req: Request, next: Next| {
        let token = token.clone();
        async move { check(&token, req, next).await }
    }))
}

async fn json_posts(req: Request, next: Next) -> Response {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    // The sign-in form is the one POST that is a form: a page on another site posting it can
    // only sign its visitor in with a token it already knows.
    if req.method() == Method::POST && !json && req.uri().path() != "/login" {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a POST must send Content-Type: application/json (and a JSON body, `{}` when it has nothing to say)",
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether `host` (a Host header: name or address, maybe with a port) names this machine.
fn loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn loopback_host(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !loopback(host) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this server answers for localhost only, not {host:?}: to reach it by another name, give it a token (ORION_API_TOKEN)"
            ),
        )
        .into_response();
    }
    next.run(req).await
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
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
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

/// Signs a browser in: the token from the sign-in form (posted, so it stays out of the
/// address bar and history) or from a `/login?token=…` link (as Jupyter prints one).
async fn login(q: Login, token: Arc<str>) -> Response {
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
            let note = if given.is_some() {
                "<p class=err>Wrong token.</p>"
            } else {
                ""
            };
            let page = format!(
                "<!doctype html><meta charset=utf-8><title>orion: sign in</title>\
                 <link rel=stylesheet href=/static/app.css><main class=login><h1>orion</h1>{note}\
                 <form method=post action=/login><label>API token <input type=password name=token autofocus></label>\
                 <button>Sign in</button></form></main>"
            );
            (StatusCode::UNAUTHORIZED, axum::response::Html(page)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_this_machines_names_are_loopback() {
        for host in [
            "localhost",
            "localhost:4200",
            "127.0.0.1:4200",
            "127.3.2.1",
            "[::1]:4200",
            "LOCALHOST",
        ] {
            assert!(super::loopback(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:4200",
            "10.0.0.1:4200",
            "localhost.evil.example",
            "[::2]:1",
        ] {
            assert!(!super::loopback(host), "{host}");
        }
    }
}
