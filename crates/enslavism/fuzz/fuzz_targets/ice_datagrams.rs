#![no_main]
// See enslavism::fuzzing::ice_datagrams for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| enslavism::fuzzing::ice_datagrams(data));
