//! A global allocator that counts the heap held by each side of an
//! in-memory benchmark (the client ends, the server ends, the rest). What
//! a side's call (`as_side`) allocates is that side's until freed, whoever
//! frees it: a datagram made by one side and dropped by the other is taken
//! off the side that made it. Including this module installs the allocator.
//! Shared by `rtc_cost.rs` and `str0m_cost.rs`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

/// The client side.
pub const CLIENT: usize = 0;
/// The server side.
pub const SERVER: usize = 1;
/// Neither (setup, the harness).
const NEITHER: usize = 2;

/// Bytes held by each side.
static HELD: [AtomicI64; 3] = [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)];

thread_local! {
    /// Whose call is running.
    static SIDE: Cell<usize> = const { Cell::new(NEITHER) };
}

/// Room before each block for the side that made it.
const HEADER: usize = 16;

/// The system's layout for `layout` with the header, and where the caller's part starts.
fn with_header(layout: Layout) -> (Layout, usize) {
    let offset = HEADER.max(layout.align());
    let outer = Layout::from_size_align(layout.size() + offset, layout.align().max(HEADER)).expect("a layout");
    (outer, offset)
}

/// The system allocator, counting.
struct Counting;

// SAFETY: each block is the system's, `offset` bytes larger; the side is
// written just before what the caller gets and read back on free.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (outer, offset) = with_header(layout);
        let block = System.alloc(outer);
        if block.is_null() {
            return block;
        }
        let side = SIDE.try_with(Cell::get).unwrap_or(NEITHER);
        HELD[side].fetch_add(layout.size() as i64, Ordering::Relaxed);
        let inner = block.add(offset);
        inner.sub(8).cast::<usize>().write(side);
        inner
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let (outer, offset) = with_header(layout);
        let side = ptr.sub(8).cast::<usize>().read();
        HELD[side].fetch_sub(layout.size() as i64, Ordering::Relaxed);
        System.dealloc(ptr.sub(offset), outer)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` as `side`'s call: what it allocates counts as that side's.
pub fn as_side<T>(side: usize, f: impl FnOnce() -> T) -> T {
    SIDE.with(|s| s.set(side));
    let out = f();
    SIDE.with(|s| s.set(NEITHER));
    out
}

/// The bytes `side` holds now.
pub fn held(side: usize) -> i64 {
    HELD[side].load(Ordering::Relaxed)
}
