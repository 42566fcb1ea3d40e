//! How the engine's events reach the JS thread, for every class that has
//! them: in batches (what the engine produces while the JS thread is busy
//! crosses in one call, and what one engine wake-up produces is held until
//! its end: see [`Deliverer::hold`]), and messages (the hot path) without an
//! event object.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What waits for the JS thread, and whether a call to take it is on its way.
struct Pending<E> {
    items: Vec<Delivery<E>>,
    scheduled: bool,
}

thread_local! {
    /// The deliverer (its address) whose deliveries this thread holds until
    /// its batch ends; 0 for none.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// Delivers one object's events to its JS callback, in order. A `WEAK` one
/// lets the process exit while it is set (the logger).
pub(crate) struct Deliverer<E: ToNapiValue + 'static, const WEAK: bool = false> {
    pending: Arc<Mutex<Pending<E>>>,
    callback: Mutex<Option<Arc<BatchCallback<E, WEAK>>>>,
    /// False once shut: what is held would never be called for.
    open: AtomicBool,
}

impl<E: ToNapiValue + Send + 'static, const WEAK: bool> Deliverer<E, WEAK> {
    /// Delivers to `on_events(batch)`.
    pub(crate) fn new(on_events: Function<'_, BatchArgs<E>, ()>) -> napi::Result<Self> {
        let pending = Arc::new(Mutex::new(Pending { items: Vec::new(), scheduled: false }));
        let taken = pending.clone();
        let callback = on_events.build_threadsafe_function::<()>().callee_handled::<false>().weak::<WEAK>().build_callback(
            move |ctx: ThreadsafeCallContext<()>| {
                let batch = {
                    let mut pending = taken.lock().unwrap_or_else(|p| p.into_inner());
                    pending.scheduled = false;
                    std::mem::take(&mut pending.items)
                };
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
        Ok(Deliverer { pending, callback: Mutex::new(Some(Arc::new(callback))), open: AtomicBool::new(true) })
    }

    /// This deliverer's key in [`HELD`].
    fn key(&self) -> usize {
        self as *const Self as usize
    }

    /// Queues `delivery`; the first of a batch schedules the call, unless
    /// this thread holds them (then [`Self::release`] does). False once shut
    /// (or while Node shuts down): nobody will see it.
    pub(crate) fn deliver(&self, delivery: Delivery<E>) -> bool {
        if !self.open.load(Ordering::Relaxed) {
            return false;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.items.push(delivery);
        if pending.scheduled || HELD.get() == self.key() {
            // A call is already on its way and takes this one too, or the batch's end schedules it.
            return true;
        }
        pending.scheduled = true;
        drop(pending);
        self.call()
    }

    /// Holds what this thread delivers until [`Self::release`]: one engine
    /// wake-up's events then wake the JS thread once (measured on one core
    /// shared by a shard and Node: 17,000 context switches a second each
    /// way at 30,000 messages a second in, one wake-up per 1.8 messages).
    pub(crate) fn hold(&self) {
        HELD.set(self.key());
    }

    /// Ends [`Self::hold`]: schedules the call for what was held.
    pub(crate) fn release(&self) {
        if HELD.get() != self.key() {
            return;
        }
        HELD.set(0);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.items.is_empty() || pending.scheduled {
            return;
        }
        pending.scheduled = true;
        drop(pending);
        self.call();
    }

    /// Schedules the JS callback; on failure (shut, Node shutting down)
    /// drops what waits, as nobody will see it.
    fn call(&self) -> bool {
        let callback = self.callback.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let called = callback.is_some_and(|cb| cb.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok);
        if !called {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.items.clear();
            pending.scheduled = false;
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
        if self.pending.lock().unwrap_or_else(|p| p.into_inner()).items.len() >= max {
            return false;
        }
        self.emit(event)
    }

    /// Delivers nothing more (a batch already scheduled still arrives).
    pub(crate) fn shut(&self) {
        self.open.store(false, Ordering::Relaxed);
        self.callback.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}
