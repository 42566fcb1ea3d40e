//! How the engine's events reach the JS thread, for every class that has
//! them: in batches (what the engine produces while the JS thread is busy
//! crosses in one call), and messages (the hot path) without an event object.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use napi::bindgen_prelude::{ArrayBuffer, Either4, FnArgs, Function, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

/// What the engine hands to the JS thread. Messages skip the event object
/// (one property set per field) and arrive as a fresh `ArrayBuffer`, which is
/// what `ev.data` must be anyway (an external Buffer cost a finalizer per
/// message plus a copy in JS).
pub(crate) enum Delivery<E> {
    Event(E),
    Message { channel: u64, data: Bytes, is_text: bool },
}

/// One entry of a batch: an event object, or a channel id followed by its
/// message (an `ArrayBuffer`, or a string for a text message).
pub(crate) type Entry<E> = Either4<E, i64, ArrayBuffer<'static>, String>;

/// The JS callback's one argument: the batch, flat.
pub(crate) type BatchArgs<E> = FnArgs<(Vec<Entry<E>>,)>;

/// The JS callback, callable from any thread; it takes the batch itself.
/// A `WEAK` one does not keep Node's event loop alive on its own.
type BatchCallback<E, const WEAK: bool> = ThreadsafeFunction<(), (), BatchArgs<E>, Status, false, WEAK>;

/// Delivers one object's events to its JS callback, in order. A `WEAK` one
/// lets the process exit while it is set (the logger).
pub(crate) struct Deliverer<E: ToNapiValue + 'static, const WEAK: bool = false> {
    pending: Arc<Mutex<Vec<Delivery<E>>>>,
    callback: Mutex<Option<Arc<BatchCallback<E, WEAK>>>>,
}

impl<E: ToNapiValue + Send + 'static, const WEAK: bool> Deliverer<E, WEAK> {
    /// Delivers to `on_events(batch)`.
    pub(crate) fn new(on_events: Function<'_, BatchArgs<E>, ()>) -> napi::Result<Self> {
        let pending: Arc<Mutex<Vec<Delivery<E>>>> = Arc::new(Mutex::new(Vec::new()));
        let taken = pending.clone();
        let callback = on_events.build_threadsafe_function::<()>().callee_handled::<false>().weak::<WEAK>().build_callback(
            move |ctx: ThreadsafeCallContext<()>| {
                let batch = std::mem::take(&mut *taken.lock().unwrap_or_else(|p| p.into_inner()));
                let mut entries = Vec::with_capacity(batch.len() * 2);
                for delivery in batch {
                    match delivery {
                        Delivery::Event(event) => entries.push(Either4::A(event)),
                        Delivery::Message { channel, data, is_text } => {
                            entries.push(Either4::B(channel as i64));
                            entries.push(if is_text {
                                Either4::D(String::from_utf8_lossy(&data).into_owned())
                            } else {
                                Either4::C(ArrayBuffer::copy_from(&ctx.env, &data)?)
                            });
                        }
                    }
                }
                Ok((entries,).into())
            },
        )?;
        Ok(Deliverer { pending, callback: Mutex::new(Some(Arc::new(callback))) })
    }

    /// Queues `delivery`; the first of a batch schedules the call. False
    /// once shut (or while Node shuts down): nobody will see it.
    pub(crate) fn deliver(&self, delivery: Delivery<E>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let first = pending.is_empty();
        pending.push(delivery);
        drop(pending);
        if !first {
            // A call is already on its way and takes this one too.
            return true;
        }
        let callback = self.callback.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let called = callback.is_some_and(|cb| cb.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok);
        if !called {
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        called
    }

    /// An event (not a message).
    pub(crate) fn emit(&self, event: E) -> bool {
        self.deliver(Delivery::Event(event))
    }

    /// An event, unless `max` are already waiting for the JS thread: then
    /// false, and it is dropped.
    pub(crate) fn emit_bounded(&self, event: E, max: usize) -> bool {
        if self.pending.lock().unwrap_or_else(|p| p.into_inner()).len() >= max {
            return false;
        }
        self.emit(event)
    }

    /// Delivers nothing more (a batch already scheduled still arrives).
    pub(crate) fn shut(&self) {
        self.callback.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}
