#![no_main]
// See enslavism::fuzzing::offer_text for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| enslavism::fuzzing::offer_text(data));
