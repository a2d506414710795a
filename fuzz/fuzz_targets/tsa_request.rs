//! Fuzz target: see `lienthong_fuzz::tsa_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lienthong_fuzz::tsa_request(data));
