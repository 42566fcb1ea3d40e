//! The N-API binding of the enslavism engine: converts arguments, forwards
//! calls to the `enslavism` crate, and delivers its events to JS. It decides
//! nothing; `index.js` turns it into enslavism 0.9.0's API.

#![deny(clippy::all)]

mod client;
mod convert;
mod delivery;
mod logging;
mod master;
mod outbox;
mod slave;

pub use client::*;
pub use convert::NativeIceServer;
pub(crate) use logging::init_logging;
pub use logging::*;
pub use master::*;
pub use slave::*;

/// Sizes the engine's tokio runtime before anything uses it: `ENSLAVISM_THREADS`
/// worker threads when set to a positive number (default: napi-rs's runtime,
/// one worker per core).
#[napi_derive::module_init]
fn init_runtime() {
    let Some(workers) = std::env::var("ENSLAVISM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0) else {
        return;
    };
    match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).thread_name("enslavism").enable_all().build() {
        Ok(runtime) => napi::bindgen_prelude::create_custom_tokio_runtime(runtime),
        Err(e) => eprintln!("enslavism: ENSLAVISM_THREADS={workers} ignored: {e}"),
    }
}

/// Errors thrown to JS carry one of these as their `code`.
pub(crate) mod codes {
    /// An argument had the right type but an unusable value.
    pub const INVALID_ARG: &str = "ERR_INVALID_ARG_VALUE";
    /// A number outside the range its option takes.
    pub const OUT_OF_RANGE: &str = "ERR_OUT_OF_RANGE";
    /// The object was closed.
    pub const CLOSED: &str = "ERR_ENSLAVISM_CLOSED";
    /// A socket handed over from Node could not be used.
    pub const ADOPT_FAILED: &str = "ERR_ENSLAVISM_ADOPT";
    /// No tokio runtime (cannot happen inside Node), or a bug caught in the engine.
    pub const INTERNAL: &str = "ERR_ENSLAVISM_INTERNAL";
    /// A certificate, key or CA given by the application is unusable.
    pub const CERTIFICATE: &str = "ERR_ENSLAVISM_CERTIFICATE";
    /// A TLS handshake failed (certificate not trusted, expired, for another
    /// name; or the other end does not speak TLS).
    pub const TLS: &str = "ERR_ENSLAVISM_TLS";
    /// `setTLS` on a master started without TLS.
    pub const NOT_TLS: &str = "ERR_ENSLAVISM_NOT_TLS";
}

/// Runs the body of a binding call so that a panic (a bug of ours) becomes a
/// JS error with code `ERR_ENSLAVISM_INTERNAL`: unwinding out of an N-API
/// callback would abort the whole Node process. (Calls that only read a field
/// or store a flag cannot panic and are not wrapped.)
pub(crate) fn guarded<T>(call: impl FnOnce() -> napi::Result<T, String>) -> napi::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|panic| Err(panic_error(&*panic)))
}

/// The JS error for a caught panic.
pub(crate) fn panic_error(panic: &(dyn std::any::Any + Send)) -> napi::Error<String> {
    let what = enslavism::panic_message(panic);
    js_error(codes::INTERNAL, format!("internal error in enslavism (please report it): {what}"))
}

/// Tasks alive on the engine's tokio runtime (for leak checks: this goes back
/// to its baseline once connections are gone).
#[napi_derive::napi]
pub fn runtime_tasks() -> napi::Result<u32, String> {
    guarded(|| {
        let tasks =
            napi::bindgen_prelude::within_runtime_if_available(|| tokio::runtime::Handle::current().metrics().num_alive_tasks());
        Ok(u32::try_from(tasks).unwrap_or(u32::MAX))
    })
}

/// Panics inside a binding call, to test that the panic is caught (debug
/// builds only: the tests run on one).
#[cfg(debug_assertions)]
#[napi_derive::napi(js_name = "__panicForTests")]
pub fn panic_for_tests() -> napi::Result<(), String> {
    guarded(|| panic!("a panic raised on purpose by a test"))
}

/// An error for JS with a message and a `code`.
pub(crate) fn js_error(code: &str, message: impl Into<String>) -> napi::Error<String> {
    napi::Error::new(code.to_owned(), message.into())
}
