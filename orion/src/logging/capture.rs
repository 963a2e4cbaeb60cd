//! Captures plain `tracing` events emitted inside a run as that run's logs.
//!
//! Runs execute under [`dispatch`], a subscriber that stores each event with the current run
//! and passes everything on to the subscriber that was the default when orion first ran a
//! flow — the host's own subscriber keeps working unchanged.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Current, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Event, Level, LevelFilter, Metadata, Subscriber};

use crate::engine::context;
use crate::store::LogLevel;

/// The dispatcher runs execute under; created once, wrapping the default at that moment.
pub(crate) fn dispatch() -> &'static Dispatch {
    static DISPATCH: OnceLock<Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| {
        let inner = tracing_core::dispatcher::get_default(Dispatch::clone);
        Dispatch::new(Capture { inner })
    })
}

struct Capture {
    inner: Dispatch,
}

fn level_of(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warning,
        Level::INFO => LogLevel::Info,
        _ => LogLevel::Debug,
    }
}

fn wanted(meta: &Metadata<'_>) -> bool {
    if !meta.is_event() || meta.target().starts_with("orion::") {
        return false;
    }
    let level = level_of(meta.level());
    (crate::logging::should_store(level) || crate::logging::should_print(level))
        && context::in_run()
}

impl Subscriber for Capture {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        let inner = self.inner.register_callsite(meta);
        if meta.is_event() {
            Interest::sometimes()
        } else {
            inner
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        wanted(meta) || self.inner.enabled(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The inner subscriber's hint is not visible through `Dispatch`, so give none: every
        // callsite stays eligible and `enabled` decides.
        None
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values);
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        if wanted(meta) {
            if let Some(ctx) = context::current() {
                let mut text = Message(String::new());
                event.record(&mut text);
                ctx.log(level_of(meta.level()), Some(meta.target()), text.0);
            }
        }
        if self.inner.enabled(meta) {
            self.inner.event(event);
        }
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span);
    }
    fn exit(&self, span: &Id) {
        self.inner.exit(span);
    }
    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }
    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }
    fn current_span(&self) -> Current {
        self.inner.current_span()
    }
}

/// The event's `message` first, then its other fields as `name=value`.
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
}
