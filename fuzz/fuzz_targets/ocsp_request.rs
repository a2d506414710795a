//! Fuzz target: see `lienthong_fuzz::ocsp_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lienthong_fuzz::ocsp_request(data));
