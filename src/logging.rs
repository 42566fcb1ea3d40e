//! The engine's logs (`tracing`, and the `log` records of str0m's DTLS and
//! SCTP crates through the tracing-log bridge): on stderr when
//! `ENSLAVISM_LOG` holds a filter, and to the application's logger once
//! `setLogger` gave one. Quiet otherwise: nothing is installed, so a log
//! call costs a level check.
//!
//! The application's logger gets records in batches on the JS thread: a log
//! line on an engine thread is queued (one lock, no JS), and whatever piled
//! up crosses in one call.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::Function;
use napi_derive::napi;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::delivery::{BatchArgs, Deliverer};
use crate::{codes, js_error};

/// The filter of a logger given without one: our own info lines (the
/// addresses a slave announces, its reflexive address…), warnings of the rest.
const DEFAULT_LOGGER_FILTER: &str = "warn,enslavism=info";

/// One log line, as the application's logger gets it.
#[napi(object)]
pub struct NativeLogRecord {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Where it comes from: a Rust module path (`enslavism::slave::engine`, `rtc_sctp::association`…).
    pub target: String,
    /// The message.
    pub message: String,
    /// The record's other fields, formatted.
    pub fields: HashMap<String, String>,
}

/// Records waiting for the JS thread, at most: a filter that lets through
/// debug lines of a busy engine must not grow the process while JS is busy;
/// past it, records are dropped and counted.
const MAX_QUEUED_RECORDS: usize = 10_000;

/// The application's logger, while one is set.
static LOGGER: Mutex<Option<Arc<Deliverer<NativeLogRecord, true>>>> = Mutex::new(None);
/// Records dropped because the queue was full (see [`dropped_log_records`]).
static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Log records dropped so far because the JS thread did not take them fast
/// enough (at most 10,000 wait).
#[napi]
pub fn dropped_log_records() -> i64 {
    DROPPED.load(std::sync::atomic::Ordering::Relaxed) as i64
}

/// The filter of the installed subscriber, which `setLogger` changes.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the subscriber once, with `filter`; later calls change its filter.
fn install(filter: &str) -> Result<(), String> {
    let parsed = EnvFilter::try_new(filter).map_err(|e| format!("{filter:?} is not a log filter: {e}"))?;
    set_log_max_level(&parsed);
    if let Some(handle) = FILTER.get() {
        return handle.reload(parsed).map_err(|e| e.to_string());
    }
    let (filter_layer, handle) = reload::Layer::new(parsed);
    let stderr = std::env::var_os("ENSLAVISM_LOG").map(|_| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    // Another subscriber set by someone else in this process wins; ours then stays out.
    if Registry::default().with(filter_layer).with(stderr).with(JsLayer).try_init().is_ok() {
        let _ = FILTER.set(handle);
    }
    Ok(())
}

/// dimpl and sctp-proto log through the `log` crate: their records reach us
/// only up to `log`'s own maximum level, which the bridge sets once at
/// installation.
fn set_log_max_level(filter: &EnvFilter) {
    let level = match filter.max_level_hint() {
        Some(tracing::level_filters::LevelFilter::OFF) => log::LevelFilter::Off,
        Some(tracing::level_filters::LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(tracing::level_filters::LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(tracing::level_filters::LevelFilter::INFO) => log::LevelFilter::Info,
        Some(tracing::level_filters::LevelFilter::DEBUG) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    log::set_max_level(level);
}

/// Prints the engine's logs on stderr when `ENSLAVISM_LOG` holds a filter
/// (`debug`, `enslavism=debug`, …). Called when the first engine object is made.
pub(crate) fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // A logger set before (with its own filter) installed it already.
        if FILTER.get().is_some() {
            return;
        }
        if let Ok(filter) = std::env::var("ENSLAVISM_LOG") {
            if let Err(e) = install(&filter) {
                eprintln!("enslavism: ENSLAVISM_LOG ignored: {e}");
            }
        }
    });
}

/// Sends the engine's logs to `logger` (a function taking the batch of
/// records), with `filter` (`tracing`'s EnvFilter syntax; default: the
/// `ENSLAVISM_LOG` variable, else `warn,enslavism=info`); `null` stops.
#[napi]
pub fn set_logger(
    logger: Option<Function<'_, BatchArgs<NativeLogRecord>, ()>>,
    filter: Option<String>,
) -> napi::Result<(), String> {
    crate::guarded(|| {
        let from_env = std::env::var("ENSLAVISM_LOG").ok();
        let Some(logger) = logger else {
            if let Some(old) = LOGGER.lock().unwrap_or_else(|p| p.into_inner()).take() {
                old.shut();
            }
            // Back to what the variable asks, or quiet.
            if FILTER.get().is_some() {
                install(from_env.as_deref().unwrap_or("off")).map_err(|e| js_error(codes::INVALID_ARG, e))?;
            }
            return Ok(());
        };
        let filter = filter.or(from_env).unwrap_or_else(|| DEFAULT_LOGGER_FILTER.to_owned());
        // Checked before anything changes: a bad filter leaves the old logger.
        EnvFilter::try_new(&filter).map_err(|e| js_error(codes::INVALID_ARG, format!("{filter:?} is not a log filter: {e}")))?;
        let deliverer = Deliverer::new(logger).map_err(|e| js_error(codes::INTERNAL, e.reason))?;
        if let Some(old) = LOGGER.lock().unwrap_or_else(|p| p.into_inner()).replace(Arc::new(deliverer)) {
            old.shut();
        }
        install(&filter).map_err(|e| js_error(codes::INVALID_ARG, e))
    })
}

/// Hands each record that passed the filter to the application's logger.
struct JsLayer;

impl<S: Subscriber> Layer<S> for JsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(logger) = LOGGER.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return };
        let metadata = event.metadata();
        let mut record = Record::default();
        event.record(&mut record);
        // Records bridged from `log` name their origin in fields of their own.
        let target = record.log_target.take().unwrap_or_else(|| metadata.target().to_owned());
        let record = NativeLogRecord {
            level: metadata.level().as_str().to_ascii_lowercase(),
            target,
            message: record.message,
            fields: record.fields,
        };
        if !logger.emit_bounded(record, MAX_QUEUED_RECORDS) {
            DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A record's message and fields, formatted.
#[derive(Default)]
struct Record {
    message: String,
    fields: HashMap<String, String>,
    log_target: Option<String>,
}

impl Visit for Record {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.record_str(field, &text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "log.target" => self.log_target = Some(value.to_owned()),
            "log.module_path" | "log.file" | "log.line" => {}
            name => {
                self.fields.insert(name.to_owned(), value.to_owned());
            }
        }
    }
}
