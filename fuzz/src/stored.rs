//! Fuzzed entry point of the message log's records as stored in a database, which an
//! intruder with access to it may have altered: `lienthong_store::plain_stored_form`, the
//! reader of the compact stored form. Included by the cargo-fuzz target `stored_record` and
//! by the stable smoke test `crates/store/tests/fuzz_smoke.rs`.

/// `plain_stored_form` over arbitrary bytes, as they are and as the body of a compact
/// stored form (`0x01 0x00` first): a result or an error, never a panic.
pub fn stored_record(data: &[u8]) {
    let _ = lienthong_store::plain_stored_form(data);
    let compact = [&[0x01, 0x00][..], data].concat();
    if let Ok(plain) = lienthong_store::plain_stored_form(&compact) {
        assert_eq!(plain.first(), Some(&0x01), "a packed record stays packed");
    }
}
