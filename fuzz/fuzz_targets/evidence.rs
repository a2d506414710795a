//! Fuzz target: see `fuzz/src/evidence.rs`, `evidence`.
#![no_main]

#[path = "../src/evidence.rs"]
mod evidence;

libfuzzer_sys::fuzz_target!(|data: &[u8]| evidence::evidence(data));
