//! What the kernel costs per loopback UDP datagram, with nothing else: one
//! thread sends bursts of 100 datagrams from one socket to another on
//! 127.0.0.1, then reads them; the thread's CPU time (user and system) is
//! split between the sends (which on loopback include the delivery into the
//! receiving socket) and the reads.
//!
//!     udp_cost [SIZE_BYTES]   (default 150)

use std::net::UdpSocket;
use std::time::Instant;

/// `struct timeval`.
#[repr(C)]
struct TimeVal {
    seconds: i64,
    micros: i64,
}

/// `struct rusage`: the two times, then 14 counters not read here.
#[repr(C)]
struct Usage {
    user: TimeVal,
    system: TimeVal,
    counters: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Usage) -> i32;
}

/// Linux's `RUSAGE_THREAD`.
const RUSAGE_THREAD: i32 = 1;

/// This thread's CPU time so far, in seconds.
fn thread_cpu() -> f64 {
    let mut usage =
        Usage { user: TimeVal { seconds: 0, micros: 0 }, system: TimeVal { seconds: 0, micros: 0 }, counters: [0; 14] };
    // SAFETY: `usage` is a valid, writable `struct rusage`.
    let status = unsafe { getrusage(RUSAGE_THREAD, &mut usage) };
    assert_eq!(status, 0, "getrusage failed");
    let seconds = |t: &TimeVal| t.seconds as f64 + t.micros as f64 / 1e6;
    seconds(&usage.user) + seconds(&usage.system)
}

fn main() {
    let size: usize = std::env::args().nth(1).map_or(150, |s| s.parse().expect("a size in bytes"));
    let sender = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    let to = receiver.local_addr().expect("its address");
    let datagram = vec![1u8; size];
    let mut buffer = vec![0u8; 2048];
    let (mut sending, mut reading, mut count) = (0.0, 0.0, 0u64);
    let started = Instant::now();
    // 100 per burst: well under the receiving socket's default buffer.
    for _ in 0..2000 {
        let before = thread_cpu();
        for _ in 0..100 {
            sender.send_to(&datagram, to).expect("sent");
        }
        let sent = thread_cpu();
        for _ in 0..100 {
            receiver.recv_from(&mut buffer).expect("received");
        }
        sending += sent - before;
        reading += thread_cpu() - sent;
        count += 100;
    }
    println!(
        "{count} datagrams of {size} B: send {:.2} µs, read {:.2} µs each ({:.2} µs of wall time per datagram)",
        sending * 1e6 / count as f64,
        reading * 1e6 / count as f64,
        started.elapsed().as_secs_f64() * 1e6 / count as f64
    );
}
