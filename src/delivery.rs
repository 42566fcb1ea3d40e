//! How the engine's events reach the JS thread, for every class that has
//! them: one threadsafe-function call per event, and messages (the hot path)
//! without an event object.

use bytes::Bytes;
use napi::bindgen_prelude::{ArrayBuffer, Either, FnArgs, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction};
use napi::Status;

/// What the engine hands to the JS thread. Messages skip the event object
/// (one property set per field) and arrive as a fresh `ArrayBuffer`, which is
/// what `ev.data` must be anyway (an external Buffer cost a finalizer per
/// message plus a copy in JS).
pub(crate) enum Delivery<E> {
    Event(E),
    Message { channel: u64, data: Bytes, is_text: bool },
}

/// The JS callback's arguments: `(event, undefined)`, or `(channel, data)` for a message.
pub(crate) type DeliveryArgs<E> = FnArgs<(Either<E, i64>, Option<Either<ArrayBuffer<'static>, String>>)>;

/// The JS callback, callable from any thread.
pub(crate) type EventCallback<E> = ThreadsafeFunction<Delivery<E>, (), DeliveryArgs<E>, Status, false>;

/// Turns a delivery into the callback's arguments, on the JS thread.
pub(crate) fn delivery_args<E: ToNapiValue>(ctx: ThreadsafeCallContext<Delivery<E>>) -> napi::Result<DeliveryArgs<E>> {
    Ok(match ctx.value {
        Delivery::Event(event) => (Either::A(event), None).into(),
        Delivery::Message { channel, data, is_text } => {
            let payload = if is_text {
                Either::B(String::from_utf8_lossy(&data).into_owned())
            } else {
                Either::A(ArrayBuffer::copy_from(&ctx.env, &data)?)
            };
            (Either::B(channel as i64), Some(payload)).into()
        }
    })
}
