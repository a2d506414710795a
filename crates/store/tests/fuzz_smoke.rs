//! Stable-toolchain smoke run of the stored-record fuzz entry point (`fuzz/src/stored.rs`):
//! a record as the store writes it, its truncations, mutated copies and arbitrary bytes
//! must never panic the reader.

#[allow(unreachable_pub)] // the shared fuzz entry points are `pub` for cargo-fuzz
#[path = "../../../fuzz/src/stored.rs"]
mod stored;

use lienthong_store::{NewLedgerEntry, Store};
use proptest::prelude::*;

/// A record as the embedded store writes it (compact form), read back with SQL.
async fn stored_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("fuzz.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    let record = format!(
        r#"{{"message_id":"01a221fb8aefb8989e76e892dcd62d5d","side":"client","request_in":1795866462959,"request_description":"{}","request_signature":"v1;ecdsa-p256-sha256;1;0;{};","request_signer_certificate":"{}","request_body_sha256":"{:064x}","status":201,"body":{{"kind":"digest_only"}}}}"#,
        "bGllbnRob25nLXJlcXVlc3QvMQ==".repeat(8),
        "MEUCIF3IT3h5".repeat(8),
        "MIIB".repeat(100),
        7
    );
    store
        .ledger()
        .append(
            "fuzz",
            &[NewLedgerEntry {
                message_id: "01a221fb8aefb8989e76e892dcd62d5d".into(),
                leaf_hash: [1; 32],
                record: record.into_bytes(),
                recorded_at: 1_790_000_000,
            }],
        )
        .await
        .expect("append");
    drop(store);
    let connection = rusqlite::Connection::open(&path).expect("open with rusqlite");
    connection
        .query_row("SELECT record FROM ledger_records", [], |row| row.get(0))
        .expect("the stored record")
}

#[tokio::test]
async fn a_stored_record_its_truncations_and_mutations() {
    let stored = stored_bytes().await;
    assert_eq!(&stored[..2], &[0x01, 0x00], "written in the compact form");
    let plain = lienthong_store::plain_stored_form(&stored).expect("reads");
    assert!(plain.starts_with(b"\x01{\"message_id\":"));
    for end in 0..stored.len() {
        stored::stored_record(&stored[..end]);
        stored::stored_record(&stored[end..]);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..3_000 {
        let mut mutated = stored.clone();
        for _ in 0..1 + (state % 4) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % mutated.len() as u64) as usize;
            mutated[at] = (state >> 32) as u8;
        }
        stored::stored_record(&mutated);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        stored::stored_record(&data);
    }
}
