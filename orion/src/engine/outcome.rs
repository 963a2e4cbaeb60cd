//! What a run produced, and how user-code failures become states.

use std::any::{Any, TypeId};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::Error;
use crate::state::State;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A panic's payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// How a return value counts (generated per function by the macros).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Returned `()` or `Ok(())`.
    Unit,
    /// Returned a value or `Ok(value)`.
    Value,
    /// Returned `Err(e)`.
    Err {
        /// `e`'s `Display` text: the failed state's message.
        message: String,
        /// `e` with its causes (`outer: inner: root`): the run's error log line.
        chain: String,
    },
}

impl Verdict {
    /// `Unit` when `T` is `()`, else `Value`.
    pub fn of<T: 'static>(_: &T) -> Verdict {
        if TypeId::of::<T>() == TypeId::of::<()>() {
            Verdict::Unit
        } else {
            Verdict::Value
        }
    }
}

/// The end of one run: its final state (as stored, without data) and what the caller gets.
pub(crate) struct Outcome<R> {
    pub(crate) state: State,
    /// `Ok(value)`: the body returned (Completed, or Failed with an `Err`).
    /// `Err(Some(panic))`: the body panicked. `Err(None)`: no value (timeout, crash, cancel).
    pub(crate) value: Result<R, Option<Payload>>,
}

impl<R> Outcome<R> {
    pub(crate) fn without_value(state: State) -> Self {
        Outcome {
            state,
            value: Err(None),
        }
    }

    /// The caller's value: panics are re-raised here, and runs that produced no value become
    /// an `Err` through `from_error` when the return type allows one, else a panic.
    pub(crate) fn into_value(self, from_error: Option<fn(Error) -> R>, what: &str) -> R {
        match self.value {
            Ok(v) => v,
            Err(Some(payload)) => resume_unwind(payload),
            Err(None) => {
                let error = Error::Run {
                    state: self.state.without_data(),
                };
                match from_error {
                    Some(f) => f(error),
                    None => panic!(
                        "{what} ended in state {} without a value to return; call \
                         .return_state() to handle this without a panic",
                        self.state
                    ),
                }
            }
        }
    }

    pub(crate) fn into_state(self) -> State<R> {
        let value = self.value.ok();
        self.state.map_data(|_| value)
    }
}

/// Where panics inside runs happened, for the run's error log line.
///
/// The hook is installed once, beside whatever hook the program had: a panic inside a run
/// is noted on the run (its location), and the previous hook is called only when the console
/// does not show ERROR lines — the run's log line then says the same in the log format. A
/// panic anywhere else goes to the previous hook unchanged.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(ctx) = super::context::current() {
                ctx.note_panic(info.location().map(ToString::to_string));
                if crate::logging::should_print(crate::store::LogLevel::Error) {
                    return;
                }
            }
            previous(info);
        }));
    });
}

/// The error log line's text for a panic: its message, and where when known.
pub(crate) fn panic_detail(payload: &Payload, location: Option<String>) -> String {
    match location {
        Some(at) => format!("panicked at {at}: {}", panic_message(payload)),
        None => format!("panicked: {}", panic_message(payload)),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &Payload) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked with a non-string payload".to_owned()
    }
}

/// Polls a boxed future, turning a panic into `Err(payload)`.
pub(crate) struct CatchUnwind<T>(pub(crate) BoxFuture<T>);

impl<T> Future for CatchUnwind<T> {
    type Output = Result<T, Payload>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.get_mut().0;
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
