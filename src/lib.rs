//! The N-API binding of the enslavism engine: converts arguments, forwards
//! calls to the `enslavism` crate, and delivers its events to JS. It decides
//! nothing; `index.js` turns it into enslavism 0.9.0's API.

#![deny(clippy::all)]

mod master;
mod slave;

pub use master::*;
pub use slave::*;

/// Errors thrown to JS carry one of these as their `code`.
pub(crate) mod codes {
    /// An argument had the right type but an unusable value.
    pub const INVALID_ARG: &str = "ERR_INVALID_ARG_VALUE";
    /// The object was closed.
    pub const CLOSED: &str = "ERR_ENSLAVISM_CLOSED";
    /// A socket handed over from Node could not be used.
    pub const ADOPT_FAILED: &str = "ERR_ENSLAVISM_ADOPT";
    /// No tokio runtime (cannot happen inside Node).
    pub const INTERNAL: &str = "ERR_ENSLAVISM_INTERNAL";
}

/// An error for JS with a message and a `code`.
pub(crate) fn js_error(code: &str, message: impl Into<String>) -> napi::Error<String> {
    napi::Error::new(code.to_owned(), message.into())
}

/// Prints the engine's logs on stderr when `ENSLAVISM_LOG` holds a filter
/// (`debug`, `enslavism=debug`, …). Called when the first engine object is made.
pub(crate) fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("ENSLAVISM_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
    });
}
