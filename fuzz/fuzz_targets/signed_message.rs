//! Fuzz target: see `fuzz/src/exchange.rs`, `signed_message`.
#![no_main]

#[path = "../src/exchange.rs"]
mod exchange;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exchange::signed_message(data));
