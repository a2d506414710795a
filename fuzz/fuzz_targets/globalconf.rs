//! Fuzz target: see `fuzz/src/exchange.rs`, `globalconf`.
#![no_main]

#[path = "../src/exchange.rs"]
mod exchange;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exchange::globalconf(data));
