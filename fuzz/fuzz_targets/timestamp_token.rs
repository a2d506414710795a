//! Fuzz target: see `fuzz/src/exchange.rs`, `timestamp_token`.
#![no_main]

#[path = "../src/exchange.rs"]
mod exchange;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exchange::timestamp_token(data));
