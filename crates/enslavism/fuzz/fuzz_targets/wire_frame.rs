#![no_main]
// See enslavism::fuzzing::wire_frame for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| enslavism::fuzzing::wire_frame(data));
