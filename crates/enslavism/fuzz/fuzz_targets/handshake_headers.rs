#![no_main]
// See enslavism::fuzzing::handshake_headers for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| enslavism::fuzzing::handshake_headers(data));
