//! Fuzz target: see `fuzz/src/exchange.rs`, `batch_signature`.
#![no_main]

#[path = "../src/exchange.rs"]
mod exchange;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exchange::batch_signature(data));
