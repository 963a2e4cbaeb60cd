//! Captures plain `tracing` events emitted inside a run as that run's logs.
//!
//! Run bodies are polled with [`Captured`] (or called with [`with_capture`]): each poll makes
//! the capture dispatcher the default and remembers the one that was the default just before,
//! where the body is polled. The capture stores each event with the current run and passes
//! everything on to that remembered subscriber, so a host's global subscriber, set before or
//! after the first run, and a test's scoped `set_default` subscriber each receive exactly the
//! events emitted where they are the default.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Current, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Event, Level, LevelFilter, Metadata, Subscriber, dispatcher};

use crate::engine::context;
use crate::store::LogLevel;

thread_local! {
    /// The dispatcher events go on to: the default where the run code now executing on this
    /// thread was polled or called.
    static OUTER: RefCell<Option<Dispatch>> = const { RefCell::new(None) };
}

/// The capture dispatcher, created once.
fn dispatch() -> &'static Dispatch {
    static DISPATCH: OnceLock<Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| Dispatch::new(Capture))
}

/// The subscriber that code running here would report to without the capture.
pub(crate) fn outer_default() -> Dispatch {
    let current = dispatcher::get_default(Dispatch::clone);
    if current.is::<Capture>() {
        OUTER
            .with(|o| o.borrow().clone())
            .unwrap_or_else(Dispatch::none)
    } else {
        current
    }
}

/// Calls `f` with the capture as the default dispatcher, forwarding to `outer`.
pub(crate) fn with_capture<T>(outer: Dispatch, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Dispatch>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            OUTER.with(|o| *o.borrow_mut() = previous);
        }
    }
    let _restore = Restore(OUTER.with(|o| o.replace(Some(outer))));
    let _default = dispatcher::set_default(dispatch());
    f()
}

/// A future polled under the capture, forwarding to the default of wherever it is polled.
pub(crate) struct Captured<F>(pub(crate) F);

impl<F: Future + Unpin> Future for Captured<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = &mut self.get_mut().0;
        let current = dispatcher::get_default(Dispatch::clone);
        if current.is::<Capture>() {
            // Polled from inside another run's poll: the capture is in place already.
            return Pin::new(inner).poll(cx);
        }
        with_capture(current, || Pin::new(inner).poll(cx))
    }
}

/// Runs `f` with the subscriber events go on to.
fn with_outer<T>(f: impl FnOnce(&Dispatch) -> T) -> T {
    OUTER.with(|o| match &*o.borrow() {
        Some(d) => f(d),
        None => f(&Dispatch::none()),
    })
}

struct Capture;

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
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The subscriber behind the capture depends on where an event is emitted, so every
        // callsite is asked each time.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        wanted(meta) || with_outer(|d| d.enabled(meta))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The subscriber behind the capture varies, so give no hint: `enabled` decides.
        None
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        with_outer(|d| d.new_span(span))
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        with_outer(|d| d.record(span, values));
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        with_outer(|d| d.record_follows_from(span, follows));
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
        with_outer(|d| {
            if d.enabled(meta) {
                d.event(event);
            }
        });
    }

    fn enter(&self, span: &Id) {
        with_outer(|d| d.enter(span));
    }
    fn exit(&self, span: &Id) {
        with_outer(|d| d.exit(span));
    }
    fn clone_span(&self, id: &Id) -> Id {
        with_outer(|d| d.clone_span(id))
    }
    fn try_close(&self, id: Id) -> bool {
        with_outer(|d| d.try_close(id))
    }
    fn current_span(&self) -> Current {
        with_outer(|d| d.current_span())
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
