//! How messages sent from JS reach the engine: the wrapper's outbox
//! (`lib/outbox.js`) keeps what one JS turn sends and hands it over in one
//! call. A call per message cost 1.2–1.3 µs of the JS thread (most of it
//! napi-rs's per-call checks and our channel look-up); a batch pays that
//! once (0.14–0.56 µs per send, `bench/probes/send_cost.js`).

use bytes::Bytes;

use crate::{codes, js_error};

/// One message of a batch: its channel, its bytes (copied out of the batch on
/// their own, so that a message waiting on a slow channel holds only itself),
/// and whether it is text.
pub(crate) type Outgoing = (u64, Bytes, bool);

/// Reads a batch: `bytes` holds the messages back to back, `meta` three
/// numbers per message (channel, byte length, 1 for text). The whole batch is
/// checked before the first message is taken: a malformed one (a bug of the
/// wrapper's) sends nothing.
pub(crate) fn read_batch<'a>(bytes: &'a [u8], meta: &'a [f64]) -> napi::Result<impl Iterator<Item = Outgoing> + 'a, String> {
    let malformed = || js_error(codes::INTERNAL, "malformed send batch");
    if !meta.len().is_multiple_of(3) {
        return Err(malformed());
    }
    let mut total = 0usize;
    for m in meta.chunks_exact(3) {
        let (channel, len) = (m[0], m[1]);
        let whole = |x: f64| x >= 0.0 && x.fract() == 0.0 && x <= 2f64.powi(53);
        if !whole(channel) || !whole(len) {
            return Err(malformed());
        }
        total = total.checked_add(len as usize).ok_or_else(malformed)?;
    }
    if total != bytes.len() {
        return Err(malformed());
    }
    let mut offset = 0;
    Ok(meta.chunks_exact(3).map(move |m| {
        let len = m[1] as usize;
        let data = Bytes::copy_from_slice(&bytes[offset..offset + len]);
        offset += len;
        (m[0] as u64, data, m[2] != 0.0)
    }))
}
