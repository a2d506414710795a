//! Fuzz target: see `fuzz/src/stored.rs`, `stored_record`.
#![no_main]

#[path = "../src/stored.rs"]
mod stored;

libfuzzer_sys::fuzz_target!(|data: &[u8]| stored::stored_record(data));
