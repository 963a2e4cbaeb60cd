//! The web dashboard: pages rendered on the server from the same client the API uses, a
//! stylesheet and one small script (live logs, actions through the API), all compiled into the
//! binary: no CDN, works offline.

mod deployments;
mod queues;
mod run;
mod runs;

use std::fmt::Write as _;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use jiff::Timestamp;

use crate::Orion;
use crate::state::{State, StateType};

pub(crate) fn routes() -> Router<Orion> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/runs", get(runs::page))
        .route("/runs/{id}", get(run::page))
        .route("/deployments", get(deployments::list))
        .route("/deployments/{id}", get(deployments::page))
        .route("/work-queues", get(queues::queues))
        .route("/concurrency-limits", get(queues::limits))
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/app.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/app.js"),
    )
        .into_response()
}

/// Text made safe inside HTML (elements and quoted attributes).
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text made safe inside a URL query value.
pub(crate) fn url_value(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A whole page: the navigation, `title`, and `body`.
pub(crate) fn layout(title: &str, nav: &str, body: &str) -> Html<String> {
    let link = |href: &str, label: &str| {
        let current = if href == nav {
            " aria-current=page"
        } else {
            ""
        };
        format!("<a href={href}{current}>{label}</a>")
    };
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{title} · orion</title><link rel=stylesheet href=/static/app.css>\
         <script src=/static/app.js defer></script></head><body>\
         <nav><a class=brand href=/runs>orion</a>{}{}{}{}</nav><main>{body}</main></body></html>",
        link("/runs", "Runs"),
        link("/deployments", "Deployments"),
        link("/work-queues", "Work queues"),
        link("/concurrency-limits", "Concurrency limits"),
        title = esc(title),
    ))
}

/// An error page (a missing record, a failed read).
pub(crate) fn error_page(status: axum::http::StatusCode, message: &str) -> Response {
    (
        status,
        layout(
            "Error",
            "",
            &format!("<h1>{}</h1><p class=err>{}</p>", status, esc(message)),
        ),
    )
        .into_response()
}

/// A state as a coloured badge (`Completed`, `Late`).
pub(crate) fn badge(state: Option<&State>) -> String {
    match state {
        Some(s) => format!(
            "<span class=\"badge {}\" title=\"{}\">{}</span>",
            state_class(s.state_type()),
            esc(s.message().unwrap_or("")),
            esc(s.name())
        ),
        None => "<span class=badge>none</span>".to_owned(),
    }
}

pub(crate) fn state_class(t: StateType) -> &'static str {
    match t {
        StateType::Scheduled => "scheduled",
        StateType::Pending => "pending",
        StateType::Running => "running",
        StateType::Completed => "completed",
        StateType::Failed => "failed",
        StateType::Cancelled => "cancelled",
        StateType::Crashed => "crashed",
        StateType::Paused => "paused",
        StateType::Cancelling => "cancelling",
    }
}

/// A time as `2026-12-07 05:14:28 UTC`, which the page's script shows in the browser's own
/// time zone (the UTC time staying as the element's tooltip).
pub(crate) fn time(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| {
            let s = t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
            format!("<time datetime=\"{t}\">{s}</time>")
        },
    )
}

/// A log line's time of day, `05:14:28.123` (UTC), shown in the browser's zone as [`time`].
pub(crate) fn clock(t: Timestamp) -> String {
    format!(
        "<time datetime=\"{t}\" data-form=clock>{}</time>",
        t.strftime("%H:%M:%S%.3f")
    )
}

/// A duration as `1.2s`, `3m 04s`, `2h 05m`.
pub(crate) fn duration(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    let (Some(start), Some(end)) = (start, end) else {
        return "—".to_owned();
    };
    let secs = end.duration_since(start).as_secs_f64().max(0.0);
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m {:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!(
            "{}h {:02}m",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html_and_urls() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_value("a b/é&"), "a%20b%2F%C3%A9%26");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let after = |s: i64| Some(t + jiff::SignedDuration::from_secs(s));
        assert_eq!(duration(Some(t), after(1)), "1.0s");
        assert_eq!(duration(Some(t), after(184)), "3m 04s");
        assert_eq!(duration(Some(t), after(7500)), "2h 05m");
        assert_eq!(duration(None, after(1)), "—");
    }
}
