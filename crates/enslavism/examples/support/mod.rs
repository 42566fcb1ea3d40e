//! What the example processes share.

use std::io::Read;

/// Resolves once stdin closes: a parent closing it ends the example, so a
/// benchmark or test cannot leave it behind (read on a thread: the engine's
/// tokio has no stdin feature).
pub async fn stdin_closed() {
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        let _ = eof_tx.send(());
    });
    let _ = eof_rx.await;
}
