//! Replays the fuzz targets' seed corpus and every input that once crashed a
//! target (`fuzz/regressions/<target>/`) through the same entry points, so
//! that a plain `cargo test` guards them without a fuzzer.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let input = std::fs::read(&path).expect("readable corpus file");
            run(&input);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no seed inputs for {target}");
}

#[test]
fn wire_frame_corpus() {
    replay("wire_frame", enslavism::fuzzing::wire_frame);
}

#[test]
fn handshake_headers_corpus() {
    replay("handshake_headers", enslavism::fuzzing::handshake_headers);
}

#[test]
fn offer_text_corpus() {
    replay("offer_text", enslavism::fuzzing::offer_text);
}

#[test]
fn ice_datagrams_corpus() {
    replay("ice_datagrams", enslavism::fuzzing::ice_datagrams);
}
