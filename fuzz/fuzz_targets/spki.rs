//! Fuzz target: see `lienthong_fuzz::spki`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lienthong_fuzz::spki(data));
