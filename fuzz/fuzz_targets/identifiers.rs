//! Fuzz target: see `lienthong_fuzz::identifiers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lienthong_fuzz::identifiers(data));
